//! Server-side field validation (`?fieldValidation=Ignore|Warn|Strict`), free of I/O: finds
//! the fields of a request object that its kind's schema does not know, and the keys a JSON
//! body repeats, and drops the unknown ones before the object is stored.
//!
//! ```text
//!  body bytes ──► duplicates()          "duplicate field \"spec.replicas\""
//!  parsed object ──► prune_unknown()    "unknown field \"spec.foo\""   (removed in place)
//!                        │ walks openapi.rs component schemas: properties, additionalProperties
//!                        │ (maps such as labels/data take any key), items, int-or-string
//!                        ▼
//!  check(directive) ──► Strict: Err(FieldError::Strict)  Warn: warnings  Ignore: nothing
//! ```
//!
//! Unknown fields are found by walking the same schemas `/openapi/v3` serves, so what
//! `kubectl explain` shows and what the server accepts cannot drift apart. A field set to
//! `null` is still a field: an unknown key is reported whatever its value, as Kubernetes'
//! strict decoder does.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::openapi::REF_PREFIX;

/// How many `$ref`/`allOf` hops one schema lookup follows before giving up; the served
/// schemas need at most two, so more means a reference cycle (a bug).
const MAX_REF_HOPS: usize = 16;

/// What the client asked the server to do about unknown and duplicate fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields silently; the last duplicate wins.
    Ignore,
    /// Drop unknown fields and warn about each problem (Kubernetes' default when the
    /// parameter is absent, for every client).
    #[default]
    Warn,
    /// Refuse the request with 400 BadRequest listing every problem.
    Strict,
}

impl FieldValidation {
    /// Parses the `fieldValidation` query parameter; absent or empty means `Warn`.
    pub fn parse(value: Option<&str>) -> Result<FieldValidation, FieldError> {
        match value.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(FieldError::UnsupportedDirective(other.to_string())),
        }
    }
}

/// One unknown or duplicate field, with its path (`spec.template.spec.containers[0].foo`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldProblem {
    /// The schema has no such field.
    Unknown(String),
    /// The JSON object repeats this key.
    Duplicate(String),
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::Unknown(p) => write!(f, "unknown field \"{p}\""),
            FieldProblem::Duplicate(p) => write!(f, "duplicate field \"{p}\""),
        }
    }
}

fn join_problems(problems: &[FieldProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why field validation refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// `fieldValidation` had a value other than Ignore, Warn or Strict.
    #[error("fieldValidation: Unsupported value: {0:?}: supported values: \"Ignore\", \"Strict\", \"Warn\"")]
    UnsupportedDirective(String),
    /// `Strict` and the object had unknown or duplicate fields.
    #[error("strict decoding error: {}", join_problems(.0))]
    Strict(Vec<FieldProblem>),
}

/// Checks `obj` (parsed from `body`, when the body is the object or a merge patch of it)
/// against the schema named `root`: removes unknown fields from `obj`, then answers as
/// `directive` asks. `Ok` carries the problems to send as warnings (empty unless `Warn`).
pub fn check(
    directive: FieldValidation,
    schemas: &Map<String, Value>,
    root: &str,
    obj: &mut Value,
    body: Option<&[u8]>,
) -> Result<Vec<FieldProblem>, FieldError> {
    let mut problems = body.map(duplicates).unwrap_or_default();
    problems.extend(prune_unknown(schemas, root, obj));
    match directive {
        _ if problems.is_empty() => Ok(problems),
        FieldValidation::Strict => Err(FieldError::Strict(problems)),
        FieldValidation::Warn => Ok(problems),
        FieldValidation::Ignore => Ok(Vec::new()),
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Follows `$ref` and single-element `allOf` (how a described reference is written) to the
/// schema that says what a value is; `None` if a reference does not resolve.
pub(crate) fn resolve<'s>(
    schemas: &'s Map<String, Value>,
    mut schema: &'s Value,
) -> Option<&'s Value> {
    for _ in 0..MAX_REF_HOPS {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            schema = schemas.get(r.strip_prefix(REF_PREFIX)?)?;
        } else if let Some([inner]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            schema = inner;
        } else {
            return Some(schema);
        }
    }
    panic!("schema references nest deeper than {MAX_REF_HOPS}: a reference cycle");
}

/// Removes from `obj` every field the schema named `root` does not know; returns them.
pub fn prune_unknown(
    schemas: &Map<String, Value>,
    root: &str,
    obj: &mut Value,
) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    if let Some(schema) = schemas.get(root) {
        walk(schemas, schema, obj, "", &mut out);
    }
    out
}

fn walk(
    schemas: &Map<String, Value>,
    schema: &Value,
    value: &mut Value,
    path: &str,
    out: &mut Vec<FieldProblem>,
) {
    // An unresolvable reference is a bug in the served schemas (a test checks every
    // reference); accepting the value keeps such a bug from rejecting valid objects.
    let Some(schema) = resolve(schemas, schema) else {
        return;
    };
    let flag = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
    if flag("x-kubernetes-int-or-string") || flag("x-kubernetes-preserve-unknown-fields") {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let unknown: Vec<String> = map
                    .keys()
                    .filter(|k| !props.contains_key(k.as_str()))
                    .cloned()
                    .collect();
                for k in unknown {
                    map.remove(&k);
                    out.push(FieldProblem::Unknown(child(path, &k)));
                }
                for (k, v) in map.iter_mut() {
                    walk(schemas, &props[k.as_str()], v, &child(path, k), out);
                }
            } else if let Some(values) =
                schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for (k, v) in map.iter_mut() {
                    walk(schemas, values, v, &child(path, k), out);
                }
            }
            // An object schema without either (FieldsV1, RawExtension) takes anything.
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    walk(schemas, item, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The keys repeated within one JSON object of `body`, with their paths. A body that is not
/// JSON has none (parsing reports that error).
pub fn duplicates(body: &[u8]) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = DuplicateWalk {
        path: String::new(),
        out: &mut out,
    };
    match seed.deserialize(&mut de) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// Visits every JSON value, remembering where it is, and records repeated keys.
struct DuplicateWalk<'a> {
    path: String,
    out: &'a mut Vec<FieldProblem>,
}

