//! etcd's write methods on the wire. The client port serves `KV/Put`, `KV/DeleteRange` and
//! `KV/Txn` on its own lean unary path (`server/unary.rs`), not through tonic: these tests
//! send the same requests to skiff-store and to real etcd and compare the replies, and
//! check that malformed gRPC bodies get tonic's status codes.

mod common;

use bytes::Bytes;
use common::{require_etcd, rt, Cluster, Flavor};
use etcd_client::proto::{
    PbDeleteRequest, PbDeleteResponse, PbPutRequest, PbPutResponse, PbResponseHeader, PbTxnRequest,
    PbTxnResponse,
};
use prost::Message;
use skiff_store::bench::grpc::{frame, UnaryConn};
use tonic::Code;

/// One request of the script, applied in order to a fresh cluster.
enum Step {
    Put(PbPutRequest),
    Delete(PbDeleteRequest),
    Txn(PbTxnRequest),
}

fn put(key: &str, value: &str, prev_kv: bool) -> PbPutRequest {
    PbPutRequest {
        key: key.into(),
        value: value.into(),
        prev_kv,
        ..Default::default()
    }
}

fn steps() -> Vec<Step> {
    use etcd_client::proto::{PbCompare, PbRangeRequest, PbTxnOpRequest, PbTxnRequestOp};
    let op = |r| PbTxnRequestOp { request: Some(r) };
    let nested = PbTxnRequest {
        success: vec![op(PbTxnOpRequest::RequestPut(put("n", "1", true)))],
        ..Default::default()
    };
    vec![
        Step::Put(put("a", "1", false)),
        Step::Put(put("a", "2", true)),
        Step::Put(put("b", "3", false)),
        // compare value("a") == "2", then put, range, nested txn; and a failing compare.
        Step::Txn(PbTxnRequest {
            compare: vec![PbCompare {
                key: "a".into(),
                result: 0, // EQUAL
                target: 3, // VALUE
                target_union: Some(etcd_client::proto::PbTargetUnion::Value("2".into())),
                ..Default::default()
            }],
            success: vec![
                op(PbTxnOpRequest::RequestPut(put("c", "4", true))),
                op(PbTxnOpRequest::RequestRange(PbRangeRequest {
                    key: "a".into(),
                    range_end: "z".into(),
                    ..Default::default()
                })),
                op(PbTxnOpRequest::RequestTxn(nested)),
            ],
            failure: vec![op(PbTxnOpRequest::RequestPut(put("never", "x", false)))],
        }),
        Step::Delete(PbDeleteRequest {
            key: "a".into(),
            range_end: "c".into(),
            prev_kv: true,
        }),
        // etcd's errors: no key, unknown lease, a key put twice in one Txn.
        Step::Put(put("", "x", false)),
        Step::Put(PbPutRequest {
            key: "l".into(),
            lease: 12345,
            ..Default::default()
        }),
        Step::Txn(PbTxnRequest {
            success: vec![
                op(PbTxnOpRequest::RequestPut(put("d", "1", false))),
                op(PbTxnOpRequest::RequestPut(put("d", "2", false))),
            ],
            ..Default::default()
        }),
    ]
}

/// What a step answered, with the outer header's cluster-specific fields checked (set)
/// and cleared; errors as code and message.
async fn answer(conn: &UnaryConn, step: &Step) -> String {
    fn header(h: &mut Option<PbResponseHeader>) {
        let h = h.as_mut().expect("a reply has a header");
        assert!(
            h.cluster_id != 0 && h.member_id != 0 && h.raft_term != 0,
            "{h:?}"
        );
        assert!(h.revision > 0, "{h:?}");
        (h.cluster_id, h.member_id, h.raft_term) = (0, 0, 0);
    }
    let res = match step {
        Step::Put(r) => {
            let m = conn.method("/etcdserverpb.KV/Put").unwrap();
            conn.call::<_, PbPutResponse>(&m, r).await.map(|mut a| {
                header(&mut a.header);
                format!("{a:?}")
            })
        }
        Step::Delete(r) => {
            let m = conn.method("/etcdserverpb.KV/DeleteRange").unwrap();
            conn.call::<_, PbDeleteResponse>(&m, r).await.map(|mut a| {
                header(&mut a.header);
                format!("{a:?}")
            })
        }
        Step::Txn(r) => {
            let m = conn.method("/etcdserverpb.KV/Txn").unwrap();
            conn.call::<_, PbTxnResponse>(&m, r).await.map(|mut a| {
                header(&mut a.header);
                format!("{a:?}")
            })
        }
    };
    res.unwrap_or_else(|s| format!("error {:?}: {}", s.code(), s.message()))
}

// Put, DeleteRange and Txn (nested responses, prev_kv, errors) answer exactly as etcd 3.4
// answers the same requests, through a follower as well as the leader.
#[test]
fn unary_writes_answer_as_etcd_does() {
    if !require_etcd() {
        return;
    }
    let skiff = Cluster::start(Flavor::Skiff, 3);
    let etcd = Cluster::start(Flavor::Etcd, 1);
    rt().block_on(async {
        let follower = (skiff.wait_leader(std::time::Duration::from_secs(10)) + 1) % 3;
        let ours = UnaryConn::open(&skiff.endpoint(follower)).await.unwrap();
        let theirs = UnaryConn::open(&etcd.endpoint(0)).await.unwrap();
        for (i, step) in steps().iter().enumerate() {
            let (a, b) = (answer(&ours, step).await, answer(&theirs, step).await);
            assert_eq!(a, b, "step {i}: skiff-store and etcd answer differently");
        }
    });
}

// Bodies that are not one uncompressed gRPC message get tonic's codes; nothing is written.
#[test]
fn unary_writes_refuse_malformed_bodies() {
    let skiff = Cluster::start(Flavor::Skiff, 1);
    rt().block_on(async {
        let conn = UnaryConn::open(&skiff.endpoint(0)).await.unwrap();
        let m = conn.method("/etcdserverpb.KV/Put").unwrap();
        let good = frame(&put("k", "v", false));
        let code = |r: Result<Bytes, tonic::Status>| r.map(drop).unwrap_err().code();

        let mut compressed = good.to_vec();
        compressed[0] = 1;
        let r = conn.call_framed(&m, Bytes::from(compressed)).await;
        assert_eq!(code(r), Code::Unimplemented);

        let mut two = good.to_vec();
        two.extend_from_slice(&good);
        assert_eq!(
            code(conn.call_framed(&m, Bytes::from(two)).await),
            Code::Internal
        );

        let short = good.slice(..good.len() - 1);
        assert_eq!(code(conn.call_framed(&m, short).await), Code::Internal);

        let mut huge = good.to_vec();
        huge[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            code(conn.call_framed(&m, Bytes::from(huge)).await),
            Code::OutOfRange
        );

        // Field 1 (key) as a varint: not a PutRequest.
        let garbage = Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 0x01]);
        assert_eq!(code(conn.call_framed(&m, garbage).await), Code::Internal);

        // None of them wrote anything; the good request still does.
        let body = conn.call_framed(&m, good).await.unwrap();
        let resp = PbPutResponse::decode(body).unwrap();
        assert_eq!(resp.header.unwrap().revision, 2);
    });
}
