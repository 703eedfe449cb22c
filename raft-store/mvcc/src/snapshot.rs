//! The snapshot stream format: a self-describing, checksummed copy of every RocksDB entry.
//! Pure encoding over `io::Write` / `io::Read`; `store.rs` feeds and drains it.
//!
//! ```text
//! header : "SKIFFMVC" | format u32 | crc32c(previous 12 bytes) u32
//! chunk* : 'C' | payload_len u32 | crc32c(payload) u32 | payload
//!          payload = (key_len u32 | key | value_len u32 | value)*   keys strictly ascending
//! trailer: 'E' | records u64 | revision i64 | compact_revision i64 | crc32c('E'..compact) u32
//! ```
//!
//! All integers are big-endian. A reader rejects anything else: wrong magic or version, a
//! checksum mismatch, a truncated stream, keys out of order, a record count that differs from
//! the trailer's, or bytes after the trailer.

use std::io::{self, Read, Write};

use crate::error::SnapshotError;

/// The first bytes of every snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"SKIFFMVC";
/// The stream format written by this version.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
/// Target payload size of one chunk, in bytes; a chunk holds whole records, so one large
/// record makes a larger chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// The largest chunk payload a reader accepts, in bytes. Protects the reader from allocating
/// whatever length a corrupt header claims; well above etcd's largest value (request size
/// limit of 1.5 MiB by default, at most a few tens of MiB when raised).
pub const MAX_SNAPSHOT_CHUNK_BYTES: usize = 256 << 20;

const TAG_CHUNK: u8 = b'C';
const TAG_END: u8 = b'E';
const TRAILER_LEN: usize = 1 + 8 + 8 + 8;

/// One RocksDB entry of a snapshot: (key, value).
pub type Record = (Vec<u8>, Vec<u8>);

/// What the trailer records about the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Number of records in the stream.
    pub records: u64,
    /// The store revision of the snapshot.
    pub revision: i64,
    /// The compact revision of the snapshot (`-1` if never compacted).
    pub compact_revision: i64,
}

/// Writes a snapshot stream.
pub struct Writer<'w> {
    out: &'w mut dyn Write,
    chunk: Vec<u8>,
    records: u64,
    bytes: u64,
}

impl<'w> Writer<'w> {
    /// Writes the header.
    pub fn new(out: &'w mut dyn Write) -> io::Result<Writer<'w>> {
        let mut header = Vec::with_capacity(16);
        header.extend_from_slice(SNAPSHOT_MAGIC);
        header.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_be_bytes());
        let crc = crc32c::crc32c(&header);
        header.extend_from_slice(&crc.to_be_bytes());
        out.write_all(&header)?;
        Ok(Writer {
            out,
            chunk: Vec::with_capacity(SNAPSHOT_CHUNK_BYTES),
            records: 0,
            bytes: header.len() as u64,
        })
    }

    /// Appends one record; keys must come in ascending order.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        for part in [key, value] {
            let len = u32::try_from(part.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
            self.chunk.extend_from_slice(&len.to_be_bytes());
            self.chunk.extend_from_slice(part);
        }
        self.records += 1;
        if self.chunk.len() >= SNAPSHOT_CHUNK_BYTES {
            self.flush_chunk()?;
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let len = u32::try_from(self.chunk.len())
            .ok()
            .filter(|&l| l as usize <= MAX_SNAPSHOT_CHUNK_BYTES)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "chunk too large"))?;
        let mut head = [0u8; 9];
        head[0] = TAG_CHUNK;
        head[1..5].copy_from_slice(&len.to_be_bytes());
        head[5..9].copy_from_slice(&crc32c::crc32c(&self.chunk).to_be_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(&self.chunk)?;
        self.bytes += (head.len() + self.chunk.len()) as u64;
        self.chunk.clear();
        Ok(())
    }

    /// Writes the last chunk and the trailer; returns (records, total bytes).
    pub fn finish(mut self, revision: i64, compact_revision: i64) -> io::Result<(u64, u64)> {
        self.flush_chunk()?;
        let mut trailer = Vec::with_capacity(TRAILER_LEN + 4);
        trailer.push(TAG_END);
        trailer.extend_from_slice(&self.records.to_be_bytes());
        trailer.extend_from_slice(&revision.to_be_bytes());
        trailer.extend_from_slice(&compact_revision.to_be_bytes());
        let crc = crc32c::crc32c(&trailer);
        trailer.extend_from_slice(&crc.to_be_bytes());
        self.out.write_all(&trailer)?;
        self.out.flush()?;
        Ok((self.records, self.bytes + trailer.len() as u64))
    }
}

/// Reads and validates a snapshot stream record by record.
pub struct Reader<'r> {
    input: &'r mut dyn Read,
    chunk: Vec<u8>,
    pos: usize,
    records: u64,
    last_key: Option<Vec<u8>>,
    trailer: Option<Trailer>,
}

fn corrupt(msg: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt(msg.into())
}

fn read_exact(input: &mut dyn Read, buf: &mut [u8], what: &str) -> Result<(), SnapshotError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => corrupt(format!("truncated in {what}")),
        _ => SnapshotError::Input(e),
    })
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

impl<'r> Reader<'r> {
    /// Reads and checks the header.
    pub fn new(input: &'r mut dyn Read) -> Result<Reader<'r>, SnapshotError> {
        let mut header = [0u8; 16];
        read_exact(input, &mut header, "the header")?;
        if &header[..8] != SNAPSHOT_MAGIC {
            return Err(corrupt("not a skiff-mvcc snapshot (bad magic)"));
        }
        if crc32c::crc32c(&header[..12]) != be_u32(&header[12..]) {
            return Err(corrupt("header checksum mismatch"));
        }
        let version = be_u32(&header[8..12]);
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(corrupt(format!(
                "unsupported snapshot format {version} (this build reads {SNAPSHOT_FORMAT_VERSION})"
            )));
        }
        Ok(Reader {
            input,
            chunk: Vec::new(),
            pos: 0,
            records: 0,
            last_key: None,
            trailer: None,
        })
    }

