//! Splits one segment's bytes into records and decides what a bad record means. Pure code.
//!
//! The torn-tail rule: a write interrupted by a crash can only damage the end of the segment
//! being written, and only bytes that were never fsynced (so never acknowledged). Therefore a
//! bad record is a **torn tail** only if it is in the last segment *and* no valid record can be
//! found anywhere after it: it is incomplete, or its CRC fails and only zeros or garbage follow
//! up to the end of the file. Recovery then cuts the file at the start of that record.
//!
//! Anything else — a bad record in an older segment, a bad record followed by a valid one, or a
//! record whose CRC is valid but whose content is impossible — cannot come from a torn write and
//! is reported as corruption, never repaired.
//!
//! Segments are preallocated (see `fsutil::create_segment`), so a segment normally ends with
//! zeros: space never written. When everything from a record boundary to the end of the file
//! is zero, the scan ends there cleanly ([`ScanEnd::Unwritten`]), in any segment: zeros never
//! decode as a record, and zeros to the end hold nothing that was ever acknowledged.

use crate::record::{self, FrameError, Record, RECORD_HEADER_BYTES};

/// The records of one segment and how the scan ended.
#[derive(Debug)]
pub(crate) struct Scan<'a> {
    /// Every valid record before the end, with its byte offset.
    pub records: Vec<(u64, Record<'a>)>,
    /// Why the scan stopped.
    pub end: ScanEnd,
}

/// How a segment scan ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every byte belonged to a valid record.
    Clean,
    /// Valid records up to `offset`, then only zeros to the end of the file: preallocated
    /// space not written yet. Appends continue at `offset`.
    Unwritten {
        /// Where the zeros start.
        offset: u64,
    },
    /// The last segment ends with a torn write starting at `offset`.
    TornTail {
        /// Where the bad record starts; the file should be cut here.
        offset: u64,
        /// Bytes from `offset` to the end of the file.
        dropped_bytes: u64,
        /// What was wrong with the record at `offset`.
        cause: FrameError,
    },
    /// A bad record that a torn write cannot explain.
    Corrupt {
        /// Where the bad record starts.
        offset: u64,
        /// What was found, for the operator.
        reason: String,
    },
}

/// Scans `bytes`, the whole content of a segment. `is_last` says whether it is the segment
/// being written, the only place a torn tail can be.
pub(crate) fn scan_segment(bytes: &[u8], is_last: bool) -> Scan<'_> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        match record::decode(bytes, offset) {
            Ok((record, next)) => {
                records.push((offset as u64, record));
                offset = next;
            }
            Err(error) => {
                let end = classify_bad_record(bytes, offset, error, is_last);
                return Scan { records, end };
            }
        }
    }
    Scan {
        records,
        end: ScanEnd::Clean,
    }
}

/// Applies the torn-tail rule to the bad record at `offset`.
fn classify_bad_record(bytes: &[u8], offset: usize, error: FrameError, is_last: bool) -> ScanEnd {
    let corrupt = |reason: String| ScanEnd::Corrupt {
        offset: offset as u64,
        reason,
    };
    if error.is_framing() && bytes[offset..].iter().all(|&b| b == 0) {
        return ScanEnd::Unwritten {
            offset: offset as u64,
        };
    }
    if !error.is_framing() {
        return corrupt(format!(
            "{error} (its CRC is valid, so this is not a torn write)"
        ));
    }
    if !is_last {
        return corrupt(format!("{error} in a segment that is not the last one"));
    }
    if let Some(valid_at) = next_valid_record(bytes, offset) {
        return corrupt(format!(
            "{error}, followed by a valid record at offset {valid_at}, so this is not a torn write"
        ));
    }
    ScanEnd::TornTail {
        offset: offset as u64,
        dropped_bytes: (bytes.len() - offset) as u64,
        cause: error,
    }
}

/// The offset of the first valid record strictly after `bad`, if any.
///
/// The likely candidate is tried first: when only a payload byte is damaged, the length field
/// still points at the next record. Otherwise every later offset is tried; almost all fail on
/// the length field alone, so the scan costs about one pass over the tail.
fn next_valid_record(bytes: &[u8], bad: usize) -> Option<usize> {
    let is_valid = |at: usize| record::decode(bytes, at).is_ok();
    if let Some(len) = length_field(bytes, bad) {
        let candidate = bad + RECORD_HEADER_BYTES + len;
        if candidate < bytes.len() && is_valid(candidate) {
            return Some(candidate);
        }
    }
    (bad + 1..bytes.len()).find(|&at| is_valid(at))
}

