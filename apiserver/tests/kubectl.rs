//! The real kubectl against 3 skiff-store members and 2 skiff-apiserver replicas; requests
//! alternate between the replicas, so they must behave as one API.

use std::time::Duration;

mod common;
use common::{start, Kubectl, Lines, APP};

/// A deployment with two misspelled fields.
const TYPO: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: typo
  namespace: shop
spec:
  replicas: 1
  replicass: 3
  selector:
    matchLabels: {app: typo}
  template:
    metadata:
      labels: {app: typo}
    spec:
      containers:
      - name: c
        image: nginx
        imagePullPolicyy: Always
";

#[test]
fn kubectl_end_to_end() {
    let (procs, urls) = start();
    let k = Kubectl::new(&urls);
    let dir = procs.dir.path();

    let ns = k.ok(&["get", "ns"]);
    for n in ["default", "kube-system", "kube-public"] {
        assert!(ns.contains(n), "{ns}");
    }
    // kubectl's generators send protobuf bodies.
    assert!(k
        .ok(&["create", "ns", "gen"])
        .contains("namespace/gen created"));
    k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=2",
        "--port=80",
        "-n",
        "gen",
    ]);
    k.ok(&[
        "create",
        "configmap",
        "c1",
        "--from-literal=a=1",
        "-n",
        "gen",
    ]);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "--from-literal=p=pw",
        "-n",
        "gen",
    ]);
    k.ok(&[
        "run",
        "p1",
        "--image=busybox",
        "--restart=Never",
        "-n",
        "gen",
        "--",
        "sleep",
        "1",
    ]);
    assert_eq!(
        k.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "gen",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].ports[0].containerPort}"
        ]),
        "2 80"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "secret",
            "s1",
            "-n",
            "gen",
            "-o",
            "jsonpath={.data.p}"
        ]),
        "cHc="
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "p1",
            "-n",
            "gen",
            "-o",
            "jsonpath={.spec.containers[0].args}"
        ]),
        r#"["sleep","1"]"#
    );
    let res = k.ok(&["api-resources"]);
    assert!(
        res.contains("deployments") && res.contains("deploy") && res.contains("apps/v1"),
        "{res}"
    );

    // apply -f of a multi-document file, then again after an edit (client-side 3-way patch).
    let file = dir.join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    let f = file.to_str().unwrap();
    let out = k.ok(&["apply", "-f", f]);
    for line in [
        "namespace/shop created",
        "deployment.apps/web created",
        "service/web created",
        "configmap/cfg created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    std::fs::write(
        &file,
        APP.replace("replicas: 2", "replicas: 3")
            .replace("nginx:1.25", "nginx:1.26"),
    )
    .unwrap();
    let out = k.ok(&["apply", "-f", f]);
    assert!(
        out.contains("deployment.apps/web configured") && out.contains("configmap/cfg unchanged"),
        "{out}"
    );
    assert_eq!(
        k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas} {.metadata.generation} {.spec.template.spec.containers[0].image}"]),
        "3 2 nginx:1.26"
    );

    // Output formats and selectors.
    assert_eq!(
        k.ok(&["get", "deploy", "-n", "shop", "-o", "name"]).trim(),
        "deployment.apps/web"
    );
    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "svc", "web", "-n", "shop", "-o", "json"])).unwrap();
    assert_eq!(
        json["spec"]["ports"][0]["targetPort"], 80,
        "defaulted targetPort"
    );
    assert_eq!(json["spec"]["type"], "ClusterIP");
    assert!(k
        .ok(&["get", "cm", "cfg", "-n", "shop", "-o", "yaml"])
        .contains("a: \"1\""));
    assert!(k
        .ok(&["get", "deploy", "-n", "shop", "-l", "app=web"])
        .contains("web"));
    assert!(k
        .ok(&["get", "deploy", "-n", "shop", "-l", "app=other"])
        .is_empty());
    assert!(k.ok(&["get", "cm", "-A"]).contains("shop"));

    // describe reads the object, then lists what relates to it (replica sets, events).
    let out = k.ok(&["describe", "deploy", "web", "-n", "shop"]);
    for want in [
        "Name:                   web",
        "Namespace:              shop",
        "Selector:               app=web",
        "StrategyType:           RollingUpdate",
        "Image:         nginx:1.26",
    ] {
        assert!(out.contains(want), "describe deploy lacks {want:?}:\n{out}");
    }
    let out = k.ok(&["describe", "cm", "cfg", "-n", "shop"]);
    assert!(
        out.contains("Name:         cfg") && out.contains("Data\n===="),
        "{out}"
    );
    let versions = k.ok(&["api-versions"]);
    for v in ["v1", "apps/v1", "batch/v1", "coordination.k8s.io/v1"] {
        assert!(
            versions.lines().any(|l| l == v),
            "api-versions lacks {v}: {versions}"
        );
    }

    // label, annotate, the three client patch types, scale.
    k.ok(&["label", "cm", "cfg", "-n", "shop", "tier=front"]);
    k.ok(&["annotate", "cm", "cfg", "-n", "shop", "note=hi"]);
    assert!(k
        .ok(&["get", "cm", "-n", "shop", "--show-labels"])
        .contains("tier=front"));
    k.ok(&[
        "patch",
        "cm",
        "cfg",
        "-n",
        "shop",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    k.ok(&[
        "patch",
        "cm",
        "cfg",
        "-n",
        "shop",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/c","value":"3"}]"#,
    ]);
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "shop",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#,
    ]);
    assert_eq!(
        k.ok(&["get", "cm", "cfg", "-n", "shop", "-o", "jsonpath={.data}"]),
        r#"{"a":"1","b":"2","c":"3"}"#
    );
    let ports = k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}"]);
    assert_eq!(
        ports, "nginx:1.27 80",
        "strategic merge kept the container's ports"
    );
    k.ok(&["scale", "deploy", "web", "-n", "shop", "--replicas=5"]);
    assert_eq!(
        k.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "5"
    );

    // edit with a scripted editor.
    let editor = dir.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/note: hi/note: edited/' \"$1\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", editor.to_str().unwrap()])
        .status()
        .unwrap();
    let out = k
        .cmd(&urls[0])
        .args(["edit", "cm", "cfg", "-n", "shop"])
        .env("KUBE_EDITOR", editor.to_str().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "edit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "cfg",
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.annotations.note}"
        ]),
        "edited"
    );

    // get -w on one replica sees a change made through the other.
    let mut cmd = k.cmd(&urls[0]);
    cmd.args([
        "get",
        "cm",
        "cfg",
        "-n",
        "shop",
        "-w",
        "-o",
        "jsonpath={.data.a}{\"\\n\"}",
    ]);
    let mut watch = Lines::spawn(cmd);
    // The first line is the object as listed; kubectl then watches from the list's version.
    watch.wait_for(Duration::from_secs(20), "with the listed value", |l| {
        l == "1"
    });
    let out = k
        .cmd(&urls[1])
        .args([
            "patch",
            "cm",
            "cfg",
            "-n",
            "shop",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"a":"changed"}}"#,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    watch.wait_for(Duration::from_secs(20), "with the change", |l| {
        l == "changed"
    });
    drop(watch);

    server_side_apply(&k, dir);

    // Errors come back as Kubernetes statuses.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\n  namespace: shop\nspec:\n  containers: []\n").unwrap();
    let e = k.fails(&["create", "-f", bad.to_str().unwrap()]);
    assert!(
        e.contains("is invalid") && e.contains("metadata.name"),
        "{e}"
    );
    let e = k.fails(&["create", "-f", f]);
    assert!(e.contains("AlreadyExists"), "{e}");
    let e = k.fails(&["get", "deploy", "nope", "-n", "shop"]);
    assert!(
        e.contains("NotFound") && e.contains("\"nope\" not found"),
        "{e}"
    );
    let e = k.fails(&["get", "cm", "-n", "missing-ns", "x"]);
    assert!(e.contains("NotFound"), "{e}");

    // OpenAPI v3: explain reads the schemas; --validate (strict by default) finds the
    // fieldValidation parameter and lets the server refuse unknown fields, storing nothing;
    // --validate=warn stores the object without them and prints the server's warnings.
    let out = k.ok(&["explain", "deployment.spec.strategy"]);
    assert!(
        out.contains("DeploymentStrategy")
            && out.contains("rollingUpdate")
            && out.contains("RollingUpdate")
            && out.contains("type"),
        "{out}"
    );
    let out = k.ok(&["explain", "pods"]);
    assert!(
        out.contains("KIND:") && out.contains("Pod") && out.contains("spec\t<PodSpec>"),
        "{out}"
    );
    let typo = dir.join("typo.yaml");
    std::fs::write(&typo, TYPO).unwrap();
    let typo = typo.to_str().unwrap();
    let e = k.fails(&["apply", "-f", typo]);
    assert!(
        e.contains("BadRequest")
            && e.contains(r#"strict decoding error: unknown field "spec.replicass""#),
        "{e}"
    );
    assert!(k
        .fails(&["get", "deploy", "typo", "-n", "shop"])
        .contains("NotFound"));
    let out = k.run(&["apply", "-f", typo, "--validate=warn"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(r#"Warning: unknown field "spec.replicass""#)
            && stderr.contains(
                r#"Warning: unknown field "spec.template.spec.containers[0].imagePullPolicyy""#
            ),
        "{stderr}"
    );
    // (The last-applied annotation keeps the manifest as written, typos included.)
    let stored: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "typo", "-n", "shop", "-o", "json"]))
            .unwrap();
    assert_eq!(stored["spec"]["replicas"], 1);
    assert!(stored["spec"].get("replicass").is_none(), "{stored}");
    let container = &stored["spec"]["template"]["spec"]["containers"][0];
    assert!(container.get("imagePullPolicyy").is_none(), "{container}");
    // A server-side dry run validates but stores nothing.
    let dry = dir.join("dry.yaml");
    std::fs::write(
        &dry,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n  namespace: shop\ndata:\n  a: b\n",
    )
    .unwrap();
    let out = k.ok(&["create", "-f", dry.to_str().unwrap(), "--dry-run=server"]);
    assert!(
        out.contains("configmap/dry created (server dry run)"),
        "{out}"
    );
    assert!(k
        .fails(&["get", "cm", "dry", "-n", "shop"])
        .contains("NotFound"));

    let out = k.ok(&["delete", "cm", "cfg", "-n", "shop", "--dry-run=server"]);
    assert!(out.contains("(server dry run)"), "{out}");
    k.ok(&["get", "cm", "cfg", "-n", "shop"]);

    // delete waits until the object is gone; deleting the namespace takes its contents.
    assert!(k
        .ok(&["delete", "deploy", "web", "-n", "shop"])
        .contains("deleted"));
    assert!(k
        .fails(&["get", "deploy", "web", "-n", "shop"])
        .contains("NotFound"));
    k.ok(&["delete", "ns", "shop"]);
    let left = k.ok(&["get", "cm", "-A"]);
    assert!(!left.contains("shop") && left.contains("gen"), "{left}");
    assert!(k.fails(&["get", "ns", "shop"]).contains("NotFound"));
}

