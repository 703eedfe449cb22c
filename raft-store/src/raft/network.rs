//! Outbound peer RPCs: openraft's `RaftNetwork` over the `skiff.peer.Peer` gRPC service,
//! and the same connection used to forward client requests to the leader.
//!
//! One lazily connected tonic channel per peer, shared by Raft replication and forwarding.
//! AppendEntries, the one RPC sent for every write (twice: the entries, then the new commit
//! index), goes over a long-lived `AppendStream` per follower ([`AppendStream`]) instead of
//! one HTTP/2 request each. A peer that cannot be reached is reported to openraft as
//! `Unreachable`, which makes it back off instead of retrying in a tight loop; a call that
//! only timed out is not (see [`rpc_error`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use super::pb::peer_client::PeerClient;
use super::pb::Blob;
use super::{decode, encode, Entry, MemberNode, TypeConfig};
use crate::config::url_host_port;

/// How long a TCP connect to a peer may take before the peer counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Encoded bytes of log entries in one AppendEntries RPC (etcd's `MaxSizePerMsg` is also
/// 1 MiB); a single larger entry is still sent alone. openraft 0.9 gives an AppendEntries RPC
/// one heartbeat interval (100 ms by default) to complete, the follower's append and fsync
/// included, and treats a timeout as a failed round. Up to `max_payload_entries` batched
/// entries of up to a few MiB each made RPCs of tens of MiB under a bulk load; on a busy
/// machine they timed out again and again, the followers heard nothing for an election
/// timeout, and one of them took over the leadership.
pub const MAX_APPEND_BYTES: u64 = 1 << 20;

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

/// HTTP/2 flow-control window of peer connections, both directions. h2's default of 64 KiB
/// is smaller than one AppendEntries under load (up to `MAX_APPEND_BYTES`): the sender then
/// stops mid-message until the receiver's WINDOW_UPDATE arrives, an extra round trip inside
/// every replication round.
pub const PEER_WINDOW_BYTES: u32 = 8 << 20;

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
            .initial_stream_window_size(PEER_WINDOW_BYTES)
            .initial_connection_window_size(PEER_WINDOW_BYTES)
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

    /// Opens a replication stream to this peer (`Peer.AppendStream`).
    async fn open_append_stream(&self) -> Result<AppendStream, PeerError> {
        let (tx, rx) = mpsc::channel(APPEND_STREAM_QUEUE);
        let request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut c = self.client.clone();
        let resp = c
            .append_stream(request)
            .await
            .map_err(|status| PeerError::Transport {
                method: PeerMethod::AppendEntries,
                status,
            })?;
        Ok(AppendStream {
            tx,
            rx: resp.into_inner(),
            next_seq: 0,
        })
    }
}

/// Messages queued on a replication stream's send side; openraft 0.9 has one AppendEntries
/// in flight per follower, so one would do.
const APPEND_STREAM_QUEUE: usize = 4;

/// The leader's end of one replication stream to a follower: request `n` is
/// `(n, AppendEntriesRequest)`, and the follower answers `(n, result)` in order. Any
/// failure or timeout drops the stream (the next call opens a new one), so an answer that
/// arrives late can never be taken for the answer to a later request.
struct AppendStream {
    tx: mpsc::Sender<Blob>,
    rx: tonic::Streaming<Blob>,
    next_seq: u64,
}

type AppendResult = Result<AppendEntriesResponse<u64>, RaftError<u64>>;

impl AppendStream {
    /// Sends one request and waits for its answer until `deadline`.
    async fn call(
        &mut self,
        rpc: &AppendEntriesRequest<TypeConfig>,
        deadline: tokio::time::Instant,
    ) -> Result<AppendResult, PeerError> {
        let method = PeerMethod::AppendEntries;
        let transport = |status| PeerError::Transport { method, status };
        let seq = self.next_seq;
        self.next_seq += 1;
        let msg = Blob {
            data: encode(&(seq, rpc)),
        };
        self.tx
            .send(msg)
            .await
            .map_err(|_| transport(tonic::Status::unavailable("replication stream closed")))?;
        let answer = match tokio::time::timeout_at(deadline, self.rx.message()).await {
            Err(_) => {
                return Err(transport(tonic::Status::deadline_exceeded(
                    "peer call timed out",
                )))
            }
            Ok(Err(status)) => return Err(transport(status)),
            Ok(Ok(None)) => {
                return Err(transport(tonic::Status::unavailable(
                    "replication stream ended",
                )))
            }
            Ok(Ok(Some(m))) => m,
        };
        let (got, result): (u64, AppendResult) =
            decode(&answer.data).map_err(|source| PeerError::Decode { method, source })?;
        if got != seq {
            return Err(transport(tonic::Status::internal(format!(
                "replication stream answered request {got} while waiting for {seq}"
            ))));
        }
        Ok(result)
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
            stream: None,
            unary_appends: false,
        }
    }
}

