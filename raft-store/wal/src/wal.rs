//! [`Wal`], the handle the Raft log store uses: it validates requests, applies them to the
//! in-memory log, and queues them for the writer thread.
//!
//! ```text
//!   caller thread                                  writer thread (writer.rs)
//!   ─────────────                                  ─────────────
//!   append(entries, done)
//!     lock `submit`  (one submitter at a time, so memory order == queue order == disk order)
//!       validate against the in-memory log
//!       apply to the in-memory log  ── read() sees the entries from here on
//!       queue Request::Append ─────────────────────> write, fdatasync, done(Ok)
//!     unlock
//!
//!   append_inline(entries, done): the same, except that when nothing is queued it takes
//!   the writer lock before unlocking `submit` and writes, fdatasyncs and runs `done` itself
//! ```
//!
//! Visibility choice: an accepted entry is readable at once, before it is durable. openraft
//! requires appended entries to be readable as soon as `append` returns, and only uses the
//! callback to learn durability (it never counts an entry towards a quorum before that).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SendError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::{self, JoinHandle, ThreadId};

use crate::memlog::MemLog;
use crate::options::WalOptions;
use crate::record::MAX_ENTRY_BYTES;
use crate::recovery::{self, RecoveryReport};
use crate::stats::{Stats, WalStats};
use crate::writer::{self, Reply, Request, Writer, MAX_QUEUED_REQUESTS};
use crate::{durable, fsutil};
use crate::{DoneCallback, Payload, WalError};

/// State shared by the handle and the writer thread.
pub(crate) struct Shared {
    /// The unpurged log, served to readers.
    pub log: RwLock<MemLog>,
    pub stats: Stats,
    /// The first write failure; once set, the WAL refuses every write.
    pub failure: OnceLock<WalError>,
    /// Requests queued for the writer thread and not yet answered (counted up under the
    /// submit lock, down by the writer after it answered a batch). An inline append writes
    /// on its caller's thread only at zero, so it can never overtake a queued request.
    pub queued: AtomicUsize,
}

/// A segmented, CRC-checked, group-committed write-ahead log holding one Raft log.
///
/// `Wal` is `Send + Sync`; share it with `Arc`. All methods may be called concurrently, except
/// from inside a `done` callback (they run on the writer thread, or under the writer lock for
/// an inline append; see [`Wal::append`]).
///
/// Contract summary (details on each method):
/// * indexes are `u64`, consecutive, at most `u64::MAX - 1`; ranges are `[lo, hi)`;
/// * an append is durable when its `done` callback reports `Ok`; `truncate` and `purge` are
///   durable when they return `Ok`;
/// * requests take effect in the order they were made, in memory and on disk alike;
/// * reads are served from memory and see every accepted append, durable or not.
pub struct Wal {
    dir: PathBuf,
    shared: Arc<Shared>,
    /// The request queue. The mutex serializes "validate, apply to memory, enqueue" so the
    /// three orders agree. `None` once closed.
    submit: Mutex<Option<SyncSender<Request>>>,
    /// The file-writing state, used by the writer thread and by inline appends.
    files: Arc<Mutex<Writer>>,
    writer: Option<JoinHandle<()>>,
    writer_id: ThreadId,
    recovery: RecoveryReport,
}

