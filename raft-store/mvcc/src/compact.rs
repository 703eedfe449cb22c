//! Compaction: logical first, physical in bounded batches, resumable.
//!
//! ```text
//!  apply(Compact(rev))                     one batch, with the caller's meta:
//!    ├─ check: rev <= compact → Compacted;   compact revision := rev
//!    │         rev > current  → FutureRev    job := { target: rev, cursor: (0, 0) }
//!    └─ run_job ──► batch 1: delete up to PHYSICAL_BATCH entries, job.cursor := next
//!                   batch 2: ...
//!                   last batch: delete job
//!  open() ─ job present? ─► run_job (resumes at job.cursor)
//! ```
//!
//! Reads below the compact revision are refused from the logical batch on, so the physical
//! deletion only removes versions no permitted read can see: for each key, every history entry
//! at or below the target except the newest one, and that one too if it is a tombstone
//! (etcd's `keyIndex.compact`). The history is walked in revision order, so a key's older
//! entries are always decided before its newest one is (possibly) deleted, and the decision
//! "is this the newest version at the target" reads committed state only.
//!
//! Each walk restarts at revision 0 because entries kept by an earlier compaction may now be
//! superseded; those are at most one per key, so the extra work is O(keys).

use etcd_client::proto::{PbCompactionResponse, PbResponseHeader};
use rocksdb::WriteBatch;

use crate::engine::Engine;
use crate::error::{EtcdError, StorageError};
use crate::layout;
use crate::record::{self, Kind};
use crate::revisions::Compacted;
use crate::view::Rev;

/// A pending physical compaction, persisted in meta so that it resumes after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// The compact revision being enforced.
    pub target: i64,
    /// The next history revision to examine.
    pub cursor: Rev,
}

impl Job {
    /// BE target ++ BE cursor main ++ BE cursor sub.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(&self.target.to_be_bytes());
        out.extend_from_slice(&layout::rev_bytes(self.cursor));
        out
    }

    /// Decodes a persisted job; panics if it is malformed.
    pub fn decode(raw: &[u8]) -> Job {
        assert_eq!(raw.len(), 24, "corrupt compaction job {raw:?}");
        let int = |r: std::ops::Range<usize>| i64::from_be_bytes(raw[r].try_into().expect("8"));
        Job {
            target: int(0..8),
            cursor: Rev {
                main: int(8..16),
                sub: int(16..24),
            },
        }
    }
}

/// etcd's compaction checks: `rev` must be above the compact revision and not in the future.
pub fn check(rev: i64, current: i64, compact: i64) -> Result<(), EtcdError> {
    if rev <= compact {
        return Err(EtcdError::Compacted);
    }
    if rev > current {
        return Err(EtcdError::FutureRev);
    }
    Ok(())
}

/// The response to an accepted compaction: the header carries the (unchanged) revision.
pub fn response(current: i64) -> PbCompactionResponse {
    PbCompactionResponse {
        header: Some(PbResponseHeader {
            revision: current,
            ..Default::default()
        }),
    }
}

/// Adds the logical compaction to `batch`.
pub fn start(rev: i64, batch: &mut WriteBatch) -> Job {
    let job = Job {
        target: rev,
        cursor: Rev { main: 0, sub: 0 },
    };
    batch.put(layout::META_COMPACT, layout::i64_value(rev));
    batch.put(layout::META_COMPACT_JOB, job.encode());
    job
}

/// Whether the history entry at `this` is removed when compacting at the target, given the
/// key's newest change at or before the target.
pub fn is_garbage(this: Rev, newest: (Rev, Kind)) -> bool {
    this != newest.0 || newest.1 == Kind::Tombstone
}

/// The pending job of `engine`, if any.
pub fn pending(engine: &Engine) -> Result<Option<Job>, StorageError> {
    Ok(engine
        .get_latest(layout::META_COMPACT_JOB)?
        .map(|raw| Job::decode(&raw)))
}

