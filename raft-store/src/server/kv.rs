//! etcd's `KV` service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Requests are validated here, before they reach Raft, with etcd's checks and messages, so
//! a bad request is refused without touching the log. Reads are served from the local MVCC
//! store after the read barrier (linearizable, the default) or at once (`serializable`).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbPutRequest,
    PbPutResponse, PbRangeRequest, PbRangeResponse, PbRangeStreamResponse, PbResponseHeader,
    PbTxnOpRequest, PbTxnRequest, PbTxnResponse,
};
use futures::Stream;
use prost::Message;
use tonic::{Request, Response, Status};

use super::{errors, track, Node};
use crate::config::MAX_TXN_OPS;
use crate::raft::{ApiError, Command};

/// The KV service.
pub struct KvService {
    node: Arc<Node>,
}

impl KvService {
    /// Serves KV requests for `node`.
    pub fn new(node: Arc<Node>) -> Self {
        KvService { node }
    }
}

/// A write request of the KV service: how it is checked before it is proposed, and the
/// command that carries it through the log. Both gRPC paths use it: tonic's handlers below
/// and the lean unary path of `server::unary`, which proposes the bytes the client sent.
pub trait WriteRequest: Message + Default + 'static {
    /// The gRPC method name (for metrics).
    const METHOD: &'static str;
    /// The response message.
    type Response: Message + Default;
    /// etcd's checks of the request's contents, made before it reaches the log.
    fn validate(&self) -> Result<(), ApiError>;
    /// Whether it may add data (and so is refused when the space quota is exceeded).
    fn adds_data(&self) -> bool;
    /// The command carrying the encoded request.
    fn command(encoded: Vec<u8>) -> Command;
    /// Fills the response header.
    fn set_header(resp: &mut Self::Response, header: Option<PbResponseHeader>);
}

impl WriteRequest for PbPutRequest {
    const METHOD: &'static str = "Put";
    type Response = PbPutResponse;
    fn validate(&self) -> Result<(), ApiError> {
        check_key(&self.key)
    }
    fn adds_data(&self) -> bool {
        true
    }
    fn command(encoded: Vec<u8>) -> Command {
        Command::Put(encoded)
    }
    fn set_header(resp: &mut PbPutResponse, header: Option<PbResponseHeader>) {
        resp.header = header;
    }
}

impl WriteRequest for PbDeleteRequest {
    const METHOD: &'static str = "DeleteRange";
    type Response = PbDeleteResponse;
    fn validate(&self) -> Result<(), ApiError> {
        check_key(&self.key)
    }
    fn adds_data(&self) -> bool {
        false
    }
    fn command(encoded: Vec<u8>) -> Command {
        Command::DeleteRange(encoded)
    }
    fn set_header(resp: &mut PbDeleteResponse, header: Option<PbResponseHeader>) {
        resp.header = header;
    }
}

impl WriteRequest for PbTxnRequest {
    const METHOD: &'static str = "Txn";
    type Response = PbTxnResponse;
    fn validate(&self) -> Result<(), ApiError> {
        check_txn(self)
    }
    fn adds_data(&self) -> bool {
        has_put(self)
    }
    fn command(encoded: Vec<u8>) -> Command {
        Command::Txn(encoded)
    }
    fn set_header(resp: &mut PbTxnResponse, header: Option<PbResponseHeader>) {
        resp.header = header;
    }
}

/// Checks `req`, whose protobuf encoding is `encoded`, and proposes it. Returns the applied
/// response's encoding without its header (see `CommandResult::Ok`) and the revision.
/// Like etcd it refuses requests over `--max-request-bytes`, and writes that add data while
/// the space quota is exceeded, before proposing them.
pub async fn propose_write<R: WriteRequest>(
    node: &Node,
    req: &R,
    encoded: Vec<u8>,
) -> Result<(Vec<u8>, i64), ApiError> {
    req.validate()?;
    if encoded.len() as u64 > node.cfg.max_request_bytes {
        return Err(errors::request_too_large());
    }
    if req.adds_data() {
        node.check_quota()?;
    }
    node.write_raw(R::command(encoded)).await
}

fn check_key(key: &[u8]) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(errors::empty_key());
    }
    Ok(())
}

/// etcd's `checkTxnReq` + `checkIntervals`: op counts, empty keys, and no key written twice
/// in one branch (a put and an overlapping delete also count).
pub fn check_txn(t: &PbTxnRequest) -> Result<(), ApiError> {
    if t.compare.len() > MAX_TXN_OPS
        || t.success.len() > MAX_TXN_OPS
        || t.failure.len() > MAX_TXN_OPS
    {
        return Err(errors::too_many_ops());
    }
    for c in &t.compare {
        check_key(&c.key)?;
    }
    for branch in [&t.success, &t.failure] {
        let mut puts = HashSet::new();
        let mut dels: Vec<(&[u8], &[u8])> = Vec::new();
        for op in branch.iter().filter_map(|o| o.request.as_ref()) {
            match op {
                PbTxnOpRequest::RequestRange(r) => check_key(&r.key)?,
                PbTxnOpRequest::RequestPut(p) => {
                    check_key(&p.key)?;
                    if !puts.insert(p.key.as_slice()) {
                        return Err(errors::duplicate_key());
                    }
                }
                PbTxnOpRequest::RequestDeleteRange(d) => {
                    check_key(&d.key)?;
                    dels.push((&d.key, &d.range_end));
                }
                PbTxnOpRequest::RequestTxn(nested) => check_txn(nested)?,
            }
        }
        if puts
            .iter()
            .any(|k| dels.iter().any(|(lo, hi)| in_range(k, lo, hi)))
        {
            return Err(errors::duplicate_key());
        }
    }
    Ok(())
}

