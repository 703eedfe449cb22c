//! The RocksDB side: opening a database directory, the RocksDB-backed [`StateView`]
//! ([`DbView`]: the revision index says which version of a key is live at a revision, the
//! history holds the record), and turning [`Effects`] into one write batch.
//!
//! Durability contract: writes go to the memtable with the RocksDB WAL disabled (the Raft log
//! is the durable log). What a reopen finds is the state after the last memtable flush, which
//! always ends on a write-batch boundary (one column family, see `layout.rs`): a consistent
//! prefix of the applied requests, with the caller's applied marker in the same batches.
//! [`Engine::flush`] makes everything applied so far durable; a clean close (drop) also flushes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use etcd_client::proto::PbKeyValue;
use rocksdb::{
    DBRawIterator, FlushOptions, Options, ReadOptions, Snapshot, WriteBatch, WriteOptions, DB,
};

use crate::error::StorageError;
use crate::index::KeyIndex;
use crate::layout;
use crate::record::{self, HistoryRecord, Kind};
use crate::revisions::{Change, Compacted, KeyChange, RevisionIndex};
use crate::view::{Entry, KeyMeta, KeyRange, Rev, StateView, Step};
use crate::write::{Effects, Overlay};
use crate::MvccOptions;

/// The revision of a fresh store, as in etcd.
pub const INITIAL_REVISION: i64 = 1;
/// The compact revision of a store that was never compacted, as etcd reports it.
pub const NEVER_COMPACTED: i64 = -1;

/// One open RocksDB directory and the revisions cached from it.
///
/// Field order matters: `db` drops (and closes RocksDB) before `dir_guard` may delete the
/// directory of a database replaced by a snapshot install.
pub struct Engine {
    db: DB,
    revision: AtomicI64,
    compact: AtomicI64,
    /// Every key's uncompacted changes (see `revisions.rs`): which version of a key is live
    /// at any revision, for every read.
    revisions: RwLock<RevisionIndex>,
    /// Compacted changes still in `revisions`, waiting for older readers to finish.
    prunes: Mutex<Prunes>,
    /// Whether `prunes` holds anything: every commit checks it, without the mutex.
    prunes_pending: AtomicBool,
    dir_guard: ObsoleteDir,
}

/// Changes removed from the history by compaction but not yet from the revision index: a
/// reader that took its RocksDB snapshot before the compaction may still look them up.
#[derive(Default)]
struct Prunes {
    /// (RocksDB sequence number of the logical compaction, compacted changes).
    pending: Vec<(u64, Compacted)>,
    /// When the snapshots were last checked.
    checked: Option<Instant>,
}

/// How often the writer checks whether pending prunes became safe.
const PRUNE_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Removes a replaced database directory once the last reader has released the engine.
struct ObsoleteDir {
    path: PathBuf,
    obsolete: AtomicBool,
}

impl Drop for ObsoleteDir {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                // Leftovers are removed again by the next `Mvcc::open`.
                tracing::warn!(path = %self.path.display(), error = %e,
                    "failed to remove replaced database directory");
            }
        }
    }
}

impl Engine {
    /// Opens (or creates) the database in `path`. A new database starts at revision 1.
    pub fn open(path: &Path, opts: &MvccOptions) -> Result<Engine, StorageError> {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.set_write_buffer_size(opts.write_buffer_bytes);
        o.set_keep_log_file_num(ROCKSDB_INFO_LOGS_KEPT);
        let db = DB::open(&o, path).map_err(StorageError::rocks("open RocksDB"))?;
        let engine = Engine {
            db,
            revision: AtomicI64::new(INITIAL_REVISION),
            compact: AtomicI64::new(NEVER_COMPACTED),
            revisions: RwLock::new(RevisionIndex::default()),
            prunes: Mutex::new(Prunes::default()),
            prunes_pending: AtomicBool::new(false),
            dir_guard: ObsoleteDir {
                path: path.to_path_buf(),
                obsolete: AtomicBool::new(false),
            },
        };
        engine.init_or_check_format()?;
        engine.reload_revisions()?;
        Ok(engine)
    }

