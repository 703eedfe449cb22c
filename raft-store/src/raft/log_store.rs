//! openraft's `RaftLogStorage` on top of the write-ahead log (`skiff-wal`).
//!
//! Entries are bincode-encoded into WAL records. The vote and the last purged log id live
//! in the WAL's hard-state file, written durably (temp file, fsync, rename) before the call
//! returns, because Raft's safety depends on a member never forgetting a vote it gave.
//! `append` hands openraft's flush callback to the WAL, which fires it only after the
//! fdatasync that covers the entries (group commit).
//!
//! Whose entries decides where they are written. The leader's own entries go to the WAL's
//! writer thread: the (patched) openraft leader replicates them while its fsync runs. Entries
//! from another leader arrive in AppendEntries, which openraft answers only once they are
//! durable, so waiting is all the caller would do: small ones are written on the calling
//! thread when the writer is idle (`Wal::append_inline`), saving two thread hand-offs on the
//! path of every replicated write.

// openraft's `StorageError` is what its traits return; boxing it here would only add a copy.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogReader, StorageError, Vote};
use serde::{Deserialize, Serialize};
use skiff_wal::{HardStateFile, Wal, WalOptions};

use super::{decode, encode, proposed_elsewhere, Entry, LogId, TypeConfig};

/// What must survive a crash besides the entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HardState {
    vote: Option<Vote<u64>>,
    last_purged: Option<LogId>,
}

/// The Raft log of one member. Cheap to clone: clones share the WAL.
#[derive(Clone)]
pub struct LogStore {
    wal: Arc<Wal>,
    hard_file: Arc<HardStateFile>,
    hard: Arc<Mutex<HardState>>,
    /// Log id of the newest entry, cached so `get_log_state` does not decode entries.
    last: Arc<Mutex<Option<LogId>>>,
    /// Observes each append's time until its fdatasync (metrics), if set.
    append_timer: Option<prometheus::Histogram>,
    /// This member's id, once known: appends of entries another leader proposed may be
    /// written inline.
    member_id: Option<u64>,
}

/// Encoded bytes up to which another leader's entries are written on the calling thread
/// (when the WAL writer is idle). Larger appends come with load, when the writer thread's
/// group commit pays off and a long write would hold up the Raft thread.
const INLINE_APPEND_BYTES: usize = 64 << 10;

fn io_err(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl std::error::Error,
) -> StorageError<u64> {
    StorageError::from_io_error(subject, verb, io::Error::other(e.to_string()))
}

impl LogStore {
    /// Opens the log in `dir` (segments and hard state), replaying what is on disk.
    pub fn open(dir: &Path, opts: WalOptions) -> anyhow::Result<LogStore> {
        let wal = Wal::open(dir, opts)?;
        let hard_file = HardStateFile::open(dir)?;
        let hard: HardState = match hard_file.load()? {
            Some(bytes) => decode(&bytes)?,
            None => HardState::default(),
        };
        let last = match wal.last_index() {
            Some(i) => {
                let recs = wal.read(i, i + 1);
                let (_, bytes) = recs.first().expect("the WAL's last index is readable");
                let e: Entry = decode(bytes)?;
                Some(e.log_id)
            }
            None => None,
        };
        Ok(LogStore {
            wal: Arc::new(wal),
            hard_file: Arc::new(hard_file),
            hard: Arc::new(Mutex::new(hard)),
            last: Arc::new(Mutex::new(last)),
            append_timer: None,
            member_id: None,
        })
    }

    /// Observes every append's time until its fdatasync in `timer`.
    pub fn with_append_timer(mut self, timer: prometheus::Histogram) -> LogStore {
        self.append_timer = Some(timer);
        self
    }

    /// Lets appends of entries proposed by other members than `member_id` be written on the
    /// calling thread (see the module docs).
    pub fn with_member_id(mut self, member_id: u64) -> LogStore {
        self.member_id = Some(member_id);
        self
    }

    /// Write-ahead log statistics, for metrics.
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    fn save_hard(&self, f: impl FnOnce(&mut HardState)) -> Result<(), StorageError<u64>> {
        let mut hard = self.hard.lock().expect("hard state lock poisoned");
        f(&mut hard);
        self.hard_file
            .save(&encode(&*hard))
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let lo = match range.start_bound() {
        Bound::Included(x) => *x,
        Bound::Excluded(x) => x + 1,
        Bound::Unbounded => 0,
    };
    let hi = match range.end_bound() {
        Bound::Included(x) => x + 1,
        Bound::Excluded(x) => *x,
        Bound::Unbounded => u64::MAX,
    };
    (lo, hi)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<u64>> {
        let (lo, hi) = bounds(&range);
        let hi = hi.min(self.wal.last_index().map_or(0, |l| l + 1));
        if lo >= hi {
            return Ok(Vec::new());
        }
        self.wal
            .read(lo, hi)
            .iter()
            .map(|(_, bytes)| {
                decode::<Entry>(bytes).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged = self
            .hard
            .lock()
            .expect("hard state lock poisoned")
            .last_purged;
        let last = (*self.last.lock().expect("last log id lock poisoned")).or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let v = *vote;
        self.save_hard(|h| h.vote = Some(v))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.hard.lock().expect("hard state lock poisoned").vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut records = Vec::new();
        let mut last: Option<LogId> = None;
        let mut bytes = 0;
        for e in entries {
            last = Some(e.log_id);
            let record = encode(&e);
            bytes += record.len();
            records.push((e.log_id.index, record));
        }
        let inline = bytes <= INLINE_APPEND_BYTES
            && last.is_some_and(|l| proposed_elsewhere(&l, self.member_id));
        if let Some(l) = last {
            *self.last.lock().expect("last log id lock poisoned") = Some(l);
        }
        let timer = self.append_timer.clone();
        let start = std::time::Instant::now();
        let done: skiff_wal::DoneCallback = Box::new(move |res| {
            if let Some(t) = timer {
                t.observe(start.elapsed().as_secs_f64());
            }
            callback.log_io_completed(res.map_err(|e| io::Error::other(e.to_string())))
        });
        if inline {
            self.wal.append_inline(records, done);
        } else {
            self.wal.append(records, done);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError<u64>> {
        self.wal
            .truncate(log_id.index)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        let new_last = if log_id.index == 0 {
            None
        } else {
            let recs = self.wal.read(log_id.index - 1, log_id.index);
            match recs.first() {
                Some((_, b)) => Some(
                    decode::<Entry>(b)
                        .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?
                        .log_id,
                ),
                None => {
                    self.hard
                        .lock()
                        .expect("hard state lock poisoned")
                        .last_purged
                }
            }
        };
        *self.last.lock().expect("last log id lock poisoned") = new_last;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError<u64>> {
        // Record the purge point first: after a crash between the two steps the WAL still
        // holds entries the hard state says are purged, which is harmless; the reverse
        // order could lose track of the last purged log id.
        self.save_hard(|h| h.last_purged = Some(log_id))?;
        self.wal
            .purge(log_id.index)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}
