//! Put, DeleteRange and Range against a RocksDB-backed store.

mod common;

use common::*;
use etcd_client::proto::{PbDeleteRequest, PbPutRequest, PbRangeRequest};
use skiff_mvcc::*;

// A fresh store is at revision 1 and has never been compacted (etcd 3.4 reports -1).
#[test]
fn fresh_store_revisions() {
    let (_d, s) = open();
    assert_eq!(s.current_revision(), 1);
    assert_eq!(s.compact_revision(), -1);
    let r = all_at(&s, 0).unwrap();
    assert_eq!(r.header.unwrap().revision, 1);
    assert_eq!(r.count, 0);
}

// put/put/delete/put: revisions, create/mod revision, version and the reset after delete.
#[test]
fn per_key_fields_across_lifecycle() {
    let (_d, s) = open();
    let a = put(&s, "k", "v1");
    assert_eq!((a.revision, header_rev(a.result.as_ref().unwrap())), (2, 2));
    put(&s, "k", "v2");
    assert_eq!(get(&s, "k").unwrap(), kv("k", "v2", 2, 3, 2, 0));
    let d = del(&s, "k", "");
    assert_eq!(d.revision, 4);
    let Ok(WriteResponse::DeleteRange(resp)) = &d.result else {
        panic!("{d:?}")
    };
    assert_eq!(resp.deleted, 1);
    assert_eq!(resp.prev_kvs, vec![kv("k", "v2", 2, 3, 2, 0)]);
    assert_eq!(get(&s, "k"), None);
    put(&s, "k", "v3");
    assert_eq!(get(&s, "k").unwrap(), kv("k", "v3", 5, 5, 1, 0));
    // Every past revision still answers with the state of that time.
    assert_eq!(get_at(&s, "k", 1).unwrap(), None);
    assert_eq!(get_at(&s, "k", 2).unwrap(), Some(kv("k", "v1", 2, 2, 1, 0)));
    assert_eq!(get_at(&s, "k", 3).unwrap(), Some(kv("k", "v2", 2, 3, 2, 0)));
    assert_eq!(get_at(&s, "k", 4).unwrap(), None);
    assert_eq!(get_at(&s, "k", 5).unwrap(), Some(kv("k", "v3", 5, 5, 1, 0)));
    assert!(matches!(
        get_at(&s, "k", 6),
        Err(ReadError::Etcd(EtcdError::FutureRev))
    ));
}

