//! Tuning knobs of a [`Wal`](crate::Wal) and the limits behind them.

use crate::record::HEADER_RECORD_BYTES;
use crate::WalError;

/// Default size at which a new segment is started, in bytes (etcd's default).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Smallest accepted `segment_bytes`. Tiny segments are only useful in tests; below this the
/// header would dominate and every record would rotate.
pub const MIN_SEGMENT_BYTES: u64 = 1024;

/// When an `append` is acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// `done` runs after the batch is written and `fdatasync` returned. Required for Raft.
    #[default]
    Fsync,
    /// **Test only, unsafe for Raft.** `done` runs as soon as the writer takes the batch, before
    /// anything is written, and segments are never fsynced, so a crash loses acknowledged
    /// entries. It exists to prove that the durability tests catch a WAL that acknowledges
    /// early, and to make unrelated tests fast.
    NoSync,
}

/// Options for [`Wal::open`](crate::Wal::open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// A new segment is started when a record would make the current one exceed this many
    /// bytes. A record larger than this gets a segment of its own. At least
    /// [`MIN_SEGMENT_BYTES`].
    pub segment_bytes: u64,
    /// When appends are acknowledged.
    pub sync: SyncMode,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            sync: SyncMode::Fsync,
        }
    }
}

impl WalOptions {
    /// Rejects options the WAL cannot work with.
    pub(crate) fn validate(&self) -> Result<(), WalError> {
        debug_assert!(MIN_SEGMENT_BYTES > HEADER_RECORD_BYTES as u64);
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(WalError::invalid(format!(
                "segment_bytes {} is below the minimum {MIN_SEGMENT_BYTES}",
                self.segment_bytes
            )));
        }
        Ok(())
    }
}
