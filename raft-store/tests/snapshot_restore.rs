//! Backup and restore end to end: `etcdctl snapshot save` against a running 3-member
//! skiff-store cluster, `skiff-store snapshot restore` into three fresh data dirs, and a NEW
//! cluster started from them serves every key with the same revisions, versions and
//! leases; a damaged or truncated file and a non-empty data dir are refused.

mod common;

use std::process::Command;

use common::{etcdctl, ok, Cluster, Flavor};

fn skiff() -> Command {
    Command::new(env!("CARGO_BIN_EXE_skiff-store"))
}

/// Every key with its revisions as JSON values, plus the store revision.
fn dump(eps: &str) -> (Vec<serde_json::Value>, i64) {
    let v: serde_json::Value =
        serde_json::from_str(&ok(etcdctl(eps, &["get", "", "--prefix", "-w", "json"]))).unwrap();
    let rev = v["header"]["revision"].as_i64().unwrap();
    let kvs = v["kvs"].as_array().cloned().unwrap_or_default();
    (kvs, rev)
}

fn restore(file: &std::path::Path, c: &Cluster, i: usize) -> std::process::Output {
    let m = &c.members[i];
    skiff()
        .args(["snapshot", "restore", file.to_str().unwrap()])
        .args(["--data-dir", m.data_dir.to_str().unwrap()])
        .args(["--name", &m.name])
        .args(["--initial-cluster", c.initial_cluster()])
        .args(["--initial-cluster-token", "test-cluster"])
        .args(["--initial-advertise-peer-urls", &c.peer_url(i)])
        .output()
        .unwrap()
}

// A saved snapshot seeds a new cluster with identical keys, revisions and leases.
#[test]
fn save_restore_new_cluster() {
    if !common::require_etcd() {
        return;
    }
    let old = Cluster::start(Flavor::Skiff, 3);
    let eps = old.endpoints();
    for i in 0..50 {
        ok(etcdctl(
            &eps,
            &["put", &format!("k{i:03}"), &format!("v{i}")],
        ));
    }
    ok(etcdctl(&eps, &["put", "k007", "again"]));
    ok(etcdctl(&eps, &["del", "k010"]));
    let lease = ok(etcdctl(&eps, &["lease", "grant", "600"]));
    let lease = lease.split_whitespace().nth(1).unwrap().to_string();
    ok(etcdctl(
        &eps,
        &["put", "leased", "x", &format!("--lease={lease}")],
    ));
    ok(etcdctl(&eps, &["compaction", "5"]));
    let (want, want_rev) = dump(&eps);
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("backup.db");
    let saved = ok(etcdctl(
        &old.endpoint(0),
        &["snapshot", "save", file.to_str().unwrap()],
    ));
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    let old_cluster_id = ok(etcdctl(
        &old.endpoint(0),
        &["endpoint", "status", "-w", "json"],
    ));
    drop(old);

    let mut new = Cluster::prepare(Flavor::Skiff, 3, &[]);
    for i in 0..3 {
        let out = restore(&file, &new, i);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A second restore into the same (now non-empty) data dir is refused.
    let again = restore(&file, &new, 0);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists and is not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    new.start_all();
    let neps = new.endpoints();
    let (got, got_rev) = dump(&neps);
    assert_eq!(got_rev, want_rev, "store revision survives the restore");
    assert_eq!(got, want, "keys, revisions, versions and leases survive");
    let leases = ok(etcdctl(&neps, &["lease", "list"]));
    assert!(leases.contains(&lease), "{leases}");
    // History older than the compaction stays compacted; newer history is readable.
    let old_rev = ok(etcdctl(&neps, &["get", "k007", "--rev=9"]));
    assert_eq!(old_rev.lines().nth(1), Some("v7"));
    // A new cluster: fresh cluster id, and writes continue from the restored revision.
    let status = ok(etcdctl(
        &new.endpoint(0),
        &["endpoint", "status", "-w", "json"],
    ));
    let cid = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s).unwrap()[0]["Status"]["header"]["cluster_id"]
            .as_u64()
            .unwrap()
    };
    assert_ne!(cid(&status), cid(&old_cluster_id));
    let put = ok(etcdctl(&neps, &["put", "after", "restore", "-w", "json"]));
    let v: serde_json::Value = serde_json::from_str(&put).unwrap();
    assert_eq!(v["header"]["revision"].as_i64().unwrap(), want_rev + 1);
    assert_eq!(ok(etcdctl(&neps, &["member", "list"])).lines().count(), 3);
}

// Truncated and corrupted snapshot files are refused with a clear error and leave no data
// dir behind.
#[test]
fn damaged_snapshots_are_refused() {
    if !common::require_etcd() {
        return;
    }
    let c = Cluster::start(Flavor::Skiff, 1);
    for i in 0..20 {
        ok(etcdctl(&c.endpoints(), &["put", &format!("k{i}"), "v"]));
    }
    let file = c.dir.path().join("good.db");
    ok(etcdctl(
        &c.endpoints(),
        &["snapshot", "save", file.to_str().unwrap()],
    ));
    let good = std::fs::read(&file).unwrap();
    let target = Cluster::prepare(Flavor::Skiff, 1, &[]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() - 100].to_vec(), "truncated"),
        (
            "corrupt",
            {
                let mut b = good.clone();
                b[40] ^= 0x55;
                b
            },
            "sha256 checksum mismatch",
        ),
        ("empty", Vec::new(), "not a whole snapshot"),
    ];
    for (name, bytes, want) in cases {
        let path = c.dir.path().join(format!("{name}.db"));
        std::fs::write(&path, bytes).unwrap();
        let out = restore(&path, &target, 0);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: restore succeeded");
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            !target.members[0].data_dir.exists(),
            "{name}: a data dir was left behind"
        );
    }
    let out = restore(&file, &target, 0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
