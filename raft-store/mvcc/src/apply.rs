//! etcd's request semantics for writes (Put, DeleteRange, Txn, LeaseGrant, LeaseRevoke) on a
//! [`WriteTxn`]: the checks that reject a request, and the responses. Pure logic.
//!
//! A rejected request returns an [`EtcdError`] and its `WriteTxn` must be discarded: the
//! caller then commits no data change. etcd validates a Txn's chosen branches (leases,
//! `ignore_*` keys, range revisions) against the state before the Txn, before executing
//! anything; so does this module. If an op then still fails during execution (e.g. a Put with
//! `ignore_value` on a key deleted earlier in the same Txn), etcd panics the server; here the
//! whole Txn is rejected with that error instead, which is equally deterministic.
//!
//! Txn compares of nested Txns are all evaluated against the state before the outer Txn, as
//! etcd's `compareToPath` does; reads and writes inside nested Txns do see earlier writes.
//! A nested Txn's response header is empty (revision 0), as in etcd, which fills only the
//! outer header.

use etcd_client::proto::{
    PbDeleteRequest, PbDeleteResponse, PbPutRequest, PbPutResponse, PbRangeRequest,
    PbResponseHeader, PbResponseOp, PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp,
    PbTxnResponse,
};

use crate::compare;
use crate::error::{EtcdError, ReadError};
use crate::range;
use crate::view::{KeyRange, StateView};
use crate::write::WriteTxn;

/// The largest TTL etcd grants, in seconds (etcd's `lease.MaxLeaseTTL`).
pub const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000;

fn header(revision: i64) -> Option<PbResponseHeader> {
    Some(PbResponseHeader {
        revision,
        ..Default::default()
    })
}

/// A standalone Put: the lease must exist, then the `ignore_*` flags need the key.
pub fn put(txn: &mut WriteTxn<'_>, req: &PbPutRequest) -> Result<PbPutResponse, ReadError> {
    check_lease(txn, req.lease)?;
    put_unchecked_lease(txn, req)
}

fn check_lease(view: &dyn StateView, lease: i64) -> Result<(), ReadError> {
    if lease != 0 && view.lease_ttl(lease)?.is_none() {
        return Err(EtcdError::LeaseNotFound.into());
    }
    Ok(())
}

/// etcd's `put`: resolves `ignore_value` / `ignore_lease` / `prev_kv` against the current
/// state of the request and writes the new version.
fn put_unchecked_lease(
    txn: &mut WriteTxn<'_>,
    req: &PbPutRequest,
) -> Result<PbPutResponse, ReadError> {
    let needs_current = req.ignore_value || req.ignore_lease || req.prev_kv;
    let current = if needs_current {
        txn.get(&req.key)?
    } else {
        None
    };
    let (value, lease) = match &current {
        None if req.ignore_value || req.ignore_lease => {
            return Err(EtcdError::KeyNotFound.into());
        }
        Some(cur) => (
            if req.ignore_value {
                cur.value.clone()
            } else {
                req.value.clone()
            },
            if req.ignore_lease {
                cur.lease
            } else {
                req.lease
            },
        ),
        None => (req.value.clone(), req.lease),
    };
    txn.put(&req.key, value, lease)?;
    Ok(PbPutResponse {
        header: header(txn.revision()),
        prev_kv: if req.prev_kv { current } else { None },
    })
}

/// DeleteRange: deletes the live keys of the range; the revision moves only if one was deleted.
pub fn delete_range(
    txn: &mut WriteTxn<'_>,
    req: &PbDeleteRequest,
) -> Result<PbDeleteResponse, ReadError> {
    let deleted = txn.delete_range(&KeyRange::from_request(&req.key, &req.range_end))?;
    Ok(PbDeleteResponse {
        header: header(txn.revision()),
        deleted: deleted.len() as i64,
        prev_kvs: if req.prev_kv { deleted } else { Vec::new() },
    })
}

/// LeaseGrant with a caller-chosen id. Checks in etcd's `lessor.Grant` order.
pub fn lease_grant(txn: &mut WriteTxn<'_>, id: i64, ttl: i64) -> Result<(), ReadError> {
    if id == 0 {
        return Err(EtcdError::LeaseNotFound.into());
    }
    if ttl > MAX_LEASE_TTL_SECS {
        return Err(EtcdError::LeaseTtlTooLarge.into());
    }
    if txn.lease_ttl(id)?.is_some() {
        return Err(EtcdError::LeaseExists.into());
    }
    txn.grant_lease(id, ttl);
    Ok(())
}

/// LeaseRevoke: deletes the attached keys in one revision, then the lease.
pub fn lease_revoke(txn: &mut WriteTxn<'_>, id: i64) -> Result<(), ReadError> {
    if txn.lease_ttl(id)?.is_none() {
        return Err(EtcdError::LeaseNotFound.into());
    }
    txn.revoke_lease(id)?;
    Ok(())
}