    /// The next record, or `None` after a valid trailer (see [`Reader::trailer`]).
    pub fn next_record(&mut self) -> Result<Option<Record>, SnapshotError> {
        while self.pos == self.chunk.len() {
            if self.trailer.is_some() || !self.read_frame()? {
                return Ok(None);
            }
        }
        let key = self.take_field("key")?;
        let value = self.take_field("value")?;
        if self.last_key.as_ref().is_some_and(|last| *last >= key) {
            return Err(corrupt("records out of order"));
        }
        self.last_key = Some(key.clone());
        self.records += 1;
        Ok(Some((key, value)))
    }

    /// The validated trailer, once [`Reader::next_record`] returned `None`.
    pub fn trailer(&self) -> Option<Trailer> {
        self.trailer
    }

    fn take_field(&mut self, what: &str) -> Result<Vec<u8>, SnapshotError> {
        let rest = &self.chunk[self.pos..];
        if rest.len() < 4 {
            return Err(corrupt(format!("record {what} length cut short")));
        }
        let len = be_u32(rest) as usize;
        if rest.len() - 4 < len {
            return Err(corrupt(format!("record {what} overruns its chunk")));
        }
        self.pos += 4 + len;
        Ok(rest[4..4 + len].to_vec())
    }

    /// Reads the next chunk (true) or the trailer (false).
    fn read_frame(&mut self) -> Result<bool, SnapshotError> {
        let mut tag = [0u8; 1];
        read_exact(self.input, &mut tag, "a frame tag")?;
        match tag[0] {
            TAG_CHUNK => self.read_chunk().map(|()| true),
            TAG_END => self.read_trailer().map(|()| false),
            other => Err(corrupt(format!("unknown frame tag {other:#x}"))),
        }
    }

    fn read_chunk(&mut self) -> Result<(), SnapshotError> {
        let mut head = [0u8; 8];
        read_exact(self.input, &mut head, "a chunk header")?;
        let len = be_u32(&head) as usize;
        if len == 0 || len > MAX_SNAPSHOT_CHUNK_BYTES {
            return Err(corrupt(format!("chunk length {len} out of bounds")));
        }
        self.chunk.resize(len, 0);
        read_exact(self.input, &mut self.chunk, "a chunk")?;
        if crc32c::crc32c(&self.chunk) != be_u32(&head[4..]) {
            return Err(corrupt("chunk checksum mismatch"));
        }
        self.pos = 0;
        Ok(())
    }

    fn read_trailer(&mut self) -> Result<(), SnapshotError> {
        let mut body = [0u8; TRAILER_LEN + 4];
        body[0] = TAG_END;
        read_exact(self.input, &mut body[1..], "the trailer")?;
        if crc32c::crc32c(&body[..TRAILER_LEN]) != be_u32(&body[TRAILER_LEN..]) {
            return Err(corrupt("trailer checksum mismatch"));
        }
        let trailer = Trailer {
            records: be_u64(&body[1..]),
            revision: be_u64(&body[9..]) as i64,
            compact_revision: be_u64(&body[17..]) as i64,
        };
        if trailer.records != self.records {
            return Err(corrupt(format!(
                "trailer counts {} records, stream had {}",
                trailer.records, self.records
            )));
        }
        let mut extra = [0u8; 1];
        match self.input.read(&mut extra) {
            Ok(0) => {}
            Ok(_) => return Err(corrupt("data after the trailer")),
            Err(e) => return Err(SnapshotError::Input(e)),
        }
        self.chunk.clear();
        self.pos = 0;
        self.trailer = Some(trailer);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(records: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out).unwrap();
        for i in 0..records {
            w.add(format!("k{i:06}").as_bytes(), &vec![i as u8; i % 300])
                .unwrap();
        }
        w.finish(77, 5).unwrap();
        out
    }

    fn read_all(bytes: &[u8]) -> Result<(Vec<Record>, Trailer), SnapshotError> {
        let mut input = bytes;
        let mut r = Reader::new(&mut input)?;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        Ok((out, r.trailer().expect("trailer after the last record")))
    }

    // A stream spanning several chunks reads back identically with its trailer.
    #[test]
    fn round_trip_many_chunks() {
        let bytes = sample(20_000);
        assert!(bytes.len() > 2 * SNAPSHOT_CHUNK_BYTES);
        let (records, trailer) = read_all(&bytes).unwrap();
        assert_eq!(records.len(), 20_000);
        assert_eq!(records[42].0, b"k000042");
        assert_eq!(records[42].1, vec![42u8; 42]);
        assert_eq!(
            trailer,
            Trailer {
                records: 20_000,
                revision: 77,
                compact_revision: 5
            }
        );
    }

    // An empty store still round-trips (header + trailer only).
    #[test]
    fn round_trip_empty() {
        let (records, trailer) = read_all(&sample(0)).unwrap();
        assert!(records.is_empty());
        assert_eq!(trailer.records, 0);
    }

    // Every single flipped byte and every truncation is detected as corruption.
    #[test]
    fn detects_damage() {
        let bytes = sample(50);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                matches!(read_all(&bad), Err(SnapshotError::Corrupt(_))),
                "flip at {i}"
            );
        }
        for len in 0..bytes.len() {
            assert!(
                matches!(read_all(&bytes[..len]), Err(SnapshotError::Corrupt(_))),
                "truncated to {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(read_all(&longer), Err(SnapshotError::Corrupt(_))));
    }
}
