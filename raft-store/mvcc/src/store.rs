//! [`Mvcc`]: the public store. Owns the live [`Engine`], serializes writers, gives readers a
//! consistent RocksDB snapshot, and swaps in installed snapshots.
//!
//! Locking:
//! - `writer` (mutex) serializes `apply`, write groups, `flush` and `install_snapshot`, and
//!   holds the key index (`index.rs`) of the live engine's latest state, which only the
//!   writer reads. The Raft state machine is the only writer anyway; the mutex makes misuse
//!   safe rather than racy.
//! - `engine` (rwlock around `Arc<Engine>`) is read-locked by readers only while they clone
//!   the `Arc`, take a RocksDB snapshot and read the cached revisions, and write-locked by the
//!   writer only around "commit batch + update cached revisions" and the swap of an installed
//!   database. So a reader's snapshot and its revisions always match, and readers never wait
//!   for a long operation.
//!
//! ```text
//! apply(op, meta) ─► WriteGroup: WriteTxn over latest state + key index ─► Effects ─► WriteBatch (+ meta)
//!                                                      └─► commit under engine write lock
//! range()/events()/hash_kv() ─► Arc<Engine> + RocksDB snapshot ─► DbView ─► pure logic
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use etcd_client::proto::{PbCompactionRequest, PbEvent, PbRangeRequest, PbRangeResponse};
use rocksdb::WriteBatch;

use crate::apply;
use crate::compact;
use crate::dirs;
use crate::engine::{self, DbView, Engine};
use crate::error::{EtcdError, ReadError, SnapshotError, StorageError};
use crate::group::WriteGroup;
use crate::history::{self, HashKv};
use crate::index::KeyIndex;
use crate::layout;
use crate::range;
use crate::snapshot;
use crate::types::{Applied, LeaseInfo, MvccOptions, SnapshotInfo, WriteOp, WriteResponse};
use crate::view::StateView;
use crate::write::{Effects, WriteTxn, EVENT_PUT};

/// The etcd-style multi-version key-value store. `Send + Sync`; share it with `Arc`.
pub struct Mvcc {
    dir: PathBuf,
    opts: MvccOptions,
    engine: RwLock<Arc<Engine>>,
    /// The writer lock, guarding the key index of the live engine's latest state.
    writer: Mutex<KeyIndex>,
}

/// The decided outcome of an op before it is committed.
pub(crate) struct Outcome {
    pub(crate) result: Result<WriteResponse, EtcdError>,
    pub(crate) effects: Option<Effects>,
}

impl Mvcc {
    /// Opens the store in `dir` (created if missing); a new store is at revision 1.
    ///
    /// Removes leftovers of an interrupted snapshot install and finishes an interrupted
    /// physical compaction before returning. The state is what the last memtable flush
    /// persisted: re-apply the Raft log from the applied marker in [`Mvcc::get_meta`].
    pub fn open(dir: &Path, opts: MvccOptions) -> Result<Mvcc, StorageError> {
        std::fs::create_dir_all(dir).map_err(StorageError::io("create directory", dir))?;
        let live = dirs::read_current(dir)?;
        dirs::remove_stale(dir, &live)?;
        let engine = Engine::open(&dir.join(&live), &opts)?;
        // RocksDB creates a missing live directory but never fsyncs its parent; without this
        // a power cut could drop the directory entry and with it every flushed table.
        dirs::sync_dir(dir)?;
        let index = engine.rebuild_indexes()?;
        finish_pending_compaction(&engine, &opts)?;
        Ok(Mvcc {
            dir: dir.to_path_buf(),
            opts,
            engine: RwLock::new(Arc::new(engine)),
            writer: Mutex::new(index),
        })
    }

