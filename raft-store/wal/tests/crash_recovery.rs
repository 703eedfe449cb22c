//! Damaged files: torn tails are cut and reported, everything else fails open as corruption.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use skiff_wal::{Wal, WalError};

const SEGMENT_BYTES: u64 = 4096;
const PAYLOAD: usize = 300;

/// A closed WAL with small segments holding entries `1..hi`; returns its segment files.
fn small_wal(dir: &Path, hi: u64) -> Vec<PathBuf> {
    let wal = Wal::open(dir, options(SEGMENT_BYTES)).unwrap();
    for start in (1..hi).step_by(10) {
        append_wait(&wal, entries(start, (start + 10).min(hi), 0, PAYLOAD)).unwrap();
    }
    wal.close().unwrap();
    segment_files(dir)
}

fn reopen(dir: &Path) -> Result<Wal, WalError> {
    Wal::open(dir, options(SEGMENT_BYTES))
}

fn append_to_file(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

fn expect_corrupt(result: Result<Wal, WalError>, file: &Path, offset: u64) -> String {
    match result {
        Err(WalError::Corrupt {
            file: f,
            offset: o,
            reason,
        }) => {
            assert_eq!((f.as_path(), o), (file, offset), "{reason}");
            reason
        }
        other => panic!(
            "expected corruption at {}:{offset}, got {other:?}",
            file.display()
        ),
    }
}

// A last record cut mid-way (a crash during its write) is dropped with a report; everything
// before it is intact and appending continues correctly, across another reopen.
#[test]
fn torn_tail_is_cut_and_appending_continues() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append_wait(&wal, entries(1, 11, 0, 100)).unwrap();
    wal.close().unwrap();
    let segment = segment_files(dir.path()).remove(0);
    let last_record = entry_offsets(&segment, 100)[9];
    cut_file(&segment, 5);

    let wal = open(dir.path());
    let torn = wal
        .recovery()
        .torn_tail
        .clone()
        .expect("torn tail reported");
    assert_eq!(
        (torn.file.as_path(), torn.offset),
        (segment.as_path(), last_record)
    );
    assert_eq!(torn.dropped_bytes, ENTRY_OVERHEAD_BYTES + 100 - 5);
    // The file was cut at the torn record; the open WAL has preallocated its segment again,
    // so everything from there on reads as zeros.
    let bytes = std::fs::read(&segment).unwrap();
    assert!(
        bytes[last_record as usize..].iter().all(|&b| b == 0),
        "file cut at the torn record"
    );
    assert_holds(&wal, 1, 10, 0, 100);
    append_wait(&wal, entries(10, 12, 1, 100)).unwrap();
    wal.close().unwrap();

    let wal = open(dir.path());
    assert_eq!(wal.recovery().torn_tail, None);
    assert_eq!(indexes(&wal), (1..12).collect::<Vec<_>>());
    assert_eq!(&*wal.read(10, 11)[0].1, &payload(10, 1, 100)[..]);
}

// A flipped byte in the middle of a segment that is not the last fails open with Corrupt,
// naming the file and the offset of the damaged record.
#[test]
fn flipped_byte_in_older_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let files = small_wal(dir.path(), 41);
    let record = entry_offsets(&files[1], PAYLOAD as u64)[5];
    flip_byte(&files[1], record + 30);
    let reason = expect_corrupt(reopen(dir.path()), &files[1], record);
    assert!(reason.contains("CRC mismatch"), "{reason}");
    let message = reopen(dir.path()).unwrap_err().to_string();
    assert!(message.contains("remove it from the cluster"), "{message}");
}

// A flipped byte in the last record of the last segment cannot be told from a torn write, so
// that record is cut and everything before it kept.
#[test]
fn flipped_byte_in_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let files = small_wal(dir.path(), 41);
    let last = files.last().unwrap();
    let record = *entry_offsets(last, PAYLOAD as u64).last().unwrap();
    flip_byte(last, record + 100);
    let wal = reopen(dir.path()).unwrap();
    assert_eq!(
        wal.recovery().torn_tail.as_ref().map(|t| t.offset),
        Some(record)
    );
    assert_holds(&wal, 1, 40, 0, PAYLOAD);
}

// A damaged record in the last segment that is followed by valid records is corruption, not a
// torn write: acknowledged entries after it would otherwise be dropped.
#[test]
fn damage_before_valid_records_in_last_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let files = small_wal(dir.path(), 41);
    let last = files.last().unwrap();
    let record = entry_offsets(last, PAYLOAD as u64)[0];
    flip_byte(last, record + 50);
    let reason = expect_corrupt(reopen(dir.path()), last, record);
    assert!(reason.contains("followed by a valid record"), "{reason}");
}

// Zeros after the last record (preallocated space, or a size update persisted before the
// data) are unwritten space: no entry is lost, nothing is reported as torn, appends continue
// after the last record, in the last segment and in older ones.
#[test]
fn zero_filled_tail_is_unwritten_space() {
    let dir = tempfile::tempdir().unwrap();
    let files = small_wal(dir.path(), 41);
    for file in &files {
        append_to_file(file, &[0u8; 1000]);
    }
    let wal = reopen(dir.path()).unwrap();
    assert_eq!(wal.recovery().torn_tail, None);
    assert_holds(&wal, 1, 41, 0, PAYLOAD);
    append_wait(&wal, entries(41, 43, 0, PAYLOAD)).unwrap();
    wal.close().unwrap();
    // Records written after the zeros would make them a hole before valid data: corruption.
    assert_holds(&reopen(dir.path()).unwrap(), 1, 43, 0, PAYLOAD);
}

// Garbage after the last record (a partially persisted page of a half-written batch) is a
// torn tail too.
#[test]
fn garbage_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let files = small_wal(dir.path(), 41);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let garbage: Vec<u8> = (0..777)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    append_to_file(files.last().unwrap(), &garbage);
    let wal = reopen(dir.path()).unwrap();
    assert_eq!(
        wal.recovery().torn_tail.as_ref().map(|t| t.dropped_bytes),
        Some(777)
    );
    assert_holds(&wal, 1, 41, 0, PAYLOAD);
}

// A damaged segment header is corruption even in the last segment: segments are created
// atomically with their header, so a torn write cannot explain it.
#[test]
fn damaged_header_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let files = small_wal(dir.path(), 41);
    let last = files.last().unwrap();
    flip_byte(last, 12);
    let reason = expect_corrupt(reopen(dir.path()), last, 0);
    assert!(reason.contains("header"), "{reason}");
}

// A half-created segment (temporary file left by a crash during rotation) is removed.
#[test]
fn leftover_temporary_segment_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    small_wal(dir.path(), 20);
    let temp = dir.path().join(format!("{:016x}-{:016x}.wal.tmp", 9, 20));
    std::fs::write(&temp, b"half a header").unwrap();
    let wal = reopen(dir.path()).unwrap();
    assert_eq!(wal.recovery().removed_temp_files, 1);
    assert!(!temp.exists());
    assert_holds(&wal, 1, 20, 0, PAYLOAD);
}
