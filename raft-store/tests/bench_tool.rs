//! `skiff-bench` (the benchmark tool) against real clusters: every workload runs briefly and
//! its `--json` report is sane. These prove the tool works; they measure nothing, so a noisy
//! machine cannot fail them (the comparison with etcd is `scripts/bench-compare.sh`).

mod common;

use std::process::Command;

use common::{etcdctl, ok, require_etcd, Cluster, Flavor};
use serde_json::Value;

/// Runs `skiff-bench --endpoints <endpoints> --json <args>` (args split at spaces) and
/// parses its report.
fn bench(endpoints: &str, args: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_skiff-bench"))
        .args(["--endpoints", endpoints, "--json"])
        .args(args.split_whitespace())
        .output()
        .expect("run skiff-bench");
    assert!(
        out.status.success(),
        "skiff-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "skiff-bench {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Asserts a report of `requests` successful requests, no errors, ordered percentiles and a
/// histogram that accounts for every request.
fn assert_sane(r: &Value, requests: u64) {
    let f = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number in {r}"));
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["requests"], requests, "{r}");
    assert!(f(&r["ops_per_sec"]) > 0.0, "{r}");
    let l = &r["latency_ms"];
    let chain = ["min", "p50", "p90", "p99", "p999", "max"].map(|k| f(&l[k]));
    assert!(chain[0] > 0.0, "{r}");
    assert!(chain.windows(2).all(|w| w[0] <= w[1]), "unordered: {r}");
    let counted: u64 = r["histogram"]
        .as_array()
        .expect("histogram")
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, requests, "histogram: {r}");
}

/// Keys under `prefix` in the cluster, counted by etcdctl.
fn count_keys(endpoints: &str, prefix: &str) -> u64 {
    let out = ok(etcdctl(
        endpoints,
        &["get", prefix, "--prefix", "--keys-only", "-w", "json"],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["count"].as_u64().unwrap_or(0)
}

// put, range (both consistencies), txn-put and lease-keepalive run against a 3-member skiff
// cluster through several connections and the leader; the writes really land.
#[test]
fn workloads_run_against_skiff() {
    let c = Cluster::start(Flavor::Skiff, 3);
    let eps = c.endpoints();

    // 300 sequential puts over a 100-key space write the 3-byte keys 000..099.
    let put = "--target-leader --conns 2 --clients 8 put --total 300 --key-size 3 \
               --val-size 64 --key-space-size 100 --sequential-keys";
    assert_sane(&bench(&eps, put), 300);
    assert_eq!(count_keys(&eps, "0"), 100);

    for consistency in ["l", "s"] {
        let range = format!(
            "--conns 3 --clients 6 range 0 --prefix --limit 10 --consistency {consistency} \
             --total 200"
        );
        assert_sane(&bench(&eps, &range), 200);
    }

    // 50 txns of 4 sequential puts write the 4-byte keys 0000..0199.
    let txn = "--conns 2 --clients 4 txn-put --txn-ops 4 --total 50 --key-size 4 \
               --key-space-size 1000 --sequential-keys";
    assert_sane(&bench(&eps, txn), 50);
    assert_eq!(count_keys(&eps, "0"), 100 + 200);

    let lease = "--target-leader --clients 5 lease-keepalive --total 100";
    assert_sane(&bench(&eps, lease), 100);
    // The clients revoke their leases when the run ends.
    let leases = ok(etcdctl(&eps, &["lease", "list"]));
    assert!(leases.contains("found 0 leases"), "{leases}");
}

// --rate paces the clients and --duration stops them: 20 clients limited to 20 requests/s
// for 1 s send at most 20 (and not far fewer).
#[test]
fn rate_and_duration_limit_the_run() {
    let c = Cluster::start(Flavor::Skiff, 3);
    let r = bench(&c.endpoints(), "--clients 20 put --rate 20 --duration 1s");
    let sent = r["requests"].as_u64().unwrap() + r["errors"].as_u64().unwrap();
    assert!((10..=21).contains(&sent), "{sent} requests: {r}");
    assert!(r["elapsed_secs"].as_f64().unwrap() >= 0.95, "{r}");
}

// A dead endpoint fails the run with a message naming it, not a panic or a hang.
#[test]
fn unreachable_endpoint_is_reported() {
    let port = common::free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_skiff-bench"))
        .args([
            "--endpoints",
            &format!("127.0.0.1:{port}"),
            "put",
            "--total",
            "1",
        ])
        .output()
        .expect("run skiff-bench");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("failed to connect to 127.0.0.1:{port}")),
        "{err}"
    );
}

/// Runs watch-latency with 20 watchers over 4 streams and 30 puts, and checks that every
/// watcher saw every put.
fn check_watch_latency(endpoints: &str) {
    let r = bench(
        endpoints,
        "--conns 2 --clients 2 watch-latency --watchers 20 --streams 4 --put-total 30 \
         --put-rate 200",
    );
    assert_sane(&r, 20 * 30);
    assert_eq!(r["watch"]["puts"], 30, "{r}");
    assert_eq!(r["watch"]["expected_events"], 600, "{r}");
}

// watch-latency against skiff: every watcher receives every put's event.
#[test]
fn watch_latency_runs_against_skiff() {
    let c = Cluster::start(Flavor::Skiff, 3);
    check_watch_latency(&c.endpoints());
}

// watch-latency against real etcd gives the same sane report, so the tool's watch side is
// validated against the reference implementation.
#[test]
fn watch_latency_runs_against_etcd() {
    if !require_etcd() {
        return;
    }
    let c = Cluster::start(Flavor::Etcd, 3);
    check_watch_latency(&c.endpoints());
}