impl<'de> DeserializeSeed<'de> for DuplicateWalk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DuplicateWalk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = child(&self.path, &key);
            if !seen.insert(key) {
                out.push(FieldProblem::Duplicate(path.clone()));
            }
            map.next_value_seed(DuplicateWalk {
                path,
                out: &mut *out,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let out = self.out;
        let mut i = 0;
        while seq
            .next_element_seed(DuplicateWalk {
                path: format!("{}[{i}]", self.path),
                out: &mut *out,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::all_schemas;
    use serde_json::json;

    const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"any-key.example/x": "y"}, "annotations": {}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {"limits": {"cpu": "500m", "memory": 128}},
                        "env": [{"name": "A", "value": "b"}],
                    }]},
                },
            },
            "status": {"replicas": 2},
        })
    }

    #[test]
    fn a_valid_object_has_no_unknown_fields_and_is_left_alone() {
        // Maps (labels, limits) take any key, int-or-string and quantities take both kinds.
        let mut obj = deployment();
        assert_eq!(prune_unknown(all_schemas(), DEPLOYMENT, &mut obj), vec![]);
        assert_eq!(obj, deployment());
    }

    #[test]
    fn unknown_fields_are_found_with_their_paths_and_removed() {
        // Nested objects, list items and null values all count, as in Kubernetes' decoder.
        let mut obj = deployment();
        obj["spec"]["foo"] = json!(1);
        obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = json!("Always");
        obj["metadata"]["nme"] = Value::Null;
        obj["extra"] = json!({"a": 1});
        let mut found = prune_unknown(all_schemas(), DEPLOYMENT, &mut obj);
        found.sort();
        assert_eq!(
            found,
            vec![
                FieldProblem::Unknown("extra".into()),
                FieldProblem::Unknown("metadata.nme".into()),
                FieldProblem::Unknown("spec.foo".into()),
                FieldProblem::Unknown("spec.template.spec.containers[0].imagePullPolicyy".into()),
            ]
        );
        assert_eq!(obj, deployment());
    }

    #[test]
    fn config_map_data_and_pod_fields_are_checked_per_kind() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"anything": "x", "k.y": "z"}, "binaryData": {}, "immutable": false, "dta": {}});
        let found = prune_unknown(all_schemas(), "io.k8s.api.core.v1.ConfigMap", &mut cm);
        assert_eq!(found, vec![FieldProblem::Unknown("dta".into())]);
        assert_eq!(cm["data"]["anything"], "x");
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        let body =
            br#"{"a": 1, "spec": {"replicas": 1, "replicas": 2, "l": [{"x": 1, "x": 2}]}, "a": 3}"#;
        assert_eq!(
            duplicates(body),
            vec![
                FieldProblem::Duplicate("spec.replicas".into()),
                FieldProblem::Duplicate("spec.l[0].x".into()),
                FieldProblem::Duplicate("a".into()),
            ]
        );
        assert_eq!(duplicates(br#"{"a": {"b": 1}, "b": {"b": 2}}"#), vec![]);
        assert_eq!(duplicates(b"not json"), vec![]);
    }

    #[test]
    fn directives_decide_between_error_warning_and_silence() {
        let body = br#"{"kind": "Deployment", "kind": "Deployment", "spec": {"foo": 1}}"#;
        let run = |d| {
            let mut obj: Value = serde_json::from_slice(body).unwrap();
            let r = check(d, all_schemas(), DEPLOYMENT, &mut obj, Some(body));
            assert!(
                obj["spec"].get("foo").is_none(),
                "unknown fields are dropped"
            );
            r
        };
        let err = run(FieldValidation::Strict).unwrap_err();
        assert_eq!(
            err.to_string(),
            "strict decoding error: duplicate field \"kind\", unknown field \"spec.foo\""
        );
        let warnings = run(FieldValidation::Warn).unwrap();
        assert_eq!(warnings[1].to_string(), "unknown field \"spec.foo\"");
        assert_eq!(run(FieldValidation::Ignore).unwrap(), vec![]);
        let mut ok = deployment();
        assert_eq!(
            check(
                FieldValidation::Strict,
                all_schemas(),
                DEPLOYMENT,
                &mut ok,
                None
            ),
            Ok(vec![])
        );
    }

    #[test]
    fn the_directive_defaults_to_warn_and_rejects_other_values() {
        assert_eq!(FieldValidation::parse(None), Ok(FieldValidation::Warn));
        assert_eq!(FieldValidation::parse(Some("")), Ok(FieldValidation::Warn));
        assert_eq!(
            FieldValidation::parse(Some("Strict")),
            Ok(FieldValidation::Strict)
        );
        assert_eq!(
            FieldValidation::parse(Some("Ignore")),
            Ok(FieldValidation::Ignore)
        );
        let e = FieldValidation::parse(Some("strict")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "fieldValidation: Unsupported value: \"strict\": supported values: \"Ignore\", \"Strict\", \"Warn\""
        );
    }
}