    fn init_or_check_format(&self) -> Result<(), StorageError> {
        match self.get_latest(layout::META_FORMAT)? {
            None => {
                if self.get_latest(layout::META_REVISION)?.is_some() {
                    return Err(StorageError::Incompatible(
                        "database has a revision but no format marker".into(),
                    ));
                }
                let mut batch = WriteBatch::default();
                batch.put(layout::META_FORMAT, layout::FORMAT_VERSION.to_be_bytes());
                batch.put(layout::META_REVISION, layout::i64_value(INITIAL_REVISION));
                self.commit(batch)
            }
            Some(raw) if raw == layout::FORMAT_VERSION.to_be_bytes() => Ok(()),
            Some(raw) if raw == layout::FORMAT_V1.to_be_bytes() => self.upgrade_from_layout_1(),
            Some(raw) => Err(StorageError::Incompatible(format!(
                "unknown layout version {raw:?} (this build reads {} and {})",
                layout::FORMAT_V1,
                layout::FORMAT_VERSION
            ))),
        }
    }

    /// Layout 1 → 2: drops the `i` and `k` tables (the history holds everything they did;
    /// the indexes are in memory now). One batch, flushed, so a crash leaves either layout
    /// whole.
    pub fn upgrade_from_layout_1(&self) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        for table in [layout::TABLE_INDEX_V1, layout::TABLE_KV_V1] {
            batch.delete_range(vec![table], layout::table_end(table));
        }
        batch.put(layout::META_FORMAT, layout::FORMAT_VERSION.to_be_bytes());
        self.commit(batch)?;
        self.flush()?;
        tracing::info!(path = %self.path().display(), "upgraded the store to layout {}",
            layout::FORMAT_VERSION);
        Ok(())
    }

    /// Rebuilds the revision index from the history table and returns the key index of the
    /// latest state, read in the same pass (at open, after a snapshot load). Compaction never
    /// removes a key's newest change, so the history ends with every live version.
    pub fn rebuild_indexes(&self) -> Result<KeyIndex, StorageError> {
        let started = Instant::now();
        let view = self.latest_view_unindexed();
        let mut revisions = RevisionIndex::default();
        let mut keys = KeyIndex::default();
        let mut it = view.iter(
            vec![layout::TABLE_HISTORY],
            layout::table_end(layout::TABLE_HISTORY),
        );
        let mut records = 0u64;
        while let Some((k, v)) = it.item() {
            records += 1;
            let rev = layout::history_key_decode(k);
            let rec = record::decode_history(rev.main, v);
            revisions.push(&rec.kv.key, rev, rec.kind);
            let meta = (rec.kind == Kind::Put).then(|| KeyMeta::of(&rec.kv));
            keys.set(&rec.kv.key, meta);
            it.next();
        }
        it.status()
            .map_err(StorageError::rocks("iterate the history for the indexes"))?;
        tracing::info!(
            path = %self.path().display(),
            records,
            keys = revisions.len(),
            live_keys = keys.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "rebuilt the in-memory indexes from the history"
        );
        *self.revisions_mut() = revisions;
        Ok(keys)
    }

    /// Adds committed changes to the revision index. The caller holds the store's publish
    /// lock and calls this before publishing their revision (see `revisions.rs`).
    pub fn index_changes(&self, changes: &[KeyChange]) {
        if changes.is_empty() {
            return;
        }
        let mut index = self.revisions_mut();
        for (key, rev, kind) in changes {
            index.push(key, *rev, *kind);
        }
    }

    /// Schedules the removal of compacted changes from the revision index once no RocksDB
    /// snapshot older than `compaction_seq` (the sequence number right after the logical
    /// compaction was committed) is alive, and tries at once.
    pub fn prune_later(&self, compaction_seq: u64, compacted: Compacted) {
        if compacted.is_empty() {
            return;
        }
        let mut prunes = self.prunes.lock().unwrap_or_else(PoisonError::into_inner);
        prunes.pending.push((compaction_seq, compacted));
        prunes.checked = None;
        self.prunes_pending.store(true, Ordering::Release);
        drop(prunes);
        self.prune_when_safe();
    }

    /// Removes the pending compacted changes no reader can need any more: a reader whose
    /// snapshot predates the logical compaction may read below the new compact revision,
    /// one that started later refuses to. Cheap when nothing is pending; otherwise checks
    /// the live snapshots at most every [`PRUNE_CHECK_INTERVAL`].
    pub fn prune_when_safe(&self) {
        if !self.prunes_pending.load(Ordering::Acquire) {
            return;
        }
        let mut prunes = self.prunes.lock().unwrap_or_else(PoisonError::into_inner);
        if prunes.pending.is_empty()
            || prunes
                .checked
                .is_some_and(|at| at.elapsed() < PRUNE_CHECK_INTERVAL)
        {
            return;
        }
        prunes.checked = Some(Instant::now());
        let oldest = self.oldest_snapshot_seq();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut prunes.pending)
            .into_iter()
            .partition(|(seq, _)| *seq <= oldest);
        self.prunes_pending
            .store(!waiting.is_empty(), Ordering::Release);
        prunes.pending = waiting;
        drop(prunes);
        if ready.is_empty() {
            return;
        }
        let mut index = self.revisions_mut();
        for (_, compacted) in ready {
            index.remove(compacted);
        }
    }

    fn revisions_mut(&self) -> RwLockWriteGuard<'_, RevisionIndex> {
        // A writer that panicked mid-update poisons the store's writer mutex too, which is
        // fatal (see `store.rs`); the index itself is still a consistent map.
        self.revisions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The sequence number of the oldest live RocksDB snapshot (`u64::MAX` if none).
    fn oldest_snapshot_seq(&self) -> u64 {
        let read = |name: &str| self.db.property_int_value(name).ok().flatten();
        match read("rocksdb.num-snapshots") {
            Some(0) => u64::MAX,
            // Unknown counts as "a snapshot from the beginning": prune later, never early.
            _ => read("rocksdb.oldest-snapshot-sequence").unwrap_or(0),
        }
    }

    /// The RocksDB sequence number of the last committed write.
    pub fn latest_sequence(&self) -> u64 {
        self.db.latest_sequence_number()
    }

    /// Compacted changes waiting to leave the revision index.
    #[cfg(test)]
    pub fn pending_prunes(&self) -> usize {
        let prunes = self.prunes.lock().unwrap_or_else(PoisonError::into_inner);
        prunes.pending.iter().map(|(_, c)| c.len()).sum()
    }

    /// A copy of the revision index (tests compare it with a rebuilt one).
    #[cfg(test)]
    pub fn revisions_snapshot(&self) -> RevisionIndex {
        self.revisions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the cached revisions from the database.
    pub fn reload_revisions(&self) -> Result<(), StorageError> {
        let rev = self
            .get_latest(layout::META_REVISION)?
            .map(|raw| layout::i64_value_decode(layout::META_REVISION, &raw))
            .unwrap_or(INITIAL_REVISION);
        let compact = self
            .get_latest(layout::META_COMPACT)?
            .map(|raw| layout::i64_value_decode(layout::META_COMPACT, &raw))
            .unwrap_or(NEVER_COMPACTED);
        assert!(
            compact <= rev,
            "compact revision {compact} above revision {rev}"
        );
        self.set_revisions(rev, compact);
        Ok(())
    }

    /// The directory of this database.
    pub fn path(&self) -> &Path {
        &self.dir_guard.path
    }

    /// Marks the directory for removal when the engine is dropped (after a snapshot install
    /// replaced it).
    pub fn mark_obsolete(&self) {
        self.dir_guard.obsolete.store(true, Ordering::Release);
    }

    /// The RocksDB handle.
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// The current revision (cached).
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    /// The compact revision (cached), `-1` if never compacted.
    pub fn compact_revision(&self) -> i64 {
        self.compact.load(Ordering::Acquire)
    }

    /// Updates the cached revisions after a commit. Callers hold the store's commit lock so
    /// that readers see the cache and the database change together.
    pub fn set_revisions(&self, revision: i64, compact: i64) {
        self.revision.store(revision, Ordering::Release);
        self.compact.store(compact, Ordering::Release);
    }

    /// A view of the latest committed state (for the single writer), answering key meta
    /// from `index` (which must describe the same state).
    pub fn latest_view<'a>(&'a self, index: &'a KeyIndex) -> DbView<'a> {
        DbView {
            db: &self.db,
            revisions: &self.revisions,
            snapshot: None,
            revision: self.revision(),
            compact: self.compact_revision(),
            index: Some(index),
        }
    }

    /// A view of the latest committed state without a key index (to build one).
    pub fn latest_view_unindexed(&self) -> DbView<'_> {
        DbView {
            db: &self.db,
            revisions: &self.revisions,
            snapshot: None,
            revision: self.revision(),
            compact: self.compact_revision(),
            index: None,
        }
    }

    /// Writes `batch` atomically, without the RocksDB WAL (see the module docs).
    pub fn commit(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        // Keep the skiplist position of the last insert as the start of the next search
        // within the batch: cheap inserts for a batch in key order (`sorted_batch`).
        wo.set_memtable_insert_hint_per_batch(true);
        self.db
            .write_opt(batch, &wo)
            .map_err(StorageError::rocks("commit a write batch"))
    }

    /// Flushes the memtable and waits: everything committed so far survives a crash.
    pub fn flush(&self) -> Result<(), StorageError> {
        let mut fo = FlushOptions::default();
        fo.set_wait(true);
        self.db
            .flush_opt(&fo)
            .map_err(StorageError::rocks("flush the memtable"))
    }

    /// Approximate bytes on disk plus in memtables.
    pub fn size_bytes(&self) -> Result<u64, StorageError> {
        let mut total = 0;
        for prop in [
            "rocksdb.total-sst-files-size",
            "rocksdb.cur-size-all-mem-tables",
        ] {
            total += self
                .db
                .property_int_value(prop)
                .map_err(StorageError::rocks("read a size property"))?
                .unwrap_or(0);
        }
        Ok(total)
    }

    /// A point read of the latest committed state.
    pub fn get_latest(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get(key).map_err(StorageError::rocks("read a key"))
    }
}

