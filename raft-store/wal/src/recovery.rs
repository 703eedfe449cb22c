//! Opening a WAL directory: replays every segment into the in-memory log, repairs a torn tail,
//! and reports everything else that is wrong as [`WalError::Corrupt`].
//!
//! ```text
//!  list *.wal ──> check seq 0..n has no hole ──> for each segment, in order:
//!                                                  read file ─> scan::scan_segment
//!                                                  header matches name and log position?
//!                                                  apply Entry / Truncate / Purge
//!                                                  last segment, torn tail? cut file + warn
//!  ──> MemLog + SegmentSet + tail file opened for appending
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::memlog::MemLog;
use crate::record::{Record, SegmentHeader};
use crate::scan::{self, ScanEnd};
use crate::segments::{parse_segment_file_name, SegmentMeta, SegmentSet};
use crate::{Payload, WalError};

/// What [`Wal::open`](crate::Wal::open) found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files replayed (1 for a new WAL: its first segment is created by `open`).
    pub segments: usize,
    /// Entries held after replay.
    pub entries: u64,
    /// First index held after replay.
    pub first_index: Option<u64>,
    /// Last index held after replay.
    pub last_index: Option<u64>,
    /// The torn write cut from the end of the last segment, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Half-created segment files (`*.wal.tmp`) removed.
    pub removed_temp_files: usize,
}

/// A torn write found at the end of the last segment and cut off by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file that was cut.
    pub file: PathBuf,
    /// Where the torn record started; the file now ends here.
    pub offset: u64,
    /// Bytes removed.
    pub dropped_bytes: u64,
    /// What was wrong with the torn record.
    pub cause: String,
}

/// Everything the WAL needs to resume after a successful recovery.
pub(crate) struct Recovered {
    pub log: MemLog,
    pub tail: Tail,
    pub report: RecoveryReport,
}

/// The segment files and the open last segment, handed to the writer thread.
pub(crate) struct Tail {
    pub segments: SegmentSet,
    /// The last segment, opened for appending.
    pub file: File,
    /// Size of the last segment in bytes.
    pub bytes: u64,
}

/// Replays the WAL in `dir` (which must exist), creating the first segment of a new WAL.
/// The tail segment handed back is preallocated to `segment_bytes` (see
/// [`fsutil::preallocate`]).
pub(crate) fn recover(dir: &Path, segment_bytes: u64) -> Result<Recovered, WalError> {
    let removed = fsutil::remove_temp_segments(dir)?;
    for path in &removed {
        tracing::info!(file = %path.display(), "removed a half-created WAL segment");
    }
    let found = list_segments(dir)?;
    check_sequence(&found)?;
    let mut recovered = match found.first() {
        None => fresh(dir, segment_bytes)?,
        Some(first) => replay_all(dir, &found, first.first_index, segment_bytes)?,
    };
    recovered.report.removed_temp_files = removed.len();
    Ok(recovered)
}

/// A new WAL: one empty segment starting at index 0.
fn fresh(dir: &Path, segment_bytes: u64) -> Result<Recovered, WalError> {
    let (tail, tail_bytes) = fsutil::create_segment(dir, 0, 0, segment_bytes)?;
    let mut segments = SegmentSet::default();
    segments.push(SegmentMeta::new(dir, 0, 0));
    Ok(Recovered {
        log: MemLog::empty_at(0),
        tail: Tail {
            segments,
            file: tail,
            bytes: tail_bytes,
        },
        report: RecoveryReport {
            segments: 1,
            ..RecoveryReport::default()
        },
    })
}

/// Segment files in `dir`, sorted by sequence number.
fn list_segments(dir: &Path) -> Result<Vec<SegmentMeta>, WalError> {
    let mut found: Vec<SegmentMeta> = fsutil::list_dir(dir)?
        .into_iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let (seq, first_index) = parse_segment_file_name(name)?;
            Some(SegmentMeta::new(dir, seq, first_index))
        })
        .collect();
    found.sort_by_key(|s| s.seq);
    Ok(found)
}

/// Segment numbers must be one unbroken run: purge only deletes from the front, so a hole means
/// a file was lost or removed by hand, and the entries it held are gone.
fn check_sequence(found: &[SegmentMeta]) -> Result<(), WalError> {
    for pair in found.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            return Err(WalError::corrupt(
                &pair[1].path,
                0,
                format!(
                    "segment {} follows segment {}: the segment(s) in between are missing",
                    pair[1].seq, pair[0].seq
                ),
            ));
        }
    }
    Ok(())
}

fn replay_all(
    dir: &Path,
    found: &[SegmentMeta],
    first_index: u64,
    segment_bytes: u64,
) -> Result<Recovered, WalError> {
    let mut replay = Replay {
        log: MemLog::empty_at(first_index),
        segments: SegmentSet::default(),
        torn_tail: None,
        data_end: 0,
    };
    for (position, meta) in found.iter().enumerate() {
        let is_last = position + 1 == found.len();
        replay.segment(dir, meta, is_last)?;
    }
    let last = &found[found.len() - 1];
    // Not O_APPEND: the file may be preallocated beyond its data, and appends continue
    // where the data ends.
    let mut tail = OpenOptions::new()
        .write(true)
        .open(&last.path)
        .map_err(|e| WalError::io("open last segment", &last.path, e))?;
    let tail_bytes = replay.data_end;
    tail.seek(SeekFrom::Start(tail_bytes))
        .map_err(|e| WalError::io("seek to the end of the last segment", &last.path, e))?;
    fsutil::preallocate(&tail, &last.path, segment_bytes);
    let index = *replay.log.index();
    let report = RecoveryReport {
        segments: found.len(),
        entries: index.len(),
        first_index: index.first_index(),
        last_index: index.last_index(),
        torn_tail: replay.torn_tail,
        removed_temp_files: 0,
    };
    Ok(Recovered {
        log: replay.log,
        tail: Tail {
            segments: replay.segments,
            file: tail,
            bytes: tail_bytes,
        },
        report,
    })
}

