//! Leases (grant, attach, detach, revoke) and compaction.

mod common;

use common::*;
use etcd_client::proto::{PbPutRequest, PbRangeRequest};
use skiff_mvcc::*;

// Grant, attach on put, move to another lease, detach on delete, duplicate and unknown ids.
#[test]
fn lease_lifecycle() {
    let (_d, s) = open();
    let g = apply(&s, WriteOp::LeaseGrant { id: 10, ttl: 30 });
    assert_eq!(g.result, Ok(WriteResponse::LeaseGrant { id: 10, ttl: 30 }));
    assert_eq!(g.revision, 1, "granting does not change the key space");
    apply(&s, WriteOp::LeaseGrant { id: -4, ttl: 5 });
    let dup = apply(&s, WriteOp::LeaseGrant { id: 10, ttl: 1 });
    assert_eq!(dup.result, Err(EtcdError::LeaseExists));
    let big = apply(
        &s,
        WriteOp::LeaseGrant {
            id: 11,
            ttl: MAX_LEASE_TTL_SECS + 1,
        },
    );
    assert_eq!(big.result, Err(EtcdError::LeaseTtlTooLarge));
    assert_eq!(s.leases().unwrap(), [(-4, 5), (10, 30)]);

    let unknown = put_lease(&s, "x", "1", 99);
    assert_eq!(unknown.result, Err(EtcdError::LeaseNotFound));
    assert_eq!(unknown.revision, 1);
    put_lease(&s, "b", "1", 10);
    put_lease(&s, "a", "1", 10);
    put_lease(&s, "c", "1", -4);
    assert_eq!(get(&s, "a").unwrap().lease, 10);
    let info = s.lease(10).unwrap().unwrap();
    assert_eq!(info.ttl_granted, 30);
    assert_eq!(info.keys, [b"a".to_vec(), b"b".to_vec()]);
    // Moving "b" to another lease detaches it from the first.
    put_lease(&s, "b", "2", -4);
    assert_eq!(s.lease(10).unwrap().unwrap().keys, [b"a".to_vec()]);
    assert_eq!(
        s.lease(-4).unwrap().unwrap().keys,
        [b"b".to_vec(), b"c".to_vec()]
    );
    // Deleting detaches.
    del(&s, "c", "");
    assert_eq!(s.lease(-4).unwrap().unwrap().keys, [b"b".to_vec()]);
    assert_eq!(s.lease(12).unwrap(), None);
}