impl Wal {
    /// Opens the WAL in `dir`, creating the directory and a first segment if needed, and
    /// replays every segment into memory (see [`Wal::recovery`] for what was found).
    ///
    /// Errors: [`WalError::Corrupt`] if the files fail a check that a torn write cannot
    /// explain (the member must be rebuilt); [`WalError::Locked`] if another `Wal` has the
    /// directory open; [`WalError::Io`] for operating-system failures (retry once fixed);
    /// [`WalError::InvalidRequest`] for bad options.
    pub fn open(dir: &Path, options: WalOptions) -> Result<Wal, WalError> {
        options.validate()?;
        create_dir(dir)?;
        let lock = fsutil::lock_dir(dir)?;
        let recovered = recovery::recover(dir, options.segment_bytes)?;
        let report = recovered.report.clone();
        tracing::info!(
            dir = %dir.display(),
            segments = report.segments,
            entries = report.entries,
            first_index = ?report.first_index,
            last_index = ?report.last_index,
            torn_tail = report.torn_tail.is_some(),
            "opened WAL"
        );
        let index = *recovered.log.index();
        let shared = Arc::new(Shared {
            log: RwLock::new(recovered.log),
            stats: Stats::default(),
            failure: OnceLock::new(),
            queued: AtomicUsize::new(0),
        });
        shared.stats.set_segments(recovered.tail.segments.len());
        let files = Arc::new(Mutex::new(Writer::new(
            dir.to_path_buf(),
            options,
            index,
            recovered.tail,
            lock,
            Arc::clone(&shared),
        )));
        let (sender, receiver) = mpsc::sync_channel(MAX_QUEUED_REQUESTS);
        let thread_files = Arc::clone(&files);
        let handle = thread::Builder::new()
            .name("skiff-wal-writer".to_string())
            .spawn(move || Writer::run(thread_files, receiver))
            .map_err(|e| WalError::io("start the writer thread for", dir, e))?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            shared,
            submit: Mutex::new(Some(sender)),
            files,
            writer_id: handle.thread().id(),
            writer: Some(handle),
            recovery: report,
        })
    }

    /// Queues `entries` (`(index, payload)`, consecutive indexes) for writing.
    ///
    /// The first index must be `<= last_index() + 1` and `>=` the first unpurged index (an
    /// empty log accepts any first index at or above where it resumes). A first index
    /// `<= last_index()` **replaces** every entry from that index on, as Raft's conflict
    /// resolution needs. The entries are readable as soon as this returns.
    ///
    /// `done` is called exactly once, on the writer thread, after the entries are durable
    /// (`Ok`), or with the error: [`WalError::InvalidRequest`] if the request broke the rules
    /// above (nothing changed), or an I/O / poisoned error (stop using this instance and
    /// reopen). Callbacks run in the order the appends were made; they must be quick and must
    /// not call back into this `Wal` (that would deadlock, and panics instead). Only if the
    /// writer thread is already gone is `done` called before `append` returns.
    ///
    /// Blocks only when [`MAX_QUEUED_REQUESTS`](crate::MAX_QUEUED_REQUESTS) requests are
    /// already queued, i.e. when the disk cannot keep up.
    pub fn append(&self, entries: Vec<(u64, Vec<u8>)>, done: DoneCallback) {
        self.assert_not_writer_thread("append");
        self.submit_append(entries, done, false);
    }

    /// Like [`Wal::append`], but when the writer thread is idle (nothing queued or being
    /// written), writes and fdatasyncs on the calling thread and runs `done` before
    /// returning; otherwise queues like `append`. For a caller that would only wait for the
    /// callback anyway (a Raft follower answering AppendEntries): it saves the two thread
    /// hand-offs, to the writer and back, that a lone append pays. Blocks the calling thread
    /// for the write and fdatasync; `done` must not call back into this `Wal`.
    pub fn append_inline(&self, entries: Vec<(u64, Vec<u8>)>, done: DoneCallback) {
        self.assert_not_writer_thread("append_inline");
        self.submit_append(entries, done, true);
    }

    /// Validates and applies an append to memory under the submit lock, then queues it, or,
    /// if `inline` and nothing is queued, writes it on this thread.
    fn submit_append(&self, entries: Vec<(u64, Vec<u8>)>, done: DoneCallback, inline: bool) {
        let entries: Vec<(u64, Payload)> = entries
            .into_iter()
            .map(|(index, bytes)| (index, Payload::from(bytes)))
            .collect();
        let submit = lock(&self.submit);
        let Some(sender) = submit.as_ref() else {
            return writer::run_callback(done, Err(WalError::Closed));
        };
        let request = match self.accept_append(&entries) {
            Ok(()) => Request::Append { entries, done },
            Err(error) => Request::Reject { error, done },
        };
        if !inline || self.shared.queued.load(Ordering::SeqCst) > 0 {
            return self.enqueue(sender, request);
        }
        // Nothing is queued and the submit lock keeps it so until the writer lock is held:
        // every earlier request is written and answered, every later one waits for this.
        let mut files = lock(&self.files);
        drop(submit);
        files.process(vec![request]);
    }

    /// Removes every entry with index `>= from`. Durable when it returns `Ok` (a Truncate
    /// record is written and fsynced, so the entries never reappear after a crash).
    ///
    /// Errors: [`WalError::InvalidRequest`] if `from` is below the first unpurged index;
    /// otherwise fatal for this instance (see [`WalError`]).
    pub fn truncate(&self, from: u64) -> Result<(), WalError> {
        self.assert_not_writer_thread("truncate");
        self.blocking_request(
            |log| {
                log.index()
                    .validate_truncate(from)
                    .map_err(WalError::invalid)?;
                log.apply_truncate(from);
                Ok(())
            },
            |reply| Request::Truncate { from, reply },
        )
    }

    /// Declares entries `<= upto` no longer needed (a snapshot covers them): drops them from
    /// memory and deletes every segment file whose live entries are all `<= upto`, except the
    /// segment being written. `upto` may exceed `last_index()` (a snapshot newer than the whole
    /// log): the log then becomes empty and resumes at `upto + 1`.
    ///
    /// Durable when it returns `Ok` (a Purge record is written and fsynced, then the files are
    /// deleted). A failed deletion returns [`WalError::Io`] and leaves the log consistent: a
    /// later purge retries it. Other errors are fatal for this instance (see [`WalError`]).
    pub fn purge(&self, upto: u64) -> Result<(), WalError> {
        self.assert_not_writer_thread("purge");
        self.blocking_request(
            |log| {
                log.index()
                    .validate_purge(upto)
                    .map_err(WalError::invalid)?;
                log.apply_purge(upto);
                Ok(())
            },
            |reply| Request::Purge { upto, reply },
        )
    }

    /// The entries with index in `[lo, hi)` that the log holds, in order. Indexes below
    /// [`Wal::first_index`] were purged and are absent. Never touches the disk; the caller
    /// bounds the range (the result holds shared references, not copies).
    pub fn read(&self, lo: u64, hi: u64) -> Vec<(u64, Payload)> {
        read(&self.shared.log).read(lo, hi)
    }

    /// The lowest index held, `None` if the log is empty.
    pub fn first_index(&self) -> Option<u64> {
        read(&self.shared.log).index().first_index()
    }

    /// The highest index held (including appends not yet durable), `None` if the log is empty.
    pub fn last_index(&self) -> Option<u64> {
        read(&self.shared.log).index().last_index()
    }

    /// A snapshot of the counters (fsyncs, bytes, last fsync duration, ...).
    pub fn stats(&self) -> WalStats {
        self.shared.stats.snapshot()
    }

    /// What `open` found on disk.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Processes everything already queued (so every pending `done` runs), then stops the
    /// writer thread. Dropping the `Wal` does the same. Returns the failure that poisoned the
    /// WAL, if any, so a clean shutdown can be told from a failed one.
    pub fn close(mut self) -> Result<(), WalError> {
        self.shutdown()
    }

    /// Validates and applies an append to the in-memory log. Called under the submit lock.
    fn accept_append(&self, entries: &[(u64, Payload)]) -> Result<(), WalError> {
        self.check_failure()?;
        let Some((start, _)) = entries.first() else {
            return Ok(());
        };
        for (position, (index, payload)) in entries.iter().enumerate() {
            if *index != start.wrapping_add(position as u64) {
                return Err(WalError::invalid(format!(
                    "entries are not consecutive: entry {index} at position {position} of a \
                     batch starting at {start}"
                )));
            }
            if payload.len() > MAX_ENTRY_BYTES {
                return Err(WalError::invalid(format!(
                    "entry {index} has {} bytes, more than the maximum {MAX_ENTRY_BYTES}",
                    payload.len()
                )));
            }
        }
        let mut log = write(&self.shared.log);
        log.index()
            .validate_append(*start, entries.len() as u64)
            .map_err(WalError::invalid)?;
        for (index, payload) in entries {
            if let Err(gap) = log.apply_entry(*index, Arc::clone(payload)) {
                panic!("a validated append left a gap in the in-memory log: {gap}");
            }
        }
        Ok(())
    }

    /// Validates and applies a request with `change` under the submit lock, queues the request
    /// built by `request`, and waits for the writer's answer.
    fn blocking_request(
        &self,
        change: impl FnOnce(&mut MemLog) -> Result<(), WalError>,
        request: impl FnOnce(Reply) -> Request,
    ) -> Result<(), WalError> {
        let (reply, answer) = mpsc::sync_channel(1);
        {
            let submit = lock(&self.submit);
            let sender = submit.as_ref().ok_or(WalError::Closed)?;
            self.check_failure()?;
            change(&mut write(&self.shared.log))?;
            self.enqueue(sender, request(reply));
        }
        answer.recv().unwrap_or(Err(WalError::WriterStopped))
    }

    /// Queues `request` (under the submit lock); if the writer thread is gone, answers it here
    /// so no caller waits forever.
    fn enqueue(&self, sender: &SyncSender<Request>, request: Request) {
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        if let Err(SendError(request)) = sender.send(request) {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            request.fail(WalError::WriterStopped);
        }
    }

    /// Fails fast once the writer has been poisoned, before the in-memory log is touched.
    fn check_failure(&self) -> Result<(), WalError> {
        match self.shared.failure.get() {
            Some(failure) => Err(writer::poisoned(failure)),
            None => Ok(()),
        }
    }

    /// Calls from the writer thread (i.e. from a `done` callback) would wait for the writer
    /// itself, a deadlock: crash loudly instead.
    fn assert_not_writer_thread(&self, method: &str) {
        assert_ne!(
            thread::current().id(),
            self.writer_id,
            "Wal::{method} was called from a `done` callback; callbacks run on the WAL writer \
             thread, which would then wait for itself"
        );
    }

    /// Stops the writer after it has answered everything queued. On the writer thread itself
    /// (the last handle dropped inside a callback) it neither queues nor joins, which would
    /// deadlock; dropping the sender still stops the writer once the queue is drained.
    fn shutdown(&mut self) -> Result<(), WalError> {
        let on_writer_thread = thread::current().id() == self.writer_id;
        if let Some(sender) = lock(&self.submit).take() {
            if !on_writer_thread {
                // A send error means the writer is already gone, which the join reports.
                self.enqueue(&sender, Request::Close);
            }
        }
        if let Some(handle) = self.writer.take() {
            if !on_writer_thread && handle.join().is_err() {
                return Err(WalError::WriterStopped);
            }
        }
        self.check_failure()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::warn!(%error, "WAL closed after a failure");
        }
    }
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("first_index", &self.first_index())
            .field("last_index", &self.last_index())
            .finish_non_exhaustive()
    }
}

/// Creates `dir` if needed and makes its creation durable (every created level).
fn create_dir(dir: &Path) -> Result<(), WalError> {
    durable::create_dir_all(dir).map_err(|e| WalError::io("create WAL directory", dir, e))
}

// A poisoned lock means a thread panicked while changing the WAL's state, i.e. an invariant
// broke; continuing could serve or write a wrong log, so these crash instead.
const POISONED_LOCK: &str = "WAL state lock poisoned: a thread panicked while changing the log";

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().expect(POISONED_LOCK)
}

fn read(lock: &RwLock<MemLog>) -> RwLockReadGuard<'_, MemLog> {
    lock.read().expect(POISONED_LOCK)
}

fn write(lock: &RwLock<MemLog>) -> RwLockWriteGuard<'_, MemLog> {
    lock.write().expect(POISONED_LOCK)
}
