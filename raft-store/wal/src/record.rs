//! Record framing: how one record is laid out in a segment file. Pure code, no I/O.
//!
//! ```text
//! offset  size  field
//! 0       4     len      u32 LE: number of payload bytes (the type byte is not counted)
//! 4       4     crc      u32 LE: CRC32C over the type byte followed by the payload
//! 8       1     type     1 = Header, 2 = Entry, 3 = Truncate, 4 = Purge (0 is never valid)
//! 9       len   payload  depends on the type, integers little-endian:
//!                          Header   magic "SKIFFWAL" (8) | version u32 | seq u64 | first_index u64
//!                          Entry    index u64 | the caller's opaque bytes
//!                          Truncate from u64      (entries >= from are gone)
//!                          Purge    upto u64      (entries <= upto are no longer needed)
//! ```
//!
//! No record has an empty payload and type 0 is invalid, so a zero-filled region never decodes
//! as a record. Decoding separates *framing* failures ([`FrameError::is_framing`]: the bytes may
//! be a torn write) from records whose CRC is valid but whose content is impossible, which can
//! only be a bug or tampering and is always reported as corruption.

use std::fmt;

/// Bytes before a record's payload: len (4) + crc (4) + type (1).
pub(crate) const RECORD_HEADER_BYTES: usize = 9;

/// Largest record payload, in bytes. It bounds the memory one corrupt length field can make
/// recovery allocate or scan, and comfortably exceeds any Raft entry the server accepts.
pub(crate) const MAX_RECORD_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;

/// Largest caller payload of one log entry, in bytes (the record also carries the index).
pub const MAX_ENTRY_BYTES: usize = MAX_RECORD_PAYLOAD_BYTES - 8;

/// The first eight payload bytes of every segment header.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"SKIFFWAL";

/// The on-disk format version written into every segment header.
pub(crate) const FORMAT_VERSION: u32 = 1;

const TYPE_HEADER: u8 = 1;
const TYPE_ENTRY: u8 = 2;
const TYPE_TRUNCATE: u8 = 3;
const TYPE_PURGE: u8 = 4;

/// Payload bytes of a header record: magic + version + seq + first_index.
const HEADER_PAYLOAD_BYTES: usize = 8 + 4 + 8 + 8;

/// Bytes a whole header record occupies at the start of every segment.
pub(crate) const HEADER_RECORD_BYTES: usize = RECORD_HEADER_BYTES + HEADER_PAYLOAD_BYTES;

/// The first record of every segment; it repeats what the file name says so a renamed or
/// misplaced file is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// Position of the segment in the log, counting from 0.
    pub seq: u64,
    /// The log's next index when the segment was created (not necessarily its first entry:
    /// a later Truncate may rewind below it).
    pub first_index: u64,
}

/// One decoded record; `Entry` borrows its payload from the segment buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Header(SegmentHeader),
    Entry { index: u64, payload: &'a [u8] },
    Truncate { from: u64 },
    Purge { upto: u64 },
}

/// Why the bytes at an offset are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes remain than the record header, or than its length field announces.
    Incomplete { needed: usize, available: usize },
    /// The length field is zero: no record has an empty payload (typically zero fill).
    ZeroLength,
    /// The length field exceeds [`MAX_RECORD_PAYLOAD_BYTES`].
    TooLong { len: usize },
    /// The stored CRC does not match the bytes.
    BadCrc { stored: u32, computed: u32 },
    /// The CRC matches but the type byte is unknown (a newer format, or a bug).
    UnknownType { record_type: u8 },
    /// The CRC matches but the payload is impossible for its type (a bug, never a torn write).
    Malformed { reason: String },
}