    pub(crate) fn current_engine(&self) -> Arc<Engine> {
        // Poisoning cannot leave an `Arc` half-written, so a poisoned lock is still usable.
        Arc::clone(&self.engine.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn lock_writer(&self) -> MutexGuard<'_, KeyIndex> {
        // A writer that panicked may have committed a batch without updating the index;
        // a poisoned lock is fatal rather than a source of wrong versions.
        self.writer
            .lock()
            .expect("a writer panicked; the key index may be stale: restart")
    }

    pub(crate) fn compaction_batch_entries(&self) -> usize {
        self.opts.compaction_batch_entries
    }

    /// Runs `f` on a consistent point-in-time view (RocksDB snapshot + matching revisions).
    fn read<T>(&self, f: impl FnOnce(&DbView<'_>) -> T) -> T {
        let guard = self.engine.read().unwrap_or_else(PoisonError::into_inner);
        let engine = Arc::clone(&guard);
        let snapshot = engine.db().snapshot();
        let (revision, compact) = (engine.revision(), engine.compact_revision());
        drop(guard);
        let view = DbView::at_snapshot(&engine, &snapshot, revision, compact);
        f(&view)
    }

    /// The current revision (1 for a fresh store). Does not touch the database.
    pub fn current_revision(&self) -> i64 {
        self.current_engine().revision()
    }

    /// The compact revision, `-1` if the store was never compacted (as etcd's HashKV reports;
    /// etcd accepts `Compact(0)` on a fresh store, after which this is 0).
    pub fn compact_revision(&self) -> i64 {
        self.current_engine().compact_revision()
    }

    /// etcd Range. `header.revision` is the current revision at the read; the caller fills
    /// the other header fields. Errors: `FutureRev`, `Compacted`, `InvalidSortOption`.
    pub fn range(&self, req: &PbRangeRequest) -> Result<PbRangeResponse, ReadError> {
        self.read(|view| range::execute(view, req))
    }

    /// etcd HashKV at `rev` (0 = current): CRC-32C over the key history up to `rev`, computed
    /// exactly as etcd 3.4's `HashByRev` (same bytes, same compaction rule), so it is equal on
    /// every member that applied the same log, whatever its physical compaction progress.
    /// Errors: `Compacted` if `0 < rev <= compact revision`, `FutureRev` if `rev` is ahead.
    pub fn hash_kv(&self, rev: i64) -> Result<HashKv, ReadError> {
        self.read(|view| history::hash_kv(view, rev))
    }

    /// The history from `from_rev` on as watch events, in revision order.
    ///
    /// Returns whole revisions only: it stops at the first revision boundary once
    /// `max_events` events are collected, but always returns the complete first revision
    /// (which may exceed `max_events`, e.g. for a large DeleteRange). Empty if `from_rev` is
    /// above the current revision. Delete events carry only key and mod revision, as in etcd.
    /// With `with_prev_kv`, `prev_kv` is the key at `mod_revision - 1` (none for a put that
    /// created the key, or if that revision is compacted), as etcd's watch fills it.
    /// Errors: `Compacted` if `from_rev <= compact revision` (a compacted revision may have
    /// lost its tombstones; a watch must not skip them silently).
    pub fn events(
        &self,
        from_rev: i64,
        max_events: usize,
        with_prev_kv: bool,
    ) -> Result<Vec<PbEvent>, ReadError> {
        self.events_bounded(from_rev, max_events, usize::MAX, with_prev_kv)
    }

    /// Like [`Mvcc::events`], also stopping at the first revision boundary once the events
    /// collected reach `max_bytes` (encoded size), so a reader of large values holds a
    /// bounded amount of memory.
    pub fn events_bounded(
        &self,
        from_rev: i64,
        max_events: usize,
        max_bytes: usize,
        with_prev_kv: bool,
    ) -> Result<Vec<PbEvent>, ReadError> {
        self.read(|view| history::events(view, from_rev, max_events, max_bytes, with_prev_kv))
    }

    /// Lease `id` with its attached keys, if granted.
    pub fn lease(&self, id: i64) -> Result<Option<LeaseInfo>, StorageError> {
        self.read(|view| {
            let Some(ttl_granted) = view.lease_ttl(id)? else {
                return Ok(None);
            };
            Ok(Some(LeaseInfo {
                id,
                ttl_granted,
                keys: view.lease_keys(id)?,
            }))
        })
    }

    /// Every lease as `(id, granted ttl)`, in id order.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>, StorageError> {
        self.read(|view| view.leases())
    }

    /// Approximate bytes used by the database (SST files + memtables).
    pub fn db_size_bytes(&self) -> Result<u64, StorageError> {
        self.current_engine().size_bytes()
    }

    /// A caller meta value written by [`Mvcc::apply`] (latest committed value).
    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.current_engine()
            .get_latest(&layout::user_meta_key(key))
    }