/// Which branch each (nested) Txn takes, decided before anything executes.
#[derive(Debug, Clone, PartialEq)]
struct Path {
    succeeded: bool,
    /// One entry per `request_txn` op of the chosen branch, in order.
    nested: Vec<Path>,
}

impl Path {
    fn evaluate(view: &dyn StateView, req: &PbTxnRequest) -> Result<Path, ReadError> {
        let succeeded = compare::all_hold(view, &req.compare)?;
        let mut nested = Vec::new();
        for op in branch(req, succeeded) {
            if let Some(PbTxnOpRequest::RequestTxn(inner)) = &op.request {
                nested.push(Path::evaluate(view, inner)?);
            }
        }
        Ok(Path { succeeded, nested })
    }
}

fn branch(req: &PbTxnRequest, succeeded: bool) -> &[PbTxnRequestOp] {
    if succeeded {
        &req.success
    } else {
        &req.failure
    }
}

/// Txn: compares, then the chosen branch, all in one revision (bumped only if something
/// changed).
pub fn txn(txn: &mut WriteTxn<'_>, req: &PbTxnRequest) -> Result<PbTxnResponse, ReadError> {
    let path = Path::evaluate(txn, req)?;
    check(txn, req, &path)?;
    let mut resp = execute(txn, req, &path)?;
    resp.header = header(txn.revision());
    Ok(resp)
}

/// etcd's `checkTxn`: validates the chosen branches against the state before the Txn.
fn check(view: &dyn StateView, req: &PbTxnRequest, path: &Path) -> Result<(), ReadError> {
    let mut nested = path.nested.iter();
    for op in branch(req, path.succeeded) {
        match &op.request {
            Some(PbTxnOpRequest::RequestRange(r)) => check_range(view, r)?,
            Some(PbTxnOpRequest::RequestPut(p)) => {
                if (p.ignore_value || p.ignore_lease) && view.get(&p.key)?.is_none() {
                    return Err(EtcdError::KeyNotFound.into());
                }
                check_lease(view, p.lease)?;
            }
            Some(PbTxnOpRequest::RequestTxn(inner)) => {
                let inner_path = nested.next().expect("one path per nested txn");
                check(view, inner, inner_path)?;
            }
            Some(PbTxnOpRequest::RequestDeleteRange(_)) | None => {}
        }
    }
    Ok(())
}

fn check_range(view: &dyn StateView, r: &PbRangeRequest) -> Result<(), EtcdError> {
    range::resolve_revision(r.revision, view.revision(), view.compact_revision())?;
    let valid_order = (range::SORT_ORDER_NONE..=range::SORT_ORDER_DESCEND).contains(&r.sort_order);
    let valid_target = (range::SORT_TARGET_KEY..=range::SORT_TARGET_VALUE).contains(&r.sort_target);
    if !valid_order || !valid_target {
        return Err(EtcdError::InvalidSortOption);
    }
    Ok(())
}

