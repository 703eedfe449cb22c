//! Error types of the MVCC store, split by who must react:
//!
//! - [`EtcdError`]: the request is invalid for the current state (compacted revision, unknown
//!   lease, ...). It is part of the deterministic result of an operation: every member that
//!   applies the same log reaches the same `EtcdError`, and the client receives it as a gRPC
//!   status ([`EtcdError::grpc_code`], [`EtcdError::etcd_message`]).
//! - [`StorageError`]: RocksDB or the file system failed. The in-memory view of the state may
//!   no longer match the disk, so the caller must stop applying and restart the node (which
//!   re-applies the Raft log from the persisted applied marker).
//! - [`ReadError`]: what a read returns, either of the two above (the write logic uses it
//!   internally too, before `Mvcc::apply` separates the two into `Applied` and its `Err`).
//! - [`SnapshotError`]: a snapshot stream that could not be installed. The live state is left
//!   untouched; a corrupt stream is reported as such, distinct from a local storage failure.
//!
//! Broken invariants of persisted data (a record that does not decode) are not errors: they
//! panic with the offending key (see `record.rs`).

use std::path::PathBuf;

/// The gRPC status code etcd uses for an [`EtcdError`]; the numeric value is the gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum GrpcCode {
    /// gRPC code 3.
    InvalidArgument = 3,
    /// gRPC code 5.
    NotFound = 5,
    /// gRPC code 9.
    FailedPrecondition = 9,
    /// gRPC code 11.
    OutOfRange = 11,
}

/// A request that etcd rejects for the current state. Deterministic: it never depends on the
/// local disk, so it is safe to return to clients and to replay.
///
/// `Display` is etcd's message without the `etcdserver: ` prefix; [`EtcdError::etcd_message`]
/// is the full text a real etcd puts in the gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EtcdError {
    /// The requested revision is older than the compact revision.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is newer than the current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// A Put or LeaseRevoke named a lease that does not exist.
    #[error("requested lease not found")]
    LeaseNotFound,
    /// LeaseGrant with an id that is already granted.
    #[error("lease already exists")]
    LeaseExists,
    /// LeaseGrant with a TTL above etcd's maximum ([`crate::MAX_LEASE_TTL_SECS`]).
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    /// Put with `ignore_value` or `ignore_lease` on a key that does not exist.
    #[error("key not found")]
    KeyNotFound,
    /// Range with a `sort_order` or `sort_target` that is not in the proto enum.
    #[error("invalid sort option")]
    InvalidSortOption,
}

impl EtcdError {
    /// etcd's complete gRPC status message, e.g.
    /// `"etcdserver: mvcc: required revision has been compacted"`.
    pub fn etcd_message(&self) -> &'static str {
        match self {
            EtcdError::Compacted => "etcdserver: mvcc: required revision has been compacted",
            EtcdError::FutureRev => "etcdserver: mvcc: required revision is a future revision",
            EtcdError::LeaseNotFound => "etcdserver: requested lease not found",
            EtcdError::LeaseExists => "etcdserver: lease already exists",
            EtcdError::LeaseTtlTooLarge => "etcdserver: too large lease TTL",
            EtcdError::KeyNotFound => "etcdserver: key not found",
            EtcdError::InvalidSortOption => "etcdserver: invalid sort option",
        }
    }

    /// The gRPC status code etcd 3.4 returns with this error.
    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            EtcdError::Compacted | EtcdError::FutureRev | EtcdError::LeaseTtlTooLarge => {
                GrpcCode::OutOfRange
            }
            EtcdError::LeaseNotFound => GrpcCode::NotFound,
            EtcdError::LeaseExists => GrpcCode::FailedPrecondition,
            EtcdError::KeyNotFound | EtcdError::InvalidSortOption => GrpcCode::InvalidArgument,
        }
    }
}

/// RocksDB or the file system failed. Fatal to the caller: stop applying, restart the node.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A RocksDB call failed.
    #[error("failed to {op}: {source}")]
    Rocks {
        /// What the store was doing, e.g. "commit a write batch".
        op: &'static str,
        /// The RocksDB error.
        #[source]
        source: rocksdb::Error,
    },
    /// A file-system call on the data directory failed.
    #[error("failed to {op} {path}: {source}")]
    Io {
        /// What the store was doing, e.g. "create directory".
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a snapshot to the caller's output failed.
    #[error("failed to write the snapshot stream: {0}")]
    SnapshotOutput(#[source] std::io::Error),
    /// The data directory holds something this version cannot open (e.g. a newer layout).
    #[error("failed to open the store: {0}")]
    Incompatible(String),
}

impl StorageError {
    pub(crate) fn rocks(op: &'static str) -> impl FnOnce(rocksdb::Error) -> StorageError {
        move |source| StorageError::Rocks { op, source }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }
}

/// The error of a read: either a deterministic etcd error for the client or a fatal storage
/// failure.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Return to the client as a gRPC status.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// Fatal: see [`StorageError`].
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a snapshot could not be installed. In every case the live state is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The stream is not a snapshot of this format, or is damaged or truncated: obtain a new
    /// snapshot from the sender.
    #[error("failed to install snapshot: corrupt snapshot stream: {0}")]
    Corrupt(String),
    /// Reading the stream failed (e.g. the connection broke): retry the transfer.
    #[error("failed to read the snapshot stream: {0}")]
    Input(#[source] std::io::Error),
    /// The local store failed while loading or swapping: fatal, as [`StorageError`].
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[cfg(test)]
mod tests {
    use super::*;

    // The messages and codes must be byte-identical to etcd 3.4's, checked against etcdctl
    // output of a real etcd 3.4.23.
    #[test]
    fn messages_and_codes_match_etcd() {
        assert_eq!(
            EtcdError::Compacted.etcd_message(),
            format!("etcdserver: {}", EtcdError::Compacted)
        );
        assert_eq!(EtcdError::FutureRev.grpc_code(), GrpcCode::OutOfRange);
        assert_eq!(EtcdError::LeaseNotFound.grpc_code() as u8, 5);
        assert_eq!(EtcdError::LeaseExists.grpc_code() as u8, 9);
        assert_eq!(EtcdError::KeyNotFound.grpc_code() as u8, 3);
        for e in [
            EtcdError::Compacted,
            EtcdError::FutureRev,
            EtcdError::LeaseNotFound,
            EtcdError::LeaseExists,
            EtcdError::LeaseTtlTooLarge,
            EtcdError::KeyNotFound,
            EtcdError::InvalidSortOption,
        ] {
            assert_eq!(e.etcd_message(), format!("etcdserver: {e}"));
        }
    }
}
