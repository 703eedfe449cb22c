//! Durability under crashes, against a real 3-process cluster: every write a client saw
//! acknowledged survives SIGKILL of the leader, a torn WAL tail, and SIGKILL of all members
//! at once, and all members end with identical data and revisions.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{rt, Cluster, Flavor};
use etcd_client::{Client, ConnectOptions, GetOptions};

type Acked = Arc<Mutex<BTreeMap<String, String>>>;

async fn connect(urls: Vec<String>) -> Client {
    let opts = ConnectOptions::new()
        .with_timeout(Duration::from_secs(3))
        .with_connect_timeout(Duration::from_secs(1));
    Client::connect(urls, Some(opts)).await.expect("connect")
}

/// Starts `n` writer tasks, each writing `w<i>/<seq>` until `stop`; acknowledged writes go
/// into the returned map. A failed write is an unknown outcome and is not counted.
fn start_writers(
    rt: &tokio::runtime::Runtime,
    urls: &[String],
    n: usize,
    stop: Arc<AtomicBool>,
) -> (Acked, Vec<tokio::task::JoinHandle<()>>) {
    let acked: Acked = Arc::default();
    let handles = (0..n)
        .map(|w| {
            // Each writer talks to one member, so writes arrive at followers too.
            let url = vec![urls[w % urls.len()].clone()];
            let acked = acked.clone();
            let stop = stop.clone();
            rt.spawn(async move {
                let mut client = connect(url).await;
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w}/{seq:06}");
                    let val = format!("v{seq}");
                    if client.put(key.clone(), val.clone(), None).await.is_ok() {
                        acked.lock().unwrap().insert(key, val);
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    seq += 1;
                }
            })
        })
        .collect();
    (acked, handles)
}

/// Full serializable scan of member `i`: key -> (value, mod_revision), plus its revision.
async fn scan(url: String) -> Option<(BTreeMap<String, (String, i64)>, i64)> {
    let mut c = connect(vec![url]).await;
    let r = c
        .get(
            "w",
            Some(GetOptions::new().with_prefix().with_serializable()),
        )
        .await
        .ok()?;
    let rev = r.header()?.revision();
    let kvs = r
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                (kv.value_str().unwrap().to_string(), kv.mod_revision()),
            )
        })
        .collect();
    Some((kvs, rev))
}

/// Waits until every member returns the same scan, then checks every acknowledged write.
fn assert_converged(rt: &tokio::runtime::Runtime, c: &Cluster, acked: &BTreeMap<String, String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scans: Vec<_> = c.urls().into_iter().map(|u| rt.block_on(scan(u))).collect();
        let all_same = scans.iter().all(|s| s.is_some() && s == &scans[0]);
        if all_same {
            let (kvs, _) = scans[0].clone().unwrap();
            for (k, v) in acked {
                assert_eq!(
                    kvs.get(k).map(|(v, _)| v),
                    Some(v),
                    "acknowledged write {k}={v} is missing"
                );
            }
            return;
        }
        if Instant::now() > deadline {
            c.dump_logs();
            panic!("members did not converge to identical data within 30 s");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

// Writers keep going while the leader is SIGKILLed and later restarted; nothing acknowledged is lost.
#[test]
fn leader_kill_loses_no_acknowledged_write() {
    let rt = rt();
    let mut c = Cluster::start(Flavor::Skiff, 3);
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, handles) = start_writers(&rt, &c.urls(), 4, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    let leader = c.wait_leader(Duration::from_secs(10));
    c.kill(leader);
    let before = acked.lock().unwrap().len();
    // Wait for progress rather than a fixed time: an election takes up to 2 election
    // timeouts, and these shared machines can be slow.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() <= before + 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let during = acked.lock().unwrap().len();
    assert!(
        during > before,
        "writes continue through the new leader ({before} -> {during})"
    );
    c.restart(leader);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        rt.block_on(h).unwrap();
    }
    c.wait_healthy(Duration::from_secs(20));
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "the test made progress: {}", acked.len());
    assert_converged(&rt, &c, &acked);
}

// A follower's last WAL record is cut in half (a torn write): it restarts, drops the torn
// record, catches up from the leader and ends identical to the others.
#[test]
fn torn_wal_tail_is_repaired_and_caught_up() {
    let rt = rt();
    let mut c = Cluster::start(Flavor::Skiff, 3);
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, handles) = start_writers(&rt, &c.urls(), 2, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    let leader = c.wait_leader(Duration::from_secs(10));
    let victim = (leader + 1) % 3;
    c.kill(victim);
    let wal_dir = c.members[victim].data_dir.join("member/wal");
    let mut segs: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    let last = segs.last().expect("a WAL segment");
    let len = std::fs::metadata(last).unwrap().len();
    let data = std::fs::read(last).unwrap();
    // Cut inside the last non-zero record: find the end of written data and remove 5 bytes.
    let end = data
        .iter()
        .rposition(|b| *b != 0)
        .map_or(len as usize, |p| p + 1);
    let f = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    f.set_len((end - 5) as u64).unwrap();
    drop(f);
    c.restart(victim);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        rt.block_on(h).unwrap();
    }
    c.wait_healthy(Duration::from_secs(20));
    let log = std::fs::read_to_string(&c.members[victim].log).unwrap();
    assert!(
        log.contains("torn"),
        "the member reports the torn tail it repaired"
    );
    assert_converged(&rt, &c, &acked.lock().unwrap().clone());
}

// All three members are SIGKILLed at once in the middle of writes and restarted.
#[test]
fn kill_all_members_at_once_and_restart() {
    let rt = rt();
    let mut c = Cluster::start(Flavor::Skiff, 3);
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, handles) = start_writers(&rt, &c.urls(), 4, stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    for i in 0..3 {
        c.kill(i);
    }
    let snapshot = acked.lock().unwrap().clone();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        rt.block_on(h).unwrap();
    }
    for i in 0..3 {
        c.restart(i);
    }
    c.wait_healthy(Duration::from_secs(60));
    // Everything acknowledged before the kill must be there after the restart.
    assert!(
        !snapshot.is_empty(),
        "writes were acknowledged before the kill"
    );
    assert_converged(&rt, &c, &snapshot);
}

// A follower is down while the others snapshot and purge their logs past what it has; on
// restart it can only catch up by installing the leader's snapshot, and ends identical.
#[test]
fn lagging_member_catches_up_by_snapshot() {
    let rt = rt();
    let mut c = Cluster::start_with(
        Flavor::Skiff,
        3,
        &[
            "--snapshot-count",
            "50",
            "--experimental-snapshot-catchup-entries",
            "10",
        ],
    );
    let leader = c.wait_leader(Duration::from_secs(10));
    let victim = (leader + 1) % 3;
    c.kill(victim);
    let mut acked = BTreeMap::new();
    rt.block_on(async {
        let mut cl = connect(vec![c.urls()[leader].clone()]).await;
        for i in 0..400 {
            let (k, v) = (format!("w/{i:04}"), format!("v{i}"));
            cl.put(k.clone(), v.clone(), None)
                .await
                .expect("put while a follower is down");
            acked.insert(k, v);
        }
    });
    c.restart(victim);
    c.wait_healthy(Duration::from_secs(30));
    assert_converged(&rt, &c, &acked);
    let log = std::fs::read_to_string(&c.members[victim].log).unwrap();
    assert!(
        log.contains("installed snapshot from leader"),
        "the member caught up through a snapshot"
    );
}
