//! Txn: compares on every target and result, branches, nesting, read-your-writes and the
//! revision bump rules.

mod common;

use common::*;
use etcd_client::proto::{
    PbCompare, PbCompareTarget, PbPutRequest, PbRangeRequest, PbTargetUnion, PbTxnOpRequest,
    PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use skiff_mvcc::*;

fn cmp(key: &str, end: &str, target: PbCompareTarget, result: i32, u: PbTargetUnion) -> PbCompare {
    PbCompare {
        result,
        target: target as i32,
        key: key.into(),
        range_end: end.into(),
        target_union: Some(u),
    }
}

fn txn(s: &Mvcc, req: &PbTxnRequest) -> (PbTxnResponse, Applied) {
    let a = apply(s, WriteOp::Txn(req));
    match &a.result {
        Ok(WriteResponse::Txn(resp)) => (resp.clone(), a),
        other => panic!("unexpected {other:?}"),
    }
}

fn succeeded(s: &Mvcc, compare: PbCompare) -> bool {
    let req = PbTxnRequest {
        compare: vec![compare],
        ..Default::default()
    };
    txn(s, &req).0.succeeded
}

// Each target with each result against an existing key (version 2, create 2, mod 3,
// value "v2", lease 7).
#[test]
fn compare_every_target_and_result() {
    use PbCompareTarget as T;
    use PbTargetUnion as U;
    let (_d, s) = open();
    apply(&s, WriteOp::LeaseGrant { id: 7, ttl: 60 });
    put(&s, "k", "v1");
    put_lease(&s, "k", "v2", 7);
    let cases = [
        (T::Version, U::Version(2), [true, false, false, false]),
        (T::Version, U::Version(1), [false, true, false, true]),
        (T::Create, U::CreateRevision(2), [true, false, false, false]),
        (T::Create, U::CreateRevision(9), [false, false, true, true]),
        (T::Mod, U::ModRevision(3), [true, false, false, false]),
        (T::Mod, U::ModRevision(2), [false, true, false, true]),
        (T::Value, U::Value("v2".into()), [true, false, false, false]),
        (T::Value, U::Value("v3".into()), [false, false, true, true]),
        (T::Lease, U::Lease(7), [true, false, false, false]),
        (T::Lease, U::Lease(0), [false, true, false, true]),
    ];
    let results = [
        COMPARE_EQUAL,
        COMPARE_GREATER,
        COMPARE_LESS,
        COMPARE_NOT_EQUAL,
    ];
    for (target, union, expected) in cases {
        for (result, want) in results.iter().zip(expected) {
            let c = cmp("k", "", target, *result, union.clone());
            assert_eq!(
                succeeded(&s, c),
                want,
                "{target:?} {union:?} result {result}"
            );
        }
    }
    assert_eq!(s.current_revision(), 3, "compare-only txns change nothing");
}

// Missing keys compare as zero; VALUE compares on a missing key always fail (verified against
// etcd 3.4.23: `value("zz") = ""` and `value("zz") != "x"` took the failure branch,
// `version("zz") = "0"`, `mod("zz") = "0"`, `create("zz") = "0"` the success branch).
#[test]
fn compare_missing_key() {
    use PbCompareTarget as T;
    use PbTargetUnion as U;
    let (_d, s) = open();
    assert!(succeeded(
        &s,
        cmp("zz", "", T::Version, COMPARE_EQUAL, U::Version(0))
    ));
    assert!(succeeded(
        &s,
        cmp("zz", "", T::Mod, COMPARE_EQUAL, U::ModRevision(0))
    ));
    assert!(succeeded(
        &s,
        cmp("zz", "", T::Create, COMPARE_EQUAL, U::CreateRevision(0))
    ));
    assert!(succeeded(
        &s,
        cmp("zz", "", T::Lease, COMPARE_EQUAL, U::Lease(0))
    ));
    assert!(!succeeded(
        &s,
        cmp("zz", "", T::Value, COMPARE_EQUAL, U::Value(vec![]))
    ));
    assert!(!succeeded(
        &s,
        cmp("zz", "", T::Value, COMPARE_NOT_EQUAL, U::Value("x".into()))
    ));
    // etcd 3.4.23: `mod("zz") > "-1"` succeeded.
    assert!(succeeded(
        &s,
        cmp("zz", "", T::Mod, COMPARE_GREATER, U::ModRevision(-1))
    ));
}

// A range compare needs every key in the range to satisfy it.
#[test]
fn compare_over_range() {
    use PbCompareTarget as T;
    use PbTargetUnion as U;
    let (_d, s) = open();
    put(&s, "p/a", "1");
    put(&s, "p/b", "1");
    put(&s, "p/b", "2");
    assert!(succeeded(
        &s,
        cmp("p/", "p0", T::Version, COMPARE_GREATER, U::Version(0))
    ));
    assert!(!succeeded(
        &s,
        cmp("p/", "p0", T::Version, COMPARE_EQUAL, U::Version(1))
    ));
    assert!(succeeded(
        &s,
        cmp("p/", "p0", T::Mod, COMPARE_LESS, U::ModRevision(5))
    ));
    assert!(succeeded(
        &s,
        cmp("p/", "\0", T::Create, COMPARE_LESS, U::CreateRevision(4))
    ));
    assert!(!succeeded(
        &s,
        cmp("p/", "p0", T::Value, COMPARE_EQUAL, U::Value("1".into()))
    ));
}

// The Kubernetes optimistic-update shape: If(mod == rev) Then(Put) Else(Get).
#[test]
fn success_and_failure_branches() {
    use PbCompareTarget as T;
    use PbTargetUnion as U;
    let (_d, s) = open();
    put(&s, "obj", "v1");
    let update = |rev: i64, value: &str| PbTxnRequest {
        compare: vec![cmp("obj", "", T::Mod, COMPARE_EQUAL, U::ModRevision(rev))],
        success: vec![op_put("obj", value)],
        failure: vec![op_get("obj")],
    };
    let (resp, a) = txn(&s, &update(2, "v2"));
    assert!(resp.succeeded);
    assert_eq!((a.revision, resp.header.unwrap().revision), (3, 3));
    let Some(PbTxnOpResponse::ResponsePut(p)) = &resp.responses[0].response else {
        panic!()
    };
    assert_eq!(p.header.as_ref().unwrap().revision, 3);
    let (resp, a) = txn(&s, &update(2, "v3"));
    assert!(!resp.succeeded);
    assert_eq!((a.revision, resp.header.unwrap().revision), (3, 3));
    let Some(PbTxnOpResponse::ResponseRange(r)) = &resp.responses[0].response else {
        panic!()
    };
    assert_eq!(r.kvs, vec![kv("obj", "v2", 2, 3, 2, 0)]);
    assert!(a.events.is_empty());
}

// Ops in one Txn share one revision with increasing sub revisions, later ops see earlier
// writes, and nested Txns see them too.
#[test]
fn read_your_writes_and_nesting() {
    let (_d, s) = open();
    put(&s, "x", "0");
    let nested = PbTxnRequest {
        success: vec![op_get("y"), op_del("x", ""), op_get("x")],
        ..Default::default()
    };
    let req = PbTxnRequest {
        success: vec![
            op_put("y", "1"),
            op_put("y", "2"),
            op_get("y"),
            PbTxnRequestOp {
                request: Some(PbTxnOpRequest::RequestTxn(nested)),
            },
        ],
        ..Default::default()
    };
    let (resp, a) = txn(&s, &req);
    assert_eq!(a.revision, 3);
    let Some(PbTxnOpResponse::ResponseRange(r)) = &resp.responses[2].response else {
        panic!()
    };
    assert_eq!(r.kvs, vec![kv("y", "2", 3, 3, 2, 0)]);
    assert_eq!(r.header.as_ref().unwrap().revision, 3);
    let Some(PbTxnOpResponse::ResponseTxn(inner)) = &resp.responses[3].response else {
        panic!()
    };
    assert_eq!(
        inner.header.as_ref().unwrap().revision,
        0,
        "etcd leaves nested headers empty"
    );
    let Some(PbTxnOpResponse::ResponseRange(after_delete)) = &inner.responses[2].response else {
        panic!()
    };
    assert!(after_delete.kvs.is_empty());
    let kinds: Vec<_> = a.events.iter().map(|e| e.r#type).collect();
    assert_eq!(kinds, [EVENT_PUT, EVENT_PUT, EVENT_DELETE]);
    // Both puts created "y" in this revision: no prev_kv; the delete has x's old value.
    assert_eq!(a.events[1].prev_kv, None);
    assert_eq!(a.events[2].prev_kv, Some(kv("x", "0", 2, 2, 1, 0)));
    assert_eq!(get(&s, "y").unwrap(), kv("y", "2", 3, 3, 2, 0));
    assert_eq!(get_at(&s, "x", 2).unwrap(), Some(kv("x", "0", 2, 2, 1, 0)));
    assert_eq!(get(&s, "x"), None);
    let history = s.events(3, 100, false).unwrap();
    assert_eq!(history.len(), 3);
}

// Revision bump rules: no bump for reads only or for deletes of missing keys; one bump for
// any number of changes.
#[test]
fn revision_bump_rules() {
    let (_d, s) = open();
    put(&s, "a", "1");
    let reads = PbTxnRequest {
        success: vec![op_get("a"), op_del("missing", "")],
        ..Default::default()
    };
    let (resp, a) = txn(&s, &reads);
    assert_eq!((a.revision, resp.header.unwrap().revision), (2, 2));
    let Some(PbTxnOpResponse::ResponseDeleteRange(d)) = &resp.responses[1].response else {
        panic!()
    };
    assert_eq!((d.deleted, d.header.as_ref().unwrap().revision), (0, 2));
    let writes = PbTxnRequest {
        success: vec![op_put("b", "1"), op_del("missing", ""), op_put("c", "1")],
        ..Default::default()
    };
    let (resp, a) = txn(&s, &writes);
    assert_eq!((a.revision, resp.header.unwrap().revision), (3, 3));
    let Some(PbTxnOpResponse::ResponseDeleteRange(d)) = &resp.responses[1].response else {
        panic!()
    };
    assert_eq!(
        d.header.as_ref().unwrap().revision,
        3,
        "after a change in the same txn"
    );
    let (_, empty) = txn(&s, &PbTxnRequest::default());
    assert_eq!(empty.revision, 3);
}

// A failing op (unknown lease, ignore_value on a missing key, compacted range) rejects the
// whole Txn: nothing changes, the meta entries are still written.
#[test]
fn rejected_txn_changes_nothing() {
    let (_d, s) = open();
    put(&s, "a", "1");
    put(&s, "a", "2");
    compact(&s, 3);
    let bad_ops = [
        PbTxnOpRequest::RequestPut(PbPutRequest {
            lease: 42,
            ..put_req("b", "1")
        }),
        PbTxnOpRequest::RequestPut(PbPutRequest {
            ignore_value: true,
            ..put_req("nope", "")
        }),
        PbTxnOpRequest::RequestRange(PbRangeRequest {
            revision: 2,
            ..range_req("a", "")
        }),
        PbTxnOpRequest::RequestRange(PbRangeRequest {
            revision: 99,
            ..range_req("a", "")
        }),
    ];
    let expected = [
        EtcdError::LeaseNotFound,
        EtcdError::KeyNotFound,
        EtcdError::Compacted,
        EtcdError::FutureRev,
    ];
    for (i, (bad, want)) in bad_ops.into_iter().zip(expected).enumerate() {
        let req = PbTxnRequest {
            success: vec![op_put("b", "1"), PbTxnRequestOp { request: Some(bad) }],
            ..Default::default()
        };
        let marker = format!("{i}");
        let a = s
            .apply(WriteOp::Txn(&req), &[(b"applied", marker.as_bytes())])
            .unwrap();
        assert_eq!(a.result, Err(want));
        assert_eq!(a.revision, 3);
        assert!(a.events.is_empty());
        assert_eq!(get(&s, "b"), None);
        assert_eq!(s.get_meta(b"applied").unwrap(), Some(marker.into_bytes()));
    }
    assert_eq!(s.current_revision(), 3);
}

// ignore_value on a key deleted earlier in the same Txn passes the pre-check (the key exists
// before the Txn) but fails during execution: the whole Txn is rejected (etcd would panic).
#[test]
fn execution_time_failure_rejects_txn() {
    let (_d, s) = open();
    put(&s, "k", "v");
    let req = PbTxnRequest {
        success: vec![
            op_del("k", ""),
            PbTxnRequestOp {
                request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                    ignore_value: true,
                    ..put_req("k", "")
                })),
            },
        ],
        ..Default::default()
    };
    let a = apply(&s, WriteOp::Txn(&req));
    assert_eq!(a.result, Err(EtcdError::KeyNotFound));
    assert_eq!(get(&s, "k").unwrap().value, b"v");
}
