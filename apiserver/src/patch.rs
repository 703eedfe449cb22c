//! PATCH bodies applied to a stored object, free of I/O: JSON patch (RFC 6902), JSON merge
//! patch (RFC 7386) and strategic merge patch (`crate::strategic`). Server-side apply needs
//! the object's field owners, so the REST layer routes it to `crate::managed`; here (e.g. on
//! `/scale`, which has no owners of its own) it is refused with 415.

use serde_json::Value;

use crate::status::{ApiError, ApiResult};

/// `Content-Type` of an RFC 6902 JSON patch.
pub const JSON_PATCH: &str = "application/json-patch+json";
/// `Content-Type` of an RFC 7386 merge patch.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// `Content-Type` of a strategic merge patch.
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
/// `Content-Type` of a server-side apply patch.
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The object after applying `body` of patch type `content_type` to `old`.
pub fn apply(content_type: &str, old: &Value, body: &[u8]) -> ApiResult<Value> {
    let parse = || -> ApiResult<Value> {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the body of the patch is not valid JSON: {e}"))
        })
    };
    match content_type {
        JSON_PATCH => {
            let ops: json_patch::Patch = serde_json::from_value(parse()?)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            let mut doc = old.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::unprocessable(format!("the JSON patch could not be applied: {e}"))
            })?;
            Ok(doc)
        }
        MERGE_PATCH => {
            let p = parse()?;
            if !p.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            let mut doc = old.clone();
            json_patch::merge(&mut doc, &p);
            Ok(doc)
        }
        STRATEGIC_MERGE_PATCH => crate::strategic::apply(old, &parse()?),
        APPLY_PATCH => Err(ApiError::unsupported_media_type(format!(
            "server-side apply ({content_type}) is not supported on this subresource; apply to the object itself"
        ))),
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: {JSON_PATCH}, {MERGE_PATCH} (got {other:?})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_and_json_patches() {
        let old = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}});
        let new = apply(
            MERGE_PATCH,
            &old,
            br#"{"metadata":{"labels":{"b":null,"c":"3"}}}"#,
        )
        .unwrap();
        assert_eq!(new["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        let new = apply(
            JSON_PATCH,
            &old,
            br#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
        )
        .unwrap();
        assert_eq!(new["spec"]["replicas"], 4);
        let e = apply(
            JSON_PATCH,
            &old,
            br#"[{"op":"test","path":"/spec/replicas","value":5}]"#,
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(apply(MERGE_PATCH, &old, b"{").unwrap_err().code, 400);
        let new = apply(STRATEGIC_MERGE_PATCH, &old, br#"{"spec":{"replicas":2}}"#).unwrap();
        assert_eq!(new["spec"]["replicas"], 2);
        assert_eq!(apply(APPLY_PATCH, &old, b"{}").unwrap_err().code, 415);
        assert_eq!(apply("text/plain", &old, b"{}").unwrap_err().code, 415);
    }
}
