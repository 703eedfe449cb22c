//! Helpers shared by the integration tests: a store in a temp dir and request builders.
#![allow(dead_code)] // Each test binary uses a different subset.

use etcd_client::proto::{
    PbCompactionRequest, PbDeleteRequest, PbKeyValue, PbPutRequest, PbRangeRequest,
    PbRangeResponse, PbTxnOpRequest, PbTxnRequestOp,
};
use skiff_mvcc::{Applied, Mvcc, MvccOptions, ReadError, WriteOp, WriteResponse};
use tempfile::TempDir;

pub fn open() -> (TempDir, Mvcc) {
    open_with(MvccOptions::default())
}

pub fn open_with(opts: MvccOptions) -> (TempDir, Mvcc) {
    let dir = tempfile::tempdir().unwrap();
    let store = Mvcc::open(dir.path(), opts).unwrap();
    (dir, store)
}

pub fn put_req(key: &str, value: &str) -> PbPutRequest {
    PbPutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

pub fn apply(s: &Mvcc, op: WriteOp<'_>) -> Applied {
    s.apply(op, &[]).unwrap()
}

pub fn put(s: &Mvcc, key: &str, value: &str) -> Applied {
    let a = apply(s, WriteOp::Put(&put_req(key, value)));
    assert!(a.result.is_ok(), "{a:?}");
    a
}

pub fn put_lease(s: &Mvcc, key: &str, value: &str, lease: i64) -> Applied {
    let req = PbPutRequest {
        lease,
        ..put_req(key, value)
    };
    apply(s, WriteOp::Put(&req))
}

pub fn del(s: &Mvcc, key: &str, end: &str) -> Applied {
    let req = PbDeleteRequest {
        key: key.into(),
        range_end: end.into(),
        prev_kv: true,
    };
    apply(s, WriteOp::DeleteRange(&req))
}

pub fn compact(s: &Mvcc, rev: i64) -> Applied {
    let req = PbCompactionRequest {
        revision: rev,
        physical: false,
    };
    apply(s, WriteOp::Compact(&req))
}

pub fn range_req(key: &str, end: &str) -> PbRangeRequest {
    PbRangeRequest {
        key: key.into(),
        range_end: end.into(),
        ..Default::default()
    }
}

pub fn range(s: &Mvcc, req: &PbRangeRequest) -> PbRangeResponse {
    s.range(req).unwrap()
}

pub fn all_at(s: &Mvcc, rev: i64) -> Result<PbRangeResponse, ReadError> {
    s.range(&PbRangeRequest {
        revision: rev,
        ..range_req("\0", "\0")
    })
}

pub fn get(s: &Mvcc, key: &str) -> Option<PbKeyValue> {
    range(s, &range_req(key, "")).kvs.into_iter().next()
}

pub fn get_at(s: &Mvcc, key: &str, rev: i64) -> Result<Option<PbKeyValue>, ReadError> {
    let req = PbRangeRequest {
        revision: rev,
        ..range_req(key, "")
    };
    Ok(s.range(&req)?.kvs.into_iter().next())
}

pub fn keys(resp: &PbRangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect()
}

pub fn kv(key: &str, value: &str, create: i64, modr: i64, version: i64, lease: i64) -> PbKeyValue {
    PbKeyValue {
        key: key.into(),
        create_revision: create,
        mod_revision: modr,
        version,
        value: value.into(),
        lease,
    }
}

pub fn op_put(key: &str, value: &str) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestPut(put_req(key, value))),
    }
}

pub fn op_get(key: &str) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestRange(range_req(key, ""))),
    }
}

pub fn op_del(key: &str, end: &str) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest {
            key: key.into(),
            range_end: end.into(),
            prev_kv: false,
        })),
    }
}

pub fn header_rev(resp: &WriteResponse) -> i64 {
    match resp {
        WriteResponse::Put(r) => r.header.as_ref().unwrap().revision,
        WriteResponse::DeleteRange(r) => r.header.as_ref().unwrap().revision,
        WriteResponse::Txn(r) => r.header.as_ref().unwrap().revision,
        WriteResponse::Compact(r) => r.header.as_ref().unwrap().revision,
        other => panic!("no header in {other:?}"),
    }
}
