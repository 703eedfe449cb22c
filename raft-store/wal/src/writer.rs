//! The writer thread: the only code that writes segment files. It implements group commit.
//!
//! ```text
//!  Wal::append/truncate/purge ──> bounded channel (MAX_QUEUED_REQUESTS) ──> writer thread
//!
//!  loop:  wait for one request, then take every request already queued (up to
//!         MAX_BATCH_REQUESTS) ─> encode all records into one buffer (rotating segments when
//!         full) ─> write ─> ONE fdatasync ─> run every `done` / reply in queue order
//!         ─> delete segments a purge released
//! ```
//!
//! While one fdatasync runs, new requests pile up in the channel; the next round takes them
//! all and covers them with a single fdatasync. That is group commit: under load the number of
//! fsyncs tracks the disk's latency, not the number of appends.
//!
//! Failure policy: the first failed write or fsync fails every request of its batch and poisons
//! the WAL for good (see [`crate::error`] on why a failed fsync is never retried). A failed
//! segment deletion during purge only fails that purge: the log is still consistent.

use std::fs::{self, File};
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::fsutil;
use crate::index::IndexState;
use crate::options::{SyncMode, WalOptions};
use crate::record::{self, Record, HEADER_RECORD_BYTES};
use crate::recovery::Tail;
use crate::segments::{SegmentMeta, SegmentSet};
use crate::wal::{lock, Shared};
use crate::{DoneCallback, Payload, WalError};

/// Capacity of the request channel, in requests. It is bounded so that a disk slower than the
/// producers pushes back on them (`append` blocks) instead of queueing unbounded un-durable
/// work; 4096 requests is far more than one fsync's worth of Raft appends.
pub const MAX_QUEUED_REQUESTS: usize = 4096;

/// Most requests covered by one fdatasync. Equal to the channel capacity: a batch is everything
/// that was queued, and the bound only keeps one batch's bookkeeping finite.
pub(crate) const MAX_BATCH_REQUESTS: usize = MAX_QUEUED_REQUESTS;

/// Encoded records are handed to the kernel once this many bytes are buffered, in bytes. It
/// bounds the writer's buffer while keeping write calls large.
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// Where a blocking request (`truncate`, `purge`) gets its answer.
pub(crate) type Reply = SyncSender<Result<(), WalError>>;

/// One request to the writer thread, in the order the WAL accepted them.
pub(crate) enum Request {
    /// Write these already-validated entries, then call `done`.
    Append {
        entries: Vec<(u64, Payload)>,
        done: DoneCallback,
    },
    /// An append that failed validation: call `done` with `error` in queue order, so callbacks
    /// keep firing in the order the appends were made.
    Reject { error: WalError, done: DoneCallback },
    /// Write a Truncate record and answer once it is durable.
    Truncate { from: u64, reply: Reply },
    /// Write a Purge record, delete the segments it releases, and answer.
    Purge { upto: u64, reply: Reply },
    /// Finish the current batch and stop.
    Close,
}

impl Request {
    /// Answers the request with `error` without executing it.
    pub(crate) fn fail(self, error: WalError) {
        match self {
            Request::Append { done, .. } => run_callback(done, Err(error)),
            Request::Reject { error: own, done } => run_callback(done, Err(own)),
            Request::Truncate { reply, .. } | Request::Purge { reply, .. } => {
                // The caller is blocked on the other end; if it is gone nobody needs the answer.
                let _ = reply.send(Err(error));
            }
            Request::Close => {}
        }
    }
}

/// Records to write for one batch.
enum Op {
    Entries(Vec<(u64, Payload)>),
    Truncate(u64),
    Purge(u64),
}

/// What to answer once a batch's records are durable.
enum Completion {
    Append(DoneCallback),
    Reject(WalError, DoneCallback),
    Reply(Reply),
    Purge(u64, Reply),
}

/// State owned by the writer thread.
pub(crate) struct Writer {
    dir: PathBuf,
    options: WalOptions,
    /// The log's index range as of the records written so far (mirrors the in-memory log,
    /// which runs ahead by whatever is still queued).
    index: IndexState,
    segments: SegmentSet,
    /// The segment being written, positioned at its end.
    file: File,
    /// Size of the current segment, counting buffered bytes.
    file_bytes: u64,
    /// Encoded records not yet handed to the kernel.
    buffer: Vec<u8>,
    buffered_entries: u64,
    /// Data was written since the last fdatasync.
    dirty: bool,
    shared: Arc<Shared>,
    /// The directory lock, owned here so it is released only when the thread that writes the
    /// files has stopped.
    _lock: File,
}

impl Writer {
    /// A writer appending to the last segment of `tail`, holding the directory `lock`.
    pub(crate) fn new(
        dir: PathBuf,
        options: WalOptions,
        index: IndexState,
        tail: Tail,
        lock: File,
        shared: Arc<Shared>,
    ) -> Writer {
        Writer {
            dir,
            options,
            index,
            segments: tail.segments,
            file: tail.file,
            file_bytes: tail.bytes,
            buffer: Vec::new(),
            buffered_entries: 0,
            dirty: false,
            shared,
            _lock: lock,
        }
    }

