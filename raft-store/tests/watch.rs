//! Watch against real multi-process clusters: etcdctl's output compared with real etcd 3.4,
//! the etcd guarantees checked through the `etcd-client` crate (ordered, unique, reliable,
//! atomic, resumable, bookmarkable), and a watch workload that survives a leader kill.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{etcdctl, etcdctl_until, ok, require_etcd, rt, Cluster, Flavor};
use etcd_client::{
    Client, EventType, GetOptions, WatchFilterType, WatchOptions, WatchResponse, WatchStream,
};

/// Masks the ids and term that differ between two clusters in etcdctl's JSON output.
fn mask(s: &str) -> String {
    let re = regex::Regex::new(r#""(cluster_id|member_id|raft_term)":\d+"#).unwrap();
    re.replace_all(s, "\"$1\":N").into_owned()
}

/// The same etcdctl watch session against one cluster; returns a transcript.
fn watch_session(c: &Cluster) -> String {
    let ep = c.endpoints();
    let mut t = String::new();
    for args in [
        vec!["put", "foo", "1"],
        vec!["put", "foo", "2"],
        vec!["put", "foo/a", "x"],
        vec!["put", "bar", "y"],
        vec!["del", "foo"],
        vec!["txn"],
    ] {
        if args[0] == "txn" {
            let out = common::etcdctl_stdin(
                &ep,
                &["txn"],
                Some("\nput foo/b 1\nput foo/c 2\ndel bar\n\n\n"),
            );
            t += &ok(out);
        } else {
            t += &ok(etcdctl(&ep, &args));
        }
    }
    let lines = |n: usize| move |s: &str| s.lines().count() >= n;
    let limit = Duration::from_secs(10);
    // Past revisions of one key, with and without previous values.
    t += "## watch foo --rev 1\n";
    t += &etcdctl_until(&ep, &["watch", "foo", "--rev", "1"], limit, lines(9));
    t += "## watch foo --rev 1 --prev-kv\n";
    t += &etcdctl_until(
        &ep,
        &["watch", "foo", "--rev", "1", "--prev-kv"],
        limit,
        lines(13),
    );
    // A prefix: the txn's three events come as one revision.
    t += "## watch --prefix foo --rev 2\n";
    t += &etcdctl_until(
        &ep,
        &["watch", "--prefix", "foo", "--rev", "2"],
        limit,
        lines(18),
    );
    t += "## watch --prefix foo --rev 6 -w json\n";
    t += &mask(&etcdctl_until(
        &ep,
        &["watch", "--prefix", "foo", "--rev", "6", "-w", "json"],
        limit,
        lines(2),
    ));
    // A range [bar, foo0): every key written here ('/' sorts below '0', so foo/... too):
    // eight events of three lines each.
    t += "## watch bar foo0 --rev 1\n";
    t += &etcdctl_until(
        &ep,
        &["watch", "bar", "foo0", "--rev", "1"],
        limit,
        lines(24),
    );
    // A future revision: the watch waits, then sees the put made after it started.
    t += "## watch foo --rev 8 (live)\n";
    let ep2 = ep.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        ok(etcdctl(&ep2, &["put", "foo", "live"]))
    });
    t += &etcdctl_until(&ep, &["watch", "foo", "--rev", "8"], limit, lines(3));
    t += &writer.join().unwrap();
    // After compaction a watch from before it is cancelled with etcd's message.
    t += &ok(etcdctl(&ep, &["compaction", "5"]));
    t += "## watch foo --rev 2 (compacted)\n";
    t += &etcdctl_until(&ep, &["watch", "foo", "--rev", "2"], limit, |s| {
        s.contains("compacted")
    });
    t
}

