//! Maintenance with the real `etcdctl` against a 3-member skiff-store cluster: the NOSPACE
//! alarm with a small `--quota-backend-bytes` (raised and replicated, writes refused with
//! etcd's error while reads and deletes work, recovered by compaction + defrag + disarm),
//! `endpoint hashkv` agreeing on every member, and etcd's auto-compaction flags.

mod common;

use std::time::Duration;

use common::{etcdctl, etcdctl_stdin, ok, require_etcd, wait_for, Cluster, Flavor};

const QUOTA_BYTES: u64 = 4_000_000;

fn db_sizes(eps: &str) -> Vec<u64> {
    let v: serde_json::Value =
        serde_json::from_str(&ok(etcdctl(eps, &["endpoint", "status", "-w", "json"]))).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["Status"]["dbSize"].as_u64().unwrap())
        .collect()
}

// Filling the backend raises NOSPACE on every member; only compaction, defragmentation and
// an explicit disarm bring writes back.
#[test]
fn nospace_alarm_and_recovery() {
    if !require_etcd() {
        return;
    }
    let quota = format!("--quota-backend-bytes={QUOTA_BYTES}");
    let c = Cluster::start_with(Flavor::Skiff, 3, &[&quota]);
    let eps = c.endpoints();
    assert_eq!(ok(etcdctl(&eps, &["alarm", "list"])), "");
    let value: String = (0..400_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let mut refused = None;
    for i in 0..40 {
        let out = etcdctl_stdin(&eps, &["put", "big"], Some(&value));
        if !out.status.success() {
            refused = Some((i, String::from_utf8_lossy(&out.stderr).to_string()));
            break;
        }
    }
    let (writes, err) = refused.expect("writes are refused once the quota is exceeded");
    assert!(writes > 3, "the quota allowed only {writes} writes");
    assert!(
        err.contains("Error: etcdserver: mvcc: database space exceeded"),
        "{err}"
    );
    // The alarm is replicated: every member lists it.
    for i in 0..3 {
        let list = wait_for(Duration::from_secs(10), "the alarm on every member", || {
            let l = ok(etcdctl(&c.endpoint(i), &["alarm", "list"]));
            (!l.is_empty()).then_some(l)
        });
        assert!(
            list.starts_with("memberID:") && list.trim_end().ends_with("alarm:NOSPACE"),
            "{list}"
        );
    }
    let small = etcdctl(&eps, &["put", "small", "x"]);
    assert!(String::from_utf8_lossy(&small.stderr).contains("database space exceeded"));
    // Reads and deletes still work.
    assert_eq!(
        ok(etcdctl(&eps, &["get", "big", "--keys-only"])).trim(),
        "big"
    );
    ok(etcdctl(&eps, &["del", "nothing"]));
    // Recover: compact all history, defragment every member, disarm.
    let v: serde_json::Value =
        serde_json::from_str(&ok(etcdctl(&eps, &["get", "big", "-w", "json"]))).unwrap();
    let rev = v["header"]["revision"].as_i64().unwrap().to_string();
    ok(etcdctl(&eps, &["compaction", &rev, "--physical"]));
    let before = db_sizes(&eps);
    // `--cluster`: etcdctl 3.4 dials every member's client URL as
    // `passthrough:///http://host:port` and sends `http://host:port` as the HTTP/2
    // :authority (accepted thanks to third_party/h2's patch).
    let defrag = ok(etcdctl(&c.endpoint(0), &["defrag", "--cluster"]));
    assert_eq!(
        defrag.matches("Finished defragmenting").count(),
        3,
        "{defrag}"
    );
    let after = db_sizes(&eps);
    for (b, a) in before.iter().zip(&after) {
        assert!(
            a < b && *a < QUOTA_BYTES,
            "defrag reclaims space: {before:?} -> {after:?}"
        );
    }
    // Still refused: the alarm stays until it is disarmed.
    assert!(!etcdctl(&eps, &["put", "small", "x"]).status.success());
    let disarm = ok(etcdctl(&eps, &["alarm", "disarm"]));
    assert!(disarm.contains("alarm:NOSPACE"), "{disarm}");
    assert_eq!(ok(etcdctl(&eps, &["alarm", "list"])), "");
    ok(etcdctl(&eps, &["put", "small", "x"]));
}

// `endpoint hashkv` on all members reports one hash on every member at the same revision.
#[test]
fn hashkv_equal_on_all_members() {
    if !require_etcd() {
        return;
    }
    let c = Cluster::start(Flavor::Skiff, 3);
    let eps = c.endpoints();
    for i in 0..30 {
        ok(etcdctl(
            &eps,
            &["put", &format!("k{}", i % 7), &format!("v{i}")],
        ));
    }
    ok(etcdctl(&eps, &["del", "k3"]));
    ok(etcdctl(&eps, &["compaction", "10"]));
    let hashes = wait_for(Duration::from_secs(10), "equal hashes", || {
        let out = ok(etcdctl(
            &c.endpoint(0),
            &["endpoint", "hashkv", "--cluster"],
        ));
        let hashes: Vec<String> = out
            .lines()
            .map(|l| l.rsplit(", ").next().unwrap().to_string())
            .collect();
        (hashes.len() == 3 && hashes.iter().all(|h| *h == hashes[0])).then_some(hashes)
    });
    assert_ne!(hashes[0], "0");
    // A different history gives a different hash.
    ok(etcdctl(&eps, &["put", "k1", "changed"]));
    let out = ok(etcdctl(&c.endpoint(1), &["endpoint", "hashkv"]));
    assert!(!out.contains(&hashes[0]), "{out}");
}

// The etcdctl commands operators run first, with endpoints written as URLs: etcdctl 3.4
// sends `http://host:port` as the HTTP/2 :authority for these (the h2 patch accepts it).
#[test]
fn endpoint_status_and_health_with_url_endpoints() {
    if !require_etcd() {
        return;
    }
    let c = Cluster::start(Flavor::Skiff, 3);
    let urls = c.urls().join(",");
    let status: serde_json::Value =
        serde_json::from_str(&ok(etcdctl(&urls, &["endpoint", "status", "-w", "json"]))).unwrap();
    let status = status.as_array().unwrap();
    assert_eq!(status.len(), 3, "{status:?}");
    let leaders: Vec<&serde_json::Value> = status.iter().map(|s| &s["Status"]["leader"]).collect();
    assert!(
        leaders.iter().all(|l| *l == leaders[0]),
        "one leader: {status:?}"
    );
    let health = etcdctl(&urls, &["endpoint", "health"]);
    let text = String::from_utf8_lossy(&health.stderr).to_string()
        + &String::from_utf8_lossy(&health.stdout);
    assert!(health.status.success(), "{text}");
    assert_eq!(text.matches("is healthy").count(), 3, "{text}");
    let cluster = ok(etcdctl(
        &c.endpoint(1),
        &["endpoint", "status", "--cluster"],
    ));
    assert_eq!(cluster.lines().count(), 3, "{cluster}");
}

// `--auto-compaction-mode=periodic --auto-compaction-retention=2s`: the leader compacts on
// its own to the revision of about two seconds ago; old revisions then read as compacted on
// every member, the latest state is untouched.
#[test]
fn periodic_auto_compaction_compacts_old_revisions() {
    if !require_etcd() {
        return;
    }
    let c = Cluster::start_with(
        Flavor::Skiff,
        3,
        &[
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=2s",
        ],
    );
    let eps = c.endpoints();
    for i in 0..5 {
        ok(etcdctl(&eps, &["put", "k", &format!("v{i}")]));
    }
    // Revision 2 is the first put; once the compaction passed it, reading it is refused.
    wait_for(
        Duration::from_secs(20),
        "an auto-compaction past revision 2",
        || {
            let out = etcdctl(&c.endpoint(0), &["get", "k", "--rev=2"]);
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            (!out.status.success() && err.contains("required revision has been compacted"))
                .then_some(())
        },
    );
    for i in 0..3 {
        let out = etcdctl(&c.endpoint(i), &["get", "k", "--rev=2"]);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("compacted"),
            "member {i} applied the compaction"
        );
        assert_eq!(
            ok(etcdctl(&c.endpoint(i), &["get", "k", "--print-value-only"])).trim(),
            "v4"
        );
    }
}
