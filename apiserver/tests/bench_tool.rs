//! `skiff-apiserver-bench` runs every workload briefly against 3 store members and 2
//! apiservers and reports sane figures (the real measurements are commands, recorded in
//! docs/benchmarks.md, not timed tests).

mod common;

use std::process::Command;

#[test]
fn apiserver_bench_runs_every_workload() {
    let (_procs, urls) = common::start();
    let out = Command::new(common::workspace_bin("skiff-apiserver-bench"))
        .args([
            "--servers",
            &urls.join(","),
            "--pods",
            "60",
            "--clients",
            "6",
        ])
        .args([
            "--page-size",
            "25",
            "--list-repeat",
            "2",
            "--watchers",
            "20",
            "--changes",
            "3",
        ])
        .args(["--change-interval-ms", "50", "--json", "all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["create-pods", "list", "list-by-25", "watch-20"]);
    let by = |name: &str| {
        reports
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["workload"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by("create-pods")["ops"], 60);
    assert_eq!(by("list")["ops"], 2);
    assert_eq!(by("list-by-25")["ops"], 2);
    // Every one of the 20 watchers saw each of the 3 changes.
    assert_eq!(by("watch-20")["ops"], 60);
    for r in reports.as_array().unwrap() {
        assert_eq!(r["errors"], 0, "{r}");
        let l = &r["latency_ms"];
        assert!(
            l["p50"].as_f64().unwrap() <= l["p99"].as_f64().unwrap(),
            "{r}"
        );
        assert!(
            l["p99"].as_f64().unwrap() <= l["max"].as_f64().unwrap(),
            "{r}"
        );
    }
}
