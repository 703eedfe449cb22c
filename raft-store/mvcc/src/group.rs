//! [`WriteGroup`]: write requests decided one after another and committed together in one
//! RocksDB write batch.
//!
//! The Raft state machine applies a log entry of ~100 client writes at a time. Committing
//! each write alone costs a RocksDB write (write-thread handshake, sequence publication)
//! and the caller's meta entries per write; a group pays them once. Each request is decided
//! against the committed state with the group's earlier, uncommitted requests layered on
//! top ([`Layered`]), so it sees them exactly as if they had been committed one by one.
//!
//! ```text
//!  write_group() ─► apply(op1, meta) ─► decide over Layered(committed, overlay) ─► Effects
//!                       │                                  ├─► history entries
//!                       │                                  └─► overlay (read by op2, op3...)
//!                   apply(op2, meta) ...
//!  commit() ─► one WriteBatch in key order: history, the final lease attachments and
//!              leases, revision (once), the newest value of each meta key
//!              ─► revision index (before the revision is published) and key index updates
//! ```
//!
//! Readers see nothing of a group before [`WriteGroup::commit`]; then all of it at once.
//! The caller's meta entries are merged (the last value of each key wins), so a caller that
//! passes "applied up to here" with every request persists exactly the marker of the last
//! request in the batch. Whenever the group has to commit early (see
//! [`needs_commit_before`]) the batch carries the meta of the requests it holds, so a crash
//! leaves a prefix of the requests applied together with the matching marker.

use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard};

use etcd_client::proto::{PbCompactionRequest, PbTxnOpRequest, PbTxnRequest};
use rocksdb::WriteBatch;

use crate::compact;
use crate::engine::{self, Engine};
use crate::error::StorageError;
use crate::index::KeyIndex;
use crate::layout;
use crate::revisions::KeyChange;
use crate::store::{self, Mvcc};
use crate::types::{Applied, WriteOp};
use crate::write::{Layered, Overlay};

/// Requests applied together; see the module docs. Holds the store's writer lock until it is
/// committed or dropped. Dropping it without [`WriteGroup::commit`] discards the requests
/// not yet committed (after a `StorageError` the caller restarts and replays anyway).
pub struct WriteGroup<'m> {
    store: &'m Mvcc,
    index: MutexGuard<'m, KeyIndex>,
    engine: Arc<Engine>,
    /// History entries of the requests so far (the rest is in `overlay`).
    entries: Vec<engine::BatchEntry>,
    /// Their changes, for the revision index.
    changes: Vec<KeyChange>,
    overlay: Overlay,
    meta: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Whether the batch holds anything (data or meta) to commit.
    dirty: bool,
}

/// Whether the group must commit before `op`: a Compact (it runs on committed state), or an
/// op that could read a revision the group created but has not committed, other than the
/// newest one (a Txn range at a revision in `(committed, pending)`): only committed history
/// can serve such a read.
pub fn needs_commit_before(op: &WriteOp<'_>, committed: i64, pending: i64) -> bool {
    fn txn_reads_between(t: &PbTxnRequest, lo: i64, hi: i64) -> bool {
        t.success
            .iter()
            .chain(&t.failure)
            .any(|op| match &op.request {
                Some(PbTxnOpRequest::RequestRange(r)) => r.revision > lo && r.revision < hi,
                Some(PbTxnOpRequest::RequestTxn(inner)) => txn_reads_between(inner, lo, hi),
                _ => false,
            })
    }
    match op {
        // Compaction runs on committed state, after the caller meta before it is written.
        WriteOp::Compact(_) => true,
        _ if pending == committed => false,
        WriteOp::Txn(t) => txn_reads_between(t, committed, pending),
        _ => false,
    }
}