// Events of a put carry no prev_kv from apply; fill_prev_kvs adds it except for a creation.
// A delete event carries only key and mod revision plus prev_kv.
#[test]
fn apply_events() {
    let (_d, s) = open();
    let mut a = put(&s, "k", "v1");
    assert_eq!(a.events.len(), 1);
    assert_eq!(a.events[0].r#type, EVENT_PUT);
    s.fill_prev_kvs(&mut a.events).unwrap();
    assert_eq!(a.events[0].prev_kv, None);
    let mut b = put(&s, "k", "v2");
    assert_eq!(b.events[0].prev_kv, None);
    s.fill_prev_kvs(&mut b.events).unwrap();
    assert_eq!(b.events[0].prev_kv, Some(kv("k", "v1", 2, 2, 1, 0)));
    let c = del(&s, "k", "");
    assert_eq!(c.events[0].r#type, EVENT_DELETE);
    assert_eq!(c.events[0].kv, Some(kv("k", "", 0, 4, 0, 0)));
    assert_eq!(c.events[0].prev_kv, Some(kv("k", "v2", 2, 3, 2, 0)));
}

// A past-revision range over many keys with several versions, including keys with zero
// bytes and keys that are prefixes of each other, equals the range taken at that time.
#[test]
fn past_range_equals_range_at_the_time() {
    let (_d, s) = open();
    let names = ["a", "a\0", "a\0b", "ab", "b", "\0", "\0\0", "c"];
    let mut snapshots = Vec::new();
    for round in 0..4 {
        for (i, n) in names.iter().enumerate() {
            if (i + round) % 3 == 0 {
                del(&s, n, "");
            } else {
                put(&s, n, &format!("{n}{round}"));
            }
            snapshots.push((s.current_revision(), all_at(&s, 0).unwrap()));
        }
    }
    for (rev, then) in snapshots {
        let now = all_at(&s, rev).unwrap();
        assert_eq!(now.kvs, then.kvs, "at revision {rev}");
        assert_eq!(now.count, then.count);
        assert_eq!(now.header.unwrap().revision, s.current_revision());
        let from_a = PbRangeRequest {
            revision: rev,
            ..range_req("a", "b")
        };
        let expect: Vec<_> = then
            .kvs
            .iter()
            .filter(|kv| kv.key.as_slice() >= &b"a"[..] && kv.key.as_slice() < &b"b"[..])
            .cloned()
            .collect();
        assert_eq!(range(&s, &from_a).kvs, expect);
    }
}

fn fill(s: &Mvcc) {
    // revisions: a=2, b=3, c=4, b=5 (v2), d=6, c=7 (v2), c=8 (v3)
    for (k, v) in [
        ("a", "3"),
        ("b", "1"),
        ("c", "2"),
        ("b", "5"),
        ("d", "0"),
        ("c", "9"),
        ("c", "4"),
    ] {
        put(s, k, v);
    }
}

// limit, more and count, at the current and at a past revision.
#[test]
fn range_limit_more_count() {
    let (_d, s) = open();
    fill(&s);
    let r = range(
        &s,
        &PbRangeRequest {
            limit: 2,
            ..range_req("a", "\0")
        },
    );
    assert_eq!(
        (keys(&r), r.more, r.count),
        (vec!["a".into(), "b".into()], true, 4)
    );
    let r = range(
        &s,
        &PbRangeRequest {
            limit: 4,
            ..range_req("a", "\0")
        },
    );
    assert_eq!((r.kvs.len(), r.more, r.count), (4, false, 4));
    let r = range(
        &s,
        &PbRangeRequest {
            limit: 1,
            revision: 4,
            ..range_req("a", "\0")
        },
    );
    assert_eq!((keys(&r), r.more, r.count), (vec!["a".into()], true, 3));
}

// Every sort target in both directions, at the current revision.
#[test]
fn range_sort_orders_and_targets() {
    let (_d, s) = open();
    fill(&s);
    let sorted = |order, target| {
        keys(&range(
            &s,
            &PbRangeRequest {
                sort_order: order,
                sort_target: target,
                ..range_req("a", "\0")
            },
        ))
    };
    assert_eq!(
        sorted(SORT_ORDER_NONE, SORT_TARGET_KEY),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        sorted(SORT_ORDER_DESCEND, SORT_TARGET_KEY),
        ["d", "c", "b", "a"]
    );
    assert_eq!(
        sorted(SORT_ORDER_ASCEND, SORT_TARGET_VERSION),
        ["a", "d", "b", "c"]
    );
    assert_eq!(
        sorted(SORT_ORDER_DESCEND, SORT_TARGET_VERSION),
        ["c", "b", "a", "d"]
    );
    assert_eq!(
        sorted(SORT_ORDER_ASCEND, SORT_TARGET_CREATE),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        sorted(SORT_ORDER_DESCEND, SORT_TARGET_MOD),
        ["c", "d", "b", "a"]
    );
    assert_eq!(
        sorted(SORT_ORDER_ASCEND, SORT_TARGET_VALUE),
        ["d", "a", "c", "b"]
    );
    assert_eq!(
        sorted(SORT_ORDER_DESCEND, SORT_TARGET_VALUE),
        ["b", "c", "a", "d"]
    );
    // Order NONE with a non-key target sorts ascending (etcd 3.4).
    assert_eq!(
        sorted(SORT_ORDER_NONE, SORT_TARGET_MOD),
        ["a", "b", "d", "c"]
    );
}

// keys_only, count_only and the min/max revision filters (count ignores the filters).
#[test]
fn range_keys_only_count_only_filters() {
    let (_d, s) = open();
    fill(&s);
    let r = range(
        &s,
        &PbRangeRequest {
            keys_only: true,
            ..range_req("a", "\0")
        },
    );
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(r.kvs[2], kv("c", "", 4, 8, 3, 0));
    let r = range(
        &s,
        &PbRangeRequest {
            count_only: true,
            ..range_req("a", "\0")
        },
    );
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 4, false));
    let filtered = |f: fn(&mut PbRangeRequest)| {
        let mut req = range_req("a", "\0");
        f(&mut req);
        let r = range(&s, &req);
        assert_eq!(r.count, 4, "count is before filters");
        keys(&r)
    };
    assert_eq!(filtered(|r| r.min_mod_revision = 5), ["b", "c", "d"]);
    assert_eq!(filtered(|r| r.max_mod_revision = 5), ["a", "b"]);
    assert_eq!(filtered(|r| r.min_create_revision = 4), ["c", "d"]);
    assert_eq!(filtered(|r| r.max_create_revision = 3), ["a", "b"]);
    assert_eq!(
        filtered(|r| {
            r.min_mod_revision = 5;
            r.limit = 1;
        }),
        ["b"]
    );
}

