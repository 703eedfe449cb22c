//! Validation of the built-in types, free of I/O: required fields, selector/label agreement
//! and immutable fields, reported as 422 Invalid with one cause per field, as Kubernetes does.

use serde_json::Value;

use crate::object::meta_str;
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult, Cause};

fn required(field: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        message: "Required value".into(),
        field: field.into(),
    }
}

fn invalid(field: &str, message: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message,
        field: field.into(),
    }
}

fn pod_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    match spec.get("containers").and_then(Value::as_array) {
        Some(cs) if !cs.is_empty() => {
            let mut names = Vec::new();
            for (i, c) in cs.iter().enumerate() {
                let name = c["name"].as_str().unwrap_or("");
                if name.is_empty() {
                    causes.push(required(&format!("{path}.containers[{i}].name")));
                } else if names.contains(&name) {
                    causes.push(Cause {
                        reason: "FieldValueDuplicate",
                        message: format!("Duplicate value: \"{name}\""),
                        field: format!("{path}.containers[{i}].name"),
                    });
                }
                names.push(name);
                if c["image"].as_str().unwrap_or("").is_empty() {
                    causes.push(required(&format!("{path}.containers[{i}].image")));
                }
            }
        }
        _ => causes.push(required(&format!("{path}.containers"))),
    }
    if let Some(p) = spec.get("restartPolicy").and_then(Value::as_str) {
        if !matches!(p, "Always" | "OnFailure" | "Never") {
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                message: format!("Unsupported value: \"{p}\": supported values: \"Always\", \"OnFailure\", \"Never\""),
                field: format!("{path}.restartPolicy"),
            });
        }
    }
}

/// Whether `labels` satisfy a `matchLabels` selector.
fn selector_matches(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Checks an object about to be stored (create or update).
pub fn validate(res: &Resource, obj: &Value) -> ApiResult<()> {
    let mut causes = Vec::new();
    match (res.group, res.kind) {
        ("", "Pod") => pod_spec(&obj["spec"], "spec", &mut causes),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("batch", "Job") => {
            let spec = &obj["spec"];
            let template_labels = &spec["template"]["metadata"]["labels"];
            if res.kind != "Job" {
                if spec.get("selector").is_none_or(Value::is_null) {
                    causes.push(required("spec.selector"));
                } else if !selector_matches(&spec["selector"], template_labels) {
                    causes.push(invalid(
                        "spec.template.metadata.labels",
                        format!(
                            "Invalid value: {}: `selector` does not match template `labels`",
                            template_labels
                        ),
                    ));
                }
            }
            if let Some(r) = spec.get("replicas").and_then(Value::as_i64) {
                if r < 0 {
                    causes.push(invalid(
                        "spec.replicas",
                        format!("Invalid value: {r}: must be greater than or equal to 0"),
                    ));
                }
            }
            pod_spec(&spec["template"]["spec"], "spec.template.spec", &mut causes);
        }
        ("", "Service") => {
            if let Some(ports) = obj["spec"]["ports"].as_array() {
                for (i, p) in ports.iter().enumerate() {
                    let port = p["port"].as_i64().unwrap_or(0);
                    if !(1..=65535).contains(&port) {
                        causes.push(invalid(
                            &format!("spec.ports[{i}].port"),
                            format!(
                                "Invalid value: {port}: must be between 1 and 65535, inclusive"
                            ),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            res,
            meta_str(obj, "name").unwrap_or(""),
            causes,
        ))
    }
}

/// Checks the fields an update may not change.
pub fn validate_update(res: &Resource, new: &Value, old: &Value) -> ApiResult<()> {
    let mut causes = Vec::new();
    match (res.group, res.kind) {
        ("", "Pod") => {
            // A pod's spec is immutable except container images (and a few scheduling
            // fields Kubernetes also allows: activeDeadlineSeconds, added tolerations).
            let strip = |spec: &Value| {
                let mut s = spec.clone();
                for list in ["containers", "initContainers"] {
                    if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                        for c in cs {
                            c.as_object_mut().map(|o| o.remove("image"));
                        }
                    }
                }
                if let Some(o) = s.as_object_mut() {
                    o.remove("activeDeadlineSeconds");
                    o.remove("tolerations");
                }
                s
            };
            // nodeName may be set once (binding), never changed.
            let old_unset = old_node_unset(&old["spec"]);
            let mut a = strip(&new["spec"]);
            let mut b = strip(&old["spec"]);
            if old_unset {
                a.as_object_mut().map(|o| o.remove("nodeName"));
                b.as_object_mut().map(|o| o.remove("nodeName"));
            }
            if a != b {
                causes.push(Cause {
                    reason: "FieldValueForbidden",
                    message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into(),
                    field: "spec".into(),
                });
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            if new["spec"]["selector"] != old["spec"]["selector"] {
                causes.push(invalid(
                    "spec.selector",
                    format!(
                        "Invalid value: {}: field is immutable",
                        new["spec"]["selector"]
                    ),
                ));
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            res,
            meta_str(new, "name").unwrap_or(""),
            causes,
        ))
    }
}

fn old_node_unset(spec: &Value) -> bool {
    spec.get("nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    #[test]
    fn pods_need_containers_with_names_and_images() {
        let pods = find("", "v1", "pods").unwrap();
        let e = validate(pods, &json!({"metadata": {"name": "p"}, "spec": {}})).unwrap_err();
        assert_eq!(
            e.status()["details"]["causes"][0]["field"],
            "spec.containers"
        );
        let e = validate(
            pods,
            &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}),
        )
        .unwrap_err();
        assert_eq!(
            e.status()["details"]["causes"][0]["field"],
            "spec.containers[0].image"
        );
        assert!(validate(
            pods,
            &json!({"spec": {"containers": [{"name": "a", "image": "x"}]}})
        )
        .is_ok());
    }

    #[test]
    fn deployments_need_a_matching_selector() {
        let d = find("apps", "v1", "deployments").unwrap();
        let good = json!({"spec": {"selector": {"matchLabels": {"app": "w"}},
            "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        assert!(validate(d, &good).is_ok());
        let mut bad = good.clone();
        bad["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        assert_eq!(validate(d, &bad).unwrap_err().code, 422);
        let mut moved = good.clone();
        moved["spec"]["selector"]["matchLabels"]["app"] = json!("z");
        assert_eq!(validate_update(d, &moved, &good).unwrap_err().code, 422);
    }

    #[test]
    fn pod_spec_is_immutable_except_images_and_binding() {
        let pods = find("", "v1", "pods").unwrap();
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}]}});
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("x:2");
        assert!(validate_update(pods, &new, &old).is_ok());
        new["spec"]["nodeName"] = json!("n1");
        assert!(
            validate_update(pods, &new, &old).is_ok(),
            "binding sets nodeName once"
        );
        let bound = new.clone();
        let mut moved = bound.clone();
        moved["spec"]["nodeName"] = json!("n2");
        assert!(validate_update(pods, &moved, &bound).is_err());
        let mut changed = old.clone();
        changed["spec"]["containers"][0]["name"] = json!("b");
        assert_eq!(validate_update(pods, &changed, &old).unwrap_err().code, 422);
    }
}
