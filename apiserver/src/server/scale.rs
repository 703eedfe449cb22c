//! The `scale` subresource (`autoscaling/v1` Scale) of deployments, replicasets and
//! statefulsets: `kubectl scale` reads and patches it; writes change `spec.replicas` of the
//! parent object with the same optimistic concurrency as any update.

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::rest::Ownership;
use super::Api;
use super::ResourceRequest;
use crate::object::{meta_str, UpdateScope};
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};

/// The Scale view of a parent object.
pub fn scale_of(obj: &Value) -> Value {
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// GET, PUT or PATCH on `<parent>/scale`.
pub async fn serve(
    api: &Api,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    r: &ResourceRequest<'_>,
) -> ApiResult<Response> {
    let (method, content_type, body) = (r.method.clone(), r.content_type, r.body);
    let opts = r.options("UpdateOptions")?;
    let opts = &opts;
    let owner = Ownership::Update {
        opts,
        subresource: Some("scale"),
    };
    for _ in 0..5 {
        let (parent, rev) = api.read(res, ns, name).await?;
        let current = scale_of(&parent);
        let wanted = match method {
            Method::GET => return Ok(axum::Json(current).into_response()),
            Method::PUT => crate::object::parse_body(body)?,
            Method::PATCH => crate::patch::apply(
                content_type.split(';').next().unwrap_or("").trim(),
                &current,
                body,
            )?,
            m => {
                return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method ({m}) on the requested resource ({}/scale)",
                res.plural
            )))
            }
        };
        if let Some(rv) = meta_str(&wanted, "resourceVersion").filter(|s| !s.is_empty()) {
            if rv != rev.to_string() {
                return Err(ApiError::conflict(res, name));
            }
        }
        let replicas = wanted["spec"]["replicas"].as_i64().ok_or_else(|| {
            ApiError::bad_request("spec.replicas of the Scale must be an integer")
        })?;
        if replicas < 0 {
            return Err(ApiError::invalid(
                res,
                name,
                vec![crate::status::Cause {
                    reason: "FieldValueInvalid",
                    message: format!(
                        "Invalid value: {replicas}: must be greater than or equal to 0"
                    ),
                    field: "spec.replicas".into(),
                }],
            ));
        }
        let mut updated = parent.clone();
        updated["spec"]["replicas"] = json!(replicas);
        match api
            .write_update(
                res,
                ns,
                name,
                &mut updated,
                &parent,
                rev,
                UpdateScope::Main,
                opts.dry_run,
                &owner,
            )
            .await
        {
            Ok(saved) => return Ok(axum::Json(scale_of(&saved)).into_response()),
            Err(e) if e.reason == "Conflict" && method == Method::PATCH => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(res, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view() {
        let d = json!({"metadata": {"name": "web", "namespace": "d", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }
}
