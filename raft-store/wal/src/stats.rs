//! Counters the writer thread updates and [`Wal::stats`](crate::Wal::stats) snapshots, for
//! Prometheus export and for proving that group commit works (`fsyncs` far below
//! `append_requests` under concurrency).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A point-in-time copy of the WAL's counters. All counts are since `open`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// `fdatasync` calls on segment data (group commits plus segment rotations).
    pub fsyncs: u64,
    /// `append` requests whose `done` callback reported success.
    pub append_requests: u64,
    /// Entry records written.
    pub entries_written: u64,
    /// Record bytes written to segment files (all record types, framing included).
    pub bytes_written: u64,
    /// Duration of the most recent `fdatasync`.
    pub last_fsync: Duration,
    /// Total time spent in `fdatasync`.
    pub fsync_total: Duration,
    /// Segment files currently on disk.
    pub segments: u64,
}

/// The live counters, shared between the writer thread and readers.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    fsyncs: AtomicU64,
    append_requests: AtomicU64,
    entries_written: AtomicU64,
    bytes_written: AtomicU64,
    last_fsync_nanos: AtomicU64,
    fsync_total_nanos: AtomicU64,
    segments: AtomicU64,
}

impl Stats {
    pub(crate) fn record_fsync(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.last_fsync_nanos.store(nanos, Ordering::Relaxed);
        self.fsync_total_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn record_write(&self, entries: u64, bytes: u64) {
        self.entries_written.fetch_add(entries, Ordering::Relaxed);
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn record_appends_done(&self, count: u64) {
        self.append_requests.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn set_segments(&self, count: usize) {
        self.segments.store(count as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> WalStats {
        WalStats {
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            append_requests: self.append_requests.load(Ordering::Relaxed),
            entries_written: self.entries_written.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            last_fsync: Duration::from_nanos(self.last_fsync_nanos.load(Ordering::Relaxed)),
            fsync_total: Duration::from_nanos(self.fsync_total_nanos.load(Ordering::Relaxed)),
            segments: self.segments.load(Ordering::Relaxed),
        }
    }
}