impl FrameError {
    /// True for failures a torn (partially persisted) write can produce. A record with a valid
    /// CRC but an impossible content was written that way and is never treated as torn.
    pub(crate) fn is_framing(&self) -> bool {
        !matches!(
            self,
            FrameError::UnknownType { .. } | FrameError::Malformed { .. }
        )
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Incomplete { needed, available } => write!(
                f,
                "incomplete record: {needed} bytes needed, {available} left in the file"
            ),
            FrameError::ZeroLength => write!(f, "record length is zero"),
            FrameError::TooLong { len } => write!(
                f,
                "record length {len} exceeds the maximum {MAX_RECORD_PAYLOAD_BYTES}"
            ),
            FrameError::BadCrc { stored, computed } => write!(
                f,
                "CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            FrameError::UnknownType { record_type } => write!(
                f,
                "unknown record type {record_type} (written by a newer version?)"
            ),
            FrameError::Malformed { reason } => write!(f, "malformed record: {reason}"),
        }
    }
}

/// Bytes `record` occupies once framed.
pub(crate) fn encoded_len(record: &Record<'_>) -> usize {
    RECORD_HEADER_BYTES + payload_len(record)
}

fn payload_len(record: &Record<'_>) -> usize {
    match record {
        Record::Header(_) => HEADER_PAYLOAD_BYTES,
        Record::Entry { payload, .. } => 8 + payload.len(),
        Record::Truncate { .. } | Record::Purge { .. } => 8,
    }
}

/// Appends the framed `record` to `out`.
///
/// Panics if an entry payload exceeds [`MAX_ENTRY_BYTES`]: callers validate sizes before a
/// request is accepted, so an oversized record here is a bug.
pub(crate) fn encode(record: &Record<'_>, out: &mut Vec<u8>) {
    let len = payload_len(record);
    assert!(
        len <= MAX_RECORD_PAYLOAD_BYTES,
        "record payload of {len} bytes passed validation but exceeds the format limit"
    );
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]); // len + crc, filled in below
    match record {
        Record::Header(h) => {
            out.push(TYPE_HEADER);
            out.extend_from_slice(&SEGMENT_MAGIC);
            out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            out.extend_from_slice(&h.seq.to_le_bytes());
            out.extend_from_slice(&h.first_index.to_le_bytes());
        }
        Record::Entry { index, payload } => {
            out.push(TYPE_ENTRY);
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(payload);
        }
        Record::Truncate { from } => {
            out.push(TYPE_TRUNCATE);
            out.extend_from_slice(&from.to_le_bytes());
        }
        Record::Purge { upto } => {
            out.push(TYPE_PURGE);
            out.extend_from_slice(&upto.to_le_bytes());
        }
    }
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the record starting at `offset` in `buf`, returning it and the offset just past it.
pub(crate) fn decode(buf: &[u8], offset: usize) -> Result<(Record<'_>, usize), FrameError> {
    let rest = &buf[offset.min(buf.len())..];
    if rest.len() < RECORD_HEADER_BYTES {
        return Err(FrameError::Incomplete {
            needed: RECORD_HEADER_BYTES,
            available: rest.len(),
        });
    }
    let len = read_u32(&rest[0..4]) as usize;
    let stored = read_u32(&rest[4..8]);
    if len == 0 {
        return Err(FrameError::ZeroLength);
    }
    if len > MAX_RECORD_PAYLOAD_BYTES {
        return Err(FrameError::TooLong { len });
    }
    let total = RECORD_HEADER_BYTES + len;
    if rest.len() < total {
        return Err(FrameError::Incomplete {
            needed: total,
            available: rest.len(),
        });
    }
    let computed = crc32c::crc32c(&rest[8..total]);
    if computed != stored {
        return Err(FrameError::BadCrc { stored, computed });
    }
    let record = decode_body(rest[8], &rest[RECORD_HEADER_BYTES..total])?;
    Ok((record, offset + total))
}