/// How many keys a scan examines per look at the revision index (the read lock is released
/// in between, so a long range never holds up the writer).
const SCAN_CHUNK: usize = 1024;

/// How many RocksDB info LOG files to keep; they only help debugging.
const ROCKSDB_INFO_LOGS_KEPT: usize = 3;

/// One RocksDB write of a write group: a put (`Some(value)`) or a delete (`None`).
pub type BatchEntry = (Vec<u8>, Option<Vec<u8>>);

/// Adds the history entries of one request's changes to `out`, and the changes to
/// `revisions` (for [`Engine::index_changes`] once committed).
pub fn encode_changes(fx: &Effects, out: &mut Vec<BatchEntry>, revisions: &mut Vec<KeyChange>) {
    for change in &fx.changes {
        let kv = &change.kv;
        out.push((
            layout::history_key(change.rev),
            Some(record::encode_history(change.kind, kv)),
        ));
        revisions.push((kv.key.clone(), change.rev, change.kind));
    }
}

/// Adds what a write group changed in total besides the history to `out`: lease
/// attachments, leases, and the new revision if it moved from `committed_rev`. Written once
/// per group, however many of its requests touched the same lease.
pub fn encode_overlay(ov: &Overlay, committed_rev: i64, out: &mut Vec<BatchEntry>) {
    for ((lease, key), attached) in &ov.attach {
        out.push((layout::attach_key(*lease, key), attached.then(Vec::new)));
    }
    for (id, ttl) in &ov.leases {
        let value = ttl.map(|ttl| layout::i64_value(ttl).to_vec());
        out.push((layout::lease_key(*id), value));
    }
    if ov.revision != committed_rev {
        out.push((
            layout::META_REVISION.to_vec(),
            Some(layout::i64_value(ov.revision).to_vec()),
        ));
    }
}

