//! Meta entries, reopen, snapshots, watch replay and HashKV.

mod common;

use common::*;
use etcd_client::proto::{PbCompare, PbCompareTarget, PbTargetUnion, PbTxnRequest};
use skiff_mvcc::*;

/// A mixed workload: puts, a txn, deletes, leases and a compaction.
fn workload(s: &Mvcc) {
    apply(s, WriteOp::LeaseGrant { id: 5, ttl: 60 });
    apply(s, WriteOp::LeaseGrant { id: 6, ttl: 90 });
    for i in 0..20 {
        put(s, &format!("key/{:02}", i % 7), &format!("value-{i}"));
    }
    put_lease(s, "leased/a", "x", 5);
    put_lease(s, "leased/b", "y", 6);
    let req = PbTxnRequest {
        compare: vec![PbCompare {
            target: PbCompareTarget::Version as i32,
            key: "key/01".into(),
            result: COMPARE_GREATER,
            target_union: Some(PbTargetUnion::Version(1)),
            ..Default::default()
        }],
        success: vec![
            op_put("txn/1", "a"),
            op_del("key/03", ""),
            op_put("txn/1", "b"),
        ],
        failure: vec![],
    };
    apply(s, WriteOp::Txn(&req));
    compact(s, 10);
    del(s, "key/05", "key/07");
    apply(s, WriteOp::LeaseRevoke { id: 6 });
    put(s, "key/00", "last");
}

/// Everything a reader can observe, for equality checks between stores.
fn observe(s: &Mvcc) -> String {
    let mut out = format!(
        "rev={} compact={} leases={:?} lease5={:?}\n",
        s.current_revision(),
        s.compact_revision(),
        s.leases().unwrap(),
        s.lease(5).unwrap()
    );
    for rev in s.compact_revision().max(1)..=s.current_revision() {
        out += &format!("{rev}: {:?}\n", all_at(s, rev).unwrap().kvs);
    }
    out += &format!("hash={:?}\n", s.hash_kv(0).unwrap());
    out += &format!(
        "events={:?}\n",
        s.events(s.compact_revision() + 1, 1000, true).unwrap()
    );
    out
}

// A rejected op changes no data but writes the caller's meta; MetaOnly writes only meta.
#[test]
fn rejected_op_still_writes_meta() {
    let (_d, s) = open();
    put(&s, "a", "1");
    let bad = put_req("b", "1");
    let bad = etcd_client::proto::PbPutRequest { lease: 77, ..bad };
    let a = s
        .apply(WriteOp::Put(&bad), &[(b"applied", b"7"), (b"term", b"2")])
        .unwrap();
    assert_eq!(a.result, Err(EtcdError::LeaseNotFound));
    assert_eq!(a.revision, 2);
    assert_eq!(s.current_revision(), 2);
    assert_eq!(get(&s, "b"), None);
    assert_eq!(s.get_meta(b"applied").unwrap(), Some(b"7".to_vec()));
    assert_eq!(s.get_meta(b"term").unwrap(), Some(b"2".to_vec()));
    let m = s.apply(WriteOp::MetaOnly, &[(b"applied", b"8")]).unwrap();
    assert_eq!((m.result, m.revision), (Ok(WriteResponse::Meta), 2));
    assert_eq!(s.get_meta(b"applied").unwrap(), Some(b"8".to_vec()));
    assert_eq!(s.get_meta(b"missing").unwrap(), None);
}

// After flush and drop, a reopened store has the same state, revisions and meta.
#[test]
fn reopen_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let s = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
        workload(&s);
        s.apply(WriteOp::MetaOnly, &[(b"applied", b"42")]).unwrap();
        s.flush().unwrap();
        assert!(s.db_size_bytes().unwrap() > 0);
        observe(&s)
    };
    let s = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
    assert_eq!(observe(&s), before);
    assert_eq!(s.get_meta(b"applied").unwrap(), Some(b"42".to_vec()));
    put(&s, "after", "reopen");
    assert_eq!(
        get(&s, "after").unwrap().create_revision,
        s.current_revision()
    );
}

