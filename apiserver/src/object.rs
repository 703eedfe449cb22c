//! Object metadata rules, free of I/O: what the server sets on create (uid, timestamps,
//! generation, generated names), what it keeps on update, and name validation — the
//! behaviour of Kubernetes' generic registry (`apiserver/pkg/registry/rest`).

use rand::Rng;
use serde_json::{json, Map, Value};

use crate::resources::Resource;
use crate::status::{ApiError, ApiResult, Cause};

/// Characters Kubernetes uses for `generateName` suffixes (no vowels, no confusables).
const NAME_SUFFIX_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// What the server supplies when creating an object.
pub struct CreateContext<'a> {
    /// The namespace from the request path (namespaced resources).
    pub namespace: Option<&'a str>,
    /// The new object's uid.
    pub uid: String,
    /// Now, as RFC 3339 with second precision (`2026-11-23T13:30:00Z`).
    pub now: String,
}

/// A random 5-character `generateName` suffix.
pub fn name_suffix() -> String {
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| NAME_SUFFIX_CHARS[rng.gen_range(0..NAME_SUFFIX_CHARS.len())] as char)
        .collect()
}

/// `metadata` of an object, created if missing.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// Parses a request body into a JSON object, with Kubernetes' 400 on failure.
pub fn parse_body(body: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request was in an unknown format: {e}"
        ))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(v)
}

/// Checks `apiVersion`/`kind` of a body against the resource, and fills them if absent.
pub fn check_type(res: &Resource, obj: &mut Value) -> ApiResult<()> {
    let want_version = res.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(want_version),
        Some(v) if v == want_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )))
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(res.kind),
        Some(k) if k == res.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )))
        }
    }
    Ok(())
}

/// Whether names of this resource must be DNS-1123 labels (no dots) rather than subdomains.
fn name_is_label(res: &Resource) -> bool {
    matches!(res.plural, "namespaces" | "services")
}

/// Kubernetes' name validation: a DNS-1123 subdomain (or label, for namespaces and
/// services). Returns the causes, empty if valid.
pub fn validate_name(res: &Resource, name: &str) -> Vec<Cause> {
    let cause = |message: String| Cause {
        reason: "FieldValueInvalid",
        message,
        field: "metadata.name".into(),
    };
    if name.is_empty() {
        return vec![Cause {
            reason: "FieldValueRequired",
            message: "Required value: name or generateName is required".into(),
            field: "metadata.name".into(),
        }];
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = name.as_bytes();
    let edges_ok = alnum(bytes[0]) && alnum(bytes[bytes.len() - 1]);
    if name_is_label(res) {
        let ok = name.len() <= 63 && edges_ok && bytes.iter().all(|&c| alnum(c) || c == b'-');
        if !ok {
            return vec![cause(format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ))];
        }
    } else {
        let parts_ok = name.split('.').all(|p| {
            let b = p.as_bytes();
            !b.is_empty()
                && alnum(b[0])
                && alnum(b[b.len() - 1])
                && b.iter().all(|&c| alnum(c) || c == b'-')
        });
        if name.len() > 253 || !parts_ok {
            return vec![cause(format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ))];
        }
    }
    Vec::new()
}

/// Prepares a new object for storage: type, name (generated from `generateName` if
/// needed), namespace, uid, creationTimestamp, generation, a fresh status. Returns the name.
pub fn prepare_create(
    res: &Resource,
    obj: &mut Value,
    ctx: &CreateContext<'_>,
) -> ApiResult<String> {
    check_type(res, obj)?;
    let has_spec = obj.get("spec").is_some();
    let meta = metadata_mut(obj);
    let mut name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        if let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
            if !prefix.is_empty() {
                name = format!("{prefix}{}", name_suffix());
                meta.insert("name".into(), json!(name));
            }
        }
    }
    if res.namespaced {
        let ns = ctx.namespace.unwrap_or("default");
        match meta.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("namespace".into(), json!(ns));
            }
            Some(given) if given == ns => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
        }
    } else {
        meta.remove("namespace");
    }
    let causes = validate_name(res, &name);
    if !causes.is_empty() {
        return Err(ApiError::invalid(res, &name, causes));
    }
    meta.insert("uid".into(), json!(ctx.uid));
    meta.insert("creationTimestamp".into(), json!(ctx.now));
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(server_owned);
    }
    if has_spec {
        meta.insert("generation".into(), json!(1));
    }
    if res.has_status {
        obj.as_object_mut().expect("object").remove("status");
    }
    if res.plural == "namespaces" {
        obj["status"] = json!({"phase": "Active"});
        if obj.get("spec").is_none() {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
        }
    }
    Ok(name)
}

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateScope {
    /// The main resource: everything but `status` (for resources with a status subresource).
    Main,
    /// The `status` subresource: only `status`.
    Status,
}

