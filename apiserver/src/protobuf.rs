//! Request bodies in Kubernetes' protobuf encoding, turned into the JSON objects the rest of
//! the server works with, free of I/O.
//!
//! kubectl's generators (`kubectl create namespace|deployment|configmap|secret|service|job|
//! serviceaccount`, `kubectl run`) send their objects as `application/vnd.kubernetes.protobuf`:
//! the magic `k8s\0`, then a `runtime.Unknown` holding the type and the object's protobuf.
//! This module decodes the messages those commands produce, driven by a schema table (field
//! numbers from Kubernetes' `generated.proto`). A field it does not know is refused with 415,
//! so nothing a client sent is silently dropped; responses are always JSON.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::status::{ApiError, ApiResult};

/// The content type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// How one field's value is encoded and shown in JSON.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    /// A nested message, by schema name.
    Msg(&'static str),
    /// `map<string,string>`.
    MapStr,
    /// `map<string,bytes>` (base64 in JSON).
    MapBytes,
    /// `map<string,Quantity>`.
    MapQuantity,
    /// `intstr.IntOrString`: a number or a string in JSON.
    IntOrString,
    /// `metav1.Time`: RFC 3339 in JSON.
    Time,
}

/// One field: number, JSON name, kind, repeated, and whether a zero value is meaningful
/// (Go pointer fields) rather than an omitted default.
#[derive(Debug, Clone, Copy)]
struct Field(u32, &'static str, Kind, bool, bool);

const fn f(tag: u32, name: &'static str, kind: Kind) -> Field {
    Field(tag, name, kind, false, false)
}
const fn rep(tag: u32, name: &'static str, kind: Kind) -> Field {
    Field(tag, name, kind, true, false)
}
/// A Go pointer field: an explicit zero is kept.
const fn opt(tag: u32, name: &'static str, kind: Kind) -> Field {
    Field(tag, name, kind, false, true)
}

use Kind::*;

/// Message schemas: name → fields. Status messages have no fields: generators send them
/// with zero values only, and anything else in them is refused.
const SCHEMAS: &[(&str, &[Field])] = &[
    (
        "ObjectMeta",
        &[
            f(1, "name", Str),
            f(2, "generateName", Str),
            f(3, "namespace", Str),
            f(4, "selfLink", Str),
            f(5, "uid", Str),
            f(6, "resourceVersion", Str),
            f(7, "generation", Int),
            f(8, "creationTimestamp", Time),
            f(9, "deletionTimestamp", Time),
            opt(10, "deletionGracePeriodSeconds", Int),
            f(11, "labels", MapStr),
            f(12, "annotations", MapStr),
            rep(13, "ownerReferences", Msg("OwnerReference")),
            rep(14, "finalizers", Str),
        ],
    ),
    (
        "OwnerReference",
        &[
            f(5, "apiVersion", Str),
            f(1, "kind", Str),
            f(3, "name", Str),
            f(4, "uid", Str),
            opt(6, "controller", Bool),
            opt(7, "blockOwnerDeletion", Bool),
        ],
    ),
    (
        "LabelSelector",
        &[
            f(1, "matchLabels", MapStr),
            rep(2, "matchExpressions", Msg("LabelSelectorRequirement")),
        ],
    ),
    (
        "LabelSelectorRequirement",
        &[
            f(1, "key", Str),
            f(2, "operator", Str),
            rep(3, "values", Str),
        ],
    ),
    (
        "Namespace",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("NamespaceSpec")),
            f(3, "status", Msg("Status")),
        ],
    ),
    ("NamespaceSpec", &[rep(1, "finalizers", Str)]),
    (
        "ConfigMap",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "data", MapStr),
            f(3, "binaryData", MapBytes),
            opt(4, "immutable", Bool),
        ],
    ),
    (
        "Secret",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "data", MapBytes),
            f(3, "type", Str),
            f(4, "stringData", MapStr),
            opt(5, "immutable", Bool),
        ],
    ),
    (
        "ServiceAccount",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            rep(2, "secrets", Msg("ObjectReference")),
            rep(3, "imagePullSecrets", Msg("LocalObjectReference")),
            opt(4, "automountServiceAccountToken", Bool),
        ],
    ),
    (
        "ObjectReference",
        &[
            f(1, "kind", Str),
            f(2, "namespace", Str),
            f(3, "name", Str),
            f(4, "uid", Str),
            f(5, "apiVersion", Str),
            f(6, "resourceVersion", Str),
            f(7, "fieldPath", Str),
        ],
    ),
    ("LocalObjectReference", &[f(1, "name", Str)]),
    (
        "Pod",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("PodSpec")),
            f(3, "status", Msg("Status")),
        ],
    ),
    (
        "PodTemplateSpec",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("PodSpec")),
        ],
    ),
    (
        "PodSpec",
        &[
            rep(2, "containers", Msg("Container")),
            rep(20, "initContainers", Msg("Container")),
            f(3, "restartPolicy", Str),
            opt(4, "terminationGracePeriodSeconds", Int),
            opt(5, "activeDeadlineSeconds", Int),
            f(6, "dnsPolicy", Str),
            f(7, "nodeSelector", MapStr),
            f(8, "serviceAccountName", Str),
            f(9, "serviceAccount", Str),
            opt(21, "automountServiceAccountToken", Bool),
            f(10, "nodeName", Str),
            f(11, "hostNetwork", Bool),
            f(16, "hostname", Str),
            f(17, "subdomain", Str),
            rep(15, "imagePullSecrets", Msg("LocalObjectReference")),
            f(19, "schedulerName", Str),
            f(24, "priorityClassName", Str),
            opt(30, "enableServiceLinks", Bool),
        ],
    ),
    (
        "Container",
        &[
            f(1, "name", Str),
            f(2, "image", Str),
            rep(3, "command", Str),
            rep(4, "args", Str),
            f(5, "workingDir", Str),
            rep(6, "ports", Msg("ContainerPort")),
            rep(7, "env", Msg("EnvVar")),
            f(8, "resources", Msg("ResourceRequirements")),
            rep(9, "volumeMounts", Msg("VolumeMount")),
            f(13, "terminationMessagePath", Str),
            f(20, "terminationMessagePolicy", Str),
            f(14, "imagePullPolicy", Str),
            f(16, "stdin", Bool),
            f(17, "stdinOnce", Bool),
            f(18, "tty", Bool),
        ],
    ),
    (
        "ContainerPort",
        &[
            f(1, "name", Str),
            f(2, "hostPort", Int),
            Field(3, "containerPort", Int, false, true),
            f(4, "protocol", Str),
            f(5, "hostIP", Str),
        ],
    ),
    ("EnvVar", &[f(1, "name", Str), f(2, "value", Str)]),
    (
        "ResourceRequirements",
        &[f(1, "limits", MapQuantity), f(2, "requests", MapQuantity)],
    ),
    (
        "VolumeMount",
        &[
            f(1, "name", Str),
            f(2, "readOnly", Bool),
            f(3, "mountPath", Str),
            f(4, "subPath", Str),
        ],
    ),
    (
        "Deployment",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("DeploymentSpec")),
            f(3, "status", Msg("Status")),
        ],
    ),
    (
        "DeploymentSpec",
        &[
            opt(1, "replicas", Int),
            f(2, "selector", Msg("LabelSelector")),
            f(3, "template", Msg("PodTemplateSpec")),
            f(4, "strategy", Msg("DeploymentStrategy")),
            f(5, "minReadySeconds", Int),
            opt(6, "revisionHistoryLimit", Int),
            f(7, "paused", Bool),
            opt(9, "progressDeadlineSeconds", Int),
        ],
    ),
    (
        "DeploymentStrategy",
        &[
            f(1, "type", Str),
            f(2, "rollingUpdate", Msg("RollingUpdateDeployment")),
        ],
    ),
    (
        "RollingUpdateDeployment",
        &[
            f(1, "maxUnavailable", IntOrString),
            f(2, "maxSurge", IntOrString),
        ],
    ),
    (
        "Service",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("ServiceSpec")),
            f(3, "status", Msg("Status")),
        ],
    ),
    (
        "ServiceSpec",
        &[
            rep(1, "ports", Msg("ServicePort")),
            f(2, "selector", MapStr),
            f(3, "clusterIP", Str),
            rep(18, "clusterIPs", Str),
            f(4, "type", Str),
            rep(5, "externalIPs", Str),
            f(7, "sessionAffinity", Str),
            f(10, "externalName", Str),
        ],
    ),
    (
        "ServicePort",
        &[
            f(1, "name", Str),
            f(2, "protocol", Str),
            f(6, "appProtocol", Str),
            Field(3, "port", Int, false, true),
            f(4, "targetPort", IntOrString),
            f(5, "nodePort", Int),
        ],
    ),
    (
        "Job",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("JobSpec")),
            f(3, "status", Msg("Status")),
        ],
    ),
    (
        "JobSpec",
        &[
            opt(1, "parallelism", Int),
            opt(2, "completions", Int),
            opt(3, "activeDeadlineSeconds", Int),
            opt(7, "backoffLimit", Int),
            f(4, "selector", Msg("LabelSelector")),
            opt(5, "manualSelector", Bool),
            f(6, "template", Msg("PodTemplateSpec")),
            opt(8, "ttlSecondsAfterFinished", Int),
            f(9, "completionMode", Str),
            opt(10, "suspend", Bool),
        ],
    ),
    ("Status", &[]),
];

