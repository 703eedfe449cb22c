//! Printers of the workload and coordination kinds: Deployment, ReplicaSet, DaemonSet,
//! StatefulSet, Job and Lease, with the columns of Kubernetes' printers.

use serde_json::{json, Value};

use super::{
    age, col, containers_and_images, format_label_selector, format_map, human_duration, int, name,
    parse_time, wide, CellsFn, Column, Printer, AGE, NAME,
};

/// The printer of a workload or coordination kind, if `kind` is one.
pub(super) fn printer(kind: &str) -> Option<Printer> {
    let (columns, cells): (&'static [Column], CellsFn) = match kind {
        "Deployment" => (DEPLOYMENT, deployment),
        "ReplicaSet" => (REPLICASET, replicaset),
        "DaemonSet" => (DAEMONSET, daemonset),
        "StatefulSet" => (STATEFULSET, statefulset),
        "Job" => (JOB, job),
        "Lease" => (LEASE, lease),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);
const SELECTOR: Column = wide(
    "Selector",
    "string",
    "Label selector for pods. Existing pods whose labels match this selector are affected.",
);

/// `spec.replicas`, which the API defaults to 1.
fn desired(o: &Value) -> i64 {
    o["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// CONTAINERS, IMAGES and SELECTOR cells of a workload.
fn template_cells(o: &Value, with_selector: bool) -> Vec<Value> {
    let (containers, images) = containers_and_images(&o["spec"]["template"]);
    let mut cells = vec![json!(containers), json!(images)];
    if with_selector {
        cells.push(json!(format_label_selector(&o["spec"]["selector"])));
    }
    cells
}

const DEPLOYMENT: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "Number of the pod with ready state",
    ),
    col(
        "Up-to-date",
        "integer",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    col(
        "Available",
        "integer",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn deployment(o: &Value, now: i64) -> Vec<Value> {
    let st = &o["status"];
    let mut cells = vec![
        json!(name(o)),
        json!(format!("{}/{}", int(&st["readyReplicas"]), desired(o))),
        json!(int(&st["updatedReplicas"])),
        json!(int(&st["availableReplicas"])),
        json!(age(o, now)),
    ];
    cells.extend(template_cells(o, true));
    cells
}

const REPLICASET: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas.",
    ),
    col(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn replicaset(o: &Value, now: i64) -> Vec<Value> {
    let st = &o["status"];
    let mut cells = vec![
        json!(name(o)),
        json!(desired(o)),
        json!(int(&st["replicas"])),
        json!(int(&st["readyReplicas"])),
        json!(age(o, now)),
    ];
    cells.extend(template_cells(o, true));
    cells
}

const DAEMONSET: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod.",
    ),
    col(
        "Current",
        "integer",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    col(
        "Ready",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
    ),
    col(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running updated daemon pod",
    ),
    col(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
    ),
    col(
        "Node Selector",
        "string",
        "NodeSelector is a selector which must be true for the pod to fit on a node.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn daemonset(o: &Value, now: i64) -> Vec<Value> {
    let st = &o["status"];
    let mut cells = vec![
        json!(name(o)),
        json!(int(&st["desiredNumberScheduled"])),
        json!(int(&st["currentNumberScheduled"])),
        json!(int(&st["numberReady"])),
        json!(int(&st["updatedNumberScheduled"])),
        json!(int(&st["numberAvailable"])),
        json!(format_map(&o["spec"]["template"]["spec"]["nodeSelector"])),
        json!(age(o, now)),
    ];
    cells.extend(template_cells(o, true));
    cells
}

const STATEFULSET: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

fn statefulset(o: &Value, now: i64) -> Vec<Value> {
    let mut cells = vec![
        json!(name(o)),
        json!(format!(
            "{}/{}",
            int(&o["status"]["readyReplicas"]),
            desired(o)
        )),
        json!(age(o, now)),
    ];
    cells.extend(template_cells(o, false));
    cells
}

const JOB: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col(
        "Completions",
        "string",
        "The completion status of the job (succeeded / desired completions).",
    ),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// STATUS of a job: its decisive condition, `Terminating` while deleted, else `Running`.
fn job_status(o: &Value) -> &'static str {
    let has = |ty: &str| {
        o["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == ty && c["status"] == "True")
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if o["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

/// COMPLETIONS: `succeeded/completions`, or `succeeded/1 of N` for a work queue of N.
fn job_completions(o: &Value) -> String {
    let succeeded = int(&o["status"]["succeeded"]);
    match o["spec"]["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => match o["spec"]["parallelism"].as_i64().unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// DURATION: from start to completion, or to now while running; empty before start.
fn job_duration(o: &Value, now: i64) -> String {
    let time = |f: &str| o["status"][f].as_str().and_then(parse_time);
    match (time("startTime"), time("completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(done)) => human_duration(done - start),
    }
}

fn job(o: &Value, now: i64) -> Vec<Value> {
    let mut cells = vec![
        json!(name(o)),
        json!(job_status(o)),
        json!(job_completions(o)),
        json!(job_duration(o, now)),
        json!(age(o, now)),
    ];
    cells.extend(template_cells(o, true));
    cells
}

const LEASE: &[Column] = &[
    NAME,
    col(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

fn lease(o: &Value, now: i64) -> Vec<Value> {
    vec![
        json!(name(o)),
        json!(o["spec"]["holderIdentity"].as_str().unwrap_or("")),
        json!(age(o, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, headers};
    use super::*;

    const NOW: &str = "2026-11-23T13:05:00Z";

    fn workload(spec: Value, status: Value) -> Value {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "web"}});
        spec["template"] = json!({"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}});
        json!({"metadata": {"name": "web", "namespace": "shop",
                            "creationTimestamp": "2026-11-23T13:04:55Z"},
               "spec": spec, "status": status})
    }

    fn shown(kind: &str, priority: u8) -> Vec<&'static str> {
        headers(kind)
            .into_iter()
            .filter(|c| c.1 == priority)
            .map(|c| c.0)
            .collect()
    }

    #[test]
    fn deployments_show_ready_of_desired_and_template() {
        assert_eq!(
            shown("Deployment", 0),
            ["Name", "Ready", "Up-to-date", "Available", "Age"]
        );
        assert_eq!(shown("Deployment", 1), ["Containers", "Images", "Selector"]);
        let d = workload(
            json!({"replicas": 3}),
            json!({"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}),
        );
        assert_eq!(
            cells("Deployment", &d, NOW),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("5s"),
                json!("nginx,log"),
                json!("nginx:1.25,busybox"),
                json!("app=web")
            ]
        );
        let fresh = workload(json!({"replicas": 2}), json!({}));
        assert_eq!(cells("Deployment", &fresh, NOW)[1], "0/2");
    }

    #[test]
    fn replicasets_show_desired_current_ready() {
        assert_eq!(
            shown("ReplicaSet", 0),
            ["Name", "Desired", "Current", "Ready", "Age"]
        );
        let rs = workload(json!({}), json!({"replicas": 1, "readyReplicas": 1}));
        assert_eq!(
            cells("ReplicaSet", &rs, NOW)[1..4],
            [json!(1), json!(1), json!(1)]
        );
    }

    #[test]
    fn daemonsets_show_scheduling_counts_and_node_selector() {
        assert_eq!(
            shown("DaemonSet", 0),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age"
            ]
        );
        let mut ds = workload(
            json!({}),
            json!({"desiredNumberScheduled": 3, "currentNumberScheduled": 2, "numberReady": 1,
                   "updatedNumberScheduled": 2, "numberAvailable": 1}),
        );
        ds["spec"]["template"]["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        assert_eq!(
            cells("DaemonSet", &ds, NOW)[1..7],
            [
                json!(3),
                json!(2),
                json!(1),
                json!(2),
                json!(1),
                json!("kubernetes.io/os=linux")
            ]
        );
    }

    #[test]
    fn statefulsets_show_ready_and_template_without_selector() {
        assert_eq!(shown("StatefulSet", 0), ["Name", "Ready", "Age"]);
        assert_eq!(shown("StatefulSet", 1), ["Containers", "Images"]);
        let s = workload(json!({"replicas": 3}), json!({"readyReplicas": 3}));
        assert_eq!(
            cells("StatefulSet", &s, NOW),
            vec![
                json!("web"),
                json!("3/3"),
                json!("5s"),
                json!("nginx,log"),
                json!("nginx:1.25,busybox")
            ]
        );
    }

    #[test]
    fn jobs_show_status_completions_and_duration() {
        assert_eq!(
            shown("Job", 0),
            ["Name", "Status", "Completions", "Duration", "Age"]
        );
        let running = workload(
            json!({"completions": 3, "parallelism": 1}),
            json!({"succeeded": 1, "startTime": "2026-11-23T13:02:00Z"}),
        );
        assert_eq!(
            cells("Job", &running, NOW)[1..4],
            [json!("Running"), json!("1/3"), json!("3m")]
        );
        let done = workload(
            json!({"parallelism": 4}),
            json!({"succeeded": 1, "startTime": "2026-11-23T13:00:00Z",
                   "completionTime": "2026-11-23T13:00:42Z",
                   "conditions": [{"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(
            cells("Job", &done, NOW)[1..4],
            [json!("Complete"), json!("1/1 of 4"), json!("42s")]
        );
        let mut pending = workload(json!({}), json!({}));
        pending["metadata"]["deletionTimestamp"] = json!(NOW);
        assert_eq!(
            cells("Job", &pending, NOW)[1..4],
            [json!("Terminating"), json!("0/1"), json!("")]
        );
        let suspended = workload(
            json!({}),
            json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
        );
        assert_eq!(cells("Job", &suspended, NOW)[1], "Suspended");
    }

    #[test]
    fn leases_show_their_holder() {
        let l = json!({"metadata": {"name": "kube-scheduler", "creationTimestamp": "2026-11-23T13:00:00Z"},
                       "spec": {"holderIdentity": "node-1_abc"}});
        assert_eq!(
            cells("Lease", &l, NOW),
            vec![json!("kube-scheduler"), json!("node-1_abc"), json!("5m")]
        );
    }
}
