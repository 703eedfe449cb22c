//! The operator snapshot file that `Maintenance.Snapshot` streams and `etcdctl snapshot
//! save` writes:
//!
//! ```text
//! MVCC snapshot stream (skiff-mvcc format, CRC-32C framed) | zero padding | stream length u64 BE | SHA-256
//! └──────────────────────── a multiple of 512 bytes ───────────────────────┘   32 bytes
//! ```
//!
//! etcd sends its bbolt file (whole 512-byte pages) followed by the file's SHA-256, and
//! etcdctl refuses a download whose size is not `512 * n + 32` ("sha256 checksum not
//! found"). The padding and the trailing hash make skiff's file pass the same check, and
//! restore verifies the hash before it reads the stream (whose own CRCs it checks again).

use sha2::{Digest, Sha256};

/// Bytes of the trailing SHA-256.
const HASH_BYTES: usize = 32;
/// etcdctl expects the body before the hash to be whole 512-byte pages.
const PAGE_BYTES: usize = 512;
/// Bytes of the stream length field.
const LEN_BYTES: usize = 8;

/// Why a snapshot file cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotFileError {
    /// The size is not `512 * n + 32`: truncated or not a snapshot.
    #[error("file size {0} is not a whole snapshot (truncated?)")]
    BadSize(usize),
    /// The SHA-256 does not match the contents.
    #[error("sha256 checksum mismatch: the file is corrupt")]
    HashMismatch,
    /// The recorded stream length or the padding is impossible.
    #[error("snapshot framing is corrupt: {0}")]
    BadFraming(String),
}

/// Wraps an MVCC snapshot stream into the file format.
pub fn wrap(mut stream: Vec<u8>) -> Vec<u8> {
    let len = stream.len();
    let body = (len + LEN_BYTES).div_ceil(PAGE_BYTES) * PAGE_BYTES;
    stream.resize(body - LEN_BYTES, 0);
    stream.extend_from_slice(&(len as u64).to_be_bytes());
    let hash = Sha256::digest(&stream);
    stream.extend_from_slice(&hash);
    stream
}

/// Checks a snapshot file and returns the MVCC snapshot stream inside it.
pub fn unwrap(file: &[u8]) -> Result<&[u8], SnapshotFileError> {
    if file.len() < PAGE_BYTES + HASH_BYTES || file.len() % PAGE_BYTES != HASH_BYTES {
        return Err(SnapshotFileError::BadSize(file.len()));
    }
    let (body, hash) = file.split_at(file.len() - HASH_BYTES);
    if Sha256::digest(body).as_slice() != hash {
        return Err(SnapshotFileError::HashMismatch);
    }
    let (data, len) = body.split_at(body.len() - LEN_BYTES);
    let len = u64::from_be_bytes(len.try_into().expect("8 bytes")) as usize;
    if len > data.len() {
        return Err(SnapshotFileError::BadFraming(format!(
            "stream length {len} exceeds the file"
        )));
    }
    if data[len..].iter().any(|b| *b != 0) {
        return Err(SnapshotFileError::BadFraming("padding is not zero".into()));
    }
    Ok(&data[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Streams of every size round-trip and the file size passes etcdctl's check.
    #[test]
    fn round_trip_sizes() {
        for n in [0usize, 1, 503, 504, 505, 1000, 4096] {
            let stream: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let file = wrap(stream.clone());
            assert_eq!(file.len() % PAGE_BYTES, HASH_BYTES, "size {n}");
            assert_eq!(unwrap(&file).unwrap(), &stream[..]);
        }
    }

    // A flipped byte anywhere or a truncation is refused.
    #[test]
    fn damage_is_refused() {
        let file = wrap(vec![7u8; 700]);
        for i in (0..file.len()).step_by(37) {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert!(unwrap(&bad).is_err(), "flip at {i}");
        }
        assert!(matches!(
            unwrap(&file[..file.len() - 1]),
            Err(SnapshotFileError::BadSize(_))
        ));
        assert!(matches!(
            unwrap(&file[..file.len() - 512]),
            Err(SnapshotFileError::HashMismatch)
        ));
    }
}