// The range_end forms: single key, prefix, "\0" (from key), "\0"/"\0" (all), and a
// range_end at or before the key (no keys; etcd 3.4.23 `get b a` returns nothing).
#[test]
fn range_end_forms() {
    let (_d, s) = open();
    for k in ["a", "ab", "abc", "b", "c"] {
        put(&s, k, "v");
    }
    let k = |key: &str, end: &str| keys(&range(&s, &range_req(key, end)));
    assert_eq!(k("ab", ""), ["ab"]);
    assert_eq!(k("ab", "ac"), ["ab", "abc"]);
    assert_eq!(k("b", "\0"), ["b", "c"]);
    assert_eq!(k("\0", "\0"), ["a", "ab", "abc", "b", "c"]);
    assert!(k("b", "a").is_empty());
    assert!(k("b", "b").is_empty());
    assert_eq!(range(&s, &range_req("c", "a")).count, 0);
}

// ignore_value keeps the value, ignore_lease keeps the lease; both need an existing key.
#[test]
fn put_ignore_flags_and_prev_kv() {
    let (_d, s) = open();
    apply(&s, WriteOp::LeaseGrant { id: 7, ttl: 60 });
    assert!(put_lease(&s, "k", "v1", 7).result.is_ok());
    let keep_value = PbPutRequest {
        key: "k".into(),
        ignore_value: true,
        prev_kv: true,
        ..Default::default()
    };
    let a = apply(&s, WriteOp::Put(&keep_value));
    let Ok(WriteResponse::Put(resp)) = &a.result else {
        panic!("{a:?}")
    };
    assert_eq!(resp.prev_kv, Some(kv("k", "v1", 2, 2, 1, 7)));
    // ignore_value without a lease detaches the key (the request's lease 0 applies).
    assert_eq!(get(&s, "k").unwrap(), kv("k", "v1", 2, 3, 2, 0));
    assert!(s.lease(7).unwrap().unwrap().keys.is_empty());
    put_lease(&s, "k", "v1", 7);
    let keep_lease = PbPutRequest {
        key: "k".into(),
        value: "v2".into(),
        ignore_lease: true,
        ..Default::default()
    };
    apply(&s, WriteOp::Put(&keep_lease));
    assert_eq!(get(&s, "k").unwrap(), kv("k", "v2", 2, 5, 4, 7));
    for flags in [(true, false), (false, true)] {
        let req = PbPutRequest {
            key: "missing".into(),
            ignore_value: flags.0,
            ignore_lease: flags.1,
            ..Default::default()
        };
        let a = apply(&s, WriteOp::Put(&req));
        assert_eq!(a.result, Err(EtcdError::KeyNotFound));
        assert_eq!(a.revision, 5);
        assert!(a.events.is_empty());
    }
}

// DeleteRange counts deleted keys, writes tombstones visible at later revisions only, and
// does not bump the revision when nothing matched.
#[test]
fn delete_range_counts_and_tombstones() {
    let (_d, s) = open();
    for k in ["a", "b", "c", "d"] {
        put(&s, k, "v");
    }
    let d = del(&s, "b", "d");
    assert_eq!(d.revision, 6);
    assert_eq!(d.events.len(), 2);
    let Ok(WriteResponse::DeleteRange(resp)) = &d.result else {
        panic!()
    };
    assert_eq!(resp.deleted, 2);
    assert_eq!(keys(&all_at(&s, 0).unwrap()), ["a", "d"]);
    assert_eq!(keys(&all_at(&s, 5).unwrap()), ["a", "b", "c", "d"]);
    let none = del(&s, "x", "z");
    assert_eq!(none.revision, 6);
    let Ok(WriteResponse::DeleteRange(resp)) = &none.result else {
        panic!()
    };
    assert_eq!(
        (resp.deleted, resp.header.as_ref().unwrap().revision),
        (0, 6)
    );
    let req = PbDeleteRequest {
        key: "\0".into(),
        range_end: "\0".into(),
        prev_kv: false,
    };
    let all = apply(&s, WriteOp::DeleteRange(&req));
    let Ok(WriteResponse::DeleteRange(resp)) = &all.result else {
        panic!()
    };
    assert_eq!((resp.deleted, resp.prev_kvs.len()), (2, 0));
    assert_eq!(all_at(&s, 0).unwrap().count, 0);
}

// Readers running during writes always see data consistent with their header revision.
#[test]
fn concurrent_readers_see_consistent_revisions() {
    let (_d, s) = open();
    let s = std::sync::Arc::new(s);
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..300 {
                put(&s, "counter", &i.to_string());
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..300 {
                    let r = range(&s, &range_req("counter", ""));
                    let rev = r.header.unwrap().revision;
                    match r.kvs.first() {
                        Some(kv) => assert_eq!(kv.mod_revision, rev),
                        None => assert_eq!(rev, 1),
                    }
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(s.current_revision(), 301);
}