/// Interprets a payload whose CRC already matched.
fn decode_body(record_type: u8, body: &[u8]) -> Result<Record<'_>, FrameError> {
    match record_type {
        TYPE_HEADER => decode_header(body),
        TYPE_ENTRY if body.len() >= 8 => Ok(Record::Entry {
            index: read_u64(&body[0..8]),
            payload: &body[8..],
        }),
        TYPE_ENTRY => Err(malformed(format!(
            "entry payload of {} bytes is shorter than its index",
            body.len()
        ))),
        TYPE_TRUNCATE | TYPE_PURGE if body.len() != 8 => Err(malformed(format!(
            "type {record_type} needs an 8-byte payload, found {} bytes",
            body.len()
        ))),
        TYPE_TRUNCATE => Ok(Record::Truncate {
            from: read_u64(body),
        }),
        TYPE_PURGE => Ok(Record::Purge {
            upto: read_u64(body),
        }),
        other => Err(FrameError::UnknownType { record_type: other }),
    }
}

fn decode_header(body: &[u8]) -> Result<Record<'_>, FrameError> {
    if body.len() != HEADER_PAYLOAD_BYTES {
        return Err(malformed(format!(
            "segment header of {} bytes, expected {HEADER_PAYLOAD_BYTES}",
            body.len()
        )));
    }
    if body[0..8] != SEGMENT_MAGIC {
        return Err(malformed("segment header without the SKIFFWAL magic"));
    }
    let version = read_u32(&body[8..12]);
    if version != FORMAT_VERSION {
        return Err(malformed(format!(
            "segment format version {version}, this build reads version {FORMAT_VERSION}"
        )));
    }
    Ok(Record::Header(SegmentHeader {
        seq: read_u64(&body[12..20]),
        first_index: read_u64(&body[20..28]),
    }))
}

fn malformed(reason: impl Into<String>) -> FrameError {
    FrameError::Malformed {
        reason: reason.into(),
    }
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(bytes);
    u32::from_le_bytes(raw)
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(bytes);
    u64::from_le_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(record: &Record<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(record, &mut out);
        out
    }

    // Every record type survives an encode/decode round trip and reports its framed length.
    #[test]
    fn round_trip_all_types() {
        let records = [
            Record::Header(SegmentHeader {
                seq: 7,
                first_index: 42,
            }),
            Record::Entry {
                index: 9,
                payload: b"hello",
            },
            Record::Entry {
                index: 0,
                payload: b"",
            },
            Record::Truncate { from: 3 },
            Record::Purge { upto: u64::MAX - 1 },
        ];
        for record in records {
            let bytes = framed(&record);
            assert_eq!(bytes.len(), encoded_len(&record));
            assert_eq!(decode(&bytes, 0), Ok((record, bytes.len())));
        }
    }

    // A record cut anywhere before its end is reported as incomplete, never as a record.
    #[test]
    fn every_cut_is_incomplete() {
        let bytes = framed(&Record::Entry {
            index: 1,
            payload: b"abcdef",
        });
        for cut in 0..bytes.len() {
            let err = decode(&bytes[..cut], 0).unwrap_err();
            assert!(
                matches!(err, FrameError::Incomplete { .. }),
                "cut {cut}: {err}"
            );
        }
    }

    // Flipping any single byte of a record is detected (length, CRC, type or payload).
    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = framed(&Record::Entry {
            index: 1,
            payload: b"abcdef",
        });
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(decode(&bad, 0).is_err(), "flip at {at} went unnoticed");
        }
    }

    // Zero fill is never a record, and is classified as a possible torn write.
    #[test]
    fn zeros_are_not_a_record() {
        let err = decode(&[0u8; 64], 0).unwrap_err();
        assert_eq!(err, FrameError::ZeroLength);
        assert!(err.is_framing());
    }

    // A valid CRC over an impossible payload is corruption, not a torn write.
    #[test]
    fn valid_crc_with_bad_content_is_not_framing() {
        let mut bytes = framed(&Record::Truncate { from: 1 });
        bytes[8] = 99; // unknown type; fix the CRC so only the content is wrong
        let crc = crc32c::crc32c(&bytes[8..]);
        bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        let err = decode(&bytes, 0).unwrap_err();
        assert_eq!(err, FrameError::UnknownType { record_type: 99 });
        assert!(!err.is_framing());
    }
}