/// Runs `job` to completion in batches examining at most `batch_entries` history entries
/// each. Only the single writer may call this (it reads the latest committed state).
/// `readers_from` is the RocksDB sequence number at the logical compaction: the changes
/// removed here leave the revision index once no snapshot older than that is alive.
pub fn run(
    engine: &Engine,
    mut job: Job,
    batch_entries: usize,
    readers_from: u64,
) -> Result<(), StorageError> {
    loop {
        let (batch, removed, next) = one_batch(engine, job, batch_entries.max(1))?;
        engine.commit(batch)?;
        engine.prune_later(readers_from, removed);
        match next {
            Some(cursor) => job.cursor = cursor,
            None => return Ok(()),
        }
    }
}

/// Builds one batch of deletions; returns it with the entries it removes and the next cursor
/// (`None`: job finished, and the batch removes the job record).
fn one_batch(
    engine: &Engine,
    mut job: Job,
    batch_entries: usize,
) -> Result<(WriteBatch, Compacted, Option<Rev>), StorageError> {
    let view = engine.latest_view_unindexed();
    let lo = layout::history_key(job.cursor);
    let hi = layout::history_key(Rev {
        main: job.target + 1,
        sub: 0,
    });
    let mut it = view.iter(lo, hi);
    let mut batch = WriteBatch::default();
    let mut removed = Vec::new();
    let mut examined = 0;
    while let Some((k, v)) = it.item() {
        if examined == batch_entries {
            let next = layout::history_key_decode(k);
            job.cursor = next;
            batch.put(layout::META_COMPACT_JOB, job.encode());
            return Ok((batch, removed, Some(next)));
        }
        examined += 1;
        let this = layout::history_key_decode(k);
        let rec = record::decode_history(this.main, v);
        let newest = view
            .version_at(&rec.kv.key, job.target)?
            .unwrap_or_else(|| panic!("history entry {this:?} is not in the revision index"));
        if is_garbage(this, newest) {
            batch.delete(layout::history_key(this));
            removed.push((rec.kv.key, this));
        }
        it.next();
    }
    it.status()
        .map_err(StorageError::rocks("iterate the history"))?;
    batch.delete(layout::META_COMPACT_JOB);
    Ok((batch, removed, None))
}

/// [`one_batch`] for tests that simulate a crash in the middle of a job (the revision index
/// keeps the removed entries: the crash loses it anyway).
#[cfg(test)]
pub fn one_batch_for_test(
    engine: &Engine,
    job: Job,
    batch_entries: usize,
) -> Result<(WriteBatch, Option<Rev>), StorageError> {
    one_batch(engine, job, batch_entries).map(|(batch, _, next)| (batch, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64, sub: i64) -> Rev {
        Rev { main, sub }
    }

    // Compaction is refused at or below the compact revision and above the current one.
    #[test]
    fn check_rules() {
        assert_eq!(
            check(0, 1, -1),
            Ok(()),
            "etcd accepts Compact(0) on a fresh store"
        );
        assert_eq!(check(5, 5, 4), Ok(()));
        assert_eq!(check(4, 5, 4), Err(EtcdError::Compacted));
        assert_eq!(check(6, 5, 4), Err(EtcdError::FutureRev));
    }

    // Only the newest put at or before the target survives; a newest tombstone goes too.
    #[test]
    fn garbage_rule() {
        assert!(is_garbage(rev(2, 0), (rev(3, 0), Kind::Put)));
        assert!(!is_garbage(rev(3, 0), (rev(3, 0), Kind::Put)));
        assert!(
            is_garbage(rev(3, 0), (rev(3, 1), Kind::Put)),
            "same main, older sub"
        );
        assert!(is_garbage(rev(4, 0), (rev(4, 0), Kind::Tombstone)));
    }

    #[test]
    fn job_round_trip() {
        let job = Job {
            target: 42,
            cursor: rev(7, 3),
        };
        assert_eq!(Job::decode(&job.encode()), job);
    }
}