    /// Applies one op and the caller's `meta` entries in ONE atomic RocksDB write batch.
    ///
    /// A rejected op (`Applied::result` is an `EtcdError`) changes no data but still writes
    /// `meta`, so the caller's applied marker advances. A Compact also removes the compacted
    /// history before returning, in further bounded batches that resume after a crash.
    /// Put events carry no `prev_kv` (see [`Mvcc::fill_prev_kvs`]); delete events do.
    /// `StorageError` is fatal: the batch may or may not be committed; restart and replay.
    pub fn apply(&self, op: WriteOp<'_>, meta: &[(&[u8], &[u8])]) -> Result<Applied, StorageError> {
        let mut group = self.write_group();
        let applied = group.apply(op, meta)?;
        group.commit()?;
        Ok(applied)
    }

    /// Starts a group of ops committed together (see [`WriteGroup`]); holds the writer lock
    /// until it is committed or dropped.
    pub fn write_group(&self) -> WriteGroup<'_> {
        WriteGroup::new(self, self.lock_writer())
    }

    /// Fills the `prev_kv` of put events that lack it (as [`Mvcc::apply`] returns them)
    /// with the key at `mod_revision - 1`, as etcd's watch does: none for a put that created
    /// the key, or when that revision is compacted. Events must be of applied revisions.
    pub fn fill_prev_kvs(&self, events: &mut [PbEvent]) -> Result<(), StorageError> {
        self.read(|view| {
            for event in events.iter_mut().filter(|e| e.prev_kv.is_none()) {
                let Some(kv) = &event.kv else { continue };
                let created = event.r#type == EVENT_PUT && kv.create_revision == kv.mod_revision;
                let before = kv.mod_revision - 1;
                if created || before < view.compact_revision() {
                    continue;
                }
                assert!(
                    kv.mod_revision <= view.revision(),
                    "event at revision {} after the store's {}",
                    kv.mod_revision,
                    view.revision()
                );
                event.prev_kv = view.kv_at(&kv.key, before)?;
            }
            Ok(())
        })
    }

    /// Commits a batch holding `changes` and publishes them and the new revisions
    /// atomically for readers.
    pub(crate) fn commit(
        &self,
        engine: &Engine,
        batch: WriteBatch,
        changes: &[crate::revisions::KeyChange],
        revision: i64,
        compact: i64,
    ) -> Result<(), StorageError> {
        let publish = self.engine.write().unwrap_or_else(PoisonError::into_inner);
        engine.commit(batch)?;
        engine.index_changes(changes);
        engine.set_revisions(revision, compact);
        drop(publish);
        engine.prune_when_safe();
        Ok(())
    }

    /// Makes everything applied so far durable (memtable flush); call before purging the Raft
    /// log up to the applied marker.
    pub fn flush(&self) -> Result<(), StorageError> {
        let _writer = self.lock_writer();
        self.current_engine().flush()
    }

    /// Removes every caller meta entry (the `u` table) and flushes. Used when a snapshot
    /// seeds a brand-new cluster: the data, revisions and leases stay, while the old
    /// cluster's applied marker, membership and member attributes must not.
    pub fn clear_meta(&self) -> Result<(), StorageError> {
        let _writer = self.lock_writer();
        let engine = self.current_engine();
        let mut batch = WriteBatch::default();
        batch.delete_range(
            vec![layout::TABLE_USER_META],
            vec![layout::TABLE_USER_META + 1],
        );
        engine.commit(batch)?;
        engine.flush()
    }

    /// etcd's defragmentation: flushes the memtable and compacts the whole key space so
    /// space held by deleted keys and compacted history is returned to the file system.
    /// Readers and writers keep working meanwhile (RocksDB compacts in the background of
    /// this call); it may take a while on a large database.
    pub fn defragment(&self) -> Result<(), StorageError> {
        let engine = self.current_engine();
        engine.flush()?;
        engine.db().compact_range::<&[u8], &[u8]>(None, None);
        Ok(())
    }

    /// Writes a consistent point-in-time copy of the whole database (data and meta) to `out`.
    ///
    /// Format (big-endian, CRC-32C): header `"SKIFFMVC" | version u32 | crc u32`, then chunks
    /// `'C' | len u32 | crc u32 | records`, then trailer `'E' | records u64 | revision i64 |
    /// compact i64 | crc u32`. Runs concurrently with writes (it reads a RocksDB snapshot) and
    /// holds one chunk (about [`crate::SNAPSHOT_CHUNK_BYTES`]) in memory. Errors: RocksDB or
    /// `out` failed.
    pub fn write_snapshot(&self, out: &mut dyn Write) -> Result<SnapshotInfo, StorageError> {
        self.read(|view| {
            let mut w = snapshot::Writer::new(out).map_err(StorageError::SnapshotOutput)?;
            let mut it = view.iter(vec![0], vec![0xFF]);
            while let Some((k, v)) = it.item() {
                w.add(k, v).map_err(StorageError::SnapshotOutput)?;
                it.next();
            }
            it.status()
                .map_err(StorageError::rocks("iterate for a snapshot"))?;
            let (revision, compact) = (view.revision(), view.compact_revision());
            let (records, bytes) = w
                .finish(revision, compact)
                .map_err(StorageError::SnapshotOutput)?;
            Ok(SnapshotInfo {
                revision,
                compact_revision: compact,
                records,
                bytes,
            })
        })
    }

    /// Replaces the whole state with a snapshot written by [`Mvcc::write_snapshot`].
    ///
    /// Loads it into a fresh database directory, validates it completely, flushes it, then
    /// switches the live directory atomically (see `dirs.rs`): after a crash at any point,
    /// reopen finds either the old or the new state. Readers in flight finish on the old
    /// database; new reads see the new one. On any error the live state is untouched.
    pub fn install_snapshot(&self, input: &mut dyn Read) -> Result<(), SnapshotError> {
        let mut reader = snapshot::Reader::new(input)?;
        let mut index = self.lock_writer();
        let live_path = self.current_engine().path().to_path_buf();
        let live_name = live_path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("live database directory has a UTF-8 name")
            .to_string();
        let new_path = dirs::prepare_next(&self.dir, &live_name)?;
        let new_engine = Engine::open(&new_path, &self.opts)?;
        let new_index = match self.load(&new_engine, &mut reader) {
            Ok(new_index) => new_index,
            Err(e) => {
                new_engine.mark_obsolete();
                return Err(e);
            }
        };
        let new_name = new_path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("generated name is UTF-8")
            .to_string();
        dirs::write_current(&self.dir, &new_name)?;
        let old = {
            let mut guard = self.engine.write().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *guard, Arc::new(new_engine))
        };
        *index = new_index;
        // The directory goes when the last in-flight reader drops its `Arc`.
        old.mark_obsolete();
        tracing::info!(from = %live_path.display(), to = %new_path.display(),
            revision = self.current_revision(), "installed snapshot");
        Ok(())
    }

    /// Loads, validates and flushes a snapshot into `engine` (not yet live); returns the key
    /// index of its latest state.
    fn load(
        &self,
        engine: &Engine,
        reader: &mut snapshot::Reader<'_>,
    ) -> Result<KeyIndex, SnapshotError> {
        let mut batch = WriteBatch::default();
        while let Some((key, value)) = reader.next_record()? {
            batch.put(key, value);
            if batch.size_in_bytes() >= self.opts.install_batch_bytes {
                engine.commit(std::mem::take(&mut batch))?;
            }
        }
        engine.commit(batch)?;
        let trailer = reader
            .trailer()
            .expect("trailer read after the last record");
        check_loaded(engine, trailer)?;
        let index = engine.rebuild_indexes()?;
        finish_pending_compaction(engine, &self.opts)?;
        engine.flush()?;
        dirs::sync_dir(&self.dir)?;
        Ok(index)
    }
}

