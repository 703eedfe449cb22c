//! Appends, reads, replacement, truncation and purge, each checked again after a reopen.

mod common;

use common::*;
use skiff_wal::{Wal, WalError, WalOptions};

// Entries appended and acknowledged are readable at once and again, unchanged, after a reopen.
#[test]
fn append_read_reopen_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    assert_eq!((wal.first_index(), wal.last_index()), (None, None));
    append_wait(&wal, entries(1, 51, 0, 100)).unwrap();
    append_wait(&wal, entries(51, 101, 0, 100)).unwrap();
    assert_holds(&wal, 1, 101, 0, 100);
    assert_eq!(wal.read(10, 13).len(), 3);
    wal.close().unwrap();

    let wal = open(dir.path());
    assert_eq!(wal.recovery().entries, 100);
    assert_eq!(wal.recovery().torn_tail, None);
    assert_eq!((wal.first_index(), wal.last_index()), (Some(1), Some(100)));
    assert_holds(&wal, 1, 101, 0, 100);
}

// Reads return only the entries present in [lo, hi), and an empty append still completes.
#[test]
fn reads_clamp_to_what_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append_wait(&wal, entries(5, 10, 0, 10)).unwrap();
    append_wait(&wal, Vec::new()).unwrap();
    assert!(wal.read(0, 5).is_empty());
    assert!(wal.read(10, 20).is_empty());
    assert!(wal.read(7, 7).is_empty());
    assert_eq!(
        wal.read(0, 7).iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![5, 6]
    );
}

// An append starting at or below the last index replaces the tail, and the replaced entries
// stay replaced after a reopen.
#[test]
fn replace_on_lower_index_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append_wait(&wal, entries(1, 11, 0, 50)).unwrap();
    append_wait(&wal, entries(6, 8, 1, 50)).unwrap();
    assert_eq!(wal.last_index(), Some(7));
    wal.close().unwrap();

    let wal = open(dir.path());
    assert_eq!(indexes(&wal), (1..8).collect::<Vec<_>>());
    for (index, bytes) in wal.read(0, u64::MAX) {
        let version = if index >= 6 { 1 } else { 0 };
        assert_eq!(&*bytes, &payload(index, version, 50)[..]);
    }
}

// Truncated entries do not come back after a reopen, and appending continues after them.
#[test]
fn truncate_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append_wait(&wal, entries(1, 21, 0, 30)).unwrap();
    wal.truncate(15).unwrap();
    assert_eq!(wal.last_index(), Some(14));
    wal.truncate(100).unwrap(); // beyond the end: nothing to remove
    drop(wal); // Drop closes like close()

    let wal = open(dir.path());
    assert_holds(&wal, 1, 15, 0, 30);
    append_wait(&wal, entries(15, 18, 2, 30)).unwrap();
    wal.close().unwrap();

    let wal = open(dir.path());
    assert_eq!(indexes(&wal), (1..18).collect::<Vec<_>>());
    assert_eq!(&*wal.read(15, 16)[0].1, &payload(15, 2, 30)[..]);
}

// Purging past the last index (a snapshot newer than the log) empties it; the log resumes
// after the purge point, also after a reopen.
#[test]
fn purge_beyond_last_then_resume_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append_wait(&wal, entries(1, 11, 0, 30)).unwrap();
    wal.purge(50).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (None, None));
    let below = append_wait(&wal, entries(50, 51, 0, 30));
    assert!(
        matches!(below, Err(WalError::InvalidRequest { .. })),
        "{below:?}"
    );
    append_wait(&wal, entries(51, 61, 0, 30)).unwrap();
    wal.close().unwrap();

    let wal = open(dir.path());
    assert_holds(&wal, 51, 61, 0, 30);
}

// Requests that break the contract are rejected with InvalidRequest and change nothing.
#[test]
fn invalid_requests_are_rejected_without_effect() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    append_wait(&wal, entries(1, 11, 0, 20)).unwrap();
    wal.purge(3).unwrap();
    let rejected = [
        append_wait(&wal, entries(12, 13, 0, 20)), // gap after 10
        append_wait(&wal, entries(2, 3, 0, 20)),   // below the purge point
        append_wait(&wal, vec![(11, vec![1]), (13, vec![2])]), // not consecutive
        append_wait(&wal, vec![(u64::MAX, vec![1])]), // outside the index space
        wal.truncate(2),                           // purged entries
        wal.purge(u64::MAX),
    ];
    for result in rejected {
        assert!(
            matches!(result, Err(WalError::InvalidRequest { .. })),
            "{result:?}"
        );
    }
    assert_holds(&wal, 4, 11, 0, 20);
    append_wait(&wal, entries(11, 12, 0, 20)).unwrap();
    wal.close().unwrap();
    assert_holds(&open(dir.path()), 4, 12, 0, 20);
}

// A second Wal on the same directory is refused while the first is open, and allowed after.
#[test]
fn directory_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let second = Wal::open(dir.path(), WalOptions::default());
    assert!(matches!(second, Err(WalError::Locked { .. })), "{second:?}");
    wal.close().unwrap();
    Wal::open(dir.path(), WalOptions::default()).unwrap();
}

// Options the WAL cannot work with are refused before anything is created.
#[test]
fn tiny_segments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let result = Wal::open(&dir.path().join("wal"), options(100));
    assert!(
        matches!(result, Err(WalError::InvalidRequest { .. })),
        "{result:?}"
    );
    assert!(!dir.path().join("wal").exists());
}
