//! `pods/binding`: the scheduler's way to place a pod. A `Binding` names a node; the pod's
//! `spec.nodeName` is set once (a bound pod is a 409 Conflict), with the same optimistic
//! concurrency as any update.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::rest::Ownership;
use super::Api;
use super::ResourceRequest;
use crate::object::UpdateScope;
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};

/// The node a Binding body targets.
pub fn target_node(binding: &Value, pod: &str) -> ApiResult<String> {
    if let Some(name) = binding["metadata"]["name"].as_str() {
        if !name.is_empty() && name != pod {
            return Err(ApiError::bad_request(format!(
                "the name of the binding ({name}) does not match the pod ({pod})"
            )));
        }
    }
    let target = &binding["target"];
    if target["kind"]
        .as_str()
        .is_some_and(|k| !k.is_empty() && k != "Node")
    {
        return Err(ApiError::bad_request("a binding's target must be a Node"));
    }
    match target["name"].as_str() {
        Some(n) if !n.is_empty() => Ok(n.to_string()),
        _ => Err(ApiError::bad_request(
            "a binding needs target.name (the node)",
        )),
    }
}

/// POST on `pods/<name>/binding`.
pub async fn serve(
    api: &Api,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    r: &ResourceRequest<'_>,
) -> ApiResult<Response> {
    let (method, body) = (&r.method, r.body);
    let opts = r.options("CreateOptions")?;
    let opts = &opts;
    if *method != Method::POST {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method ({method}) on the requested resource (pods/binding)"
        )));
    }
    let node = target_node(&crate::object::parse_body(body)?, name)?;
    let (pod, rev) = api.read(res, ns, name).await?;
    if pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
    {
        return Err(ApiError {
            message: format!(
                "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{}\"",
                pod["spec"]["nodeName"].as_str().unwrap_or_default()
            ),
            ..ApiError::conflict(res, name)
        });
    }
    let mut bound = pod.clone();
    bound["spec"]["nodeName"] = json!(node);
    api.write_update(
        res,
        ns,
        name,
        &mut bound,
        &pod,
        rev,
        UpdateScope::Main,
        opts.dry_run,
        &Ownership::Update {
            opts,
            subresource: Some("binding"),
        },
    )
    .await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok((StatusCode::CREATED, axum::Json(status)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_bodies() {
        let b = json!({"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
        assert_eq!(target_node(&b, "p").unwrap(), "n1");
        assert_eq!(target_node(&b, "other").unwrap_err().code, 400);
        assert_eq!(
            target_node(&json!({"target": {}}), "p").unwrap_err().code,
            400
        );
        assert_eq!(
            target_node(&json!({"target": {"kind": "Pod", "name": "x"}}), "p")
                .unwrap_err()
                .code,
            400
        );
    }
}
