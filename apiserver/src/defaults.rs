//! Defaulting as Kubernetes does it for the built-in types (`pkg/apis/*/v1/defaults.go`),
//! free of I/O: fields a client may omit get the value the real apiserver would store.

use serde_json::{json, Value};

use crate::resources::Resource;

fn default(obj: &mut Value, field: &str, value: Value) {
    if obj.get(field).is_none_or(Value::is_null) {
        obj[field] = value;
    }
}

/// Fills defaults on `obj` of resource `res`.
pub fn apply(res: &Resource, obj: &mut Value) {
    match (res.group, res.kind) {
        ("", "Pod") => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec);
            }
        }
        ("", "Service") => {
            if let Some(spec) = obj.get_mut("spec") {
                service_spec(spec);
            }
        }
        ("apps", kind @ ("Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")) => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            if kind != "DaemonSet" {
                default(spec, "replicas", json!(1));
            }
            default(spec, "revisionHistoryLimit", json!(10));
            match kind {
                "Deployment" => {
                    default(spec, "progressDeadlineSeconds", json!(600));
                    default(spec, "strategy", json!({"type": "RollingUpdate"}));
                    if spec["strategy"]["type"] == "RollingUpdate" {
                        default(
                            &mut spec["strategy"],
                            "rollingUpdate",
                            json!({"maxUnavailable": "25%", "maxSurge": "25%"}),
                        );
                    }
                }
                "StatefulSet" => {
                    default(spec, "podManagementPolicy", json!("OrderedReady"));
                    default(
                        spec,
                        "updateStrategy",
                        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                    );
                }
                "DaemonSet" => default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                ),
                _ => {}
            }
            if let Some(tspec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                pod_spec(tspec);
            }
        }
        ("batch", "Job") => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            default(spec, "backoffLimit", json!(6));
            default(spec, "completions", json!(1));
            default(spec, "parallelism", json!(1));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            if let Some(tspec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                default(tspec, "restartPolicy", json!("Never"));
                pod_spec(tspec);
            }
        }
        _ => {}
    }
}

/// `imagePullPolicy`: Always for `:latest` or untagged images, IfNotPresent otherwise.
fn pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match name.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                let image = c["image"].as_str().unwrap_or("").to_string();
                default(c, "imagePullPolicy", json!(pull_policy(&image)));
                default(c, "terminationMessagePath", json!("/dev/termination-log"));
                default(c, "terminationMessagePolicy", json!("File"));
                default(c, "resources", json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

fn service_spec(spec: &mut Value) {
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default(p, "protocol", json!("TCP"));
            if p.get("targetPort").is_none() {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn pod_and_deployment_defaults() {
        let pods = find("", "v1", "pods").unwrap();
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "image": "nginx"}, {"name": "b", "image": "reg:5000/x/y:1.2", "ports": [{"containerPort": 80}]}
        ]}});
        apply(pods, &mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["containers"][1]["ports"][0]["protocol"], "TCP");

        let deploy = find("apps", "v1", "deployments").unwrap();
        let mut d = json!({"spec": {"strategy": {"type": "Recreate"}, "template": {"spec": {"containers": [{"name": "a", "image": "x:latest"}]}}}});
        apply(deploy, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert!(d["spec"]["strategy"].get("rollingUpdate").is_none());
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        let mut d = json!({"spec": {"replicas": 3}});
        apply(deploy, &mut d);
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    }

    #[test]
    fn service_defaults() {
        let svc = find("", "v1", "services").unwrap();
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply(svc, &mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
    }
}
