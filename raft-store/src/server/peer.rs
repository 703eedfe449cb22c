//! The peer service: Raft RPCs from other members and the client requests followers
//! forward to this member when it leads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use openraft::raft::AppendEntriesRequest;
use tonic::{Request, Response, Status, Streaming};

use super::membership::{self, ClusterInfo, MemberOp};
use super::proposer::ProposeError;
use super::reads::leader_read_index;
use super::transfer;
use super::Node;
use crate::raft::pb::peer_server::{Peer, PeerServer};
use crate::raft::pb::Blob;
use crate::raft::{decode, encode, Command, TypeConfig};

/// Serves the peer service on every `--listen-peer-urls` address.
pub async fn serve(node: Arc<Node>) -> anyhow::Result<()> {
    for addr in node.cfg.listen_peer.clone() {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("failed to listen for peers on {addr}: {e}"))?;
        let svc = PeerServer::new(PeerService { node: node.clone() })
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(async move {
            if let Err(e) = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .initial_stream_window_size(crate::raft::network::PEER_WINDOW_BYTES)
                .initial_connection_window_size(crate::raft::network::PEER_WINDOW_BYTES)
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await
            {
                tracing::error!(error = %e, %addr, "peer listener stopped");
            }
        });
    }
    Ok(())
}

struct PeerService {
    node: Arc<Node>,
}

fn arg<T: serde::de::DeserializeOwned>(req: Request<Blob>) -> Result<T, Status> {
    decode(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable peer request: {e}")))
}

fn reply<T: serde::Serialize>(v: &T) -> Result<Response<Blob>, Status> {
    Ok(Response::new(Blob { data: encode(v) }))
}

type AppendStream = std::pin::Pin<Box<dyn Stream<Item = Result<Blob, Status>> + Send>>;

/// Answers the requests of one replication stream in order (see `network::AppendStream`):
/// each `(seq, request)` gets `(seq, result)`. The stream ends when the leader closes it;
/// an undecodable message ends it with an error.
fn serve_append_stream(node: Arc<Node>, inbound: Streaming<Blob>) -> AppendStream {
    Box::pin(futures::stream::unfold(
        Some((node, inbound)),
        |state| async move {
            let (node, mut inbound) = state?;
            let blob = match inbound.message().await {
                Ok(Some(b)) => b,
                Ok(None) => return None,
                Err(e) => return Some((Err(e), None)),
            };
            let (seq, rpc): (u64, AppendEntriesRequest<TypeConfig>) = match decode(&blob.data) {
                Ok(m) => m,
                Err(e) => {
                    let status =
                        Status::invalid_argument(format!("undecodable append stream message: {e}"));
                    return Some((Err(status), None));
                }
            };
            let r = node.raft.append_entries(rpc).await;
            let out = Blob {
                data: encode(&(seq, r)),
            };
            Some((Ok(out), Some((node, inbound))))
        },
    ))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, req: Request<Blob>) -> Result<Response<Blob>, Status> {
        let r = self.node.raft.append_entries(arg(req)?).await;
        reply(&r)
    }

    type AppendStreamStream = AppendStream;

    async fn append_stream(
        &self,
        req: Request<Streaming<Blob>>,
    ) -> Result<Response<AppendStream>, Status> {
        Ok(Response::new(serve_append_stream(
            self.node.clone(),
            req.into_inner(),
        )))
    }

    async fn vote(&self, req: Request<Blob>) -> Result<Response<Blob>, Status> {
        let r = self.node.raft.vote(arg(req)?).await;
        reply(&r)
    }

    async fn install_snapshot(&self, req: Request<Blob>) -> Result<Response<Blob>, Status> {
        let r = self.node.raft.install_snapshot(arg(req)?).await;
        reply(&r)
    }

    async fn propose(&self, req: Request<Blob>) -> Result<Response<Blob>, Status> {
        let cmd: Command = arg(req)?;
        let r = self.node.proposer.propose_local(cmd).await;
        reply(&r)
    }

    async fn read_index(&self, _req: Request<Blob>) -> Result<Response<Blob>, Status> {
        let r = leader_read_index(&self.node.proposer).await;
        reply(&r)
    }

    async fn lease_keep_alive(&self, req: Request<Blob>) -> Result<Response<Blob>, Status> {
        let id: i64 = arg(req)?;
        let r: Result<i64, ProposeError> = if self.node.lessor.is_primary() {
            Ok(self.node.lessor.renew(id, Instant::now()).unwrap_or(0))
        } else {
            Err(ProposeError::NotLeader)
        };
        reply(&r)
    }

    async fn change_membership(&self, req: Request<Blob>) -> Result<Response<Blob>, Status> {
        let op: MemberOp = arg(req)?;
        let r = membership::change_on_leader(&self.node, op).await;
        reply(&r)
    }

    async fn list_members(&self, _req: Request<Blob>) -> Result<Response<Blob>, Status> {
        reply(&ClusterInfo {
            cluster_id: self.node.cfg.cluster_id,
            members: membership::current_members(&self.node),
        })
    }

    async fn pause_election(&self, req: Request<Blob>) -> Result<Response<Blob>, Status> {
        let pause: Option<Duration> = arg(req)?;
        transfer::local_pause_elections(&self.node, pause);
        reply(&())
    }

    async fn campaign(&self, req: Request<Blob>) -> Result<Response<Blob>, Status> {
        let limit: Duration = arg(req)?;
        let r = transfer::campaign(&self.node, limit).await;
        reply(&r)
    }

    async fn lease_time_to_live(&self, req: Request<Blob>) -> Result<Response<Blob>, Status> {
        let (id, keys): (i64, bool) = arg(req)?;
        let r = if self.node.lessor.is_primary() {
            Ok(super::lease::local_time_to_live(&self.node, id, keys))
        } else {
            Err(ProposeError::NotLeader)
        };
        reply(&r)
    }
}
