//! `skiff-wal`: the durable Raft log of a skiff-store member — a segmented, CRC32C-framed,
//! group-committed write-ahead log with an in-memory copy of the unpurged log for reads.
//!
//! The openraft adapter in `skiff-store` serializes each log entry into an opaque byte payload
//! and calls [`Wal::append`]; the `done` callback fires only once the entries are durable,
//! which is what openraft's `RaftLogStorage::append` callback requires. [`HardStateFile`]
//! stores the vote and purge point next to the segments.
//!
//! # Module map
//!
//! ```text
//!  wal.rs        Wal: the handle; validates, updates memory, queues requests
//!   ├─ index.rs     pure: index-range rules shared by live writes and replay
//!   ├─ memlog.rs    pure: in-memory unpurged log serving reads
//!   ├─ writer.rs    writer thread (and inline appends): batching, one fdatasync per batch,
//!   │               rotation, purge deletes
//!   │   └─ fsutil.rs   directory fsync, atomic segment creation, directory lock
//!   └─ recovery.rs  open: replay segments, cut a torn tail, report corruption
//!       └─ scan.rs     pure: split a segment into records, torn-tail rule
//!  record.rs     pure: record framing (encode/decode, CRC32C)
//!  segments.rs   pure: segment file names, which segments a purge may delete
//!  hard_state.rs HardStateFile: atomically replaced vote / purge-point file
//!  durable.rs    crash-safe directory and small-file creation (also used by skiff-store)
//!  options.rs    WalOptions, SyncMode     stats.rs  WalStats counters     error.rs  WalError
//! ```
//!
//! # On-disk format
//!
//! A WAL directory holds segment files `<seq:016x>-<first_index:016x>.wal`, a `LOCK` file
//! (an exclusive `flock` while a [`Wal`] is open) and, if used, the `hardstate` file.
//!
//! * `seq` numbers the segments from 0; the files present always form an unbroken run (purge
//!   deletes only from the front). `first_index` is the log's next index when the segment was
//!   created. A new segment starts when a record would push the current one past
//!   [`WalOptions::segment_bytes`]; the old one is fsynced first (and trimmed to its records),
//!   and the new one is created under a temporary name with its header, preallocated to
//!   `segment_bytes` with `fallocate`, fsynced, renamed, and the directory fsynced. An
//!   fdatasync inside preallocated space need not commit a new file size and block
//!   allocation, which made it ~50-100 µs cheaper on the test machines (as in etcd, which
//!   preallocates its segments too). `open` preallocates the segment it resumes, and
//!   `close` trims it again.
//! * Every segment is a sequence of records framed as
//!   `len u32 LE | crc32c u32 LE (over type + payload) | type u8 | payload[len]`:
//!   - `1 Header   magic "SKIFFWAL", version u32 = 1, seq u64, first_index u64` — first record;
//!   - `2 Entry    index u64, opaque payload` — one Raft log entry;
//!   - `3 Truncate from u64` — entries `>= from` are gone;
//!   - `4 Purge    upto u64` — entries `<= upto` are covered by a snapshot.
//! * The log is append-only: truncation and replacement are expressed by records, never by
//!   rewriting a file (the only file cut is a torn tail during recovery).
//!
//! Replay applies the records in order with the same rules as the live log: an Entry whose
//! index is at or below the last index replaces the tail from that index; an Entry beyond the
//! last index + 1 is a gap (corruption); Truncate drops from `from`; Purge drops up to `upto`.
//! Each segment's header must match its name and the index where the previous segment left
//! the log.
//!
//! # Torn tail and corruption
//!
//! Zeros from a record boundary to the end of a segment are preallocated space not written
//! yet (zeros never decode as a record: no payload is empty and type 0 is invalid): replay
//! ends there cleanly and appends continue
//! at that offset. This holds in any segment; zeros followed by a valid record are corruption.
//!
//! A bad record in the **last** segment with no valid record anywhere after it (it is
//! incomplete, or its CRC fails and only zeros/garbage follow) is a torn write from a crash:
//! the file is cut at the start of that record, fsynced, and a warning logs the offset and the
//! number of bytes dropped (also in [`Wal::recovery`]). Everything else — a bad record in an
//! older segment, a bad record followed by a valid one, a valid-CRC record with impossible
//! content, an index gap, a missing segment, a header that does not match — fails `open` with
//! [`WalError::Corrupt`] naming the file and offset. Nothing is ever dropped silently.
//!
//! # Durability and concurrency
//!
//! One writer thread writes the files. [`Wal::append`] validates the request, applies it to
//! the in-memory log (readable at once) and queues it on a bounded channel; the writer takes
//! every queued request, writes them, calls `fdatasync` once, then runs the callbacks in
//! order. [`Wal::append_inline`] does the same on the calling thread instead when nothing is
//! queued or being written (the file state sits behind a lock both use, and a count of queued
//! requests keeps an inline write from overtaking a queued one), for a caller that would only
//! wait for the callback. [`Wal::stats`] exposes fsync and byte counters that show the
//! batching.

#![warn(missing_docs)]

pub mod durable;
mod error;
mod fsutil;
mod hard_state;
mod index;
mod memlog;
mod options;
mod record;
mod recovery;
mod scan;
mod segments;
mod stats;
mod wal;
mod writer;

use std::sync::Arc;

pub use error::WalError;
pub use hard_state::{HardStateFile, HARD_STATE_FILE_NAME, MAX_HARD_STATE_BYTES};
pub use options::{SyncMode, WalOptions, DEFAULT_SEGMENT_BYTES, MIN_SEGMENT_BYTES};
pub use record::MAX_ENTRY_BYTES;
pub use recovery::{RecoveryReport, TornTail};
pub use stats::WalStats;
pub use wal::Wal;
pub use writer::MAX_QUEUED_REQUESTS;

/// An entry's payload as stored in memory and returned by [`Wal::read`]: shared, so reads and
/// the writer thread never copy it.
pub type Payload = Arc<[u8]>;

/// The completion callback of [`Wal::append`]: called exactly once, with `Ok(())` once the
/// entries are durable or with the error.
pub type DoneCallback = Box<dyn FnOnce(Result<(), WalError>) + Send>;