// Revoke deletes every attached key in one revision (sorted, sub revisions 0..n) and the
// lease; a lease without keys is revoked without a revision bump; unknown ids fail.
#[test]
fn lease_revoke() {
    let (_d, s) = open();
    apply(&s, WriteOp::LeaseGrant { id: 1, ttl: 30 });
    apply(&s, WriteOp::LeaseGrant { id: 2, ttl: 30 });
    for k in ["z", "m", "a"] {
        put_lease(&s, k, "v", 1);
    }
    put(&s, "other", "v");
    let r = apply(&s, WriteOp::LeaseRevoke { id: 1 });
    assert_eq!(r.result, Ok(WriteResponse::LeaseRevoke));
    assert_eq!(r.revision, 6);
    let deleted: Vec<_> = r.events.iter().map(|e| e.kv.clone().unwrap().key).collect();
    assert_eq!(deleted, [b"a".to_vec(), b"m".to_vec(), b"z".to_vec()]);
    assert!(r
        .events
        .iter()
        .all(|e| e.r#type == EVENT_DELETE && e.prev_kv.is_some()));
    assert_eq!(keys(&all_at(&s, 0).unwrap()), ["other"]);
    assert_eq!(s.lease(1).unwrap(), None);
    let empty = apply(&s, WriteOp::LeaseRevoke { id: 2 });
    assert_eq!((empty.result.is_ok(), empty.revision), (true, 6));
    let again = apply(&s, WriteOp::LeaseRevoke { id: 1 });
    assert_eq!(again.result, Err(EtcdError::LeaseNotFound));
    assert!(s.leases().unwrap().is_empty());
}

fn build_history(s: &Mvcc) {
    // a: 2,3,4  b: 5, deleted 6  c: 7, deleted 8, 9  d: 10 (same txn twice not possible via
    // put; covered in txn tests)
    put(s, "a", "1");
    put(s, "a", "2");
    put(s, "a", "3");
    put(s, "b", "1");
    del(s, "b", "");
    put(s, "c", "1");
    del(s, "c", "");
    put(s, "c", "2");
    put(s, "d", "1");
    put(s, "a", "4");
}

// Compact errors: at or below the compact revision → Compacted, above current → FutureRev;
// etcd accepts Compact(0) on a fresh store.
#[test]
fn compact_errors() {
    let (_d, s) = open();
    let zero = compact(&s, 0);
    assert!(zero.result.is_ok());
    assert_eq!(s.compact_revision(), 0);
    build_history(&s);
    assert_eq!(compact(&s, 12).result, Err(EtcdError::FutureRev));
    let ok = compact(&s, 5);
    assert_eq!(header_rev(ok.result.as_ref().unwrap()), 11);
    assert_eq!(ok.revision, 11);
    assert_eq!(compact(&s, 5).result, Err(EtcdError::Compacted));
    assert_eq!(compact(&s, 4).result, Err(EtcdError::Compacted));
    assert_eq!(s.compact_revision(), 5);
}

// Reads at and after the compact revision are unchanged; earlier ones give Compacted; the
// history below is physically gone (the snapshot shrinks) and watch replay refuses it.
#[test]
fn compaction_keeps_reads_at_or_after_the_revision() {
    for batch in [1, 3, 10_000] {
        let opts = MvccOptions {
            compaction_batch_entries: batch,
            ..Default::default()
        };
        let (_d, s) = open_with(opts);
        build_history(&s);
        let before: Vec<_> = (1..=11).map(|rev| all_at(&s, rev).unwrap()).collect();
        let records_before = s.write_snapshot(&mut Vec::new()).unwrap().records;
        for target in [4, 6, 8, 11] {
            compact(&s, target);
            for rev in target..=11 {
                let now = all_at(&s, rev).unwrap();
                assert_eq!(
                    now,
                    before[rev as usize - 1],
                    "rev {rev} after compact {target}"
                );
                for k in ["a", "b", "c", "d"] {
                    let at = get_at(&s, k, rev).unwrap();
                    let then = before[rev as usize - 1]
                        .kvs
                        .iter()
                        .find(|kv| kv.key == k.as_bytes())
                        .cloned();
                    assert_eq!(at, then);
                }
            }
            assert!(matches!(
                all_at(&s, target - 1),
                Err(ReadError::Etcd(EtcdError::Compacted))
            ));
            assert!(matches!(
                s.events(target, 10, false),
                Err(ReadError::Etcd(EtcdError::Compacted))
            ));
        }
        // After compacting at 11 only the live keys' latest versions remain in the history:
        // a@11, c@9, d@10 (b's tombstone is gone).
        let records_after = s.write_snapshot(&mut Vec::new()).unwrap().records;
        assert!(records_after < records_before);
        let r = range(
            &s,
            &PbRangeRequest {
                revision: 11,
                ..range_req("\0", "\0")
            },
        );
        assert_eq!(keys(&r), ["a", "c", "d"]);
    }
}

// A put after compaction continues the key's version and create revision.
#[test]
fn writes_after_compaction_continue_versions() {
    let (_d, s) = open();
    build_history(&s);
    compact(&s, 11);
    let mut a = put(&s, "a", "5");
    s.fill_prev_kvs(&mut a.events).unwrap();
    assert_eq!(a.events[0].prev_kv, Some(kv("a", "4", 2, 11, 4, 0)));
    assert_eq!(get(&s, "a").unwrap(), kv("a", "5", 2, 12, 5, 0));
    put(&s, "b", "again");
    assert_eq!(get(&s, "b").unwrap(), kv("b", "again", 13, 13, 1, 0));
    assert_eq!(get_at(&s, "b", 11).unwrap(), None);
    let req = PbPutRequest {
        prev_kv: true,
        ..put_req("c", "3")
    };
    let a = apply(&s, WriteOp::Put(&req));
    let Ok(WriteResponse::Put(p)) = a.result else {
        panic!()
    };
    assert_eq!(p.prev_kv, Some(kv("c", "2", 9, 9, 1, 0)));
}