/// openraft's view of one peer.
pub struct RaftPeer {
    peers: Peers,
    target: u64,
    conn: Result<PeerConn, String>,
    /// The replication stream, opened on the first AppendEntries.
    stream: Option<AppendStream>,
    /// The peer does not serve `AppendStream` (an older binary): use unary AppendEntries.
    unary_appends: bool,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<u64, MemberNode, RaftError<u64, E>>;

// The helpers below return openraft's own error type, which `RaftNetwork` requires as is.
#[allow(clippy::result_large_err)]
impl RaftPeer {
    fn conn<E: std::error::Error>(&self) -> Result<PeerConn, RpcErr<E>> {
        self.conn
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))
    }

    /// openraft's error for a failed call; records the contact when the peer answered.
    fn finish<Resp, E: std::error::Error>(
        &self,
        res: Result<Result<Resp, RaftError<u64, E>>, PeerError>,
    ) -> Result<Resp, RpcErr<E>> {
        let res = res.map_err(rpc_error)?;
        self.peers.record_contact(self.target);
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

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
        let conn = self.conn()?;
        self.finish(conn.call(method, req, opt.hard_ttl()).await)
    }

    /// AppendEntries over the replication stream (opened if needed), dropping the stream on
    /// any failure.
    async fn append_streamed(
        &mut self,
        conn: &PeerConn,
        rpc: &AppendEntriesRequest<TypeConfig>,
        ttl: Duration,
    ) -> Result<AppendResult, PeerError> {
        let deadline = tokio::time::Instant::now() + ttl;
        let mut stream = match self.stream.take() {
            Some(s) => s,
            None => match tokio::time::timeout_at(deadline, conn.open_append_stream()).await {
                Ok(s) => s?,
                Err(_) => {
                    return Err(PeerError::Transport {
                        method: PeerMethod::AppendEntries,
                        status: tonic::Status::deadline_exceeded(
                            "opening the replication stream timed out",
                        ),
                    })
                }
            },
        };
        let result = stream.call(rpc, deadline).await?;
        self.stream = Some(stream);
        Ok(result)
    }
}

/// openraft's error for a failed peer call. A peer that could not be reached (no
/// connection, connection lost) is `Unreachable`: openraft then backs off (500 ms) before
/// replicating to it again. A call that timed out went to a peer that is up but slow (an
/// AppendEntries gets one heartbeat interval, 100 ms, for the peer's append and fsync of up
/// to 1 MiB of entries: a burst of 1,000 clients on a fresh cluster exceeded it) and is a
/// `Network` error, retried without the backoff; counting it as unreachable stopped
/// replication to that follower for half a second and left it to catch up in a burst.
fn rpc_error<E: std::error::Error>(e: PeerError) -> RpcErr<E> {
    match &e {
        PeerError::Transport { status, .. } if status.code() != tonic::Code::DeadlineExceeded => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

/// If `entries` encode to more than `budget` bytes, how many leading entries fit (at least
/// one, so an entry larger than the budget still goes, alone).
fn entries_within(entries: &[Entry], budget: u64) -> Option<u64> {
    if entries.len() <= 1 {
        return None;
    }
    let mut total = 0u64;
    for (i, entry) in entries.iter().enumerate() {
        total = total.saturating_add(bincode::serialized_size(entry).unwrap_or(u64::MAX));
        if total > budget {
            return Some((i as u64).max(1));
        }
    }
    None
}

impl RaftNetwork<TypeConfig> for RaftPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        if let Some(fit) = entries_within(&rpc.entries, MAX_APPEND_BYTES) {
            // openraft retries at once with at most `fit` entries (for the next few RPCs).
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit),
            ));
        }
        let conn = self.conn()?;
        let ttl = option.hard_ttl();
        let mut res = if self.unary_appends {
            conn.call(PeerMethod::AppendEntries, &rpc, ttl).await
        } else {
            self.append_streamed(&conn, &rpc, ttl).await
        };
        if let Err(PeerError::Transport { status, .. }) = &res {
            if status.code() == tonic::Code::Unimplemented {
                tracing::info!(
                    peer = self.target,
                    "peer has no replication stream; using unary AppendEntries"
                );
                self.unary_appends = true;
                res = conn.call(PeerMethod::AppendEntries, &rpc, ttl).await;
            }
        }
        self.finish(res)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Command, RaftRequest};
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    fn entry(index: u64, bytes: usize) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(RaftRequest {
                cmds: vec![Command::Put(vec![7; bytes])],
            }),
        }
    }

    // A timed-out call is retried without openraft's backoff; a lost peer backs off.
    #[test]
    fn slow_peers_are_not_unreachable() {
        let transport = |status| PeerError::Transport {
            method: PeerMethod::AppendEntries,
            status,
        };
        let slow = rpc_error::<openraft::error::Infallible>(transport(
            tonic::Status::deadline_exceeded("peer call timed out"),
        ));
        assert!(matches!(slow, RPCError::Network(_)), "{slow:?}");
        let gone = rpc_error::<openraft::error::Infallible>(transport(tonic::Status::unavailable(
            "tcp connect error",
        )));
        assert!(matches!(gone, RPCError::Unreachable(_)), "{gone:?}");
    }

    // Entries over the budget are cut to the prefix that fits, never below one entry; a
    // payload within the budget goes whole.
    #[test]
    fn append_payload_is_cut_to_the_budget() {
        let small: Vec<_> = (1..=4).map(|i| entry(i, 100)).collect();
        assert_eq!(entries_within(&small, 1 << 20), None);
        let big: Vec<_> = (1..=4).map(|i| entry(i, 400 << 10)).collect();
        assert_eq!(entries_within(&big, 1 << 20), Some(2));
        let huge: Vec<_> = (1..=2).map(|i| entry(i, 2 << 20)).collect();
        assert_eq!(entries_within(&huge, 1 << 20), Some(1));
        assert_eq!(entries_within(&huge[..1], 1 << 20), None);
    }
}
