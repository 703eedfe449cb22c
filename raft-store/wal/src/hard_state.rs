//! [`HardStateFile`]: a tiny, atomically replaced, CRC-checked file for the Raft hard state
//! (vote, last purged log id) that lives next to the segments.
//!
//! ```text
//! offset  size  field
//! 0       4     magic    "SKHS"
//! 4       4     version  u32 LE (1)
//! 8       4     len      u32 LE: payload bytes
//! 12      4     crc      u32 LE: CRC32C of the payload
//! 16      len   payload  the caller's opaque bytes
//! ```
//!
//! `save` writes `hardstate.tmp`, fsyncs it, renames it over `hardstate` and fsyncs the
//! directory, so the file always holds either the old or the new value, never a mix. Any damage
//! found by `load` is therefore corruption, reported as [`WalError::Corrupt`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::WalError;
use crate::{durable, fsutil};

/// Name of the hard-state file inside the WAL directory.
pub const HARD_STATE_FILE_NAME: &str = "hardstate";

/// Largest hard-state payload, in bytes. A vote plus a log id is under 100 bytes; the limit
/// only stops a corrupt length field or a caller bug from allocating without bound.
pub const MAX_HARD_STATE_BYTES: usize = 64 * 1024;

const MAGIC: [u8; 4] = *b"SKHS";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 16;

/// A durable single-value store for Raft's hard state.
///
/// Contract: after `save(v)` returns `Ok`, `load()` returns `v` even after a crash; if `save`
/// fails, `load` returns either the previous value or `v`, and `save` may be retried. Saves are
/// serialized internally, so the type may be shared between threads.
#[derive(Debug)]
pub struct HardStateFile {
    dir: PathBuf,
    path: PathBuf,
    temp_path: PathBuf,
    /// Serializes saves: two concurrent saves would write the same temporary file.
    save_lock: Mutex<()>,
}

impl HardStateFile {
    /// Uses `<dir>/hardstate`, creating `dir` if needed. Nothing is read until [`Self::load`].
    pub fn open(dir: &Path) -> Result<HardStateFile, WalError> {
        durable::create_dir_all(dir).map_err(|e| WalError::io("create WAL directory", dir, e))?;
        Ok(HardStateFile {
            dir: dir.to_path_buf(),
            path: dir.join(HARD_STATE_FILE_NAME),
            temp_path: dir.join(format!("{HARD_STATE_FILE_NAME}.tmp")),
            save_lock: Mutex::new(()),
        })
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the stored value with `value`, durably (see the type's contract).
    ///
    /// Errors: [`WalError::InvalidRequest`] if `value` exceeds [`MAX_HARD_STATE_BYTES`];
    /// [`WalError::Io`] otherwise (the old value is still in place; retrying is safe).
    pub fn save(&self, value: &[u8]) -> Result<(), WalError> {
        if value.len() > MAX_HARD_STATE_BYTES {
            return Err(WalError::invalid(format!(
                "hard state of {} bytes exceeds the maximum {MAX_HARD_STATE_BYTES}",
                value.len()
            )));
        }
        let _serialized = self
            .save_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()); // holds no data
        self.write_temp(&encode(value))?;
        fs::rename(&self.temp_path, &self.path)
            .map_err(|e| WalError::io("rename hard state file over", &self.path, e))?;
        fsutil::sync_dir(&self.dir)
    }

    /// The stored value, `None` if nothing was ever saved.
    ///
    /// Errors: [`WalError::Corrupt`] if the file fails its checks (fatal: the member's vote is
    /// unknown, so it must be rebuilt); [`WalError::Io`] if it cannot be read.
    pub fn load(&self) -> Result<Option<Vec<u8>>, WalError> {
        match fs::read(&self.path) {
            Ok(bytes) => decode(&bytes)
                .map(Some)
                .map_err(|(offset, reason)| WalError::corrupt(&self.path, offset, reason)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(WalError::io("read hard state file", &self.path, e)),
        }
    }

    fn write_temp(&self, bytes: &[u8]) -> Result<(), WalError> {
        let mut file: File = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.temp_path)
            .map_err(|e| WalError::io("create", &self.temp_path, e))?;
        file.write_all(bytes)
            .map_err(|e| WalError::io("write", &self.temp_path, e))?;
        file.sync_all()
            .map_err(|e| WalError::io("fsync", &self.temp_path, e))
    }
}

fn encode(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + value.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(value).to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// Checks and strips the header; on failure returns the offending offset and what was wrong.
fn decode(bytes: &[u8]) -> Result<Vec<u8>, (u64, String)> {
    if bytes.len() < HEADER_BYTES {
        return Err((
            0,
            format!("file of {} bytes is shorter than its header", bytes.len()),
        ));
    }
    let field =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if bytes[0..4] != MAGIC {
        return Err((0, "not a hard state file (bad magic)".to_string()));
    }
    if field(4) != VERSION {
        return Err((
            4,
            format!("version {}, this build reads version {VERSION}", field(4)),
        ));
    }
    let len = field(8) as usize;
    let payload = &bytes[HEADER_BYTES..];
    if len > MAX_HARD_STATE_BYTES || len != payload.len() {
        return Err((
            8,
            format!(
                "length field says {len} bytes, file holds {}",
                payload.len()
            ),
        ));
    }
    let (stored, computed) = (field(12), crc32c::crc32c(payload));
    if stored != computed {
        return Err((
            HEADER_BYTES as u64,
            format!("CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"),
        ));
    }
    Ok(payload.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Encoding and decoding are inverse, including for an empty value.
    #[test]
    fn encode_decode_round_trip() {
        for value in [&b""[..], b"vote=3,node=1", &[7u8; MAX_HARD_STATE_BYTES]] {
            assert_eq!(decode(&encode(value)).unwrap(), value);
        }
    }

    // Any single flipped byte is reported, with the offset of the field that failed.
    #[test]
    fn every_flip_is_detected() {
        let good = encode(b"term=5");
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at {at} went unnoticed");
        }
        assert!(decode(&good[..good.len() - 1]).is_err());
    }
}
