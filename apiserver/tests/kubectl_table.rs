//! Human-readable `kubectl get` against 3 skiff-store members and 2 skiff-apiserver
//! replicas: the server answers kubectl's `as=Table` Accept with Kubernetes' columns, so
//! kubectl prints what it prints against a real cluster (not the NAME/AGE fallback).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{start, Kubectl, Lines, APP};

/// The whitespace-separated words of each output line.
fn words(out: &str) -> Vec<Vec<&str>> {
    out.lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// Whether `cell` is an AGE like `5s`, `3m12s` or `2d`.
fn is_age(cell: &str) -> bool {
    cell.ends_with(['s', 'm', 'h', 'd', 'y']) && cell.starts_with(|c: char| c.is_ascii_digit())
}

/// A GET with an `Accept` header over plain HTTP/1.0 (so the body is not chunked).
fn raw_get(url: &str, path: &str, accept: &str) -> serde_json::Value {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200"), "{head}\n{body}");
    serde_json::from_str(body).unwrap()
}

#[test]
fn kubectl_get_prints_kubernetes_columns() {
    // Scenario: kubectl's table output for the common kinds, -o wide, -A, label columns,
    // and a watch that prints a later change as a table row.
    let (procs, urls) = start();
    let k = Kubectl::new(&urls);
    let file = procs.dir.path().join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    k.ok(&["apply", "-f", file.to_str().unwrap(), "--validate=false"]);

    let out = k.ok(&["get", "deploy", "-n", "shop"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "NAME   READY   UP-TO-DATE   AVAILABLE   AGE",
        "{out}"
    );
    let w = words(&out);
    assert_eq!(w[1][..4], ["web", "0/2", "0", "0"], "{out}");
    assert!(is_age(w[1][4]), "{out}");
    assert_eq!(
        words(&k.ok(&["get", "deploy", "web", "-n", "shop"]))[1][0],
        "web"
    );

    let out = k.ok(&["get", "deploy", "-n", "shop", "-o", "wide"]);
    let w = words(&out);
    assert_eq!(
        w[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{out}"
    );
    assert!(out.lines().next().unwrap().contains("CONTAINERS   IMAGES"));
    assert_eq!(w[1][5..], ["nginx", "nginx:1.25", "app=web"], "{out}");

    let out = k.ok(&["get", "cm", "-A"]);
    let w = words(&out);
    assert_eq!(w[0], ["NAMESPACE", "NAME", "DATA", "AGE"], "{out}");
    assert!(
        w.iter().any(|l| l.starts_with(&["shop", "cfg", "1"])),
        "NAMESPACE comes from the rows' metadata: {out}"
    );

    let out = k.ok(&["get", "cm", "-n", "shop", "--show-labels"]);
    let w = words(&out);
    assert_eq!(w[0], ["NAME", "DATA", "AGE", "LABELS"], "{out}");
    assert_eq!(w[1][3], "app=web", "{out}");
    let out = k.ok(&["get", "cm", "-n", "shop", "-L", "app"]);
    let w = words(&out);
    assert_eq!(w[0], ["NAME", "DATA", "AGE", "APP"], "{out}");
    assert_eq!((w[1][0], w[1][3]), ("cfg", "web"), "{out}");

    let out = k.ok(&["get", "svc", "-n", "shop"]);
    let w = words(&out);
    assert_eq!(
        w[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{out}"
    );
    assert_eq!(
        w[1][..5],
        ["web", "ClusterIP", "<none>", "<none>", "80/TCP"],
        "{out}"
    );

    let out = k.ok(&["get", "pods", "-n", "shop", "-o", "wide"]);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with("NAME    READY   STATUS    RESTARTS   AGE")
            && out.contains("NOMINATED NODE")
            && out.contains("READINESS GATES"),
        "{out}"
    );
    assert_eq!(
        words(&out)[1][..4],
        ["web-1", "0/1", "Pending", "0"],
        "{out}"
    );
    let out = k.ok(&["get", "ns", "shop"]);
    assert_eq!(words(&out)[1][..2], ["shop", "Active"], "{out}");
    // Pages of Tables (continue tokens in the Table metadata) print under one header.
    let out = k.ok(&["get", "ns", "--chunk-size=1"]);
    let names: Vec<&str> = words(&out).iter().map(|l| l[0]).collect();
    assert_eq!(
        names,
        [
            "NAME",
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            "shop"
        ],
        "{out}"
    );
    // --sort-by makes kubectl ask for whole objects in the rows (includeObject=Object).
    let out = k.ok(&["get", "ns", "--sort-by=.metadata.name", "--no-headers"]);
    assert_eq!(words(&out).last().unwrap()[0], "shop", "{out}");

    // get -w on one replica prints a status change made through the other as a row.
    let mut cmd = k.cmd(&urls[0]);
    cmd.args(["get", "pods", "-n", "shop", "-w"]);
    let mut watch = Lines::spawn(cmd);
    // The listed rows come first; kubectl then watches from the list's version.
    watch.wait_for(Duration::from_secs(20), "with web-1 listed", |l| {
        l.starts_with("web-1")
    });
    let status = r#"{"status":{"phase":"Running","containerStatuses":[{"name":"nginx","image":"nginx:1.25","imageID":"","ready":false,"restartCount":4,"started":false,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}"#;
    let out = k
        .cmd(&urls[1])
        .args([
            "patch",
            "pod",
            "web-1",
            "-n",
            "shop",
            "--subresource=status",
        ])
        .args(["--type=merge", "-p", status])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let seen = watch
        .wait_for(Duration::from_secs(20), "with the new status", |l| {
            l.contains("CrashLoopBackOff")
        })
        .join("\n");
    drop(watch);
    let w = words(&seen);
    assert_eq!(
        w.iter().filter(|l| l.first() == Some(&"NAME")).count(),
        1,
        "headers are printed once: {seen}"
    );
    assert!(
        w.iter()
            .any(|l| l.starts_with(&["web-1", "0/1", "CrashLoopBackOff", "4"])),
        "watch saw: {seen}"
    );

    // The Table API itself: the version asked for, includeObject, and plain JSON otherwise.
    let v1beta1 = "application/json;as=Table;v=v1beta1;g=meta.k8s.io";
    let t = raw_get(
        &urls[0],
        "/api/v1/namespaces/shop/configmaps?includeObject=Object",
        v1beta1,
    );
    assert_eq!(
        (t["kind"].as_str(), t["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1beta1"))
    );
    assert_eq!(t["rows"][0]["object"]["data"]["a"], "1");
    assert!(t["metadata"]["resourceVersion"].is_string());
    let t = raw_get(
        &urls[1],
        "/apis/apps/v1/namespaces/shop/deployments/web?includeObject=None",
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    );
    assert_eq!(t["rows"][0]["cells"][1], "0/2");
    assert!(t["rows"][0].get("object").is_none());
    let t = raw_get(
        &urls[1],
        "/api/v1/namespaces/shop/configmaps",
        "application/json",
    );
    assert_eq!(t["kind"], "ConfigMapList");
}