/// Checks that a loaded snapshot is a complete store matching its trailer.
fn check_loaded(engine: &Engine, trailer: snapshot::Trailer) -> Result<(), SnapshotError> {
    let mismatch = |what: &str| {
        SnapshotError::Corrupt(format!(
            "snapshot {what} does not match its trailer {trailer:?}"
        ))
    };
    if trailer.revision < engine::INITIAL_REVISION
        || trailer.compact_revision < engine::NEVER_COMPACTED
        || trailer.compact_revision > trailer.revision
    {
        return Err(mismatch("revisions are impossible and"));
    }
    let format = engine.get_latest(layout::META_FORMAT)?;
    if format.as_deref() == Some(&layout::FORMAT_V1.to_be_bytes()[..]) {
        // From a member still on layout 1.
        engine.upgrade_from_layout_1()?;
    } else if format.as_deref() != Some(&layout::FORMAT_VERSION.to_be_bytes()[..]) {
        return Err(SnapshotError::Corrupt(format!(
            "snapshot holds layout {format:?}, expected {} or {}",
            layout::FORMAT_V1,
            layout::FORMAT_VERSION
        )));
    }
    let revision = engine.get_latest(layout::META_REVISION)?;
    if revision.as_deref() != Some(&layout::i64_value(trailer.revision)[..]) {
        return Err(mismatch("revision"));
    }
    let compact = engine.get_latest(layout::META_COMPACT)?;
    let expected = (trailer.compact_revision != engine::NEVER_COMPACTED)
        .then(|| layout::i64_value(trailer.compact_revision).to_vec());
    if compact != expected {
        return Err(mismatch("compact revision"));
    }
    engine.reload_revisions()?;
    Ok(())
}