/// A write batch of `entries` in key order. Keys must be distinct. Inserting in key order
/// lets the memtable skiplist continue each search where the previous insert ended (see
/// [`Engine::commit`]), instead of searching from the top for every key.
pub fn sorted_batch(mut entries: Vec<BatchEntry>) -> WriteBatch {
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    debug_assert!(
        entries.windows(2).all(|w| w[0].0 != w[1].0),
        "a write group wrote one key twice"
    );
    let mut batch = WriteBatch::default();
    for (key, value) in entries {
        match value {
            Some(value) => batch.put(key, value),
            None => batch.delete(key),
        }
    }
    batch
}

/// The RocksDB-backed [`StateView`]: the latest committed state for the writer, or a RocksDB
/// snapshot (with the revisions read together with it) for readers.
pub struct DbView<'a> {
    db: &'a DB,
    /// The engine's revision index; entries above `revision` are ignored.
    revisions: &'a RwLock<RevisionIndex>,
    snapshot: Option<&'a Snapshot<'a>>,
    revision: i64,
    compact: i64,
    /// The writer's key index (latest state only); readers at a snapshot have none.
    index: Option<&'a KeyIndex>,
}

impl<'a> DbView<'a> {
    /// A view over `snapshot` of `engine`, whose revisions the caller read consistently
    /// with it.
    pub fn at_snapshot(
        engine: &'a Engine,
        snapshot: &'a Snapshot<'a>,
        revision: i64,
        compact: i64,
    ) -> DbView<'a> {
        DbView {
            db: &engine.db,
            revisions: &engine.revisions,
            snapshot: Some(snapshot),
            revision,
            compact,
            index: None,
        }
    }

    fn read_opts(&self) -> ReadOptions {
        let mut ro = ReadOptions::default();
        if let Some(snapshot) = self.snapshot {
            ro.set_snapshot(snapshot);
        }
        ro
    }

    /// A raw iterator over `[lo, hi)`, positioned at `lo`.
    pub fn iter(&self, lo: Vec<u8>, hi: Vec<u8>) -> DBRawIterator<'a> {
        let mut ro = self.read_opts();
        ro.set_iterate_lower_bound(lo.clone());
        ro.set_iterate_upper_bound(hi);
        let mut it = self.db.raw_iterator_opt(ro);
        it.seek(lo);
        it
    }

    /// A point read.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db
            .get_opt(key, &self.read_opts())
            .map_err(StorageError::rocks("read a key"))
    }

    /// The history record at `rev`; panics if it is missing (the index pointed at it).
    pub fn history_at(&self, rev: Rev) -> Result<HistoryRecord, StorageError> {
        let raw = self
            .get_raw(&layout::history_key(rev))?
            .unwrap_or_else(|| panic!("history record {rev:?} missing though indexed"));
        Ok(record::decode_history(rev.main, &raw))
    }

    fn revision_index(&self) -> RwLockReadGuard<'a, RevisionIndex> {
        self.revisions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest change of `key` at or before revision `at` (at most the view's revision).
    pub fn version_at(&self, key: &[u8], at: i64) -> Result<Option<(Rev, Kind)>, StorageError> {
        debug_assert!(
            at <= self.revision,
            "version_at({at}) past the view's revision"
        );
        let change = self.revision_index().version_at(key, at);
        Ok(change.map(|Change { rev, kind }| (rev, kind)))
    }

    /// The version of `key` live at revision `at`, if any.
    pub fn kv_at(&self, key: &[u8], at: i64) -> Result<Option<PbKeyValue>, StorageError> {
        match self.version_at(key, at)? {
            Some((rev, Kind::Put)) => Ok(Some(self.history_at(rev)?.kv)),
            _ => Ok(None),
        }
    }

    /// The live keys come from the revision index, a chunk at a time (the index lock is not
    /// held while visiting), their records from the history on demand.
    fn scan_at(
        &self,
        rev: i64,
        range: &KeyRange,
        visit: &mut dyn FnMut(&dyn Entry) -> Step,
    ) -> Result<(), StorageError> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let chunk = self
                .revision_index()
                .live_at(rev, range, after.as_deref(), SCAN_CHUNK);
            for (key, found) in &chunk.live {
                let entry = PastEntry {
                    key,
                    rev: *found,
                    view: self,
                };
                if visit(&entry)?.is_break() {
                    return Ok(());
                }
            }
            match chunk.resume_after {
                Some(key) => after = Some(key),
                None => return Ok(()),
            }
        }
    }

    /// Every lease with its granted TTL, in id order.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>, StorageError> {
        let mut it = self.iter(
            vec![layout::TABLE_LEASE],
            layout::table_end(layout::TABLE_LEASE),
        );
        let mut out = Vec::new();
        while let Some((k, v)) = it.item() {
            out.push((layout::lease_key_decode(k), layout::i64_value_decode(k, v)));
            it.next();
        }
        it.status().map_err(StorageError::rocks("iterate leases"))?;
        Ok(out)
    }
}

