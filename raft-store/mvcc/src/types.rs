//! The public request, response and option types of [`crate::Mvcc`].

use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbEvent,
    PbPutRequest, PbPutResponse, PbTxnRequest, PbTxnResponse,
};

use crate::error::EtcdError;

/// Tuning of a store. The defaults suit a Raft state machine of a few GiB.
#[derive(Debug, Clone)]
pub struct MvccOptions {
    /// History entries examined per physical-compaction write batch. Bounds the size of one
    /// batch (and the pause it causes) while compacting a long history.
    pub compaction_batch_entries: usize,
    /// RocksDB memtable size in bytes; with the WAL disabled, also roughly how much applied
    /// data a crash can lose before [`crate::Mvcc::flush`] (the Raft log replays it).
    pub write_buffer_bytes: usize,
    /// Bytes loaded per write batch while installing a snapshot.
    pub install_batch_bytes: usize,
}

/// Default [`MvccOptions::compaction_batch_entries`].
pub const DEFAULT_COMPACTION_BATCH_ENTRIES: usize = 10_000;
/// Default [`MvccOptions::write_buffer_bytes`]: 64 MiB.
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 64 << 20;
/// Default [`MvccOptions::install_batch_bytes`]: 8 MiB.
pub const DEFAULT_INSTALL_BATCH_BYTES: usize = 8 << 20;

impl Default for MvccOptions {
    fn default() -> MvccOptions {
        MvccOptions {
            compaction_batch_entries: DEFAULT_COMPACTION_BATCH_ENTRIES,
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
            install_batch_bytes: DEFAULT_INSTALL_BATCH_BYTES,
        }
    }
}

/// One state-changing request, as decided by the Raft log.
#[derive(Debug, Clone, Copy)]
pub enum WriteOp<'a> {
    /// etcd Put.
    Put(&'a PbPutRequest),
    /// etcd DeleteRange.
    DeleteRange(&'a PbDeleteRequest),
    /// etcd Txn (possibly read-only).
    Txn(&'a PbTxnRequest),
    /// etcd Compact (the `physical` flag is irrelevant: compaction completes inside `apply`).
    Compact(&'a PbCompactionRequest),
    /// Grant lease `id` (chosen by the caller, never 0) with `ttl` seconds.
    LeaseGrant {
        /// The lease id.
        id: i64,
        /// The granted TTL in seconds (the caller applies etcd's minimum TTL first).
        ttl: i64,
    },
    /// Revoke lease `id`, deleting its keys.
    LeaseRevoke {
        /// The lease id.
        id: i64,
    },
    /// Change nothing but the caller's meta entries (e.g. a Raft membership entry).
    MetaOnly,
}

/// The response of an accepted [`WriteOp`]. Headers carry only `revision`; the caller fills
/// cluster id, member id and raft term.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteResponse {
    /// Response to [`WriteOp::Put`].
    Put(PbPutResponse),
    /// Response to [`WriteOp::DeleteRange`].
    DeleteRange(PbDeleteResponse),
    /// Response to [`WriteOp::Txn`].
    Txn(PbTxnResponse),
    /// Response to [`WriteOp::Compact`].
    Compact(PbCompactionResponse),
    /// Response to [`WriteOp::LeaseGrant`].
    LeaseGrant {
        /// The granted id.
        id: i64,
        /// The granted TTL in seconds.
        ttl: i64,
    },
    /// Response to [`WriteOp::LeaseRevoke`]; the revision is in [`Applied::revision`].
    LeaseRevoke,
    /// Response to [`WriteOp::MetaOnly`].
    Meta,
}

/// The outcome of [`crate::Mvcc::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The response, or the etcd error that rejected the op (then no data changed, but the
    /// meta entries were written).
    pub result: Result<WriteResponse, EtcdError>,
    /// The watch events of the op in revision order, with `prev_kv` filled as etcd's watch
    /// does (absent for a put that created the key in this revision).
    pub events: Vec<PbEvent>,
    /// The store revision after the op.
    pub revision: i64,
}

/// A lease and the keys attached to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease id.
    pub id: i64,
    /// The TTL granted, in seconds.
    pub ttl_granted: i64,
    /// The attached keys in ascending order.
    pub keys: Vec<Vec<u8>>,
}

/// What [`crate::Mvcc::write_snapshot`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The store revision captured.
    pub revision: i64,
    /// The compact revision captured (`-1` if never compacted).
    pub compact_revision: i64,
    /// Number of RocksDB entries written.
    pub records: u64,
    /// Total stream length in bytes.
    pub bytes: u64,
}