/// Whether `key` falls in etcd's range `[lo, hi)` (empty `hi` = just `lo`; `"\0"` = to the end).
fn in_range(key: &[u8], lo: &[u8], hi: &[u8]) -> bool {
    if hi.is_empty() {
        return key == lo;
    }
    key >= lo && (hi == [0] || key < hi)
}

type RangeStreamBox = Pin<Box<dyn Stream<Item = Result<PbRangeStreamResponse, Status>> + Send>>;

impl KvService {
    /// A write through tonic's unary path (the client port serves these methods on the lean
    /// path of `server::unary`; this one serves a `KvServer` used on its own).
    async fn write<R: WriteRequest>(&self, r: R) -> Result<Response<R::Response>, Status> {
        let node = &self.node;
        track(node, R::METHOD, async {
            let (body, rev) = propose_write(node, &r, r.encode_to_vec()).await?;
            let mut resp = R::Response::decode(body.as_slice())
                .map_err(|e| errors::internal(format!("bad {} response: {e}", R::METHOD)))?;
            R::set_header(&mut resp, node.header(rev));
            Ok(resp)
        })
        .await
    }

    async fn do_range(&self, r: PbRangeRequest) -> Result<PbRangeResponse, ApiError> {
        check_key(&r.key)?;
        if !r.serializable {
            self.node.reads.wait().await?;
        }
        let mut resp = self.node.mvcc.range(&r).map_err(super::mvcc_error)?;
        let rev = resp.header.as_ref().map_or(0, |h| h.revision);
        resp.header = self.node.header(rev);
        Ok(resp)
    }
}

#[tonic::async_trait]
impl etcd_client::proto::PbKvService for KvService {
    async fn range(
        &self,
        req: Request<PbRangeRequest>,
    ) -> Result<Response<PbRangeResponse>, Status> {
        let r = req.into_inner();
        track(&self.node, "Range", self.do_range(r)).await
    }

    type RangeStreamStream = RangeStreamBox;

    async fn range_stream(
        &self,
        req: Request<PbRangeRequest>,
    ) -> Result<Response<RangeStreamBox>, Status> {
        let resp = self
            .do_range(req.into_inner())
            .await
            .map_err(Status::from)?;
        let item = PbRangeStreamResponse {
            range_response: Some(resp),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(item)]))))
    }

    async fn put(&self, req: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        self.write(req.into_inner()).await
    }

    async fn delete_range(
        &self,
        req: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        self.write(req.into_inner()).await
    }

    async fn txn(&self, req: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        self.write(req.into_inner()).await
    }

    async fn compact(
        &self,
        req: Request<PbCompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        let r = req.into_inner();
        let node = &self.node;
        track(node, "Compact", async {
            let (mut resp, rev): (PbCompactionResponse, i64) =
                node.write(Command::Compact(r.encode_to_vec())).await?;
            // A follower forwards the compaction and gets the leader's reply, possibly before
            // applying it itself; etcd answers only once the receiving member has applied it,
            // so a watch from below the compaction on this member is refused right after.
            // Compactions are rare: a read barrier here costs nothing that matters.
            node.reads.wait().await?;
            resp.header = node.header(rev);
            Ok(resp)
        })
        .await
    }
}

fn has_put(t: &PbTxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .filter_map(|o| o.request.as_ref())
        .any(|op| match op {
            PbTxnOpRequest::RequestPut(_) => true,
            PbTxnOpRequest::RequestTxn(n) => has_put(n),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::proto::{PbPutRequest, PbTxnRequestOp};

    fn put(k: &str) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }

    // More than 128 ops in a branch and a key put twice are refused, as etcd refuses them.
    #[test]
    fn txn_limits() {
        let ok = PbTxnRequest {
            success: vec![put("a"), put("b")],
            ..Default::default()
        };
        assert!(check_txn(&ok).is_ok());
        let dup = PbTxnRequest {
            success: vec![put("a"), put("a")],
            ..Default::default()
        };
        assert_eq!(
            check_txn(&dup).unwrap_err().message,
            "etcdserver: duplicate key given in txn request"
        );
        let many = PbTxnRequest {
            success: (0..129).map(|i| put(&i.to_string())).collect(),
            ..Default::default()
        };
        assert_eq!(
            check_txn(&many).unwrap_err().message,
            "etcdserver: too many operations in txn request"
        );
    }

    // Range membership follows etcd's conventions for empty and "\0" range ends.
    #[test]
    fn range_membership() {
        assert!(in_range(b"a", b"a", b""));
        assert!(!in_range(b"ab", b"a", b""));
        assert!(in_range(b"zz", b"a", b"\0"));
        assert!(in_range(b"b", b"a", b"c"));
        assert!(!in_range(b"c", b"a", b"c"));
    }
}