/// `kubectl apply --server-side`: create, field ownership in managedFields, removal of a
/// field the manager stops applying, a conflict with another manager (nothing changes) and
/// `--force-conflicts`.
fn server_side_apply(k: &Kubectl, dir: &std::path::Path) {
    let file = dir.join("ssa.yaml");
    let f = file.to_str().unwrap();
    let manifest = |data: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: shop\n  labels: {{app: ssa}}\ndata:\n{data}"
        )
    };
    let data = |k: &Kubectl| k.ok(&["get", "cm", "ssa", "-n", "shop", "-o", "jsonpath={.data}"]);
    std::fs::write(&file, manifest("  a: \"1\"\n  b: \"2\"\n")).unwrap();
    let out = k.ok(&["apply", "--server-side", "-f", f]);
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
    let obj: serde_json::Value = serde_json::from_str(&k.ok(&[
        "get",
        "cm",
        "ssa",
        "-n",
        "shop",
        "-o",
        "json",
        "--show-managed-fields",
    ]))
    .unwrap();
    let managed = &obj["metadata"]["managedFields"];
    assert_eq!(managed.as_array().map(Vec::len), Some(1), "{managed}");
    assert_eq!(managed[0]["manager"], "kubectl");
    assert_eq!(managed[0]["operation"], "Apply");
    assert_eq!(
        managed[0]["fieldsV1"],
        serde_json::json!({"f:data": {".": {}, "f:a": {}, "f:b": {}},
                           "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );

    // Leaving b out of the next apply removes it: nobody else owns it.
    std::fs::write(&file, manifest("  a: \"3\"\n")).unwrap();
    k.ok(&["apply", "--server-side", "-f", f]);
    assert_eq!(data(k), r#"{"a":"3"}"#);

    // Another manager changes a; applying a different value is a conflict that changes
    // nothing, until the apply forces it.
    k.ok(&[
        "patch",
        "cm",
        "ssa",
        "-n",
        "shop",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"a":"9"}}"#,
    ]);
    let e = k.fails(&["apply", "--server-side", "-f", f]);
    assert!(
        e.contains("Apply failed with 1 conflict")
            && e.contains("conflict with \"kubectl-patch\"")
            && e.contains(".data.a"),
        "{e}"
    );
    assert_eq!(data(k), r#"{"a":"9"}"#);
    k.ok(&["apply", "--server-side", "--force-conflicts", "-f", f]);
    assert_eq!(data(k), r#"{"a":"3"}"#);
    let managers = k.ok(&[
        "get",
        "cm",
        "ssa",
        "-n",
        "shop",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert_eq!(managers, "kubectl", "kubectl-patch lost its only field");
}
