//! When `done` fires (only after the write and the fdatasync), in what order, group commit, and
//! what happens after a write failure.

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use common::*;
use skiff_wal::{SyncMode, Wal, WalError, WalOptions};

/// What a `done` callback observed about the entry it acknowledges.
#[derive(Debug, PartialEq, Eq)]
struct Observation {
    /// The entry's bytes were in the segment file (written to the OS) when `done` ran.
    in_file: bool,
    /// At least one more fdatasync had completed than before the append.
    synced: bool,
}

/// Appends one entry with a unique payload and records, from inside `done`, whether it was
/// already written to the segment file and covered by a new fdatasync.
fn probe_durability(wal: &Arc<Wal>, index: u64) -> Observation {
    let marker = format!("durability-probe-{index}-{}", "x".repeat(64)).into_bytes();
    let fsyncs_before = wal.stats().fsyncs;
    let dir = wal.dir().to_path_buf();
    let stats_wal = Arc::clone(wal);
    let needle = marker.clone();
    let (tx, rx) = mpsc::channel();
    wal.append(
        vec![(index, marker)],
        Box::new(move |result| {
            result.expect("append must succeed");
            let observation = Observation {
                in_file: segments_contain(&dir, &needle),
                synced: stats_wal.stats().fsyncs > fsyncs_before,
            };
            tx.send(observation).unwrap();
        }),
    );
    rx.recv().unwrap()
}

/// Waits until the probe callbacks have dropped their clones of `wal` (they do so just after
/// reporting), then returns the WAL.
fn into_inner(mut wal: Arc<Wal>) -> Wal {
    loop {
        match Arc::try_unwrap(wal) {
            Ok(wal) => return wal,
            Err(shared) => {
                wal = shared;
                thread::yield_now();
            }
        }
    }
}

fn segments_contain(dir: &Path, needle: &[u8]) -> bool {
    segment_files(dir).iter().any(|path| {
        let bytes = fs::read(path).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

// With SyncMode::Fsync every callback fires only once its entry is in the file and an
// fdatasync completed after it was queued, and a reopen sees every acknowledged entry.
#[test]
fn done_fires_only_after_write_and_fdatasync() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(open(dir.path()));
    for index in 1..=20 {
        let seen = probe_durability(&wal, index);
        assert_eq!(
            seen,
            Observation {
                in_file: true,
                synced: true
            },
            "entry {index}"
        );
    }
    into_inner(wal).close().unwrap();
    assert_eq!(open(dir.path()).last_index(), Some(20));
}

// The same probe catches a WAL that acknowledges before writing and syncing (SyncMode::NoSync),
// proving the test above can fail.
#[test]
fn probe_catches_early_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        sync: SyncMode::NoSync,
        ..WalOptions::default()
    };
    let wal = Arc::new(Wal::open(dir.path(), options).unwrap());
    let seen = probe_durability(&wal, 1);
    assert_eq!(
        seen,
        Observation {
            in_file: false,
            synced: false
        }
    );
}

// Callbacks fire in the order the appends were made, even when many are queued at once.
#[test]
fn callbacks_fire_in_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let order = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    for index in 1..=500u64 {
        let order = Arc::clone(&order);
        let tx = tx.clone();
        wal.append(
            vec![(index, payload(index, 0, 40))],
            Box::new(move |result| {
                result.unwrap();
                order.lock().unwrap().push(index);
                tx.send(()).unwrap();
            }),
        );
    }
    for _ in 0..500 {
        rx.recv().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (1..=500).collect::<Vec<_>>());
    assert!(
        wal.stats().fsyncs < 500,
        "queued appends share fsyncs: {:?}",
        wal.stats()
    );
}

// An inline append on an idle WAL is written, synced and acknowledged on the calling thread
// before `append_inline` returns.
#[test]
fn inline_append_is_durable_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    for index in 1..=10u64 {
        let fsyncs_before = wal.stats().fsyncs;
        let caller = thread::current().id();
        let seen = Arc::new(Mutex::new(None));
        let record = Arc::clone(&seen);
        wal.append_inline(
            vec![(index, payload(index, 0, 40))],
            Box::new(move |result| {
                *record.lock().unwrap() = Some((result.is_ok(), thread::current().id()));
            }),
        );
        assert_eq!(
            *seen.lock().unwrap(),
            Some((true, caller)),
            "entry {index} acknowledged on the caller's thread before the call returned"
        );
        assert_eq!(wal.stats().fsyncs, fsyncs_before + 1, "entry {index}");
    }
    wal.close().unwrap();
    assert_holds(&open(dir.path()), 1, 11, 0, 40);
}