/// Resumes a physical compaction interrupted by a crash (or carried in a snapshot).
fn finish_pending_compaction(engine: &Engine, opts: &MvccOptions) -> Result<(), StorageError> {
    if let Some(job) = compact::pending(engine)? {
        tracing::info!(target = job.target, "resuming physical compaction");
        // No reader has this engine yet: nothing keeps compacted revisions alive.
        let readers_from = engine.latest_sequence();
        compact::run(engine, job, opts.compaction_batch_entries, readers_from)?;
    }
    Ok(())
}

/// Decides an op (not a Compact) against `view`, the state before it: the response and
/// the changes, or the etcd error that rejects it.
pub(crate) fn decide(view: &dyn StateView, op: WriteOp<'_>) -> Result<Outcome, StorageError> {
    let mut txn = WriteTxn::new(view);
    let result = match op {
        WriteOp::Put(req) => apply::put(&mut txn, req).map(WriteResponse::Put),
        WriteOp::DeleteRange(req) => {
            apply::delete_range(&mut txn, req).map(WriteResponse::DeleteRange)
        }
        WriteOp::Txn(req) => apply::txn(&mut txn, req).map(WriteResponse::Txn),
        WriteOp::LeaseGrant { id, ttl } => {
            apply::lease_grant(&mut txn, id, ttl).map(|()| WriteResponse::LeaseGrant { id, ttl })
        }
        WriteOp::LeaseRevoke { id } => {
            apply::lease_revoke(&mut txn, id).map(|()| WriteResponse::LeaseRevoke)
        }
        WriteOp::MetaOnly => Ok(WriteResponse::Meta),
        WriteOp::Compact(_) => unreachable!("a Compact is decided by decide_compact"),
    };
    match result {
        Ok(response) => Ok(Outcome {
            result: Ok(response),
            effects: Some(txn.into_effects()),
        }),
        Err(ReadError::Etcd(e)) => Ok(Outcome {
            result: Err(e),
            effects: None,
        }),
        Err(ReadError::Storage(e)) => Err(e),
    }
}