// etcdctl watch prints the same thing against skiff as against real etcd 3.4.
#[test]
fn etcdctl_watch_matches_etcd() {
    if !require_etcd() {
        return;
    }
    let skiff = {
        let c = Cluster::start(Flavor::Skiff, 3);
        watch_session(&c)
    };
    let etcd = {
        let c = Cluster::start(Flavor::Etcd, 3);
        watch_session(&c)
    };
    if skiff != etcd {
        let diff: Vec<String> = skiff
            .lines()
            .zip(etcd.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}: skiff {a:?} etcd {b:?}", i + 1))
            .take(20)
            .collect();
        panic!(
            "etcdctl watch output differs:\n{}\n=== skiff ===\n{skiff}\n=== etcd ===\n{etcd}",
            diff.join("\n")
        );
    }
    // The transcript is not trivially empty.
    assert!(skiff.contains("PUT\nfoo\nlive"), "{skiff}");
}

async fn next(ws: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), ws.message())
        .await
        .expect("a watch response within 10 s")
        .expect("watch stream error")
        .expect("watch stream ended")
}

fn keys(r: &WatchResponse) -> Vec<String> {
    r.events()
        .iter()
        .map(|e| String::from_utf8_lossy(e.kv().unwrap().key()).into_owned())
        .collect()
}