    /// The thread body: serves batches until a `Close` request or until every sender is gone.
    /// Each batch is written under the writer lock, which an inline append
    /// ([`crate::Wal::append_inline`]) takes instead of queueing when the thread is idle.
    pub(crate) fn run(writer: Arc<Mutex<Writer>>, requests: Receiver<Request>) {
        while let Ok(first) = requests.recv() {
            let mut batch = vec![first];
            batch.extend(requests.try_iter().take(MAX_BATCH_REQUESTS - 1));
            let close = batch.iter().any(|r| matches!(r, Request::Close));
            let taken = batch.len();
            let mut guard = lock(&writer);
            guard.process(batch);
            // Only now, with every callback of the batch run, may an inline append go ahead.
            guard.shared.queued.fetch_sub(taken, Ordering::SeqCst);
            drop(guard);
            if close {
                break;
            }
        }
        lock(&writer).trim_tail();
    }

    /// On close, gives back the current segment's unused preallocated space, so a closed WAL
    /// takes only the disk its records need; the next open preallocates again. A failure only
    /// costs disk space (recovery reads trailing zeros as unwritten space).
    fn trim_tail(&mut self) {
        if self.shared.failure.get().is_some() || !self.buffer.is_empty() {
            return;
        }
        if let Err(error) = self.trim_current() {
            tracing::warn!(%error, "could not trim the WAL segment on close");
        }
    }

