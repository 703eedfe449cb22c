//! `skiff-mvcc`: etcd v3's multi-version key-value state machine on RocksDB, with no
//! knowledge of Raft or networking. The Raft state machine feeds it committed requests with
//! [`Mvcc::apply`] (one atomic write batch each, together with the caller's applied marker);
//! any number of readers call [`Mvcc::range`], [`Mvcc::events`], [`Mvcc::hash_kv`], ...
//! concurrently. Semantics follow etcd 3.4 exactly, including its quirks (each is documented
//! where it is implemented).
//!
//! Contracts in short (details on each method):
//! - Durability: writes skip the RocksDB WAL; a reopen finds the state of the last memtable
//!   flush, always a consistent prefix of applied ops with the caller's meta in step. Call
//!   [`Mvcc::flush`] before purging the Raft log.
//! - Errors: [`EtcdError`] is a deterministic rejection for the client; [`StorageError`] is
//!   fatal (restart and replay); corrupt persisted records panic.
//! - Revisions: a fresh store is at revision 1 and reports compact revision -1, as etcd does.
//!
//! Storage layout (one RocksDB column family, one-byte table prefixes; see `layout.rs`):
//! `k` key → latest version; `h` rev → change record (etcd's `KeyValue` protobuf); `l` lease →
//! TTL; `a` lease ‖ key → attachment; `m` internal meta (revision, compact revision, pending
//! compaction, layout); `u` the caller's meta. Which revisions each key has (for reads at past
//! revisions) is an in-memory index, like etcd's `treeIndex`. The live
//! RocksDB directory is `db` or `db.<n>` after snapshot installs, named by `CURRENT_DB`.
//!
//! Writers: [`Mvcc::apply`] applies one op; [`Mvcc::write_group`] applies many in order and
//! commits them in one write batch (what the Raft state machine does per log entry).
//!
//! Module map:
//!
//! | module      | role                                                           | I/O |
//! |-------------|----------------------------------------------------------------|-----|
//! | `store`     | [`Mvcc`]: locking, apply/commit, snapshot install and swap       | yes |
//! | `group`     | [`WriteGroup`]: several ops decided in order, one write batch    | yes |
//! | `index`     | in-memory key index (key → create/mod revision, version, lease)  | no* |
//! | `revisions` | in-memory revision index (key → its uncompacted revisions)       | no* |
//! | `engine`    | RocksDB directory, `DbView` (the RocksDB `StateView`), batches | yes |
//! | `dirs`      | live-directory pointer, crash-safe switch after an install       | yes |
//! | `compact`   | logical + resumable physical compaction                          | yes |
//! | `history`   | watch replay ([`Mvcc::events`]) and etcd's `HashKV`              | yes |
//! | `view`      | `StateView`: the read interface all logic is written against     | no  |
//! | `range`     | Range: count/limit/sort/filter rules                             | no  |
//! | `compare`   | Txn compares                                                     | no  |
//! | `write`     | `WriteTxn`: revision rules, read-your-writes overlay, `Effects`  | no  |
//! | `apply`     | Put/DeleteRange/Txn/Lease request semantics and checks           | no  |
//! | `layout`    | RocksDB key layout (tables, escaping)                            | no  |
//! | `record`    | value encodings, checked on read                                 | no  |
//! | `snapshot`  | snapshot stream format                                           | no  |
//! | `types`, `error` | public types and errors                                     | no  |
//!
//! (*) `index` and `revisions` are built by scanning RocksDB at open and snapshot install; the
//! writer then keeps them in step with every commit, so put/delete/txn never read RocksDB for
//! a key's previous version, and a commit writes one history row per change, not two.
//!
//! ```text
//!            apply(op, meta)                      range / events / hash_kv
//!                  │                                        │
//!   store ─► apply/write (pure, over DbView latest)   store ─► DbView at a RocksDB snapshot
//!                  │ Effects                                 │
//!   engine ─► one WriteBatch (data + meta, no WAL)    range/compare/history logic
//! ```

mod apply;
mod compact;
mod compare;
mod dirs;
mod engine;
mod error;
mod group;
mod history;
mod index;
mod layout;
#[cfg(test)]
mod memview;
mod range;
mod record;
mod revisions;
mod snapshot;
mod store;
mod types;
mod view;
mod write;

pub use apply::MAX_LEASE_TTL_SECS;
pub use compare::{COMPARE_EQUAL, COMPARE_GREATER, COMPARE_LESS, COMPARE_NOT_EQUAL};
pub use error::{EtcdError, GrpcCode, ReadError, SnapshotError, StorageError};
pub use group::WriteGroup;
pub use history::HashKv;
pub use range::{
    SORT_ORDER_ASCEND, SORT_ORDER_DESCEND, SORT_ORDER_NONE, SORT_TARGET_CREATE, SORT_TARGET_KEY,
    SORT_TARGET_MOD, SORT_TARGET_VALUE, SORT_TARGET_VERSION,
};
pub use snapshot::{MAX_SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNK_BYTES, SNAPSHOT_FORMAT_VERSION};
pub use store::Mvcc;
pub use types::{
    Applied, LeaseInfo, MvccOptions, SnapshotInfo, WriteOp, WriteResponse,
    DEFAULT_COMPACTION_BATCH_ENTRIES, DEFAULT_INSTALL_BATCH_BYTES, DEFAULT_WRITE_BUFFER_BYTES,
};
pub use view::KeyRange;
pub use write::{EVENT_DELETE, EVENT_PUT};