// Create/cancel/filters/prev_kv/progress/compaction/fragment semantics over one stream.
#[test]
fn watch_stream_semantics() {
    let c = Cluster::start_with(
        Flavor::Skiff,
        3,
        &["--experimental-watch-progress-notify-interval", "500ms"],
    );
    rt().block_on(async {
        let mut cl = Client::connect(c.urls(), None).await.unwrap();
        let rev0 = cl
            .put("k1", "a", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();

        // Two watchers on one stream; ids are chosen by the server from 0.
        let mut ws = cl
            .watch("k", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        let created = next(&mut ws).await;
        assert!(created.created() && !created.canceled());
        assert_eq!(created.header().unwrap().revision(), rev0);
        let first = created.watch_id();
        ws.watch(
            "k",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_prev_key()
                    .with_filters([WatchFilterType::NoPut]),
            ),
        )
        .await
        .unwrap();
        let second = next(&mut ws).await;
        assert!(second.created());
        assert_ne!(second.watch_id(), first);

        cl.put("k1", "b", None).await.unwrap();
        cl.delete("k1", None).await.unwrap();
        cl.put("other", "x", None).await.unwrap();
        let mut by_watch: BTreeMap<i64, Vec<(EventType, String, Option<String>)>> = BTreeMap::new();
        while by_watch.values().map(Vec::len).sum::<usize>() < 3 {
            let r = next(&mut ws).await;
            for e in r.events() {
                by_watch.entry(r.watch_id()).or_default().push((
                    e.event_type(),
                    String::from_utf8_lossy(e.kv().unwrap().key()).into_owned(),
                    e.prev_kv()
                        .map(|p| String::from_utf8_lossy(p.value()).into_owned()),
                ));
            }
        }
        assert_eq!(
            by_watch[&first],
            vec![
                (EventType::Put, "k1".into(), None),
                (EventType::Delete, "k1".into(), None)
            ]
        );
        assert_eq!(
            by_watch[&second.watch_id()],
            vec![(EventType::Delete, "k1".into(), Some("b".into()))]
        );

        // A duplicate client-chosen id and an empty range are refused with etcd's reasons.
        ws.watch(
            "x",
            Some(WatchOptions::new().with_watch_id(second.watch_id())),
        )
        .await
        .unwrap();
        let dup = next(&mut ws).await;
        assert!(dup.created() && dup.canceled());
        assert_eq!(
            dup.cancel_reason(),
            "mvcc: duplicate watch ID provided on the WatchStream"
        );
        ws.watch("b", Some(WatchOptions::new().with_range("a")))
            .await
            .unwrap();
        let empty = next(&mut ws).await;
        assert!(empty.canceled());
        assert_eq!(empty.cancel_reason(), "mvcc: watcher range is empty");

        // Cancel: acknowledged, and no more events for that watcher.
        ws.cancel(second.watch_id()).await.unwrap();
        let cancelled = next(&mut ws).await;
        assert!(cancelled.canceled());
        assert_eq!(cancelled.watch_id(), second.watch_id());

        // A progress request on a caught-up stream: watch id -1 and the current revision.
        let now = cl
            .put("k2", "c", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let put = next(&mut ws).await;
        assert_eq!(keys(&put), vec!["k2"]);
        ws.request_progress().await.unwrap();
        let progress = next(&mut ws).await;
        assert_eq!(progress.watch_id(), -1);
        assert!(progress.events().is_empty());
        assert_eq!(progress.header().unwrap().revision(), now);

        // Periodic progress notifications for a watcher that asked for them.
        let mut pn = cl
            .watch("idle", Some(WatchOptions::new().with_progress_notify()))
            .await
            .unwrap();
        let pn_created = next(&mut pn).await;
        let notify = next(&mut pn).await;
        assert!(notify.events().is_empty() && !notify.created() && !notify.canceled());
        assert_eq!(notify.watch_id(), pn_created.watch_id());
        assert!(notify.header().unwrap().revision() >= now);

        // A watch from a compacted revision is cancelled with the compact revision.
        cl.compact(now, None).await.unwrap();
        let mut old = cl
            .watch("k", Some(WatchOptions::new().with_start_revision(2)))
            .await
            .unwrap();
        let r = next(&mut old).await;
        assert!(r.created());
        let r = next(&mut old).await;
        assert!(r.canceled());
        assert_eq!(r.compact_revision(), now);
    });
}

// A revision larger than --max-request-bytes arrives in fragments when asked, whole otherwise.
#[test]
fn large_revisions_are_fragmented_on_request() {
    let c = Cluster::start_with(Flavor::Skiff, 1, &["--max-request-bytes", "100000"]);
    rt().block_on(async {
        let mut cl = Client::connect(c.urls(), None).await.unwrap();
        for i in 0..10 {
            cl.put(format!("big/{i}"), vec![b'x'; 60_000], None)
                .await
                .unwrap();
        }
        let mut frag = cl
            .watch(
                "big/",
                Some(WatchOptions::new().with_prefix().with_fragment()),
            )
            .await
            .unwrap();
        let mut whole = cl
            .watch("big/", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        next(&mut frag).await;
        next(&mut whole).await;
        // One revision deleting all ten keys, with previous values: ~600 kB.
        let mut frag_prev = cl
            .watch(
                "big/",
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_fragment()
                        .with_prev_key(),
                ),
            )
            .await
            .unwrap();
        next(&mut frag_prev).await;
        cl.delete(
            "big/",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
        let r = next(&mut whole).await;
        assert_eq!(r.events().len(), 10);
        let del_rev = r.events()[0].kv().unwrap().mod_revision();
        let mut got = 0;
        let mut parts = 0;
        while got < 10 {
            let r = next(&mut frag_prev).await;
            for e in r.events() {
                assert_eq!(e.kv().unwrap().mod_revision(), del_rev);
                assert_eq!(e.prev_kv().unwrap().value().len(), 60_000);
            }
            got += r.events().len();
            parts += 1;
        }
        assert_eq!(got, 10);
        assert!(
            parts >= 6,
            "600 kB in 100 kB fragments came in {parts} parts"
        );
        // A fragmenting watcher whose revision fits the limit gets it in one response.
        let r = next(&mut frag).await;
        assert_eq!(r.events().len(), 10);
    });
}

/// The canonical event history of `prefix` keys: the key and value written at each revision,
/// read back with Range at that revision (every write in the workload is a put of a unique
/// value, so the revision's event is the one key whose mod_revision equals it).
async fn canonical_history(
    cl: &mut Client,
    prefix: &str,
    from: i64,
    to: i64,
) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for rev in from..=to {
        let r = cl
            .get(
                prefix,
                Some(GetOptions::new().with_prefix().with_revision(rev)),
            )
            .await
            .unwrap();
        for kv in r.kvs() {
            if kv.mod_revision() == rev {
                out.push((rev, kv.value_str().unwrap().to_string()));
            }
        }
    }
    out
}

// Many writers and watchers starting at past revisions; the leader is killed mid-way.
// Every watcher's events, concatenated (resuming on another member when its member dies),
// equal the canonical history from its start revision: no gap, no duplicate, no reorder.
#[test]
fn watchers_see_the_exact_history_across_a_leader_kill() {
    let mut c = Cluster::start(Flavor::Skiff, 3);
    let urls = c.urls();
    let rt = rt();
    let stop = Arc::new(AtomicBool::new(false));
    let (first_rev, watchers) = rt.block_on(async {
        let mut cl = Client::connect(urls.clone(), None).await.unwrap();
        let first_rev = cl
            .put("w/seed", "seed", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        // Writers: puts of unique values on a small key space, through every member.
        for w in 0..4 {
            let urls = urls.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut cl = Client::connect([urls[w % urls.len()].clone()], None)
                    .await
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let put = cl.put(format!("w/k{}", n % 7), format!("{w}-{n}"), None);
                    if !matches!(
                        tokio::time::timeout(Duration::from_secs(2), put).await,
                        Ok(Ok(_))
                    ) {
                        // Its member may be dead: continue through another one.
                        let url = urls[(w + n as usize + 1) % urls.len()].clone();
                        if let Ok(c) = Client::connect([url], None).await {
                            cl = c;
                        }
                    }
                    n += 1;
                }
            });
        }
        // Watchers on each member, starting at various past revisions: wait until all nine
        // start revisions lie in the past.
        wait_revision(&mut cl, first_rev + 45).await;
        let mut watchers = Vec::new();
        for i in 0..9 {
            let start = first_rev + (i as i64) * 5;
            watchers.push(tokio::spawn(watch_until_stopped(
                urls.clone(),
                i % urls.len(),
                start,
            )));
        }
        (first_rev, watchers)
    });
    // Kill the leader once the workload is well under way, and stop the writers once they
    // have made progress through the new leader.
    rt.block_on(async {
        let mut cl = Client::connect(urls.clone(), None).await.unwrap();
        wait_revision(&mut cl, first_rev + 150).await;
    });
    let leader = c.wait_leader(Duration::from_secs(10));
    c.kill(leader);
    let alive: Vec<String> = urls
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, u)| u.clone())
        .collect();
    rt.block_on(async {
        let mut cl = Client::connect(alive.clone(), None).await.unwrap();
        let at_kill = wait_revision(&mut cl, 0).await;
        wait_revision(&mut cl, at_kill + 100).await;
        stop.store(true, Ordering::Relaxed);
        // A final write every watcher must reach.
        let last = cl.put("w/end", "end", None).await.unwrap().header().unwrap().revision();
        let canon = canonical_history(&mut cl, "w/", first_rev, last).await;
        assert_eq!(canon.len() as i64, last - first_rev + 1, "one event per revision");
        assert!(canon.len() > 50, "the writers made progress: {} revisions", canon.len());
        // Every watcher records its events in a shared log keyed by its start revision; wait
        // until all have reached the final write.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done = SEEN
                .lock()
                .unwrap()
                .values()
                .all(|log| log.last().is_some_and(|e| e.0 >= last));
            if done || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for w in watchers {
            w.abort();
            let _ = w.await;
        }
        let seen = SEEN.lock().unwrap().clone();
        assert_eq!(seen.len(), 9, "every watcher reported");
        for (start, mut got) in seen {
            // Writes still in flight when the writers stopped may land after the final one.
            got.retain(|(r, _)| *r <= last);
            let want: Vec<(i64, String)> =
                canon.iter().filter(|(r, _)| *r >= start).cloned().collect();
            if got != want {
                let at = got.iter().zip(&want).position(|(a, b)| a != b);
                panic!(
                    "watcher from revision {start}: {} events, canonical {}; first difference at {at:?}: got {:?} want {:?}",
                    got.len(),
                    want.len(),
                    at.map(|i| &got[i]),
                    at.map(|i| &want[i]),
                );
            }
        }
        eprintln!(
            "{} revisions; 9 watchers each saw their exact suffix across a leader kill",
            canon.len()
        );
    });
}