/// Replay state carried from one segment to the next.
struct Replay {
    log: MemLog,
    segments: SegmentSet,
    torn_tail: Option<TornTail>,
    /// Where the data of the segment replayed last ends (its size, less unwritten space).
    data_end: u64,
}

impl Replay {
    /// Replays one segment file.
    fn segment(&mut self, dir: &Path, meta: &SegmentMeta, is_last: bool) -> Result<(), WalError> {
        let bytes =
            fs::read(&meta.path).map_err(|e| WalError::io("read segment", &meta.path, e))?;
        let scan = scan::scan_segment(&bytes, is_last);
        let mut records = scan.records.iter();
        match records.next() {
            Some((_, Record::Header(header))) => self.check_header(meta, header)?,
            Some(_) => {
                let reason = "the first record is not a segment header";
                return Err(WalError::corrupt(&meta.path, 0, reason));
            }
            None => return Err(missing_header(meta, &scan.end)),
        }
        self.segments
            .push(SegmentMeta::new(dir, meta.seq, meta.first_index));
        for (offset, record) in records {
            self.apply(meta, *offset, record)?;
        }
        match scan.end {
            ScanEnd::Clean => {
                self.data_end = bytes.len() as u64;
                Ok(())
            }
            ScanEnd::Unwritten { offset } => {
                self.data_end = offset;
                Ok(())
            }
            ScanEnd::Corrupt { offset, reason } => {
                Err(WalError::corrupt(&meta.path, offset, reason))
            }
            ScanEnd::TornTail {
                offset,
                dropped_bytes,
                cause,
            } => {
                self.data_end = offset;
                self.cut_torn_tail(meta, offset, dropped_bytes, cause.to_string())
            }
        }
    }

    /// The header must repeat the file name, and the segment must start where the previous one
    /// left the log; otherwise a file was renamed, copied in, or records are missing.
    fn check_header(&self, meta: &SegmentMeta, header: &SegmentHeader) -> Result<(), WalError> {
        let named = SegmentHeader {
            seq: meta.seq,
            first_index: meta.first_index,
        };
        if *header != named {
            return Err(WalError::corrupt(
                &meta.path,
                0,
                format!("segment header says {header:?} but the file name says {named:?}"),
            ));
        }
        let expected = self.log.index().next();
        if header.first_index != expected {
            return Err(WalError::corrupt(
                &meta.path,
                0,
                format!(
                    "segment starts at index {} but the previous segments end before index \
                     {expected}: records are missing",
                    header.first_index
                ),
            ));
        }
        Ok(())
    }

    /// Applies one record after the header, with the same transitions the live log used.
    fn apply(
        &mut self,
        meta: &SegmentMeta,
        offset: u64,
        record: &Record<'_>,
    ) -> Result<(), WalError> {
        let corrupt = |reason: String| WalError::corrupt(&meta.path, offset, reason);
        match *record {
            Record::Header(_) => Err(corrupt("a second segment header inside the segment".into())),
            Record::Entry { index, .. } | Record::Truncate { from: index } if index == u64::MAX => {
                Err(corrupt("index u64::MAX is outside the index space".into()))
            }
            Record::Purge { upto: u64::MAX } => Err(corrupt(
                "purge up to u64::MAX is outside the index space".into(),
            )),
            Record::Entry { index, payload } => {
                self.log
                    .apply_entry(index, Payload::from(payload))
                    .map_err(|gap| corrupt(gap.to_string()))?;
                self.segments.on_entry(index);
                Ok(())
            }
            Record::Truncate { from } => {
                self.log.apply_truncate(from);
                self.segments.on_truncate(from);
                Ok(())
            }
            Record::Purge { upto } => {
                self.log.apply_purge(upto);
                Ok(())
            }
        }
    }

    /// Cuts the torn write off the last segment so appends continue after the last good record.
    fn cut_torn_tail(
        &mut self,
        meta: &SegmentMeta,
        offset: u64,
        dropped_bytes: u64,
        cause: String,
    ) -> Result<(), WalError> {
        tracing::warn!(
            file = %meta.path.display(),
            offset,
            dropped_bytes,
            %cause,
            "WAL ends with a torn write (a crash during an unacknowledged append); cutting it off"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(&meta.path)
            .map_err(|e| WalError::io("open segment to cut a torn tail", &meta.path, e))?;
        file.set_len(offset)
            .map_err(|e| WalError::io("cut torn tail of", &meta.path, e))?;
        file.sync_all().map_err(|e| {
            WalError::io("fsync segment after cutting its torn tail", &meta.path, e)
        })?;
        self.torn_tail = Some(TornTail {
            file: meta.path.clone(),
            offset,
            dropped_bytes,
            cause,
        });
        Ok(())
    }
}

/// The error for a segment whose first record is not a valid header. Segments are created
/// atomically with their header (see [`fsutil::create_segment`]), so even in the last segment
/// this is corruption, not a torn write.
fn missing_header(meta: &SegmentMeta, end: &ScanEnd) -> WalError {
    let reason = match end {
        ScanEnd::Clean | ScanEnd::Unwritten { .. } => {
            "the segment is empty: it has no header record".to_string()
        }
        ScanEnd::TornTail { cause, .. } => format!("bad segment header: {cause}"),
        ScanEnd::Corrupt { reason, .. } => format!("bad segment header: {reason}"),
    };
    WalError::corrupt(&meta.path, 0, reason)
}