/// The top-level message of each kind this module accepts.
fn root_message(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount" | "Pod" | "Deployment"
        | "Service" | "Job" => SCHEMAS.iter().find(|(n, _)| *n == kind)?.0,
        _ => return None,
    })
}

fn schema(name: &str) -> &'static [Field] {
    SCHEMAS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or(&[])
}

fn unsupported(what: String) -> ApiError {
    ApiError::unsupported_media_type(format!(
        "{what} in a protobuf body is not supported by skiff-apiserver; send the object as application/json"
    ))
}

/// A protobuf wire reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// One decoded wire value.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> ApiResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(truncated)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ApiError::bad_request("malformed protobuf varint"))
    }

    /// The next field number and value, or `None` at the end.
    fn next(&mut self) -> ApiResult<Option<(u32, Wire<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = (key >> 3) as u32;
        match key & 7 {
            0 => Ok(Some((tag, Wire::Varint(self.varint()?)))),
            2 => {
                let len = self.varint()? as usize;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|e| *e <= self.buf.len())
                    .ok_or_else(truncated)?;
                let b = &self.buf[self.pos..end];
                self.pos = end;
                Ok(Some((tag, Wire::Bytes(b))))
            }
            t => Err(ApiError::bad_request(format!(
                "unsupported protobuf wire type {t} (field {tag})"
            ))),
        }
    }
}

