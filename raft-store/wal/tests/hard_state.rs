//! HardStateFile: durable round trip, replacement, and corruption detection.

mod common;

use std::fs;

use common::*;
use skiff_wal::{HardStateFile, WalError, MAX_HARD_STATE_BYTES};

// A saved value is loaded back by a fresh handle, a later save replaces it, and a directory
// without the file loads as None.
#[test]
fn round_trip_and_replace() {
    let dir = tempfile::tempdir().unwrap();
    let state = HardStateFile::open(dir.path()).unwrap();
    assert_eq!(state.load().unwrap(), None);
    state.save(b"term=3 vote=1").unwrap();
    state.save(b"term=4 vote=2 purged=17").unwrap();
    let reopened = HardStateFile::open(dir.path()).unwrap();
    assert_eq!(
        reopened.load().unwrap().as_deref(),
        Some(&b"term=4 vote=2 purged=17"[..])
    );
    assert!(
        !dir.path().join("hardstate.tmp").exists(),
        "temporary file renamed away"
    );
}

// A damaged hard-state file is a clear corruption error naming the file, never a wrong vote.
#[test]
fn corrupt_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let state = HardStateFile::open(dir.path()).unwrap();
    state.save(b"term=9 vote=3").unwrap();
    flip_byte(state.path(), 20);
    match state.load() {
        Err(WalError::Corrupt { file, reason, .. }) => {
            assert_eq!(file, state.path());
            assert!(reason.contains("CRC"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    fs::write(state.path(), b"SKHS").unwrap();
    assert!(state.load().unwrap_err().is_corruption());
}

// Oversized values are refused and the stored value is unchanged.
#[test]
fn oversized_value_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = HardStateFile::open(dir.path()).unwrap();
    state.save(b"small").unwrap();
    let result = state.save(&vec![0u8; MAX_HARD_STATE_BYTES + 1]);
    assert!(
        matches!(result, Err(WalError::InvalidRequest { .. })),
        "{result:?}"
    );
    assert_eq!(state.load().unwrap().as_deref(), Some(&b"small"[..]));
}

// The hard-state file lives in the WAL directory without disturbing segment replay.
#[test]
fn coexists_with_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let state = HardStateFile::open(dir.path()).unwrap();
    append_wait(&wal, entries(1, 4, 0, 10)).unwrap();
    state.save(b"vote").unwrap();
    wal.close().unwrap();
    assert_holds(&open(dir.path()), 1, 4, 0, 10);
    assert_eq!(state.load().unwrap().as_deref(), Some(&b"vote"[..]));
}