fn length_field(bytes: &[u8], at: usize) -> Option<usize> {
    let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SegmentHeader;

    /// A segment with a header and entries 1..=n, and the offset where each record starts.
    fn segment(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        let header = Record::Header(SegmentHeader {
            seq: 0,
            first_index: 1,
        });
        starts.push(bytes.len());
        record::encode(&header, &mut bytes);
        for index in 1..=n {
            starts.push(bytes.len());
            let payload = vec![index as u8; 20];
            record::encode(
                &Record::Entry {
                    index,
                    payload: &payload,
                },
                &mut bytes,
            );
        }
        (bytes, starts)
    }

    // An intact segment scans cleanly.
    #[test]
    fn clean_segment() {
        let (bytes, starts) = segment(3);
        let scan = scan_segment(&bytes, true);
        assert_eq!(scan.end, ScanEnd::Clean);
        assert_eq!(scan.records.len(), starts.len());
    }

    // A last record cut short is a torn tail starting where that record starts.
    #[test]
    fn cut_last_record_is_torn() {
        let (bytes, starts) = segment(3);
        let cut = &bytes[..bytes.len() - 5];
        let scan = scan_segment(cut, true);
        assert_eq!(scan.records.len(), 3);
        match scan.end {
            ScanEnd::TornTail {
                offset,
                dropped_bytes,
                ..
            } => {
                assert_eq!(offset as usize, starts[3]);
                assert_eq!(dropped_bytes as usize, cut.len() - starts[3]);
            }
            other => panic!("expected a torn tail, got {other:?}"),
        }
    }

    // Zero fill after the last record (preallocated space, or a lost metadata update) is
    // unwritten space, in the last segment and in older ones; a torn record followed by
    // zeros is still a torn tail.
    #[test]
    fn trailing_zeros_are_unwritten_space() {
        let (mut bytes, _) = segment(2);
        let end = bytes.len();
        bytes.resize(end + 4096, 0);
        for is_last in [true, false] {
            let scan = scan_segment(&bytes, is_last);
            assert_eq!(scan.end, ScanEnd::Unwritten { offset: end as u64 });
            assert_eq!(scan.records.len(), 3);
        }
        let (mut torn, starts) = segment(2);
        torn.truncate(starts[2] + 5);
        torn.resize(torn.len() + 4096, 0);
        let scan = scan_segment(&torn, true);
        assert!(
            matches!(scan.end, ScanEnd::TornTail { offset, .. } if offset as usize == starts[2]),
            "{:?}",
            scan.end
        );
    }

    // A damaged record with valid records after it is corruption even in the last segment,
    // and a damaged record in an older segment is always corruption.
    #[test]
    fn damage_before_valid_data_is_corrupt() {
        let (mut bytes, starts) = segment(3);
        bytes[starts[2] + 12] ^= 0xff;
        let scan = scan_segment(&bytes, true);
        assert!(
            matches!(&scan.end, ScanEnd::Corrupt { offset, reason }
                if *offset as usize == starts[2] && reason.contains("followed by a valid record")),
            "{:?}",
            scan.end
        );
        let (mut bytes, starts) = segment(3);
        let last = *starts.last().unwrap();
        bytes[last + 12] ^= 0xff;
        assert!(matches!(
            scan_segment(&bytes, false).end,
            ScanEnd::Corrupt { .. }
        ));
        assert!(matches!(
            scan_segment(&bytes, true).end,
            ScanEnd::TornTail { .. }
        ));
    }

    // A damaged length field still finds the valid records behind it by scanning every offset.
    #[test]
    fn damaged_length_still_finds_later_records() {
        let (mut bytes, starts) = segment(3);
        bytes[starts[1]] ^= 0x10;
        assert!(matches!(
            scan_segment(&bytes, true).end,
            ScanEnd::Corrupt { .. }
        ));
    }
}