// A snapshot installed into a store with other data reproduces every observable result;
// the installed state survives a reopen, and the replaced directory is removed.
#[test]
fn snapshot_round_trip() {
    let (_d1, a) = open();
    workload(&a);
    a.apply(WriteOp::MetaOnly, &[(b"applied", b"99")]).unwrap();
    let mut bytes = Vec::new();
    let info = a.write_snapshot(&mut bytes).unwrap();
    assert_eq!(info.revision, a.current_revision());
    assert_eq!(info.compact_revision, 10);
    assert_eq!(info.bytes, bytes.len() as u64);

    let dir2 = tempfile::tempdir().unwrap();
    let b = Mvcc::open(dir2.path(), MvccOptions::default()).unwrap();
    for i in 0..50 {
        put(&b, &format!("junk/{i}"), "x");
    }
    b.install_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!(observe(&b), observe(&a));
    assert_eq!(b.get_meta(b"applied").unwrap(), Some(b"99".to_vec()));
    // The stores continue identically.
    put(&a, "next", "1");
    put(&b, "next", "1");
    assert_eq!(observe(&b), observe(&a));
    let expected = observe(&b);
    drop(b);
    let mut names: Vec<_> = std::fs::read_dir(dir2.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["CURRENT_DB", "db.1"]);
    let b = Mvcc::open(dir2.path(), MvccOptions::default()).unwrap();
    assert_eq!(observe(&b), expected);
    // A second install moves to the next generation.
    b.install_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!(b.current_revision(), info.revision);
}

// A damaged or truncated snapshot is refused with a clear error and the live state (and its
// directory) is untouched.
#[test]
fn corrupt_snapshot_leaves_state_untouched() {
    let (_d1, a) = open();
    workload(&a);
    let mut bytes = Vec::new();
    a.write_snapshot(&mut bytes).unwrap();

    let dir2 = tempfile::tempdir().unwrap();
    let b = Mvcc::open(dir2.path(), MvccOptions::default()).unwrap();
    put(&b, "mine", "1");
    let before = observe(&b);
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    let truncated = &bytes[..bytes.len() - 3];
    for bad in [&flipped[..], truncated, b"not a snapshot at all"] {
        let err = b.install_snapshot(&mut &bad[..]).unwrap_err();
        assert!(matches!(err, SnapshotError::Corrupt(_)), "{err}");
        assert!(err.to_string().contains("corrupt snapshot"), "{err}");
        assert_eq!(observe(&b), before);
    }
    let names: Vec<_> = std::fs::read_dir(dir2.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["db"], "the half-loaded directory was removed");
}

// Two stores fed the same ops have equal hashes, whatever their physical compaction batch
// size; different data gives a different hash; hash_kv checks its revision like etcd.
#[test]
fn hash_kv_is_deterministic() {
    let (_d1, a) = open_with(MvccOptions {
        compaction_batch_entries: 1,
        ..Default::default()
    });
    let (_d2, b) = open();
    workload(&a);
    workload(&b);
    assert_eq!(a.hash_kv(0).unwrap(), b.hash_kv(0).unwrap());
    for rev in 11..=a.current_revision() {
        assert_eq!(a.hash_kv(rev).unwrap(), b.hash_kv(rev).unwrap());
    }
    let h = a.hash_kv(0).unwrap();
    assert_eq!(
        (h.revision, h.hash_revision, h.compact_revision),
        (h.revision, h.revision, 10)
    );
    assert!(matches!(
        a.hash_kv(10),
        Err(ReadError::Etcd(EtcdError::Compacted))
    ));
    assert!(matches!(
        a.hash_kv(a.current_revision() + 1),
        Err(ReadError::Etcd(EtcdError::FutureRev))
    ));
    put(&b, "x", "y");
    assert_ne!(a.hash_kv(0).unwrap().hash, b.hash_kv(0).unwrap().hash);
}

