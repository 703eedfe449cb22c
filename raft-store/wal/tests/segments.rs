//! Segment rotation, purge deleting whole old segments only, and a broken segment sequence.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use skiff_wal::{Wal, WalError};

const SEGMENT_BYTES: u64 = 4096;
const PAYLOAD: usize = 300;
/// (4096 - 37) / (17 + 300) = 12 entries fit in one segment.
const PER_SEGMENT: u64 = 12;

fn open_small(dir: &Path) -> Wal {
    Wal::open(dir, options(SEGMENT_BYTES)).unwrap()
}

fn fill(wal: &Wal, lo: u64, hi: u64, version: u8) {
    for start in (lo..hi).step_by(10) {
        append_wait(wal, entries(start, (start + 10).min(hi), version, PAYLOAD)).unwrap();
    }
}

/// `(seq, first_index)` parsed from the segment file names.
fn segment_names(dir: &Path) -> Vec<(u64, u64)> {
    segment_files(dir)
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            let (seq, first) = name.trim_end_matches(".wal").split_once('-').unwrap();
            (
                u64::from_str_radix(seq, 16).unwrap(),
                u64::from_str_radix(first, 16).unwrap(),
            )
        })
        .collect()
}

// Small segments rotate at the size limit, each named after its sequence number and first
// index, and none exceeds the limit.
#[test]
fn segments_rotate_at_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_small(dir.path());
    fill(&wal, 1, 101, 0);
    let expected: Vec<(u64, u64)> = (0..9).map(|k| (k, 1 + PER_SEGMENT * k)).collect();
    // Segment 0 was created empty at index 0, before the first entry arrived.
    let mut names = segment_names(dir.path());
    assert_eq!(names.remove(0), (0, 0));
    assert_eq!(names, expected[1..]);
    for path in segment_files(dir.path()) {
        assert!(
            file_len(&path) <= SEGMENT_BYTES,
            "{} too big",
            path.display()
        );
    }
    assert_eq!(wal.stats().segments, 9);
    wal.close().unwrap();
    assert_holds(&open_small(dir.path()), 1, 101, 0, PAYLOAD);
}

// Purge deletes only segments whose entries are all covered, keeps the one holding the purge
// point, never deletes the segment being written, and the purge point survives a reopen.
#[test]
fn purge_deletes_whole_old_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_small(dir.path());
    fill(&wal, 1, 101, 0);
    let before = segment_files(dir.path());

    wal.purge(30).unwrap(); // segments 0 (1..=12) and 1 (13..=24) go; 2 (25..=36) stays
    assert_eq!(segment_files(dir.path()), before[2..]);
    assert_eq!(wal.first_index(), Some(31));
    assert_eq!(wal.read(0, 31).len(), 0);
    wal.close().unwrap();

    let wal = open_small(dir.path());
    assert_holds(&wal, 31, 101, 0, PAYLOAD);
    wal.purge(1000).unwrap();
    assert_eq!(
        segment_files(dir.path()),
        before[8..],
        "the current segment stays"
    );
    wal.close().unwrap();

    let wal = open_small(dir.path());
    assert_eq!(wal.last_index(), None);
    append_wait(&wal, entries(1001, 1003, 0, PAYLOAD)).unwrap();
    assert_holds(&wal, 1001, 1003, 0, PAYLOAD);
}

// A truncation reaching back into older segments makes them purgeable, and the log replays
// correctly from a later segment whose records rewrite indexes below its own first index.
#[test]
fn purge_after_truncating_into_older_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_small(dir.path());
    fill(&wal, 1, 31, 0); // segments hold 1..=12, 13..=24, 25..=30
    wal.truncate(10).unwrap();
    fill(&wal, 10, 16, 1);
    wal.purge(9).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_holds(&wal, 10, 16, 1, PAYLOAD);
    wal.close().unwrap();

    let wal = open_small(dir.path());
    assert_holds(&wal, 10, 16, 1, PAYLOAD);
    fill(&wal, 16, 20, 1);
    assert_holds(&wal, 10, 20, 1, PAYLOAD);
}

// A segment missing from the middle of the sequence fails open, naming the segment after the
// hole, instead of silently skipping its entries.
#[test]
fn missing_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    fill(&open_small(dir.path()), 1, 101, 0);
    let files = segment_files(dir.path());
    fs::remove_file(&files[3]).unwrap();
    match Wal::open(dir.path(), options(SEGMENT_BYTES)) {
        Err(WalError::Corrupt {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, files[4]);
            assert_eq!(offset, 0);
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

// A segment whose name does not match its header (renamed or copied in) fails open.
#[test]
fn renamed_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    fill(&open_small(dir.path()), 1, 40, 0);
    let files = segment_files(dir.path());
    let renamed = dir.path().join(format!("{:016x}-{:016x}.wal", 1, 14));
    fs::rename(&files[1], &renamed).unwrap();
    let result = Wal::open(dir.path(), options(SEGMENT_BYTES));
    assert!(
        matches!(&result, Err(WalError::Corrupt { file, .. }) if *file == renamed),
        "{result:?}"
    );
}