    /// Cuts the current segment's file to its records (dropping unused preallocated space),
    /// durably.
    fn trim_current(&mut self) -> Result<(), WalError> {
        self.file
            .set_len(self.file_bytes)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| WalError::io("trim segment", &self.segments.current().path, e))
    }

    /// Writes one batch, syncs once, and answers every request in it.
    pub(crate) fn process(&mut self, batch: Vec<Request>) {
        if let Some(failure) = self.shared.failure.get() {
            let error = poisoned(failure);
            batch.into_iter().for_each(|r| r.fail(error.clone()));
            return;
        }
        let (ops, mut completions) = split(batch);
        if self.options.sync == SyncMode::NoSync {
            // Test-only mode: acknowledge before anything is written (see SyncMode::NoSync).
            completions = self.acknowledge_early(completions);
        }
        let result = self.write_ops(ops).and_then(|()| self.sync());
        if let Err(error) = &result {
            tracing::error!(%error, "WAL write failed; the WAL refuses all further writes");
            // Keep the first failure: later ones are consequences.
            let _ = self.shared.failure.set(error.clone());
        }
        self.complete(completions, result);
    }

    /// Runs append callbacks now, returning the completions that must still wait.
    fn acknowledge_early(&self, completions: Vec<Completion>) -> Vec<Completion> {
        let mut later = Vec::with_capacity(completions.len());
        for completion in completions {
            match completion {
                Completion::Append(done) => {
                    self.shared.stats.record_appends_done(1);
                    run_callback(done, Ok(()));
                }
                other => later.push(other),
            }
        }
        later
    }

    fn write_ops(&mut self, ops: Vec<Op>) -> Result<(), WalError> {
        for op in ops {
            match op {
                Op::Entries(entries) => {
                    for (index, payload) in &entries {
                        self.write_entry(*index, payload)?;
                    }
                }
                Op::Truncate(from) => {
                    self.write_record(&Record::Truncate { from })?;
                    self.index.apply_truncate(from);
                    self.segments.on_truncate(from);
                }
                Op::Purge(upto) => {
                    self.write_record(&Record::Purge { upto })?;
                    self.index.apply_purge(upto);
                }
            }
        }
        self.flush_buffer()
    }

    fn write_entry(&mut self, index: u64, payload: &[u8]) -> Result<(), WalError> {
        self.write_record(&Record::Entry { index, payload })?;
        self.buffered_entries += 1;
        if let Err(gap) = self.index.apply_entry(index) {
            panic!("the writer's log diverged from the validated in-memory log: {gap}");
        }
        self.segments.on_entry(index);
        Ok(())
    }

    /// Buffers one record, first starting a new segment if it would not fit in this one.
    fn write_record(&mut self, record: &Record<'_>) -> Result<(), WalError> {
        let len = record::encoded_len(record) as u64;
        let has_records = self.file_bytes > HEADER_RECORD_BYTES as u64;
        if has_records && self.file_bytes + len > self.options.segment_bytes {
            self.rotate()?;
        }
        record::encode(record, &mut self.buffer);
        self.file_bytes += len;
        if self.buffer.len() >= WRITE_BUFFER_BYTES {
            self.flush_buffer()?;
        }
        Ok(())
    }

    /// Seals the current segment (written and synced, so nothing after it can be durable
    /// while it is not) and starts the next one at the log's next index.
    fn rotate(&mut self) -> Result<(), WalError> {
        self.flush_buffer()?;
        self.sync()?;
        // Give back the sealed segment's unused preallocated space. Not needed for recovery
        // (zeros after the last record read as unwritten space in any segment), only for
        // the disk.
        self.trim_current()?;
        let seq = self.segments.current().seq + 1;
        let first_index = self.index.next();
        let (file, file_bytes) =
            fsutil::create_segment(&self.dir, seq, first_index, self.options.segment_bytes)?;
        self.file = file;
        self.file_bytes = file_bytes;
        self.segments
            .push(SegmentMeta::new(&self.dir, seq, first_index));
        self.shared.stats.set_segments(self.segments.len());
        tracing::debug!(seq, first_index, "started a new WAL segment");
        Ok(())
    }

    /// Hands buffered records to the kernel.
    fn flush_buffer(&mut self) -> Result<(), WalError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buffer)
            .map_err(|e| WalError::io("write segment", &self.segments.current().path, e))?;
        self.shared
            .stats
            .record_write(self.buffered_entries, self.buffer.len() as u64);
        self.buffer.clear();
        // One huge record must not pin a huge buffer for the life of the WAL.
        self.buffer.shrink_to(2 * WRITE_BUFFER_BYTES);
        self.buffered_entries = 0;
        self.dirty = true;
        Ok(())
    }

    /// One fdatasync of the current segment, if anything was written since the last one.
    fn sync(&mut self) -> Result<(), WalError> {
        if !self.dirty {
            return Ok(());
        }
        if self.options.sync == SyncMode::Fsync {
            let started = Instant::now();
            self.file
                .sync_data()
                .map_err(|e| WalError::io("fdatasync segment", &self.segments.current().path, e))?;
            self.shared.stats.record_fsync(started.elapsed());
        }
        self.dirty = false;
        Ok(())
    }

    /// Answers every request of the batch, in queue order.
    fn complete(&mut self, completions: Vec<Completion>, result: Result<(), WalError>) {
        for completion in completions {
            match completion {
                Completion::Append(done) => {
                    if result.is_ok() {
                        self.shared.stats.record_appends_done(1);
                    }
                    run_callback(done, result.clone());
                }
                Completion::Reject(error, done) => run_callback(done, Err(error)),
                Completion::Reply(reply) => {
                    let _ = reply.send(result.clone());
                }
                Completion::Purge(upto, reply) => {
                    let outcome = result.clone().and_then(|()| self.delete_purged(upto));
                    let _ = reply.send(outcome);
                }
            }
        }
    }

    /// Deletes the oldest segments whose live entries are all `<= upto`, oldest first so that a
    /// crash half-way still leaves an unbroken sequence.
    fn delete_purged(&mut self, upto: u64) -> Result<(), WalError> {
        let doomed = self.segments.take_purgeable(upto);
        if doomed.is_empty() {
            return Ok(());
        }
        for (position, segment) in doomed.iter().enumerate() {
            match fs::remove_file(&segment.path) {
                Ok(()) => tracing::debug!(file = %segment.path.display(), "deleted purged segment"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let error = WalError::io("delete purged segment", &segment.path, e);
                    self.segments.restore_front(doomed[position..].to_vec());
                    self.shared.stats.set_segments(self.segments.len());
                    return Err(error);
                }
            }
        }
        self.shared.stats.set_segments(self.segments.len());
        fsutil::sync_dir(&self.dir)
    }
}

/// Splits a batch into the records to write and the answers to give afterwards.
fn split(batch: Vec<Request>) -> (Vec<Op>, Vec<Completion>) {
    let mut ops = Vec::with_capacity(batch.len());
    let mut completions = Vec::with_capacity(batch.len());
    for request in batch {
        match request {
            Request::Append { entries, done } => {
                ops.push(Op::Entries(entries));
                completions.push(Completion::Append(done));
            }
            Request::Reject { error, done } => completions.push(Completion::Reject(error, done)),
            Request::Truncate { from, reply } => {
                ops.push(Op::Truncate(from));
                completions.push(Completion::Reply(reply));
            }
            Request::Purge { upto, reply } => {
                ops.push(Op::Purge(upto));
                completions.push(Completion::Purge(upto, reply));
            }
            Request::Close => {}
        }
    }
    (ops, completions)
}

/// The error every request gets once the WAL is poisoned by `failure`.
pub(crate) fn poisoned(failure: &WalError) -> WalError {
    WalError::Poisoned {
        cause: Box::new(failure.clone()),
    }
}

/// Runs a caller's callback. A panicking callback is the caller's bug, but it must not kill the
/// writer thread: every other queued request would then never be answered.
pub(crate) fn run_callback(done: DoneCallback, result: Result<(), WalError>) {
    if panic::catch_unwind(AssertUnwindSafe(move || done(result))).is_err() {
        tracing::error!("a WAL `done` callback panicked; the WAL carries on");
    }
}
