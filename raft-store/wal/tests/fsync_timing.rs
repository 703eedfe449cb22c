//! Measurements, not checks: raw fdatasync latency and WAL append throughput on this machine.
//! Run with `cargo test --release -p skiff-wal --test fsync_timing -- --ignored --nocapture`.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use skiff_wal::{Wal, WalOptions};

/// fdatasync calls timed per directory.
const RAW_SYNCS: usize = 300;
/// Bytes written before each timed fdatasync, like one small Raft entry.
const ENTRY_BYTES: usize = 300;
/// Appends made by the single-threaded run.
const SINGLE_THREAD_APPENDS: u64 = 500;
/// Threads and appends per thread of the concurrent run.
const THREADS: u64 = 64;
const APPENDS_PER_THREAD: u64 = 50;

fn raw_fdatasync(dir: &Path) -> (Duration, Duration, Duration) {
    let path = dir.join("raw-sync-probe");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let mut samples: Vec<Duration> = (0..RAW_SYNCS)
        .map(|_| {
            file.write_all(&[7u8; ENTRY_BYTES]).unwrap();
            let started = Instant::now();
            file.sync_data().unwrap();
            started.elapsed()
        })
        .collect();
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / RAW_SYNCS as u32;
    (samples[RAW_SYNCS / 2], mean, samples[RAW_SYNCS * 99 / 100])
}

/// Appends `threads * per_thread` entries of ENTRY_BYTES, each thread waiting for its own
/// acknowledgement before the next append; returns appends/s and fsyncs used.
fn wal_throughput(dir: &Path, threads: u64, per_thread: u64) -> (f64, u64) {
    let wal = Arc::new(Wal::open(dir, WalOptions::default()).unwrap());
    let next_index = Arc::new(Mutex::new(1u64));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (wal, next_index) = (Arc::clone(&wal), Arc::clone(&next_index));
            thread::spawn(move || {
                for _ in 0..per_thread {
                    let (tx, rx) = mpsc::channel();
                    {
                        let mut next = next_index.lock().unwrap();
                        let entry = vec![(*next, payload(*next, 0, ENTRY_BYTES))];
                        *next += 1;
                        wal.append(entry, Box::new(move |r| tx.send(r).unwrap()));
                    }
                    rx.recv().unwrap().unwrap();
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    let elapsed = started.elapsed();
    let appends = threads * per_thread;
    (appends as f64 / elapsed.as_secs_f64(), wal.stats().fsyncs)
}

// Prints fdatasync latency and appends/s (1 vs 64 threads) for /tmp and for /work.
#[test]
#[ignore = "measurement: run explicitly with --release -- --ignored --nocapture"]
fn measure_fdatasync_and_append_throughput() {
    let places = [
        ("/tmp", std::env::temp_dir()),
        (
            "/work (target tmp)",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
        ),
    ];
    for (label, base) in places {
        std::fs::create_dir_all(&base).unwrap();
        let dir = tempfile::tempdir_in(&base).unwrap();
        let (median, mean, p99) = raw_fdatasync(dir.path());
        println!(
            "{label}: fdatasync after a {ENTRY_BYTES}-byte append: median {median:?}, \
             mean {mean:?}, p99 {p99:?} ({RAW_SYNCS} samples)"
        );
        let (rate, fsyncs) = wal_throughput(&dir.path().join("one"), 1, SINGLE_THREAD_APPENDS);
        println!(
            "{label}: 1 thread: {rate:.0} appends/s ({SINGLE_THREAD_APPENDS} appends, {fsyncs} fsyncs)"
        );
        let (rate, fsyncs) = wal_throughput(&dir.path().join("many"), THREADS, APPENDS_PER_THREAD);
        let appends = THREADS * APPENDS_PER_THREAD;
        println!(
            "{label}: {THREADS} threads: {rate:.0} appends/s ({appends} appends, {fsyncs} fsyncs, \
             {:.1} appends per fsync)",
            appends as f64 / fsyncs as f64
        );
    }
}
