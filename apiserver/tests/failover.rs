//! Failures under the real kubectl: an apiserver replica killed while kubectl works
//! through the other one, the store leader killed (requests succeed again within seconds,
//! nothing acknowledged is lost), and an object too large for the store (413, nothing
//! stored).

mod common;

use std::time::{Duration, Instant};

use common::{start, Kubectl};

/// How long the cluster may take to answer writes again after the store leader dies: the
/// store's election timeout is 1 s, so a few seconds; the bound is generous for a loaded CI
/// machine, and the time taken is printed.
const LEADER_FAILOVER_LIMIT: Duration = Duration::from_secs(15);

#[test]
fn kubectl_survives_an_apiserver_and_the_store_leader_dying() {
    let (mut procs, urls) = start();
    let both = Kubectl::new(&urls);
    let survivor = Kubectl::new(&urls[1..]);
    both.ok(&["create", "ns", "fo"]);

    // A kubectl script runs against replica 1 while replica 0 is killed under it.
    let script = {
        let survivor = Kubectl::new(&urls[1..]);
        std::thread::spawn(move || {
            for i in 0..30 {
                survivor.ok(&[
                    "create",
                    "configmap",
                    &format!("c{i}"),
                    "--from-literal=i=1",
                    "-n",
                    "fo",
                ]);
                survivor.ok(&["get", "configmap", &format!("c{i}"), "-n", "fo"]);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    procs.kill("api0");
    script
        .join()
        .expect("every kubectl call through the surviving replica succeeded");
    let listed = survivor.ok(&["get", "cm", "-n", "fo", "-o", "name"]);
    assert_eq!(listed.lines().count(), 30, "{listed}");

    // The store leader dies; writes through the apiserver succeed again within seconds.
    let leader = procs.store_leader();
    procs.kill(&leader);
    let killed = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let out = survivor.run(&[
            "create",
            "configmap",
            "after",
            "--from-literal=i=1",
            "-n",
            "fo",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // An earlier attempt whose outcome was unknown may have created it.
        if out.status.success() || stderr.contains("AlreadyExists") {
            break;
        }
        assert!(
            killed.elapsed() < LEADER_FAILOVER_LIMIT,
            "no successful write {LEADER_FAILOVER_LIMIT:?} after killing store leader {leader}; last error: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "writes succeeded again {:?} after killing store leader {leader} ({attempts} attempts)",
        killed.elapsed()
    );
    let listed = survivor.ok(&["get", "cm", "-n", "fo", "-o", "name"]);
    assert_eq!(
        listed.lines().count(),
        31,
        "nothing acknowledged was lost: {listed}"
    );
    survivor.ok(&["delete", "ns", "fo"]);
}

#[test]
fn an_object_too_large_for_the_store_is_refused_with_413_and_not_stored() {
    let (procs, urls) = start();
    let k = Kubectl::new(&urls);
    // 2 MiB: under the apiserver's 3 MiB body limit (Kubernetes' own), over the store's
    // 1.5 MiB request limit (etcd's default).
    let big = procs.dir.path().join("big.txt");
    std::fs::write(&big, "x".repeat(2 << 20)).unwrap();
    let from = format!("--from-file=blob={}", big.display());
    let e = k.fails(&["create", "configmap", "big", &from]);
    assert!(
        e.contains("RequestEntityTooLarge") || e.contains("too large"),
        "{e}"
    );
    let e = k.fails(&["get", "configmap", "big"]);
    assert!(e.contains("NotFound"), "{e}");
    // Over the apiserver's own body limit: refused before it reaches the store.
    std::fs::write(&big, "x".repeat(4 << 20)).unwrap();
    let e = k.fails(&["create", "configmap", "huge", &from]);
    assert!(e.contains("request body is larger than"), "{e}");
}
