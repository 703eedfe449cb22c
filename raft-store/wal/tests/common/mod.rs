//! Helpers shared by the integration tests: blocking appends, deterministic payloads, and
//! byte-level access to segment files for fault injection.

#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use skiff_wal::{SyncMode, Wal, WalError, WalOptions};

/// Size of a segment header record, in bytes (9 framing + 28 payload).
pub const HEADER_RECORD_BYTES: u64 = 37;

/// Framing plus index bytes of an entry record, in bytes.
pub const ENTRY_OVERHEAD_BYTES: u64 = 17;

/// Options that fsync, with segments of `segment_bytes`.
pub fn options(segment_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        sync: SyncMode::Fsync,
    }
}

/// Opens `dir` with default options.
pub fn open(dir: &Path) -> Wal {
    Wal::open(dir, WalOptions::default()).expect("open WAL")
}

/// A payload of `len` bytes that encodes `index` and `version`, so replaced entries differ.
pub fn payload(index: u64, version: u8, len: usize) -> Vec<u8> {
    let mut bytes = format!("entry-{index}-v{version}-").into_bytes();
    bytes.resize(len.max(bytes.len()), b'a' + (index % 26) as u8);
    bytes
}

/// Entries `lo..hi` with payloads of `len` bytes.
pub fn entries(lo: u64, hi: u64, version: u8, len: usize) -> Vec<(u64, Vec<u8>)> {
    (lo..hi).map(|i| (i, payload(i, version, len))).collect()
}

/// Appends and waits for the `done` callback.
pub fn append_wait(wal: &Wal, entries: Vec<(u64, Vec<u8>)>) -> Result<(), WalError> {
    let (tx, rx) = mpsc::channel();
    wal.append(
        entries,
        Box::new(move |result| tx.send(result).expect("test waits")),
    );
    rx.recv().expect("done callback must be called")
}

/// The indexes the WAL holds.
pub fn indexes(wal: &Wal) -> Vec<u64> {
    wal.read(0, u64::MAX).into_iter().map(|(i, _)| i).collect()
}

/// Checks that the WAL holds exactly `lo..hi` with payloads of `version` and `len`.
pub fn assert_holds(wal: &Wal, lo: u64, hi: u64, version: u8, len: usize) {
    let got = wal.read(0, u64::MAX);
    let expected: Vec<u64> = (lo..hi).collect();
    assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), expected);
    for (index, bytes) in got {
        assert_eq!(
            &*bytes,
            &payload(index, version, len)[..],
            "payload of {index}"
        );
    }
}

/// Segment files of `dir`, in sequence order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

/// Flips every bit of the byte at `offset` in `path`.
pub fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).expect("read segment");
    bytes[offset as usize] ^= 0xff;
    fs::write(path, bytes).expect("write segment");
}

/// Shortens `path` by `bytes`.
pub fn cut_file(path: &Path, bytes: u64) {
    let file = OpenOptions::new().write(true).open(path).expect("open");
    let len = file.metadata().expect("stat").len();
    file.set_len(len - bytes).expect("set_len");
}

/// Size of `path` in bytes.
pub fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").len()
}

/// The `(offset, index)` of every entry record in a segment holding only entries of
/// `payload_len` bytes after its header.
pub fn entry_offsets(path: &Path, payload_len: u64) -> Vec<u64> {
    let record = ENTRY_OVERHEAD_BYTES + payload_len;
    let len = file_len(path);
    (0..)
        .map(|k| HEADER_RECORD_BYTES + k * record)
        .take_while(|offset| offset + record <= len)
        .collect()
}
