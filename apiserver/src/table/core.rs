//! Printers of the core (`v1`) kinds: Namespace, Pod, Node, Service, Endpoints, ConfigMap,
//! Secret, Event and ServiceAccount, with the columns of Kubernetes' printers.

use serde_json::{json, Value};

use super::{
    age, col, count, format_map, int, name, since, str_or, wide, CellsFn, Column, Printer, AGE,
    NAME,
};

/// The printer of a core kind, if `kind` is one.
pub(super) fn printer(kind: &str) -> Option<Printer> {
    let (columns, cells): (&'static [Column], CellsFn) = match kind {
        "Namespace" => (NAMESPACE, namespace),
        "Pod" => (POD, pod),
        "Node" => (NODE, node),
        "Service" => (SERVICE, service),
        "Endpoints" => (ENDPOINTS, endpoints),
        "ConfigMap" => (CONFIGMAP, configmap),
        "Secret" => (SECRET, secret),
        "Event" => (EVENT, event),
        "ServiceAccount" => (SERVICEACCOUNT, serviceaccount),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

/// `row.conditions`: finished pods are marked completed, as Kubernetes marks them.
pub(super) fn row_conditions(kind: &str, obj: &Value) -> Option<Value> {
    if kind != "Pod" {
        return None;
    }
    let (reason, message) = match obj["status"]["phase"].as_str() {
        Some("Succeeded") => ("Succeeded", "The pod has completed successfully."),
        Some("Failed") => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

const NAMESPACE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

fn namespace(o: &Value, now: i64) -> Vec<Value> {
    vec![
        json!(name(o)),
        json!(o["status"]["phase"].as_str().unwrap_or("")),
        json!(age(o, now)),
    ]
}

const POD: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide("IP", "string", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    wide("Node", "string", "NodeName is a request to schedule this pod onto a specific node."),
    wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node."),
    wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
];

/// The STATUS, READY and RESTARTS of a pod, by Kubernetes' rules in simplified form.
#[derive(Debug, PartialEq, Eq)]
struct PodSummary {
    reason: String,
    ready: usize,
    total: usize,
    restarts: i64,
    /// When a container last finished before a restart (Unix seconds).
    last_restart: Option<i64>,
}

/// Why a container is not running, if it says: a waiting or terminated reason, or the
/// signal or exit code of a termination without one. `prefix` is `Init:` for init containers.
fn container_reason(state: &Value, prefix: &str) -> Option<String> {
    if let Some(r) = state["waiting"]["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
    {
        return Some(format!("{prefix}{r}"));
    }
    let t = state.get("terminated")?;
    if let Some(r) = t["reason"].as_str().filter(|r| !r.is_empty()) {
        return Some(format!("{prefix}{r}"));
    }
    Some(match int(&t["signal"]) {
        0 => format!("{prefix}ExitCode:{}", int(&t["exitCode"])),
        s => format!("{prefix}Signal:{s}"),
    })
}

/// The names of a pod's sidecars: init containers with `restartPolicy: Always`, which keep
/// running beside the main containers and count in READY.
fn sidecars(o: &Value) -> Vec<&str> {
    o["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["restartPolicy"] == "Always")
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// The reason shown while init containers run or failed, if they do.
fn init_reason(o: &Value, sidecars: &[&str]) -> Option<String> {
    let total = count(&o["spec"]["initContainers"]);
    let statuses = o["status"]["initContainerStatuses"].as_array()?;
    for (i, c) in statuses.iter().enumerate() {
        let state = &c["state"];
        let done = state["terminated"].is_object() && int(&state["terminated"]["exitCode"]) == 0;
        let is_sidecar = c["name"].as_str().is_some_and(|n| sidecars.contains(&n));
        // A sidecar that has started counts as initialized.
        if done || (is_sidecar && c["started"] == true) {
            continue;
        }
        let waiting = state["waiting"]["reason"].as_str().unwrap_or("");
        return Some(match container_reason(state, "Init:") {
            Some(r) if waiting != "PodInitializing" => r,
            _ => format!("Init:{i}/{total}"),
        });
    }
    None
}

/// Whether the pod status has a condition matching `pred`.
fn has_condition(status: &Value, pred: impl Fn(&Value) -> bool) -> bool {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(pred)
}

/// The pod-level STATUS before container states refine it: `SchedulingGated` while the
/// scheduler holds the pod back, else `status.reason`, else the phase.
fn pod_reason(status: &Value) -> String {
    let gated = has_condition(status, |c| {
        c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated"
    });
    if gated {
        return "SchedulingGated".into();
    }
    str_or(&status["reason"], str_or(&status["phase"], "Pending")).to_string()
}

/// Adds the main containers' READY, RESTARTS and reasons (the first container's reason
/// wins, as Kubernetes walks them backwards); true if one is running and ready.
fn main_containers(status: &Value, s: &mut PodSummary) -> bool {
    let mut running = false;
    for c in status["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
    {
        s.restarts += int(&c["restartCount"]);
        let finished = c["lastState"]["terminated"]["finishedAt"].as_str();
        if let Some(t) = finished.and_then(super::parse_time) {
            s.last_restart = s.last_restart.max(Some(t));
        }
        match container_reason(&c["state"], "") {
            Some(r) => s.reason = r,
            None if c["ready"] == true && c["state"]["running"].is_object() => {
                running = true;
                s.ready += 1;
            }
            None => {}
        }
    }
    running
}

fn pod_summary(o: &Value) -> PodSummary {
    let status = &o["status"];
    let sidecars = sidecars(o);
    let mut s = PodSummary {
        reason: pod_reason(status),
        ready: 0,
        total: count(&o["spec"]["containers"]) + sidecars.len(),
        restarts: 0,
        last_restart: None,
    };
    let init_statuses = status["initContainerStatuses"].as_array();
    for c in init_statuses.into_iter().flatten() {
        if c["name"].as_str().is_some_and(|n| sidecars.contains(&n)) {
            s.restarts += int(&c["restartCount"]);
            if c["started"] == true && c["ready"] == true {
                s.ready += 1;
            }
        }
    }
    // While init containers run or failed, they alone make STATUS and RESTARTS.
    if let Some(r) = init_reason(o, &sidecars) {
        s.reason = r;
        s.restarts = init_statuses
            .into_iter()
            .flatten()
            .map(|c| int(&c["restartCount"]))
            .sum();
        return terminating(o, s);
    }
    let running = main_containers(status, &mut s);
    // A pod whose containers completed but one still runs is not "Completed".
    if s.reason == "Completed" && running {
        let ready = has_condition(status, |c| c["type"] == "Ready" && c["status"] == "True");
        s.reason = if ready { "Running" } else { "NotReady" }.to_string();
    }
    terminating(o, s)
}

/// A pod being deleted shows `Terminating` unless it already finished.
fn terminating(o: &Value, mut s: PodSummary) -> PodSummary {
    let status = &o["status"];
    let terminal = matches!(status["phase"].as_str(), Some("Succeeded" | "Failed"));
    if o["metadata"]["deletionTimestamp"].is_string() {
        if status["reason"] == "NodeLost" {
            s.reason = "Unknown".into();
        } else if !terminal {
            s.reason = "Terminating".into();
        }
    }
    s
}

fn pod(o: &Value, now: i64) -> Vec<Value> {
    let s = pod_summary(o);
    let restarts = match s.last_restart {
        Some(t) if s.restarts > 0 => {
            format!("{} ({} ago)", s.restarts, super::human_duration(now - t))
        }
        _ => s.restarts.to_string(),
    };
    let gates = o["spec"]["readinessGates"]
        .as_array()
        .filter(|g| !g.is_empty());
    let gates = match gates {
        None => "<none>".to_string(),
        Some(g) => {
            let conds = o["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let met = g
                .iter()
                .filter(|gate| {
                    conds
                        .iter()
                        .any(|c| c["type"] == gate["conditionType"] && c["status"] == "True")
                })
                .count();
            format!("{met}/{}", g.len())
        }
    };
    vec![
        json!(name(o)),
        json!(format!("{}/{}", s.ready, s.total)),
        json!(s.reason),
        json!(restarts),
        json!(age(o, now)),
        json!(str_or(&o["status"]["podIP"], "<none>")),
        json!(str_or(&o["spec"]["nodeName"], "<none>")),
        json!(str_or(&o["status"]["nominatedNodeName"], "<none>")),
        json!(gates),
    ]
}

const NODE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide("Internal-IP", "string", "List of addresses reachable to the node."),
    wide("External-IP", "string", "List of addresses reachable to the node."),
    wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

/// Ready / NotReady / Unknown, plus SchedulingDisabled for a cordoned node.
fn node_status(o: &Value) -> String {
    let ready = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    let mut parts = vec![match ready {
        Some(c) if c["status"] == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if o["spec"]["unschedulable"] == true {
        parts.push("SchedulingDisabled");
    }
    parts.join(",")
}

/// Roles from `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
fn node_roles(o: &Value) -> String {
    let mut roles: Vec<String> = Vec::new();
    for (k, v) in o["metadata"]["labels"].as_object().into_iter().flatten() {
        let role = match k.strip_prefix("node-role.kubernetes.io/") {
            Some(r) => r,
            None if k == "kubernetes.io/role" => v.as_str().unwrap_or(""),
            None => "",
        };
        if !role.is_empty() && !roles.iter().any(|r| r == role) {
            roles.push(role.to_string());
        }
    }
    roles.sort();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn node(o: &Value, now: i64) -> Vec<Value> {
    let address = |ty: &str| {
        o["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == ty)
            .and_then(|a| a["address"].as_str())
            .unwrap_or("<none>")
            .to_string()
    };
    let info = &o["status"]["nodeInfo"];
    vec![
        json!(name(o)),
        json!(node_status(o)),
        json!(node_roles(o)),
        json!(age(o, now)),
        json!(info["kubeletVersion"].as_str().unwrap_or("")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(str_or(&info["osImage"], "<unknown>")),
        json!(str_or(&info["kernelVersion"], "<unknown>")),
        json!(str_or(&info["containerRuntimeVersion"], "<unknown>")),
    ]
}

const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", "type determines how the Service is exposed."),
    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", "The list of ports that are exposed by this service."),
    AGE,
    wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
];

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// EXTERNAL-IP by service type, as Kubernetes prints it.
fn service_external_ip(o: &Value) -> String {
    let spec = &o["spec"];
    let external = strings(&spec["externalIPs"]);
    match spec["type"].as_str().unwrap_or("ClusterIP") {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".into(),
        "LoadBalancer" => {
            let mut ips: Vec<&str> = o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
                .collect();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => spec["externalName"].as_str().unwrap_or("").to_string(),
        _ => "<unknown>".into(),
    }
}

/// PORT(S): `port[:nodePort]/protocol`, comma-separated.
fn service_ports(o: &Value) -> String {
    let ports: Vec<String> = o["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = str_or(&p["protocol"], "TCP");
            match int(&p["nodePort"]) {
                0 => format!("{}/{proto}", int(&p["port"])),
                n => format!("{}:{n}/{proto}", int(&p["port"])),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

fn service(o: &Value, now: i64) -> Vec<Value> {
    let spec = &o["spec"];
    let cluster_ip = strings(&spec["clusterIPs"])
        .first()
        .copied()
        .unwrap_or_else(|| str_or(&spec["clusterIP"], "<none>"));
    vec![
        json!(name(o)),
        json!(str_or(&spec["type"], "ClusterIP")),
        json!(cluster_ip),
        json!(service_external_ip(o)),
        json!(service_ports(o)),
        json!(age(o, now)),
        json!(format_map(&spec["selector"])),
    ]
}

const ENDPOINTS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

/// At most this many `ip:port` pairs are listed; the rest are counted.
const MAX_LISTED_ENDPOINTS: usize = 3;

fn format_endpoints(o: &Value) -> String {
    let mut listed = Vec::new();
    let mut total = 0;
    for ss in o["subsets"].as_array().into_iter().flatten() {
        for port in ss["ports"].as_array().into_iter().flatten() {
            for addr in ss["addresses"].as_array().into_iter().flatten() {
                if listed.len() < MAX_LISTED_ENDPOINTS {
                    let ip = addr["ip"].as_str().unwrap_or("");
                    let host = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    listed.push(format!("{host}:{}", int(&port["port"])));
                }
                total += 1;
            }
        }
    }
    match total {
        0 if count(&o["subsets"]) == 0 => "<none>".into(),
        t if t > MAX_LISTED_ENDPOINTS => {
            format!(
                "{} + {} more...",
                listed.join(","),
                t - MAX_LISTED_ENDPOINTS
            )
        }
        _ => listed.join(","),
    }
}

fn endpoints(o: &Value, now: i64) -> Vec<Value> {
    vec![
        json!(name(o)),
        json!(format_endpoints(o)),
        json!(age(o, now)),
    ]
}

const CONFIGMAP: &[Column] = &[
    NAME,
    col("Data", "integer", "Data contains the configuration data."),
    AGE,
];

fn configmap(o: &Value, now: i64) -> Vec<Value> {
    let n = count(&o["data"]) + count(&o["binaryData"]);
    vec![json!(name(o)), json!(n), json!(age(o, now))]
}

const SECRET: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "integer", "Data contains the secret data."),
    AGE,
];

fn secret(o: &Value, now: i64) -> Vec<Value> {
    vec![
        json!(name(o)),
        json!(str_or(&o["type"], "Opaque")),
        json!(count(&o["data"])),
        json!(age(o, now)),
    ]
}

const EVENT: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "The path of the object's field this event is about."),
    wide("Source", "string", "The component reporting this event."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded."),
    wide("Count", "string", "The number of times this event has occurred."),
    wide("Name", "string", "Name must be unique within a namespace."),
];

fn event(o: &Value, now: i64) -> Vec<Value> {
    let first_ts = if o["firstTimestamp"].is_string() {
        &o["firstTimestamp"]
    } else {
        &o["eventTime"]
    };
    let first = since(first_ts, now);
    let (last, n) = if o["series"].is_object() {
        (
            since(&o["series"]["lastObservedTime"], now),
            int(&o["series"]["count"]),
        )
    } else {
        let last = if o["lastTimestamp"].is_string() {
            since(&o["lastTimestamp"], now)
        } else {
            first.clone()
        };
        (last, int(&o["count"]).max(1))
    };
    let involved = &o["involvedObject"];
    let kind = involved["kind"].as_str().unwrap_or("").to_lowercase();
    let target = match involved["name"].as_str().filter(|n| !n.is_empty()) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let component = str_or(
        &o["source"]["component"],
        str_or(&o["reportingComponent"], ""),
    );
    let host = str_or(&o["source"]["host"], str_or(&o["reportingInstance"], ""));
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(o["type"].as_str().unwrap_or("")),
        json!(o["reason"].as_str().unwrap_or("")),
        json!(target),
        json!(involved["fieldPath"].as_str().unwrap_or("")),
        json!(source),
        json!(o["message"].as_str().unwrap_or("").trim()),
        json!(first),
        json!(n),
        json!(name(o)),
    ]
}

const SERVICEACCOUNT: &[Column] = &[
    NAME,
    col("Secrets", "integer", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

fn serviceaccount(o: &Value, now: i64) -> Vec<Value> {
    vec![
        json!(name(o)),
        json!(count(&o["secrets"])),
        json!(age(o, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, headers};
    use super::*;

    const NOW: &str = "2026-11-23T13:05:00Z";
    const CREATED: &str = "2026-11-23T13:00:00Z";

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": CREATED})
    }

    #[test]
    fn namespaces_show_phase_and_age() {
        let ns = json!({"metadata": meta("shop"), "status": {"phase": "Active"}});
        assert_eq!(
            cells("Namespace", &ns, NOW),
            vec![json!("shop"), json!("Active"), json!("5m")]
        );
        assert_eq!(
            headers("Namespace"),
            [("Name", 0), ("Status", 0), ("Age", 0)]
        );
    }

    #[test]
    fn pod_columns_and_a_pod_without_status() {
        let names: Vec<_> = headers("Pod")
            .into_iter()
            .filter(|c| c.1 == 0)
            .map(|c| c.0)
            .collect();
        assert_eq!(names, ["Name", "Ready", "Status", "Restarts", "Age"]);
        let wide: Vec<_> = headers("Pod")
            .into_iter()
            .filter(|c| c.1 == 1)
            .map(|c| c.0)
            .collect();
        assert_eq!(wide, ["IP", "Node", "Nominated Node", "Readiness Gates"]);
        let p = json!({"metadata": meta("web"), "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            cells("Pod", &p, NOW),
            vec![
                json!("web"),
                json!("0/2"),
                json!("Pending"),
                json!("0"),
                json!("5m"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn running_pods_count_ready_containers_and_recent_restarts() {
        let p = json!({"metadata": meta("web"),
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1",
                     "readinessGates": [{"conditionType": "x/ok"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5",
                       "conditions": [{"type": "x/ok", "status": "True"}],
                       "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-23T13:04:00Z"}}},
                {"name": "b", "ready": true, "restartCount": 1, "state": {"running": {}}}]}});
        let c = cells("Pod", &p, NOW);
        assert_eq!(c[1], "2/2");
        assert_eq!(c[2], "Running");
        assert_eq!(c[3], "3 (60s ago)");
        assert_eq!(c[5], "10.0.0.5");
        assert_eq!(c[6], "n1");
        assert_eq!(c[8], "1/1");
    }

    #[test]
    fn pod_status_follows_container_reasons_init_and_deletion() {
        let waiting = json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": false, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(cells("Pod", &waiting, NOW)[2], "CrashLoopBackOff");
        let killed = json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}});
        assert_eq!(cells("Pod", &killed, NOW)[2], "Signal:9");
        assert_eq!(
            row_conditions("Pod", &killed).unwrap()[0]["reason"],
            "Failed"
        );
        let init = json!({"metadata": meta("p"),
            "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i1"}, {"name": "i2"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "state": {"running": {}}}]}});
        assert_eq!(cells("Pod", &init, NOW)[2], "Init:1/2");
        let init_failed = json!({"metadata": meta("p"),
            "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i1"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 3}}}]}});
        assert_eq!(cells("Pod", &init_failed, NOW)[2], "Init:ExitCode:3");
        let mut deleting = waiting.clone();
        deleting["metadata"]["deletionTimestamp"] = json!(NOW);
        assert_eq!(cells("Pod", &deleting, NOW)[2], "Terminating");
        let mut done = killed.clone();
        done["metadata"]["deletionTimestamp"] = json!(NOW);
        assert_eq!(
            cells("Pod", &done, NOW)[2],
            "Signal:9",
            "terminal pods keep their reason"
        );
        let evicted = json!({"metadata": meta("p"), "spec": {"containers": []},
            "status": {"phase": "Failed", "reason": "Evicted"}});
        assert_eq!(cells("Pod", &evicted, NOW)[2], "Evicted");
    }

    #[test]
    fn sidecars_count_in_ready_and_gated_pods_say_so() {
        let p = json!({"metadata": meta("p"),
            "spec": {"containers": [{"name": "app"}],
                     "initContainers": [{"name": "setup"}, {"name": "proxy", "restartPolicy": "Always"}]},
            "status": {"phase": "Running",
                "initContainerStatuses": [
                    {"name": "setup", "state": {"terminated": {"exitCode": 0}}},
                    {"name": "proxy", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}}}],
                "containerStatuses": [
                    {"name": "app", "ready": true, "state": {"running": {}}}]}});
        let c = cells("Pod", &p, NOW);
        assert_eq!(
            (c[1].as_str(), c[2].as_str(), c[3].as_str()),
            (Some("2/2"), Some("Running"), Some("1"))
        );
        let mut starting = p.clone();
        starting["status"]["initContainerStatuses"][1] = json!({"name": "proxy", "started": false, "state": {"waiting": {"reason": "PodInitializing"}}});
        let c = cells("Pod", &starting, NOW);
        assert_eq!(
            (c[1].as_str(), c[2].as_str()),
            (Some("0/2"), Some("Init:1/2"))
        );
        let gated = json!({"metadata": meta("g"), "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Pending",
                       "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}});
        assert_eq!(cells("Pod", &gated, NOW)[2], "SchedulingGated");
    }

    #[test]
    fn a_completed_container_beside_a_running_one_is_not_completed() {
        let p = |ready_condition: &str| {
            json!({"metadata": meta("p"), "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": ready_condition}],
                    "containerStatuses": [
                        {"name": "a", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "b", "ready": true, "state": {"running": {}}}]}})
        };
        assert_eq!(cells("Pod", &p("True"), NOW)[2], "Running");
        assert_eq!(cells("Pod", &p("False"), NOW)[2], "NotReady");
        assert_eq!(cells("Pod", &p("True"), NOW)[1], "1/2");
    }

    #[test]
    fn nodes_show_readiness_roles_and_system_info() {
        let n = json!({"metadata": {"name": "n1", "creationTimestamp": "2026-11-21T10:00:00Z",
                                    "labels": {"node-role.kubernetes.io/control-plane": "",
                                               "kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian"}}});
        assert_eq!(
            cells("Node", &n, NOW),
            vec![
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,worker"),
                json!("2d3h"),
                json!("v1.32.0"),
                json!("192.168.1.2"),
                json!("<none>"),
                json!("Debian"),
                json!("<unknown>"),
                json!("<unknown>")
            ]
        );
        let bare = json!({"metadata": meta("n2")});
        assert_eq!(cells("Node", &bare, NOW)[1], "Unknown");
        assert_eq!(cells("Node", &bare, NOW)[2], "<none>");
    }

    #[test]
    fn services_show_type_ips_ports_and_selector() {
        let s = json!({"metadata": meta("web"),
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                               {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            cells("Service", &s, NOW),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("5m"),
                json!("app=web")
            ]
        );
        let lb = json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "ports": []}});
        let c = cells("Service", &lb, NOW);
        assert_eq!(
            (c[2].as_str(), c[3].as_str(), c[4].as_str()),
            (Some("<none>"), Some("<pending>"), Some("<none>"))
        );
        let ext = json!({"metadata": meta("x"), "spec": {"type": "ExternalName", "externalName": "example.com"}});
        assert_eq!(cells("Service", &ext, NOW)[3], "example.com");
        let headers: Vec<_> = headers("Service").into_iter().map(|c| c.0).collect();
        assert_eq!(
            headers,
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
    }

    #[test]
    fn endpoints_list_three_addresses_then_count() {
        let e = json!({"metadata": meta("web"), "subsets": [{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "fd00::4"}],
            "ports": [{"port": 80}]}]});
        assert_eq!(
            cells("Endpoints", &e, NOW)[1],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more..."
        );
        let none = json!({"metadata": meta("web")});
        assert_eq!(cells("Endpoints", &none, NOW)[1], "<none>");
        let v6 = json!({"metadata": meta("web"), "subsets": [{"addresses": [{"ip": "fd00::4"}], "ports": [{"port": 80}]}]});
        assert_eq!(cells("Endpoints", &v6, NOW)[1], "[fd00::4]:80");
    }

    #[test]
    fn configmaps_secrets_and_serviceaccounts_count_entries() {
        let cm = json!({"metadata": meta("c"), "data": {"a": "1"}, "binaryData": {"b": "AA=="}});
        assert_eq!(
            cells("ConfigMap", &cm, NOW),
            vec![json!("c"), json!(2), json!("5m")]
        );
        let s = json!({"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            cells("Secret", &s, NOW),
            vec![
                json!("s"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("5m")
            ]
        );
        let sa = json!({"metadata": meta("default")});
        assert_eq!(
            cells("ServiceAccount", &sa, NOW),
            vec![json!("default"), json!(0), json!("5m")]
        );
    }

    #[test]
    fn events_show_last_seen_object_and_trimmed_message() {
        let e = json!({"metadata": meta("web.1"), "type": "Warning", "reason": "BackOff",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2026-11-23T12:00:00Z", "lastTimestamp": "2026-11-23T13:04:30Z",
            "count": 4, "message": "Back-off restarting\n"});
        assert_eq!(
            cells("Event", &e, NOW),
            vec![
                json!("30s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web"),
                json!("spec.containers{a}"),
                json!("kubelet, n1"),
                json!("Back-off restarting"),
                json!("65m"),
                json!(4),
                json!("web.1")
            ]
        );
        let shown: Vec<_> = headers("Event")
            .into_iter()
            .filter(|c| c.1 == 0)
            .map(|c| c.0)
            .collect();
        assert_eq!(shown, ["Last Seen", "Type", "Reason", "Object", "Message"]);
        let new_style = json!({"metadata": meta("x"), "eventTime": "2026-11-23T13:04:00.000000Z",
            "involvedObject": {"kind": "Node"}, "reportingComponent": "sched"});
        let c = cells("Event", &new_style, NOW);
        assert_eq!(
            (c[0].as_str(), c[3].as_str(), c[5].as_str()),
            (Some("60s"), Some("node"), Some("sched"))
        );
        assert_eq!(c[8], 1);
    }
}
