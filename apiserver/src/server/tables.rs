//! Content negotiation for `kubectl get`: a GET whose `Accept` asks for
//! `as=Table;g=meta.k8s.io` gets a `Table` (built by `crate::table`) instead of the object
//! or list, and a watch gets one-row Tables. Anything else falls through to plain JSON, so
//! the server never answers 406.
//!
//! ```text
//!  GET + Accept as=Table ─► wants_table ─► serve ─► list_value / read ─► table::table
//!                                               └─► watch::serve_as (one-row Tables)
//! ```

use std::sync::Arc;

use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::route::Target;
use super::{watch, Api, Query};
use crate::status::{ApiError, ApiResult};
use crate::table::{self, IncludeObject, TableOptions, TableVersion};

/// The Table version a request asks for, when it is a GET of an object or a collection
/// (subresources such as `scale` keep their own representation).
pub fn wants_table(method: &Method, headers: &HeaderMap, target: &Target) -> Option<TableVersion> {
    if method != Method::GET || target.sub.is_some() {
        return None;
    }
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    table::requested(accept)
}

/// Now, in Unix seconds: the time AGE columns are measured to.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The rendering options of a request: version asked for, `includeObject`, now.
fn options(q: &Query, version: TableVersion) -> ApiResult<TableOptions> {
    let include = IncludeObject::parse(q.get("includeObject")).map_err(ApiError::bad_request)?;
    Ok(TableOptions {
        version,
        include,
        now: unix_now(),
    })
}

/// Serves a GET of an object, a list or a watch as Table(s).
pub async fn serve(
    api: &Arc<Api>,
    t: Target,
    q: &Query,
    version: TableVersion,
) -> ApiResult<Response> {
    let opts = options(q, version)?;
    let res = t.res;
    let ns = t.namespace.as_deref();
    let kind = res.kind;
    let body = match t.name.as_deref() {
        None if q.flag("watch") => {
            return watch::serve_as(api.clone(), res, ns, q, Some(opts)).await
        }
        None => {
            let list = api.list_value(res, ns, q).await?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let meta = list["metadata"].as_object().cloned().unwrap_or_default();
            table::table(kind, &items, meta, &opts, true)
        }
        Some(name) => {
            let (obj, _) = api.read(res, ns, name).await?;
            table::table(
                kind,
                std::slice::from_ref(&obj),
                object_rv(&obj),
                &opts,
                true,
            )
        }
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Table metadata carrying an object's `resourceVersion`.
pub fn object_rv(obj: &Value) -> Map<String, Value> {
    let mut meta = Map::new();
    if let Some(rv) = obj["metadata"]["resourceVersion"].as_str() {
        meta.insert("resourceVersion".into(), json!(rv));
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn target(name: Option<&str>, sub: Option<&str>) -> Target {
        Target {
            res: find("apps", "v1", "deployments").unwrap(),
            namespace: Some("shop".into()),
            name: name.map(str::to_string),
            sub: sub.map(str::to_string),
        }
    }

    #[test]
    fn only_gets_of_objects_and_collections_become_tables() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        let v1 = Some(TableVersion::V1);
        assert_eq!(wants_table(&Method::GET, &h, &target(None, None)), v1);
        assert_eq!(
            wants_table(&Method::GET, &h, &target(Some("web"), None)),
            v1
        );
        assert_eq!(
            wants_table(&Method::GET, &h, &target(Some("web"), Some("scale"))),
            None
        );
        assert_eq!(
            wants_table(&Method::PUT, &h, &target(Some("web"), None)),
            None
        );
        assert_eq!(
            wants_table(&Method::GET, &HeaderMap::new(), &target(None, None)),
            None
        );
    }

    #[test]
    fn bad_include_object_is_a_bad_request() {
        let q = Query::parse(Some("includeObject=Everything"));
        assert_eq!(options(&q, TableVersion::V1).unwrap_err().code, 400);
        let q = Query::parse(Some("includeObject=None"));
        assert_eq!(
            options(&q, TableVersion::V1).unwrap().include,
            IncludeObject::None
        );
    }
}