fn truncated() -> ApiError {
    ApiError::bad_request("truncated protobuf body")
}

fn utf8(b: &[u8]) -> ApiResult<String> {
    String::from_utf8(b.to_vec())
        .map_err(|_| ApiError::bad_request("a protobuf string is not UTF-8"))
}

/// Decodes a whole request body (`k8s\0` + `runtime.Unknown`) into a JSON object with
/// `apiVersion` and `kind`.
pub fn decode_body(body: &[u8]) -> ApiResult<Value> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| ApiError::bad_request("a protobuf body must start with the k8s\\0 magic"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    let mut r = Reader::new(rest);
    while let Some((tag, w)) = r.next()? {
        match (tag, w) {
            (1, Wire::Bytes(tm)) => {
                let mut t = Reader::new(tm);
                while let Some((tag, w)) = t.next()? {
                    match (tag, w) {
                        (1, Wire::Bytes(b)) => api_version = utf8(b)?,
                        (2, Wire::Bytes(b)) => kind = utf8(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            (3, Wire::Bytes(b)) if !b.is_empty() => {
                return Err(unsupported(format!("content encoding {:?}", utf8(b)?)))
            }
            _ => {}
        }
    }
    let root = root_message(&kind).ok_or_else(|| unsupported(format!("kind {kind:?}")))?;
    let mut obj = decode_message(root, raw)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

fn decode_message(name: &'static str, buf: &[u8]) -> ApiResult<Map<String, Value>> {
    let fields = schema(name);
    let mut out = Map::new();
    let mut r = Reader::new(buf);
    while let Some((tag, w)) = r.next()? {
        let Some(Field(_, json_name, kind, repeated, keep_zero)) =
            fields.iter().find(|f| f.0 == tag).copied()
        else {
            // Go's encoder writes every non-pointer field; a zero value of a field this
            // schema does not list is its default and carries nothing.
            if wire_is_zero(&w) {
                continue;
            }
            return Err(unsupported(format!("field {tag} of {name}")));
        };
        let v = decode_value(kind, w, name, json_name)?;
        match kind {
            MapStr | MapBytes | MapQuantity => {
                let (k, v) = v
                    .as_array()
                    .map(|a| (a[0].clone(), a[1].clone()))
                    .expect("map entry");
                let m = out.entry(json_name).or_insert_with(|| json!({}));
                m[k.as_str().unwrap_or_default()] = v;
            }
            _ if repeated => {
                out.entry(json_name)
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .expect("list")
                    .push(v);
            }
            _ => {
                if keep_zero || !is_zero(&v) {
                    out.insert(json_name.into(), v);
                } else {
                    out.remove(json_name);
                }
            }
        }
    }
    Ok(out)
}

/// Whether a wire value is a zero: 0, an empty string, or a message of only zeros.
fn wire_is_zero(w: &Wire<'_>) -> bool {
    match w {
        Wire::Varint(v) => *v == 0,
        Wire::Bytes(b) => {
            let mut r = Reader::new(b);
            loop {
                match r.next() {
                    Ok(None) => return true,
                    Ok(Some((_, inner))) if wire_is_zero(&inner) => continue,
                    _ => return false,
                }
            }
        }
    }
}

/// Go's zero values, which JSON `omitempty` leaves out.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
    }
}

fn decode_value(kind: Kind, w: Wire<'_>, msg: &str, field: &str) -> ApiResult<Value> {
    let wrong = || {
        ApiError::bad_request(format!(
            "field {field} of {msg} has the wrong protobuf wire type"
        ))
    };
    Ok(match (kind, w) {
        (Str, Wire::Bytes(b)) => json!(utf8(b)?),
        (Int, Wire::Varint(v)) => json!(v as i64),
        (Bool, Wire::Varint(v)) => json!(v != 0),
        (Msg(name), Wire::Bytes(b)) => Value::Object(decode_message(name, b)?),
        (MapStr | MapBytes | MapQuantity, Wire::Bytes(b)) => {
            let (mut k, mut v) = (String::new(), Value::String(String::new()));
            let mut r = Reader::new(b);
            while let Some((tag, w)) = r.next()? {
                match (tag, w) {
                    (1, Wire::Bytes(b)) => k = utf8(b)?,
                    (2, Wire::Bytes(b)) => {
                        v = match kind {
                            MapBytes => json!(base64::engine::general_purpose::STANDARD.encode(b)),
                            MapQuantity => quantity(b)?,
                            _ => json!(utf8(b)?),
                        }
                    }
                    _ => return Err(wrong()),
                }
            }
            json!([k, v])
        }
        (IntOrString, Wire::Bytes(b)) => {
            let (mut ty, mut i, mut s) = (0, 0i64, String::new());
            let mut r = Reader::new(b);
            while let Some((tag, w)) = r.next()? {
                match (tag, w) {
                    (1, Wire::Varint(v)) => ty = v,
                    (2, Wire::Varint(v)) => i = v as i64 as i32 as i64,
                    (3, Wire::Bytes(b)) => s = utf8(b)?,
                    _ => return Err(wrong()),
                }
            }
            if ty == 1 {
                json!(s)
            } else {
                json!(i)
            }
        }
        (Time, Wire::Bytes(b)) => {
            let mut secs = 0i64;
            let mut r = Reader::new(b);
            while let Some((tag, w)) = r.next()? {
                if let (1, Wire::Varint(v)) = (tag, w) {
                    secs = v as i64;
                }
            }
            if secs == 0 {
                Value::Null
            } else {
                let ts = k8s_openapi::jiff::Timestamp::from_second(secs).map_err(|_| {
                    ApiError::bad_request(format!("{field}: timestamp out of range"))
                })?;
                json!(ts.to_string())
            }
        }
        _ => return Err(wrong()),
    })
}

fn quantity(b: &[u8]) -> ApiResult<Value> {
    let mut r = Reader::new(b);
    let mut s = String::new();
    while let Some((tag, w)) = r.next()? {
        if let (1, Wire::Bytes(b)) = (tag, w) {
            s = utf8(b)?;
        }
    }
    Ok(json!(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny protobuf writer for the tests.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn bytes(tag: u32, b: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }
    fn int(tag: u32, v: u64, out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3, out);
        varint(v, out);
    }
    fn msg(build: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        build(&mut v);
        v
    }
    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = msg(|o| {
            bytes(1, api_version.as_bytes(), o);
            bytes(2, kind.as_bytes(), o);
        });
        let mut body = MAGIC.to_vec();
        bytes(1, &tm, &mut body);
        bytes(2, raw, &mut body);
        bytes(3, b"", &mut body);
        bytes(4, b"", &mut body);
        body
    }

    #[test]
    fn namespace_as_kubectl_create_sends_it() {
        // Go's encoder writes every non-pointer field, empty or not.
        let meta = msg(|o| {
            bytes(1, b"demo", o);
            bytes(2, b"", o);
            bytes(3, b"", o);
            int(7, 0, o);
            bytes(8, b"", o);
        });
        let raw = msg(|o| {
            bytes(1, &meta, o);
            bytes(2, b"", o);
            bytes(3, b"", o);
        });
        let obj = decode_body(&envelope("v1", "Namespace", &raw)).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
        );
    }

    #[test]
    fn deployment_with_maps_lists_and_pointer_zeros() {
        let container = msg(|o| {
            bytes(1, b"nginx", o);
            bytes(2, b"nginx:1.25", o);
            bytes(6, &msg(|p| int(3, 80, p)), o);
            bytes(
                8,
                &msg(|r| {
                    bytes(
                        1,
                        &msg(|e| {
                            bytes(1, b"cpu", e);
                            bytes(2, &msg(|q| bytes(1, b"500m", q)), e);
                        }),
                        r,
                    )
                }),
                o,
            );
        });
        let labels = msg(|e| {
            bytes(1, b"app", e);
            bytes(2, b"web", e);
        });
        let spec = msg(|o| {
            int(1, 0, o); // replicas: 0 is meaningful (pointer field)
            bytes(2, &msg(|s| bytes(1, &labels, s)), o);
            bytes(
                3,
                &msg(|t| {
                    bytes(1, &msg(|m| bytes(11, &labels, m)), t);
                    bytes(2, &msg(|p| bytes(2, &container, p)), t);
                }),
                o,
            );
            bytes(
                4,
                &msg(|s| {
                    bytes(
                        2,
                        &msg(|ru| {
                            bytes(
                                1,
                                &msg(|i| {
                                    int(1, 1, i);
                                    bytes(3, b"25%", i);
                                }),
                                ru,
                            )
                        }),
                        s,
                    )
                }),
                o,
            );
        });
        let raw = msg(|o| {
            bytes(1, &msg(|m| bytes(1, b"web", m)), o);
            bytes(2, &spec, o);
            bytes(3, b"", o);
        });
        let d = decode_body(&envelope("apps/v1", "Deployment", &raw)).unwrap();
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(d["spec"]["template"]["metadata"]["labels"]["app"], "web");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "nginx:1.25");
        assert_eq!(c["ports"][0]["containerPort"], 80);
        assert_eq!(c["resources"]["limits"]["cpu"], "500m");
        assert_eq!(
            d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            "25%"
        );
        assert!(d.get("status").is_none());
    }

    #[test]
    fn secrets_are_base64_and_unknown_fields_refused() {
        let raw = msg(|o| {
            bytes(1, &msg(|m| bytes(1, b"s", m)), o);
            bytes(
                2,
                &msg(|e| {
                    bytes(1, b"k", e);
                    bytes(2, b"\x00\x01", e);
                }),
                o,
            );
            bytes(3, b"Opaque", o);
        });
        let s = decode_body(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(s["data"]["k"], "AAE=");
        assert_eq!(s["type"], "Opaque");

        // Zero values of unlisted fields are defaults: accepted; anything else is refused.
        let raw = msg(|o| {
            bytes(99, b"", o);
            int(98, 0, o);
            bytes(3, &msg(|st| bytes(1, b"", st)), o);
        });
        assert!(decode_body(&envelope("v1", "Pod", &raw)).is_ok());
        let raw = msg(|o| bytes(3, &msg(|st| bytes(1, b"Running", st)), o));
        assert_eq!(
            decode_body(&envelope("v1", "Pod", &raw)).unwrap_err().code,
            415
        );
        let raw = msg(|o| bytes(99, b"x", o));
        assert_eq!(
            decode_body(&envelope("v1", "ConfigMap", &raw))
                .unwrap_err()
                .code,
            415
        );
        assert_eq!(
            decode_body(&envelope("v1", "Node", b"")).unwrap_err().code,
            415
        );
        assert_eq!(decode_body(b"nope").unwrap_err().code, 400);
        let mut cut = envelope("v1", "ConfigMap", &msg(|o| bytes(1, b"abc", o)));
        cut.truncate(cut.len() - 6);
        assert!(decode_body(&cut).is_err());
    }
}
