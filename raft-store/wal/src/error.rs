//! The WAL's error type.
//!
//! Errors fall into three groups, and each variant's documentation says what the caller must do:
//!
//! * **Fatal for the data** — [`WalError::Corrupt`]: the files on disk cannot be trusted. The
//!   member must stop and be rebuilt (restored from a snapshot, or removed and re-added).
//! * **Fatal for this [`Wal`](crate::Wal) instance** — [`WalError::Poisoned`],
//!   [`WalError::WriterStopped`], and an [`WalError::Io`] delivered to an `append`/`truncate`:
//!   the in-memory log may be ahead of the disk, so the process must stop using the instance and
//!   reopen it (which replays exactly what is durable). The write path never retries by itself:
//!   after a failed fsync the page cache may already have dropped the dirty pages, so a retried
//!   fsync could "succeed" without the data ("fsyncgate").
//! * **Caller bugs** — [`WalError::InvalidRequest`]: nothing was changed; fix the caller.
//!
//! [`WalError::Io`] from `open`, `purge` or [`HardStateFile`](crate::HardStateFile) leaves the
//! files consistent: retrying after fixing the cause (permissions, disk space) is safe.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything that can go wrong in the WAL. `Clone` so that one write failure can be delivered
/// to every `done` callback of the batch it hit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    /// An operating-system call failed on `path`. Raised by the writer thread it poisons the
    /// instance (see the module documentation); raised by `open`, `purge` or the hard-state file
    /// the files are still consistent and the call may be retried once the cause is fixed.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// What the WAL was doing, as a verb phrase ("fdatasync segment").
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating-system error, shared so the error can be cloned.
        #[source]
        source: Arc<io::Error>,
    },

    /// Persisted data failed a check (CRC, framing, index order, segment sequence) somewhere a
    /// torn write cannot explain. Nothing was dropped or repaired. The operator must rebuild the
    /// member from the rest of the cluster.
    #[error(
        "failed to recover the WAL: corrupt data in {} at byte offset {offset}: {reason}. \
         The log of this member cannot be trusted and was left untouched: restore the member \
         from a snapshot, or remove it from the cluster and add it back with an empty data \
         directory",
        file.display()
    )]
    Corrupt {
        /// The segment (or hard-state) file holding the bad data.
        file: PathBuf,
        /// Byte offset of the first bad record in that file.
        offset: u64,
        /// What was found, e.g. "CRC mismatch" or "entry 17 follows entry 12".
        reason: String,
    },

    /// The request breaks the WAL's contract (an index gap, an index below the purged prefix,
    /// an oversized entry, a bad option). Nothing was changed; this is a bug in the caller.
    #[error("failed to accept the WAL request: {reason}")]
    InvalidRequest {
        /// Which rule the request broke.
        reason: String,
    },

    /// An earlier write or fsync failed, so the disk may be behind the in-memory log. Every
    /// later request fails with this error; stop using the instance and reopen the WAL.
    #[error(
        "failed to write the WAL: it stopped accepting writes after an earlier failure \
         ({cause}); restart the member so the log is replayed from disk"
    )]
    Poisoned {
        /// The first failure.
        cause: Box<WalError>,
    },

    /// The writer thread is gone without a `Close` request, which only happens when a `done`
    /// callback panicked on it. Restart the member.
    #[error(
        "failed to complete the WAL request: the writer thread stopped unexpectedly \
         (did a `done` callback panic?); restart the member"
    )]
    WriterStopped,

    /// The WAL was closed before the request was made.
    #[error("failed to submit the WAL request: the WAL is closed")]
    Closed,

    /// Another open [`Wal`](crate::Wal) (in this or another process) holds the directory lock.
    /// Two writers would interleave records and corrupt the log; stop the other one first.
    #[error(
        "failed to lock the WAL directory {}: another process (or another Wal in this one) \
         has it open",
        dir.display()
    )]
    Locked {
        /// The WAL directory.
        dir: PathBuf,
    },
}

impl WalError {
    /// Wraps an operating-system error with what was being done and to which path.
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> WalError {
        WalError::Io {
            action,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    /// A corruption report for `file` at `offset`.
    pub(crate) fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> WalError {
        WalError::Corrupt {
            file: file.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// A contract violation by the caller.
    pub(crate) fn invalid(reason: impl Into<String>) -> WalError {
        WalError::InvalidRequest {
            reason: reason.into(),
        }
    }

    /// True when the data on disk failed a check and the member must be rebuilt.
    pub fn is_corruption(&self) -> bool {
        matches!(self, WalError::Corrupt { .. })
    }
}