impl StateView for DbView<'_> {
    fn revision(&self) -> i64 {
        self.revision
    }

    fn compact_revision(&self) -> i64 {
        self.compact
    }

    fn scan(
        &self,
        rev: i64,
        range: &KeyRange,
        visit: &mut dyn FnMut(&dyn Entry) -> Step,
    ) -> Result<(), StorageError> {
        assert!(
            rev >= self.compact && rev <= self.revision,
            "scan at revision {rev} outside [{}, {}]",
            self.compact,
            self.revision
        );
        if range.is_empty() {
            return Ok(());
        }
        self.scan_at(rev, range, visit)
    }

    /// A point lookup in the revision index, then the history, instead of a scan.
    fn get(&self, key: &[u8]) -> Result<Option<PbKeyValue>, StorageError> {
        match self.version_at(key, self.revision)? {
            Some((rev, Kind::Put)) => PastEntry {
                key,
                rev,
                view: self,
            }
            .load()
            .map(Some),
            _ => Ok(None),
        }
    }

    /// From the key index when the view has one: no RocksDB read.
    fn key_meta(&self, key: &[u8]) -> Result<Option<KeyMeta>, StorageError> {
        match self.index {
            Some(index) => Ok(index.get(key)),
            None => Ok(self.get(key)?.as_ref().map(KeyMeta::of)),
        }
    }

    fn lease_ttl(&self, id: i64) -> Result<Option<i64>, StorageError> {
        let key = layout::lease_key(id);
        Ok(self
            .get_raw(&key)?
            .map(|raw| layout::i64_value_decode(&key, &raw)))
    }

    fn lease_keys(&self, id: i64) -> Result<Vec<Vec<u8>>, StorageError> {
        let prefix = layout::attach_prefix(id);
        let end = layout::prefix_end(&prefix);
        let mut it = self.iter(prefix, end);
        let mut out = Vec::new();
        while let Some(k) = it.key() {
            out.push(layout::attach_key_user_key(k).to_vec());
            it.next();
        }
        it.status()
            .map_err(StorageError::rocks("iterate lease keys"))?;
        Ok(out)
    }
}

/// A key met in the revision index; its record is read from the history on demand.
struct PastEntry<'k, 'v, 'a> {
    key: &'k [u8],
    rev: Rev,
    view: &'v DbView<'a>,
}

impl Entry for PastEntry<'_, '_, '_> {
    fn key(&self) -> &[u8] {
        self.key
    }

    fn load(&self) -> Result<PbKeyValue, StorageError> {
        let rec = self.view.history_at(self.rev)?;
        assert!(
            rec.kind == Kind::Put && rec.kv.key == self.key,
            "index entry {:?}@{:?} does not match its history record {rec:?}",
            self.key,
            self.rev
        );
        Ok(rec.kv)
    }
}