// The same operations as a session against a real etcd 3.4.23 produce the same HashKV values
// (etcdctl endpoint hashkv: 2077421836 at revision 15 with compact 5, 1001295482 at 17,
// 1979698005 at 18), i.e. the history bytes and compaction are bit-compatible with etcd.
#[test]
fn hash_kv_matches_real_etcd() {
    let (_d, s) = open();
    assert_eq!(s.hash_kv(0).unwrap().hash, 1_084_519_789);
    assert_eq!(s.hash_kv(0).unwrap().compact_revision, -1);
    compact(&s, 0);
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3"), ("b", "22")] {
        put(&s, k, v);
    }
    for i in 1..=3 {
        put(&s, "s/a", &format!("x{i}"));
    }
    for i in 1..=2 {
        put(&s, "s/b", &format!("y{i}"));
        put(&s, "s/c", &format!("z{i}"));
    }
    put(&s, "s/d", "w");
    for _ in 0..2 {
        let req = PbTxnRequest {
            compare: vec![PbCompare {
                target: PbCompareTarget::Value as i32,
                key: "zz".into(),
                result: COMPARE_EQUAL,
                target_union: Some(PbTargetUnion::Value(Vec::new())),
                ..Default::default()
            }],
            success: vec![op_put("ok1", "1")],
            failure: vec![op_put("fail1", "1")],
        };
        apply(&s, WriteOp::Txn(&req));
    }
    compact(&s, 5);
    let h = s.hash_kv(0).unwrap();
    assert_eq!(
        (h.hash, h.compact_revision, h.revision),
        (2_077_421_836, 5, 15)
    );
    let lease = 7_587_899_103_214_327_852;
    apply(&s, WriteOp::LeaseGrant { id: lease, ttl: 10 });
    put_lease(&s, "k1", "v", lease);
    del(&s, "b", "");
    assert_eq!(s.hash_kv(0).unwrap().hash, 1_001_295_482);
    apply(&s, WriteOp::LeaseRevoke { id: lease });
    assert_eq!(s.hash_kv(0).unwrap().hash, 1_979_698_005);
    // The final key space as etcd listed it.
    let all = all_at(&s, 0).unwrap();
    assert_eq!(
        all.kvs,
        vec![
            kv("a", "1", 2, 2, 1, 0),
            kv("c", "3", 4, 4, 1, 0),
            kv("fail1", "1", 14, 15, 2, 0),
            kv("s/a", "x3", 6, 8, 3, 0),
            kv("s/b", "y2", 9, 11, 2, 0),
            kv("s/c", "z2", 10, 12, 2, 0),
            kv("s/d", "w", 13, 13, 1, 0),
        ]
    );
}

// Watch replay returns whole revisions in order, with prev_kv on request.
#[test]
fn events_replay() {
    let (_d, s) = open();
    put(&s, "a", "1");
    let req = PbTxnRequest {
        success: vec![op_put("b", "1"), op_put("c", "1"), op_put("a", "2")],
        ..Default::default()
    };
    apply(&s, WriteOp::Txn(&req));
    del(&s, "a", "");
    let all = s.events(1, 100, true).unwrap();
    assert_eq!(all.len(), 5);
    let revs: Vec<_> = all
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect();
    assert_eq!(revs, [2, 3, 3, 3, 4]);
    assert_eq!(all[3].prev_kv, Some(kv("a", "1", 2, 2, 1, 0)));
    assert_eq!(all[4].r#type, EVENT_DELETE);
    assert_eq!(all[4].kv, Some(kv("a", "", 0, 4, 0, 0)));
    assert_eq!(all[4].prev_kv, Some(kv("a", "2", 2, 3, 2, 0)));
    // The live events of apply equal the replayed ones.
    assert!(s
        .events(3, 1, false)
        .unwrap()
        .iter()
        .all(|e| e.prev_kv.is_none()));
    // max_events stops at a revision boundary but never splits revision 3.
    assert_eq!(s.events(2, 2, false).unwrap().len(), 4);
    assert_eq!(s.events(3, 1, false).unwrap().len(), 3);
    assert!(s.events(5, 10, false).unwrap().is_empty());
}

// The events `apply` returns, with `fill_prev_kvs`, equal the ones replayed from history
// later, prev_kv included, for every kind of write (put, txn with repeated keys, delete
// range, lease revoke).
#[test]
fn live_events_equal_replayed_events() {
    let (_d, s) = open();
    let mut live = Vec::new();
    let mut record = |a: Applied| live.extend(a.events);
    record(apply(&s, WriteOp::LeaseGrant { id: 3, ttl: 9 }));
    record(put(&s, "a", "1"));
    record(put_lease(&s, "b", "1", 3));
    let req = PbTxnRequest {
        success: vec![
            op_put("a", "2"),
            op_put("a", "3"),
            op_del("a", ""),
            op_put("a", "4"),
            op_put("c", "1"),
        ],
        ..Default::default()
    };
    record(apply(&s, WriteOp::Txn(&req)));
    record(del(&s, "a", "z"));
    record(put_lease(&s, "d", "1", 3));
    record(apply(&s, WriteOp::LeaseRevoke { id: 3 }));
    s.fill_prev_kvs(&mut live).unwrap();
    assert_eq!(s.events(1, 1000, true).unwrap(), live);
    assert_eq!(live.len(), 12);
}
