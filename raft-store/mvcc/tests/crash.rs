//! Crash recovery with the RocksDB WAL disabled: a process killed mid-stream leaves a
//! consistent prefix of the applied ops, with the applied marker in step with the data.

use std::process::Command;

use etcd_client::proto::{PbPutRequest, PbRangeRequest};
use skiff_mvcc::{Mvcc, MvccOptions, WriteOp};

const CHILD_ENV: &str = "SKIFF_MVCC_CRASH_CHILD_DIR";
const OPS: i64 = 3000;
const FLUSHED_AT: i64 = 700;
const KEYS: i64 = 50;

fn opts() -> MvccOptions {
    MvccOptions {
        // Small memtables force several automatic flushes between the explicit one and the
        // crash.
        write_buffer_bytes: 64 << 10,
        ..Default::default()
    }
}

/// The child: applies OPS puts (each with its applied marker), flushes once, then aborts
/// without closing the store.
fn child(dir: &str) -> ! {
    let s = Mvcc::open(std::path::Path::new(dir), opts()).unwrap();
    for i in 1..=OPS {
        let req = PbPutRequest {
            key: format!("key/{}", i % KEYS).into(),
            value: format!("{i:0>200}").into(),
            ..Default::default()
        };
        let marker = i.to_string();
        s.apply(WriteOp::Put(&req), &[(b"applied", marker.as_bytes())])
            .unwrap();
        if i == FLUSHED_AT {
            s.flush().unwrap();
        }
    }
    std::process::abort();
}

// Kill a writer process after an explicit flush and more unflushed writes: the reopened
// store holds exactly the ops up to its applied marker, which is at least the flushed one.
#[test]
fn crash_leaves_a_consistent_prefix() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_leaves_a_consistent_prefix",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die by abort");

    let s = Mvcc::open(dir.path(), opts()).unwrap();
    let applied: i64 = String::from_utf8(s.get_meta(b"applied").unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert!(applied >= FLUSHED_AT, "flushed ops survive: {applied}");
    assert_eq!(s.current_revision(), 1 + applied);
    let all = s
        .range(&PbRangeRequest {
            key: b"key/".to_vec(),
            range_end: b"key0".to_vec(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.count, KEYS.min(applied));
    for kv in &all.kvs {
        let m: i64 = std::str::from_utf8(&kv.key[4..]).unwrap().parse().unwrap();
        // The newest op <= applied that wrote key m.
        let last = applied - (applied - m).rem_euclid(KEYS);
        assert_eq!(kv.value, format!("{last:0>200}").into_bytes());
        assert_eq!(kv.mod_revision, last + 1);
    }
    // The store keeps working: the caller would re-apply ops after `applied`.
    let next = PbPutRequest {
        key: b"after".to_vec(),
        ..Default::default()
    };
    let a = s.apply(WriteOp::Put(&next), &[]).unwrap();
    assert_eq!(a.revision, applied + 2);
}