impl<'m> WriteGroup<'m> {
    pub(crate) fn new(store: &'m Mvcc, index: MutexGuard<'m, KeyIndex>) -> WriteGroup<'m> {
        let engine = store.current_engine();
        let overlay = Overlay::new(engine.revision());
        WriteGroup {
            store,
            index,
            engine,
            entries: Vec::new(),
            changes: Vec::new(),
            overlay,
            meta: BTreeMap::new(),
            dirty: false,
        }
    }

    /// Decides `op` after the group's earlier requests and adds it and `meta` to the group.
    /// The result is final, but becomes visible to readers (and durable at the next flush)
    /// only with [`WriteGroup::commit`]. A rejected op changes no data; its `meta` is still
    /// written. A Compact commits the group, then compacts (see [`Mvcc::apply`]).
    /// `StorageError` is fatal: restart and replay.
    pub fn apply(
        &mut self,
        op: WriteOp<'_>,
        meta: &[(&[u8], &[u8])],
    ) -> Result<Applied, StorageError> {
        if needs_commit_before(&op, self.engine.revision(), self.overlay.revision) {
            self.commit_pending()?;
        }
        if let WriteOp::Compact(req) = op {
            return self.compact(req, meta);
        }
        let outcome = {
            let base = self.engine.latest_view(&self.index);
            let view = Layered::new(&base, &self.overlay);
            store::decide(&view, op)?
        };
        let events = match outcome.effects {
            Some(fx) => {
                engine::encode_changes(&fx, &mut self.entries, &mut self.changes);
                self.dirty = true;
                self.overlay.absorb(fx)
            }
            None => Vec::new(),
        };
        self.add_meta(meta);
        Ok(Applied {
            result: outcome.result,
            events,
            revision: self.overlay.revision,
        })
    }

    /// The caller meta value of `key` as the group's requests left it.
    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.meta.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None => self.engine.get_latest(&layout::user_meta_key(key)),
        }
    }

    /// Commits every request of the group in one write batch (nothing if empty).
    pub fn commit(mut self) -> Result<(), StorageError> {
        self.commit_pending()
    }

    fn add_meta(&mut self, meta: &[(&[u8], &[u8])]) {
        for (key, value) in meta {
            self.meta.insert(key.to_vec(), value.to_vec());
            self.dirty = true;
        }
    }

    fn commit_pending(&mut self) -> Result<(), StorageError> {
        if !self.dirty {
            return Ok(());
        }
        let mut entries = std::mem::take(&mut self.entries);
        engine::encode_overlay(&self.overlay, self.engine.revision(), &mut entries);
        for (key, value) in std::mem::take(&mut self.meta) {
            entries.push((layout::user_meta_key(&key), Some(value)));
        }
        let batch = engine::sorted_batch(entries);
        let compact = self.engine.compact_revision();
        let changes = std::mem::take(&mut self.changes);
        self.store.commit(
            &self.engine,
            batch,
            &changes,
            self.overlay.revision,
            compact,
        )?;
        let overlay = std::mem::replace(&mut self.overlay, Overlay::new(self.engine.revision()));
        self.index.update(&overlay.latest);
        self.dirty = false;
        Ok(())
    }

    /// A Compact on its own batches: the logical compaction with `meta`, then the physical
    /// deletion in bounded, resumable batches. The group is empty when this runs.
    fn compact(
        &mut self,
        req: &PbCompactionRequest,
        meta: &[(&[u8], &[u8])],
    ) -> Result<Applied, StorageError> {
        debug_assert!(!self.dirty, "the group commits before a Compact");
        let (current, compact) = (self.engine.revision(), self.engine.compact_revision());
        let (result, job) = store::decide_compact(req, current, compact);
        let mut batch = WriteBatch::default();
        for (key, value) in meta {
            batch.put(layout::user_meta_key(key), value);
        }
        let mut new_compact = compact;
        if let Some(job) = job {
            compact::start(job.target, &mut batch);
            new_compact = job.target;
        }
        self.store
            .commit(&self.engine, batch, &[], current, new_compact)?;
        if let Some(job) = job {
            // Readers whose snapshot is older than this may still read below `job.target`.
            let readers_from = self.engine.latest_sequence();
            compact::run(
                &self.engine,
                job,
                self.store.compaction_batch_entries(),
                readers_from,
            )?;
        }
        Ok(Applied {
            result,
            events: Vec::new(),
            revision: current,
        })
    }
}