/// etcd's `executeTxn`: runs the chosen branch; nested responses keep an empty header.
fn execute(
    txn: &mut WriteTxn<'_>,
    req: &PbTxnRequest,
    path: &Path,
) -> Result<PbTxnResponse, ReadError> {
    let mut nested = path.nested.iter();
    let ops = branch(req, path.succeeded);
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(PbTxnOpRequest::RequestRange(r)) => {
                Some(PbTxnOpResponse::ResponseRange(range::execute(txn, r)?))
            }
            Some(PbTxnOpRequest::RequestPut(p)) => {
                Some(PbTxnOpResponse::ResponsePut(put_unchecked_lease(txn, p)?))
            }
            Some(PbTxnOpRequest::RequestDeleteRange(d)) => {
                Some(PbTxnOpResponse::ResponseDeleteRange(delete_range(txn, d)?))
            }
            Some(PbTxnOpRequest::RequestTxn(inner)) => {
                let inner_path = nested.next().expect("one path per nested txn");
                Some(PbTxnOpResponse::ResponseTxn(execute(
                    txn, inner, inner_path,
                )?))
            }
            None => None,
        };
        responses.push(PbResponseOp { response });
    }
    Ok(PbTxnResponse {
        header: Some(PbResponseHeader::default()),
        succeeded: path.succeeded,
        responses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memview::MemView;
    use etcd_client::proto::{PbCompare, PbCompareTarget, PbTargetUnion};

    fn base() -> MemView {
        let mut v = MemView::new();
        v.insert("a", "1", 2, 2, 1, 0);
        v.leases.insert(7, 30);
        v.revision = 2;
        v
    }

    fn put_op(key: &str, value: &str) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            })),
        }
    }

    fn get_op(key: &str) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestRange(PbRangeRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    fn version_is(key: &str, v: i64) -> PbCompare {
        PbCompare {
            target: PbCompareTarget::Version as i32,
            key: key.into(),
            target_union: Some(PbTargetUnion::Version(v)),
            ..Default::default()
        }
    }

    // A Txn of reads only does not bump the revision; its header shows the current one.
    #[test]
    fn read_only_txn_keeps_revision() {
        let b = base();
        let mut t = WriteTxn::new(&b);
        let req = PbTxnRequest {
            compare: vec![version_is("a", 1)],
            success: vec![get_op("a")],
            ..Default::default()
        };
        let resp = txn(&mut t, &req).unwrap();
        assert!(resp.succeeded);
        assert_eq!(resp.header.unwrap().revision, 2);
        assert_eq!(t.into_effects().revision(), 2);
    }

    // A later op reads an earlier op's write; nested compares see the state before the outer
    // Txn; the nested response header is empty as in etcd.
    #[test]
    fn nested_txn_reads_writes_but_compares_old_state() {
        let b = base();
        let mut t = WriteTxn::new(&b);
        let nested = PbTxnRequest {
            // "b" is written by the outer txn first, yet the compare sees version 0.
            compare: vec![version_is("b", 0)],
            success: vec![get_op("b")],
            failure: vec![put_op("never", "x")],
        };
        let req = PbTxnRequest {
            success: vec![
                put_op("b", "new"),
                PbTxnRequestOp {
                    request: Some(PbTxnOpRequest::RequestTxn(nested)),
                },
            ],
            ..Default::default()
        };
        let resp = txn(&mut t, &req).unwrap();
        assert_eq!(resp.header.unwrap().revision, 3);
        let Some(PbTxnOpResponse::ResponseTxn(inner)) = &resp.responses[1].response else {
            panic!("expected a txn response");
        };
        assert!(inner.succeeded);
        assert_eq!(inner.header, Some(PbResponseHeader::default()));
        let Some(PbTxnOpResponse::ResponseRange(r)) = &inner.responses[0].response else {
            panic!("expected a range response");
        };
        assert_eq!(r.kvs[0].value, b"new");
        assert_eq!(r.header.as_ref().unwrap().revision, 3);
    }

    // An unknown lease or ignore_value on a missing key in the chosen branch rejects the whole
    // Txn before anything runs.
    #[test]
    fn txn_checks_reject_whole_txn() {
        let b = base();
        let bad_lease = PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                key: "x".into(),
                lease: 99,
                ..Default::default()
            })),
        };
        let req = PbTxnRequest {
            success: vec![put_op("ok", "1"), bad_lease],
            ..Default::default()
        };
        let mut t = WriteTxn::new(&b);
        let err = txn(&mut t, &req).unwrap_err();
        assert!(matches!(err, ReadError::Etcd(EtcdError::LeaseNotFound)));
        let ignore = PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                key: "missing".into(),
                ignore_value: true,
                ..Default::default()
            })),
        };
        let req = PbTxnRequest {
            failure: vec![ignore],
            compare: vec![version_is("a", 5)],
            ..Default::default()
        };
        let mut t = WriteTxn::new(&b);
        let err = txn(&mut t, &req).unwrap_err();
        assert!(matches!(err, ReadError::Etcd(EtcdError::KeyNotFound)));
    }

    // Put keeps the value or the lease with the ignore flags and returns prev_kv on request.
    #[test]
    fn put_ignore_flags() {
        let mut b = base();
        b.insert("l", "v", 2, 2, 1, 7);
        let mut t = WriteTxn::new(&b);
        let resp = put(
            &mut t,
            &PbPutRequest {
                key: "l".into(),
                value: "new".into(),
                ignore_lease: true,
                prev_kv: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(resp.prev_kv.unwrap().value, b"v");
        let kv = t.get(b"l").unwrap().unwrap();
        assert_eq!(
            (kv.value.as_slice(), kv.lease, kv.version),
            (&b"new"[..], 7, 2)
        );
        let err = put(
            &mut t,
            &PbPutRequest {
                key: "nope".into(),
                ignore_value: true,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, ReadError::Etcd(EtcdError::KeyNotFound)));
    }

    // Lease grant checks follow etcd's order: id 0, TTL too large, then duplicates.
    #[test]
    fn lease_grant_checks() {
        let b = base();
        let mut t = WriteTxn::new(&b);
        let err = |r: Result<(), ReadError>| match r {
            Err(ReadError::Etcd(e)) => e,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(err(lease_grant(&mut t, 0, 5)), EtcdError::LeaseNotFound);
        assert_eq!(
            err(lease_grant(&mut t, 7, MAX_LEASE_TTL_SECS + 1)),
            EtcdError::LeaseTtlTooLarge
        );
        assert_eq!(err(lease_grant(&mut t, 7, 5)), EtcdError::LeaseExists);
        assert_eq!(err(lease_revoke(&mut t, 8)), EtcdError::LeaseNotFound);
        lease_grant(&mut t, 8, 5).unwrap();
        assert_eq!(t.lease_ttl(8).unwrap(), Some(5));
    }
}
