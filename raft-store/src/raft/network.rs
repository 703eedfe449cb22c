//! Outbound peer RPCs: openraft's `RaftNetwork` over the `skiff.peer.Peer` gRPC service,
//! and the same connection used to forward client requests to the leader.
//!
//! One lazily connected tonic channel per peer, shared by Raft replication and forwarding.
//! A peer that cannot be reached is reported to openraft as `Unreachable`, which makes it
//! back off instead of retrying in a tight loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::pb::peer_client::PeerClient;
use super::pb::Blob;
use super::{decode, encode, MemberNode, TypeConfig};
use crate::config::url_host_port;

/// How long a TCP connect to a peer may take before the peer counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The peer RPCs, named for errors and metrics.
#[derive(Debug, Clone, Copy)]
pub enum PeerMethod {
    /// Raft AppendEntries.
    AppendEntries,
    /// Raft RequestVote.
    Vote,
    /// Raft InstallSnapshot (one chunk).
    InstallSnapshot,
    /// Forwarded client write.
    Propose,
    /// Forwarded ReadIndex request.
    ReadIndex,
    /// Forwarded lease keep-alive.
    LeaseKeepAlive,
    /// Forwarded lease time-to-live query.
    LeaseTimeToLive,
    /// Forwarded membership change.
    ChangeMembership,
    /// Member list lookup (joining member).
    ListMembers,
    /// Pause/resume elections during a leadership transfer.
    PauseElection,
    /// Ask the transfer target to campaign.
    Campaign,
}

/// A failed peer call.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer's URL cannot be used.
    #[error("bad peer URL {0:?}: {1}")]
    BadUrl(String, String),
    /// The call did not complete (connection refused, timeout, peer down).
    #[error("peer call {method:?} failed: {status}")]
    Transport {
        /// Which RPC.
        method: PeerMethod,
        /// What gRPC reported.
        status: tonic::Status,
    },
    /// The peer answered with bytes this binary cannot decode (version mismatch).
    #[error("undecodable answer to {method:?}: {source}")]
    Decode {
        /// Which RPC.
        method: PeerMethod,
        /// Why decoding failed.
        source: bincode::Error,
    },
}

impl PeerError {
    /// Whether the request certainly never reached the peer (the TCP connection could not be
    /// made), so retrying it elsewhere cannot apply it twice.
    pub fn never_sent(&self) -> bool {
        match self {
            PeerError::BadUrl(..) => true,
            PeerError::Transport { status, .. } => {
                status.code() == tonic::Code::Unavailable
                    && format!("{status:?}").contains("tcp connect error")
            }
            PeerError::Decode { .. } => false,
        }
    }
}

/// A connection to one peer.
#[derive(Clone)]
pub struct PeerConn {
    client: PeerClient<Channel>,
}

impl PeerConn {
    /// A connection to the peer at `node`'s first peer URL (made lazily).
    pub fn connect(node: &MemberNode) -> Result<PeerConn, PeerError> {
        let url = node.peer_urls.first().cloned().unwrap_or_default();
        let hp = url_host_port(&url).map_err(|e| PeerError::BadUrl(url.clone(), e))?;
        let ep = Endpoint::from_shared(format!("http://{hp}"))
            .map_err(|e| PeerError::BadUrl(url.clone(), e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10));
        let client = PeerClient::new(ep.connect_lazy())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        Ok(PeerConn { client })
    }

    /// Calls `method` with a bincode-encoded request and decodes the answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: PeerMethod,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let mut request = tonic::Request::new(Blob { data: encode(req) });
        request.set_timeout(timeout);
        let mut c = self.client.clone();
        let fut = async {
            match method {
                PeerMethod::AppendEntries => c.append_entries(request).await,
                PeerMethod::Vote => c.vote(request).await,
                PeerMethod::InstallSnapshot => c.install_snapshot(request).await,
                PeerMethod::Propose => c.propose(request).await,
                PeerMethod::ReadIndex => c.read_index(request).await,
                PeerMethod::LeaseKeepAlive => c.lease_keep_alive(request).await,
                PeerMethod::LeaseTimeToLive => c.lease_time_to_live(request).await,
                PeerMethod::ChangeMembership => c.change_membership(request).await,
                PeerMethod::ListMembers => c.list_members(request).await,
                PeerMethod::PauseElection => c.pause_election(request).await,
                PeerMethod::Campaign => c.campaign(request).await,
            }
        };
        let resp = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r.map_err(|status| PeerError::Transport { method, status })?,
            Err(_) => {
                return Err(PeerError::Transport {
                    method,
                    status: tonic::Status::deadline_exceeded("peer call timed out"),
                })
            }
        };
        decode(&resp.into_inner().data).map_err(|source| PeerError::Decode { method, source })
    }
}

/// Connections to every peer this member talks to, keyed by member id.
#[derive(Clone, Default)]
pub struct Peers {
    conns: Arc<Mutex<HashMap<u64, (MemberNode, PeerConn)>>>,
    /// When each peer last answered a Raft RPC: etcd's "connected since" for the health
    /// checks of membership changes.
    contact: Arc<Mutex<HashMap<u64, Instant>>>,
}

impl Peers {
    /// The connection to `id` at `node`, made on first use and replaced if its URL changed.
    pub fn get(&self, id: u64, node: &MemberNode) -> Result<PeerConn, PeerError> {
        let mut conns = self.conns.lock().expect("peer map lock poisoned");
        if let Some((n, c)) = conns.get(&id) {
            if n.peer_urls == node.peer_urls {
                return Ok(c.clone());
            }
        }
        let conn = PeerConn::connect(node)?;
        conns.insert(id, (node.clone(), conn.clone()));
        Ok(conn)
    }

    /// Whether `id` answered a Raft RPC within `window`.
    pub fn answered_within(&self, id: u64, window: Duration) -> bool {
        self.contact
            .lock()
            .expect("peer contact lock poisoned")
            .get(&id)
            .is_some_and(|t| t.elapsed() <= window)
    }

    fn record_contact(&self, id: u64) {
        self.contact
            .lock()
            .expect("peer contact lock poisoned")
            .insert(id, Instant::now());
    }
}

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: u64, node: &MemberNode) -> RaftPeer {
        RaftPeer {
            peers: self.clone(),
            target,
            conn: self.get(target, node).map_err(|e| e.to_string()),
        }
    }
}

/// openraft's view of one peer.
pub struct RaftPeer {
    peers: Peers,
    target: u64,
    conn: Result<PeerConn, String>,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<u64, MemberNode, RaftError<u64, E>>;

impl RaftPeer {
    async fn rpc<Req, Resp, E>(
        &self,
        method: PeerMethod,
        req: &Req,
        opt: &RPCOption,
    ) -> Result<Resp, RpcErr<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let conn = self.conn.as_ref().map_err(|e| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e.clone())))
        })?;
        let res: Result<Resp, RaftError<u64, E>> = conn
            .call(method, req, opt.hard_ttl())
            .await
            .map_err(|e| match &e {
                PeerError::Transport { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        self.peers.record_contact(self.target);
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for RaftPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        self.rpc(PeerMethod::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<InstallSnapshotError>> {
        self.rpc(PeerMethod::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr> {
        self.rpc(PeerMethod::Vote, &rpc, &option).await
    }
}