/// Decides a Compact at the committed `current` and `compact` revisions: the response and
/// the compaction job to run, or the etcd error.
pub(crate) fn decide_compact(
    req: &PbCompactionRequest,
    current: i64,
    compact: i64,
) -> (Result<WriteResponse, EtcdError>, Option<compact::Job>) {
    match compact::check(req.revision, current, compact) {
        Ok(()) => (
            Ok(WriteResponse::Compact(compact::response(current))),
            Some(compact::Job {
                target: req.revision,
                cursor: crate::view::Rev { main: 0, sub: 0 },
            }),
        ),
        Err(e) => (Err(e), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use etcd_client::proto::{
        PbDeleteRequest, PbPutRequest, PbTxnOpRequest, PbTxnRequest, PbTxnRequestOp,
    };

    // The store is shared across the state machine and readers.
    #[test]
    fn mvcc_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Mvcc>();
    }

    fn put(s: &Mvcc, key: &str, value: &str) {
        let req = PbPutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        s.apply(WriteOp::Put(&req), &[]).unwrap().result.unwrap();
    }

    fn history_len(s: &Mvcc) -> usize {
        s.read(|view| {
            let mut it = view.iter(
                vec![layout::TABLE_HISTORY],
                layout::table_end(layout::TABLE_HISTORY),
            );
            let mut n = 0;
            while it.valid() {
                n += 1;
                it.next();
            }
            n
        })
    }

    fn put_lease(s: &Mvcc, key: &str, value: &str, lease: i64) {
        let req = PbPutRequest {
            key: key.into(),
            value: value.into(),
            lease,
            ..Default::default()
        };
        s.apply(WriteOp::Put(&req), &[]).unwrap().result.unwrap();
    }

    fn delete(s: &Mvcc, key: &str, end: &str) {
        let req = PbDeleteRequest {
            key: key.into(),
            range_end: end.into(),
            ..Default::default()
        };
        s.apply(WriteOp::DeleteRange(&req), &[])
            .unwrap()
            .result
            .unwrap();
    }

    fn compact(s: &Mvcc, revision: i64) {
        let req = PbCompactionRequest {
            revision,
            ..Default::default()
        };
        s.apply(WriteOp::Compact(&req), &[])
            .unwrap()
            .result
            .unwrap();
    }

    fn txn_put_op(key: &str, value: &str) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            })),
        }
    }

    /// The writer's incremental key index, and one rebuilt from RocksDB now.
    fn index_and_rebuilt(s: &Mvcc) -> (KeyIndex, KeyIndex) {
        let index = s.lock_writer().clone();
        let engine = s.current_engine();
        let rebuilt = engine.rebuild_indexes().unwrap();
        (index, rebuilt)
    }

    /// Puts, overwrites, deletes, a Txn, lease attach/detach/revoke and a compaction.
    fn mixed_history(s: &Mvcc) {
        s.apply(WriteOp::LeaseGrant { id: 7, ttl: 60 }, &[])
            .unwrap()
            .result
            .unwrap();
        for i in 0..20 {
            put(s, &format!("k{:02}", i % 7), &i.to_string());
        }
        put_lease(s, "leased", "x", 7);
        put_lease(s, "k01", "y", 7);
        put(s, "k01", "detached");
        delete(s, "k03", "k05");
        let txn = PbTxnRequest {
            success: vec![txn_put_op("t1", "a"), txn_put_op("k00", "b")],
            ..Default::default()
        };
        s.apply(WriteOp::Txn(&txn), &[]).unwrap().result.unwrap();
        compact(s, s.current_revision() - 3);
        put(s, "k02", "after-compaction");
        s.apply(WriteOp::LeaseRevoke { id: 7 }, &[])
            .unwrap()
            .result
            .unwrap();
    }

    // The key index kept up to date by every commit equals the one rebuilt from RocksDB,
    // after puts, deletes, a Txn, leases and a compaction, and again after a reopen.
    #[test]
    fn key_index_rebuilt_at_open_equals_incremental() {
        let dir = tempfile::tempdir().unwrap();
        let incremental = {
            let s = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
            mixed_history(&s);
            let (index, rebuilt) = index_and_rebuilt(&s);
            assert_eq!(index, rebuilt);
            // "leased" went with its lease; k03, k04 were deleted; t1 is new.
            assert_eq!(index.get(b"leased"), None);
            assert_eq!(index.get(b"k03"), None);
            assert_eq!(index.get(b"t1").map(|m| m.version), Some(1));
            assert_eq!(index.get(b"k01").map(|m| m.lease), Some(0));
            s.flush().unwrap();
            index
        };
        let s = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
        assert_eq!(*s.lock_writer(), incremental);
    }

    // Installing a snapshot replaces the key index with the snapshot's keys; later writes
    // continue the snapshot's versions.
    #[test]
    fn key_index_follows_snapshot_install() {
        let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = Mvcc::open(src_dir.path(), MvccOptions::default()).unwrap();
        mixed_history(&src);
        let dst = Mvcc::open(dst_dir.path(), MvccOptions::default()).unwrap();
        put(&dst, "only-in-dst", "x");
        put(&dst, "k00", "dst");
        let mut snap = Vec::new();
        src.write_snapshot(&mut snap).unwrap();
        dst.install_snapshot(&mut snap.as_slice()).unwrap();
        assert_eq!(*dst.lock_writer(), *src.lock_writer());
        assert_eq!(
            dst.current_engine().revisions_snapshot(),
            src.current_engine().revisions_snapshot(),
            "the revision index is the snapshot's history"
        );
        put(&dst, "k00", "next");
        put(&src, "k00", "next");
        let (index, rebuilt) = index_and_rebuilt(&dst);
        assert_eq!(index, rebuilt);
        assert_eq!(index, *src.lock_writer());
        assert_eq!(index.get(b"only-in-dst"), None);
    }

    // Ops of one write group see each other (versions continue), readers see nothing until
    // the commit, and a Txn reading a revision inside the group makes it commit first.
    #[test]
    fn write_group_sees_earlier_ops_and_commits_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
        put(&s, "a", "0");
        let one = |v: &str| PbPutRequest {
            key: "a".into(),
            value: v.into(),
            ..Default::default()
        };
        let mut group = s.write_group();
        let (r1, r2) = (one("1"), one("2"));
        let a1 = group.apply(WriteOp::Put(&r1), &[(b"m", b"1")]).unwrap();
        let a2 = group.apply(WriteOp::Put(&r2), &[(b"m", b"2")]).unwrap();
        assert_eq!((a1.revision, a2.revision), (3, 4));
        assert_eq!(a2.events[0].kv.as_ref().unwrap().version, 3);
        assert_eq!(group.get_meta(b"m").unwrap(), Some(b"2".to_vec()));
        // Readers still see revision 2 only.
        assert_eq!(s.current_revision(), 2);
        // A Txn ranging at revision 3 (inside the group) commits the group first.
        let txn = PbTxnRequest {
            success: vec![PbTxnRequestOp {
                request: Some(PbTxnOpRequest::RequestRange(PbRangeRequest {
                    key: "a".into(),
                    revision: 3,
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        let a3 = group.apply(WriteOp::Txn(&txn), &[(b"m", b"3")]).unwrap();
        assert_eq!(s.current_revision(), 4, "committed before the Txn");
        let Ok(WriteResponse::Txn(t)) = a3.result else {
            panic!("txn failed: {:?}", a3.result)
        };
        let Some(etcd_client::proto::PbResponseOp {
            response: Some(etcd_client::proto::PbTxnOpResponse::ResponseRange(r)),
        }) = t.responses.first()
        else {
            panic!("expected a range response")
        };
        assert_eq!(r.kvs[0].value, b"1");
        group.commit().unwrap();
        assert_eq!(s.get_meta(b"m").unwrap(), Some(b"3".to_vec()));
        let (index, rebuilt) = index_and_rebuilt(&s);
        assert_eq!(index, rebuilt);
    }

    // A crash after the logical compaction batch (and after part of the physical one) is
    // finished by the next open, and reads at the compact revision are unchanged.
    #[test]
    fn interrupted_compaction_resumes_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let opts = MvccOptions {
            compaction_batch_entries: 2,
            ..Default::default()
        };
        let before = {
            let s = Mvcc::open(dir.path(), opts.clone()).unwrap();
            for i in 0..5 {
                put(&s, "a", &i.to_string());
                put(&s, "b", &i.to_string());
            }
            let engine = s.current_engine();
            let mut batch = WriteBatch::default();
            let job = compact::start(8, &mut batch);
            s.commit(&engine, batch, &[], engine.revision(), 8).unwrap();
            // One physical batch, then "crash" (drop without finishing).
            let (batch, next) = compact::one_batch_for_test(&engine, job, 2).unwrap();
            assert!(next.is_some());
            engine.commit(batch).unwrap();
            assert!(compact::pending(&engine).unwrap().is_some());
            assert_eq!(history_len(&s), 10 - 2);
            s.flush().unwrap();
            s.range(&PbRangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision: 8,
                ..Default::default()
            })
            .unwrap()
        };
        let s = Mvcc::open(dir.path(), opts).unwrap();
        assert!(compact::pending(&s.current_engine()).unwrap().is_none());
        assert_eq!(s.compact_revision(), 8);
        // Revisions: a = 2,4,6,8,10 and b = 3,5,7,9,11. Kept: a@8 and b@7 (the newest at or
        // below 8) plus everything above 8: a@10, b@9, b@11.
        assert_eq!(history_len(&s), 5);
        let after = s
            .range(&PbRangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision: 8,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(after.kvs, before.kvs);
    }

    /// The revision index kept up to date by every commit, and one rebuilt from the history.
    fn revisions_and_rebuilt(
        s: &Mvcc,
    ) -> (
        crate::revisions::RevisionIndex,
        crate::revisions::RevisionIndex,
    ) {
        let engine = s.current_engine();
        let incremental = engine.revisions_snapshot();
        engine.rebuild_indexes().unwrap();
        (incremental, engine.revisions_snapshot())
    }

    fn range_at(s: &Mvcc, rev: i64) -> Vec<(Vec<u8>, Vec<u8>)> {
        s.range(&PbRangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: rev,
            ..Default::default()
        })
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
    }

    // The revision index kept up to date by commits (and pruned by compaction) equals the
    // one rebuilt from the history, and past reads match before and after a reopen.
    #[test]
    fn revision_index_rebuilt_at_open_equals_incremental() {
        let dir = tempfile::tempdir().unwrap();
        let (past, compact) = {
            let s = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
            mixed_history(&s);
            let (incremental, rebuilt) = revisions_and_rebuilt(&s);
            assert_eq!(incremental, rebuilt);
            assert_eq!(s.current_engine().pending_prunes(), 0, "no reader: pruned");
            let compact = s.compact_revision();
            let past: Vec<_> = (compact..=s.current_revision())
                .map(|rev| range_at(&s, rev))
                .collect();
            s.flush().unwrap();
            (past, compact)
        };
        let s = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
        for (i, expected) in past.iter().enumerate() {
            assert_eq!(&range_at(&s, compact + i as i64), expected, "at {i}");
        }
        let (incremental, rebuilt) = revisions_and_rebuilt(&s);
        assert_eq!(incremental, rebuilt);
    }

    // A reader whose snapshot predates a compaction still reads below the new compact
    // revision; the compacted revisions leave the index only after it finished.
    #[test]
    fn compaction_keeps_revisions_an_older_reader_needs() {
        let dir = tempfile::tempdir().unwrap();
        let s = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
        for i in 0..4 {
            put(&s, "a", &format!("a{i}"));
            put(&s, "b", &format!("b{i}"));
        }
        delete(&s, "b", "");
        let at3 = range_at(&s, 3);
        assert_eq!(
            at3,
            vec![
                (b"a".to_vec(), b"a0".to_vec()),
                (b"b".to_vec(), b"b0".to_vec())
            ]
        );
        s.read(|view| {
            compact(&s, s.current_revision());
            assert!(
                s.current_engine().pending_prunes() > 0,
                "a reader is in flight"
            );
            // The reader's view is the state before the compaction, history included.
            let mut seen = Vec::new();
            view.scan(
                3,
                &crate::view::KeyRange::from_request(b"", b"\0"),
                &mut |e| {
                    let kv = e.load()?;
                    seen.push((kv.key, kv.value));
                    Ok(std::ops::ControlFlow::Continue(()))
                },
            )
            .unwrap();
            assert_eq!(seen, at3);
            assert_eq!(view.kv_at(b"b", 8).unwrap().unwrap().value, b"b2");
        });
        // Pending prunes are retried by later commits (at most every PRUNE_CHECK_INTERVAL)
        // now that the reader is gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while s.current_engine().pending_prunes() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "later commits never pruned the compacted revisions"
            );
            put(&s, "c", "c");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let (incremental, rebuilt) = revisions_and_rebuilt(&s);
        assert_eq!(incremental, rebuilt);
        assert_eq!(
            incremental.len(),
            2,
            "a (its newest put) and c; b's tombstone went"
        );
    }

    // A layout 1 database (with the `k` and `i` tables) opens as layout 2: the tables are
    // dropped, and the latest state and past reads come from the history.
    #[test]
    fn layout_1_database_is_upgraded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (latest, past) = {
            let s = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
            for i in 0..3 {
                put(&s, "a", &i.to_string());
            }
            // What layout 1 kept besides: a `(key, revision)` row per change, the latest
            // version per key, and format 1.
            let engine = s.current_engine();
            let mut batch = WriteBatch::default();
            for main in 2..5 {
                let rev = layout::rev_bytes(crate::view::Rev { main, sub: 0 });
                let key = [&[layout::TABLE_INDEX_V1][..], b"a\0\x01", &rev].concat();
                batch.put(key, b"p");
            }
            batch.put([layout::TABLE_KV_V1, b'a'], b"latest");
            batch.put(layout::META_FORMAT, layout::FORMAT_V1.to_be_bytes());
            engine.commit(batch).unwrap();
            s.flush().unwrap();
            (range_at(&s, 4), range_at(&s, 3))
        };
        let s = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
        let engine = s.current_engine();
        assert_eq!(
            engine.get_latest(layout::META_FORMAT).unwrap(),
            Some(layout::FORMAT_VERSION.to_be_bytes().to_vec())
        );
        let view = engine.latest_view_unindexed();
        for table in [layout::TABLE_INDEX_V1, layout::TABLE_KV_V1] {
            let it = view.iter(vec![table], layout::table_end(table));
            assert!(!it.valid(), "table {} is gone", table as char);
        }
        assert_eq!(range_at(&s, 4), latest);
        assert_eq!(latest, vec![(b"a".to_vec(), b"2".to_vec())]);
        assert_eq!(range_at(&s, 3), past);
        assert_eq!(past, vec![(b"a".to_vec(), b"1".to_vec())]);
        put(&s, "a", "3");
        assert_eq!(s.lock_writer().get(b"a").map(|m| m.version), Some(4));
    }
}