/// Prepares an update of `old` to `new`: identity and server-owned metadata are kept,
/// `generation` is bumped when `spec` changed, and each scope changes only its part.
pub fn prepare_update(
    res: &Resource,
    new: &mut Value,
    old: &Value,
    scope: UpdateScope,
) -> ApiResult<()> {
    check_type(res, new)?;
    let name = meta_str(old, "name").unwrap_or_default().to_string();
    match meta_str(new, "name") {
        None | Some("") => {
            metadata_mut(new).insert("name".into(), json!(name));
        }
        Some(n) if n == name => {}
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
    }
    if scope == UpdateScope::Status {
        // Only status changes: start from the stored object.
        let status = new.get("status").cloned();
        let rv = new["metadata"].get("resourceVersion").cloned();
        *new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                new.as_object_mut().expect("object").remove("status");
            }
        }
        if let Some(rv) = rv {
            metadata_mut(new).insert("resourceVersion".into(), rv);
        }
        return Ok(());
    }
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let spec_changed = new.get("spec") != old.get("spec");
    let meta = metadata_mut(new);
    for kept in [
        "uid",
        "creationTimestamp",
        "namespace",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old_meta.get(kept) {
            Some(v) => meta.insert(kept.into(), v.clone()),
            None => meta.remove(kept),
        };
    }
    match old_meta.get("generation").and_then(Value::as_i64) {
        Some(g) => {
            meta.insert(
                "generation".into(),
                json!(if spec_changed { g + 1 } else { g }),
            );
        }
        None => {
            meta.remove("generation");
        }
    }
    if res.has_status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().expect("object").remove("status");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn ctx(ns: Option<&str>) -> CreateContext<'_> {
        CreateContext {
            namespace: ns,
            uid: "u-1".into(),
            now: "2026-11-23T13:30:00Z".into(),
        }
    }

    #[test]
    fn create_fills_server_fields() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata": {"generateName": "web-", "resourceVersion": "9"},
                             "spec": {"replicas": 2}, "status": {"replicas": 7}});
        let name = prepare_create(deploy, &mut obj, &ctx(Some("prod"))).unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(obj["kind"], "Deployment");
        assert_eq!(obj["apiVersion"], "apps/v1");
        assert_eq!(obj["metadata"]["namespace"], "prod");
        assert_eq!(obj["metadata"]["uid"], "u-1");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert!(obj["metadata"].get("resourceVersion").is_none());
        assert!(obj.get("status").is_none(), "status is not set by create");
    }

    #[test]
    fn create_refuses_bad_names_types_and_namespaces() {
        let pods = find("", "v1", "pods").unwrap();
        let e = prepare_create(
            pods,
            &mut json!({"metadata": {"name": "Bad_Name"}}),
            &ctx(Some("d")),
        )
        .unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        let e = prepare_create(pods, &mut json!({"metadata": {}}), &ctx(Some("d"))).unwrap_err();
        assert_eq!(e.code, 422);
        let e = prepare_create(
            pods,
            &mut json!({"kind": "Service", "metadata": {"name": "a"}}),
            &ctx(Some("d")),
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
        let e = prepare_create(
            pods,
            &mut json!({"metadata": {"name": "a", "namespace": "x"}}),
            &ctx(Some("d")),
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
        let ns = find("", "v1", "namespaces").unwrap();
        assert!(
            !validate_name(ns, "a.b").is_empty(),
            "namespaces are labels"
        );
        assert!(validate_name(pods, "a.b").is_empty(), "pods are subdomains");
        assert!(!validate_name(pods, "-a").is_empty());
        assert!(!validate_name(pods, &"a".repeat(254)).is_empty());
    }

    #[test]
    fn update_keeps_identity_and_bumps_generation_on_spec_change() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let old = json!({"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "namespace": "d", "uid": "u", "creationTimestamp": "t", "generation": 3},
            "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut new = json!({"metadata": {"name": "web", "uid": "forged"}, "spec": {"replicas": 5}, "status": {"replicas": 99}});
        prepare_update(deploy, &mut new, &old, UpdateScope::Main).unwrap();
        assert_eq!(new["metadata"]["uid"], "u");
        assert_eq!(new["metadata"]["generation"], 4);
        assert_eq!(
            new["status"]["replicas"], 1,
            "status is kept by a main update"
        );
        let mut same = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}});
        prepare_update(deploy, &mut same, &old, UpdateScope::Main).unwrap();
        assert_eq!(same["metadata"]["generation"], 3);
        let mut status = json!({"metadata": {"name": "web"}, "spec": {"replicas": 50}, "status": {"replicas": 2}});
        prepare_update(deploy, &mut status, &old, UpdateScope::Status).unwrap();
        assert_eq!(status["spec"]["replicas"], 1, "a status update keeps spec");
        assert_eq!(status["status"]["replicas"], 2);
        let mut renamed = json!({"metadata": {"name": "other"}});
        assert_eq!(
            prepare_update(deploy, &mut renamed, &old, UpdateScope::Main)
                .unwrap_err()
                .code,
            400
        );
    }
}