// Inline and queued appends mixed: an inline append never overtakes a queued one (it queues
// itself when the writer is busy), so callbacks fire and entries land in submission order.
#[test]
fn inline_appends_keep_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let order = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    for index in 1..=600u64 {
        let order = Arc::clone(&order);
        let tx = tx.clone();
        let done: skiff_wal::DoneCallback = Box::new(move |result| {
            result.unwrap();
            order.lock().unwrap().push(index);
            tx.send(()).unwrap();
        });
        let entry = vec![(index, payload(index, 0, 40))];
        // Runs of queued appends, then inline ones, so some inline calls find the writer busy
        // and some find it idle.
        if index % 50 < 25 {
            wal.append(entry, done);
        } else {
            wal.append_inline(entry, done);
        }
    }
    for _ in 0..600 {
        rx.recv().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (1..=600).collect::<Vec<_>>());
    wal.close().unwrap();
    assert_holds(&open(dir.path()), 1, 601, 0, 40);
}

// Many threads appending concurrently (each waiting for its own acknowledgement, like Raft
// clients) are covered by far fewer fdatasyncs than appends.
#[test]
fn group_commit_shares_fdatasyncs() {
    const THREADS: u64 = 32;
    const APPENDS_PER_THREAD: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(open(dir.path()));
    let next_index = Arc::new(Mutex::new(1u64));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (wal, next_index) = (Arc::clone(&wal), Arc::clone(&next_index));
            thread::spawn(move || {
                for _ in 0..APPENDS_PER_THREAD {
                    // Index allocation and submission must be atomic to keep indexes consecutive.
                    let (tx, rx) = mpsc::channel();
                    {
                        let mut next = next_index.lock().unwrap();
                        let index = *next;
                        *next += 1;
                        wal.append(
                            vec![(index, payload(index, 0, 300))],
                            Box::new(move |r| tx.send(r).unwrap()),
                        );
                    }
                    rx.recv().unwrap().unwrap();
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    let stats = wal.stats();
    let appends = THREADS * APPENDS_PER_THREAD;
    println!(
        "group commit: {appends} appends, {} fdatasyncs",
        stats.fsyncs
    );
    assert_eq!(stats.append_requests, appends);
    assert_eq!(stats.entries_written, appends);
    // Typically ~25 appends per fsync here; 2 leaves room for a heavily loaded CI machine.
    assert!(
        stats.fsyncs * 2 <= appends,
        "expected batching, got {stats:?}"
    );
    assert_eq!(wal.last_index(), Some(appends));
}

// Close runs every queued callback first, and a reopen finds all of those entries.
#[test]
fn close_completes_everything_queued() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let acknowledged = Arc::new(AtomicU64::new(0));
    for index in 1..=1000u64 {
        let acknowledged = Arc::clone(&acknowledged);
        wal.append(
            vec![(index, payload(index, 0, 64))],
            Box::new(move |result| {
                result.unwrap();
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }),
        );
    }
    wal.close().unwrap();
    assert_eq!(acknowledged.load(Ordering::SeqCst), 1000);
    assert_holds(&open(dir.path()), 1, 1001, 0, 64);
}

// A panicking callback is contained: later requests are still served.
#[test]
fn panicking_callback_does_not_stop_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    wal.append(
        entries(1, 2, 0, 10),
        Box::new(|_| panic!("callback bug (expected in this test)")),
    );
    append_wait(&wal, entries(2, 3, 0, 10)).unwrap();
    wal.truncate(2).unwrap();
    assert_eq!(wal.last_index(), Some(1));
}

// A failed write fails its batch with an I/O error, poisons the WAL for every later request,
// and a reopen still holds every entry acknowledged before the failure.
#[test]
fn write_failure_poisons_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let payload_len = 200usize;
    let wal = Wal::open(dir.path(), options(2048)).unwrap();
    append_wait(&wal, entries(1, 2, 0, payload_len)).unwrap();
    // Block the next segment's creation: a directory where its temporary file would go.
    let per_segment = (2048 - HEADER_RECORD_BYTES) / (ENTRY_OVERHEAD_BYTES + payload_len as u64);
    let next_first = 1 + per_segment;
    let blocker = dir
        .path()
        .join(format!("{:016x}-{next_first:016x}.wal.tmp", 1));
    fs::create_dir(&blocker).unwrap();
    append_wait(&wal, entries(2, next_first, 0, payload_len)).unwrap();
    let failed = append_wait(&wal, entries(next_first, next_first + 1, 0, payload_len));
    assert!(matches!(failed, Err(WalError::Io { .. })), "{failed:?}");
    let later = append_wait(
        &wal,
        entries(next_first + 1, next_first + 2, 0, payload_len),
    );
    assert!(matches!(later, Err(WalError::Poisoned { .. })), "{later:?}");
    assert!(matches!(wal.truncate(1), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.close(), Err(WalError::Poisoned { .. })));

    fs::remove_dir(&blocker).unwrap();
    let wal = Wal::open(dir.path(), options(2048)).unwrap();
    assert_holds(&wal, 1, next_first, 0, payload_len);
}
