//! Segment files: their names, and which of them a purge may delete. Pure code, no I/O.
//!
//! A segment is named `<seq:016x>-<first_index:016x>.wal`; `seq` counts segments from 0 with no
//! holes among the files present, and `first_index` is the log's next index when the segment
//! was created. Only a prefix of the sequence is ever deleted, so the files present always form
//! one unbroken run.

use std::path::{Path, PathBuf};

/// File-name suffix of a segment.
pub(crate) const SEGMENT_SUFFIX: &str = ".wal";

/// Suffix of a segment being created; such files are incomplete and removed by `open`.
pub(crate) const TEMP_SUFFIX: &str = ".wal.tmp";

/// The file name of segment `seq` whose first index is `first_index`.
pub(crate) fn segment_file_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}{SEGMENT_SUFFIX}")
}

/// Parses a segment file name back into `(seq, first_index)`; `None` for any other file.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    let (seq, first) = stem.split_once('-')?;
    if seq.len() != 16 || first.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(first, 16).ok()?,
    ))
}

/// What the WAL knows about one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    /// Position in the sequence.
    pub seq: u64,
    /// The log's next index when the segment was created.
    pub first_index: u64,
    /// Full path of the file.
    pub path: PathBuf,
    /// Highest index in this file that is still part of the log (not replaced or truncated by
    /// a later record), or `None` if it holds no live entry.
    pub max_live: Option<u64>,
}

impl SegmentMeta {
    /// A segment with no live entry yet.
    pub(crate) fn new(dir: &Path, seq: u64, first_index: u64) -> SegmentMeta {
        SegmentMeta {
            seq,
            first_index,
            path: dir.join(segment_file_name(seq, first_index)),
            max_live: None,
        }
    }

    /// Forgets live entries at or above `from`.
    fn cap_below(&mut self, from: u64) {
        self.max_live = match (self.max_live, from.checked_sub(1)) {
            (Some(max), Some(limit)) => Some(max.min(limit)),
            _ => None,
        };
    }
}

/// The segment files of the log in sequence order; the last one is being written.
#[derive(Debug, Default)]
pub(crate) struct SegmentSet {
    segments: Vec<SegmentMeta>,
}

impl SegmentSet {
    /// Adds the next segment. Its `seq` must follow the current last one.
    pub(crate) fn push(&mut self, segment: SegmentMeta) {
        if let Some(last) = self.segments.last() {
            assert_eq!(
                segment.seq,
                last.seq + 1,
                "segment sequence numbers must be consecutive"
            );
        }
        self.segments.push(segment);
    }

    /// The segment being written. Panics if there is none: the WAL always has one after open.
    pub(crate) fn current(&self) -> &SegmentMeta {
        self.segments
            .last()
            .expect("the WAL always has a segment being written after open")
    }

    /// Number of segment files.
    pub(crate) fn len(&self) -> usize {
        self.segments.len()
    }

    /// Records that an entry at `index` was written to the current segment: every entry at or
    /// above `index`, in any segment, is no longer live.
    pub(crate) fn on_entry(&mut self, index: u64) {
        self.on_truncate(index);
        let current = self
            .segments
            .last_mut()
            .expect("the WAL always has a segment being written after open");
        current.max_live = Some(index);
    }

    /// Records that entries `>= from` were truncated.
    pub(crate) fn on_truncate(&mut self, from: u64) {
        for segment in &mut self.segments {
            segment.cap_below(from);
        }
    }

    /// Removes and returns the longest prefix of segments whose live entries are all `<= upto`.
    /// The segment being written is never included: it is still needed to append.
    pub(crate) fn take_purgeable(&mut self, upto: u64) -> Vec<SegmentMeta> {
        let closed = self.segments.len().saturating_sub(1);
        let count = self.segments[..closed]
            .iter()
            .take_while(|s| s.max_live.is_none_or(|max| max <= upto))
            .count();
        self.segments.drain(..count).collect()
    }

    /// Puts back segments that [`SegmentSet::take_purgeable`] returned but that could not be
    /// deleted, so a later purge retries them.
    pub(crate) fn restore_front(&mut self, mut segments: Vec<SegmentMeta>) {
        segments.append(&mut self.segments);
        self.segments = segments;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(ranges: &[(u64, Option<u64>)]) -> SegmentSet {
        let mut set = SegmentSet::default();
        for (seq, (first, max_live)) in ranges.iter().enumerate() {
            let mut meta = SegmentMeta::new(Path::new("/wal"), seq as u64, *first);
            meta.max_live = *max_live;
            set.push(meta);
        }
        set
    }

    // Names round-trip and other files in the directory are ignored.
    #[test]
    fn names_round_trip() {
        let name = segment_file_name(3, 0x1234);
        assert_eq!(name, "0000000000000003-0000000000001234.wal");
        assert_eq!(parse_segment_file_name(&name), Some((3, 0x1234)));
        assert_eq!(parse_segment_file_name("hardstate"), None);
        assert_eq!(parse_segment_file_name(&format!("{name}.tmp")), None);
        assert_eq!(parse_segment_file_name("3-1234.wal"), None);
    }

    // Purge takes whole segments from the front, stops at the first one still needed, and
    // never takes the segment being written.
    #[test]
    fn purge_takes_a_prefix_of_closed_segments() {
        let mut set = set_of(&[(1, Some(10)), (11, Some(20)), (21, Some(30))]);
        assert!(set.take_purgeable(9).is_empty());
        let taken = set.take_purgeable(1000);
        assert_eq!(taken.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(set.current().seq, 2);
        set.restore_front(taken);
        assert_eq!(set.len(), 3);
    }

    // A truncation that reaches into an older segment makes it purgeable sooner.
    #[test]
    fn truncate_lowers_live_ranges() {
        let mut set = set_of(&[(1, Some(10)), (11, Some(20))]);
        set.on_entry(5); // replaces 5.. while the second segment is current
        assert_eq!(set.segments[0].max_live, Some(4));
        assert_eq!(set.segments[1].max_live, Some(5));
        assert_eq!(set.take_purgeable(4).len(), 1);
    }
}