/// Waits (up to 60 s) until the store's revision reaches `min`; returns the revision.
async fn wait_revision(cl: &mut Client, min: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rev = match cl
            .get(
                "w/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
        {
            Ok(r) => r.header().unwrap().revision(),
            Err(_) => 0,
        };
        if rev >= min {
            return rev;
        }
        assert!(
            Instant::now() < deadline,
            "the revision stayed at {rev}, below {min}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

static SEEN: std::sync::Mutex<BTreeMap<i64, Vec<(i64, String)>>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Watches `w/` from `start` on member `member`, resuming on the next member after its stream
/// breaks, and records every event in [`SEEN`].
async fn watch_until_stopped(urls: Vec<String>, member: usize, start: i64) {
    let mut next_rev = start;
    let mut m = member;
    SEEN.lock().unwrap().insert(start, Vec::new());
    loop {
        let Ok(mut cl) = Client::connect([urls[m].clone()], None).await else {
            m = (m + 1) % urls.len();
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(mut ws) = cl
            .watch(
                "w/",
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(next_rev),
                ),
            )
            .await
        else {
            m = (m + 1) % urls.len();
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // A broken or stalled stream (its member died) ends the loop: resume elsewhere.
        while let Ok(Ok(Some(r))) = tokio::time::timeout(Duration::from_secs(3), ws.message()).await
        {
            assert!(!r.canceled(), "watch cancelled: {}", r.cancel_reason());
            let mut seen = SEEN.lock().unwrap();
            let log = seen.get_mut(&start).unwrap();
            for e in r.events() {
                let kv = e.kv().unwrap();
                assert_eq!(e.event_type(), EventType::Put);
                assert!(kv.mod_revision() >= next_rev, "event went back in time");
                next_rev = kv.mod_revision() + 1;
                log.push((kv.mod_revision(), kv.value_str().unwrap().to_string()));
            }
        }
        m = (m + 1) % urls.len();
    }
}

// A watcher whose client stops reading does not block writes or grow the server's memory
// without bound; when it reads again it gets every event, in order, from history.
#[test]
fn slow_watcher_is_bounded_and_catches_up() {
    let c = Cluster::start(Flavor::Skiff, 1);
    let pid = c.members[0].child.as_ref().unwrap().id();
    let rss = || -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    rt().block_on(async {
        let mut cl = Client::connect(c.urls(), None).await.unwrap();
        let start = cl
            .put("s/0", "x", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let mut slow = cl
            .watch(
                "s/",
                Some(WatchOptions::new().with_prefix().with_start_revision(start)),
            )
            .await
            .unwrap();
        next(&mut slow).await;
        let before = rss();
        // ~150 MB of events (1500 puts of 100 kB): more than the hub's ring (64 MiB) and the
        // stream's buffers hold. The slow watcher is not read meanwhile.
        let value = vec![b'v'; 100_000];
        let t = Instant::now();
        let mut last = start;
        for i in 0..1500 {
            last = cl
                .put(format!("s/{}", i % 50), value.clone(), None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision();
        }
        let write_time = t.elapsed();
        let grown = rss().saturating_sub(before);
        let ring_bytes = metric(&c, "skiff_watch_ring_bytes");
        assert!(
            ring_bytes <= 64.0 * 1024.0 * 1024.0,
            "the watch ring holds {ring_bytes} bytes, above its 64 MiB budget"
        );
        // Now read: every revision from `start` to `last`, in order, once.
        let mut expect = start;
        while expect <= last {
            let r = next(&mut slow).await;
            assert!(
                !r.canceled(),
                "slow watcher cancelled: {}",
                r.cancel_reason()
            );
            for e in r.events() {
                assert_eq!(e.kv().unwrap().mod_revision(), expect, "gap or duplicate");
                expect += 1;
            }
        }
        assert!(
            metric(&c, "skiff_watch_history_reads_total") > 0.0,
            "the stalled watcher caught up from the MVCC history, not from memory"
        );
        eprintln!(
            "1500 x 100 kB puts took {write_time:?} with a stalled watcher; RSS grew {} MB",
            grown / (1024 * 1024)
        );
    });
}

/// One sample of a Prometheus metric from member 0's `/metrics`.
fn metric(c: &Cluster, name: &str) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", c.members[0].client_port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("metric {name} not exported"))
        .parse()
        .unwrap()
}
