//! The Raft layer: openraft's type configuration and the glue between openraft and the
//! member's storage and network.
//!
//! ```text
//!   client write ──► server::proposer ──► openraft (Raft<TypeConfig>)
//!                                             │ append             │ apply
//!                                             ▼                    ▼
//!                               raft::log_store (skiff-wal)   raft::state_machine (skiff-mvcc)
//!                                             │ replicate
//!                                             ▼
//!                               raft::network ──gRPC──► raft::peer_server (other members)
//! ```
//!
//! A Raft log entry carries a [`RaftRequest`]: a *batch* of client [`Command`]s. openraft 0.9
//! fsyncs once per appended entry, so batching many client writes into one entry is what
//! turns one fsync into many acknowledged writes (see `server::proposer`).

pub mod log_store;
pub mod network;
pub mod state_machine;

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// Peer gRPC code generated from `proto/peer.proto`.
pub mod pb {
    tonic::include_proto!("skiff.peer");
}

/// A member as Raft's membership config stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberNode {
    /// The member's `--name` (empty until it has started and published it, for members
    /// added with `MemberAdd`).
    pub name: String,
    /// Peer URLs; the first is used to connect.
    pub peer_urls: Vec<String>,
}

impl fmt::Display for MemberNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_urls.join(","))
    }
}

openraft::declare_raft_types!(
    /// openraft's type configuration for skiff-store.
    pub TypeConfig:
        D = RaftRequest,
        R = RaftResponse,
        NodeId = u64,
        Node = MemberNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft instance of one member.
pub type Raft = openraft::Raft<TypeConfig>;
/// A Raft log id.
pub type LogId = openraft::LogId<u64>;
/// A Raft log entry.
pub type Entry = openraft::Entry<TypeConfig>;

/// One replicated client operation. etcd requests travel protobuf-encoded, exactly as the
/// client sent them (after validation), so the state machine applies the very bytes that
/// were checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// An `etcdserverpb.PutRequest`.
    Put(#[serde(with = "serde_bytes")] Vec<u8>),
    /// An `etcdserverpb.DeleteRangeRequest`.
    DeleteRange(#[serde(with = "serde_bytes")] Vec<u8>),
    /// An `etcdserverpb.TxnRequest`.
    Txn(#[serde(with = "serde_bytes")] Vec<u8>),
    /// An `etcdserverpb.CompactionRequest`.
    Compact(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Grant a lease; the id was chosen by the proposing member.
    LeaseGrant {
        /// Lease id, never 0.
        id: i64,
        /// Granted TTL in seconds.
        ttl: i64,
    },
    /// Revoke a lease and delete its keys (from a client, or from the leader on expiry).
    LeaseRevoke {
        /// Lease id.
        id: i64,
    },
    /// A member announces its name and client URLs after it starts (etcd's "publish").
    PublishMember {
        /// Member id.
        id: u64,
        /// The member's `--name`.
        name: String,
        /// Its advertised client URLs.
        client_urls: Vec<String>,
    },
    /// A member was removed with `MemberRemove`: its id joins the removed set (never usable
    /// again) and its published attributes are dropped. Proposed while the member still
    /// receives the log (as a learner), so it learns of its own removal and stops.
    RemoveMember {
        /// Member id.
        id: u64,
    },
    /// Raise or clear an alarm (etcd's `AlarmRequest` ACTIVATE / DEACTIVATE).
    Alarm {
        /// `true` raises the alarm, `false` clears it.
        activate: bool,
        /// The member the alarm is about.
        member_id: u64,
        /// etcd's `AlarmType` (1 = NOSPACE, 2 = CORRUPT).
        alarm: i32,
    },
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Put(_) => "put",
            Command::DeleteRange(_) => "delete_range",
            Command::Txn(_) => "txn",
            Command::Compact(_) => "compact",
            Command::LeaseGrant { .. } => "lease_grant",
            Command::LeaseRevoke { .. } => "lease_revoke",
            Command::PublishMember { .. } => "publish_member",
            Command::RemoveMember { .. } => "remove_member",
            Command::Alarm { .. } => "alarm",
        }
    }
}

/// The payload of one Raft log entry: client commands applied in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RaftRequest {
    /// The batched commands.
    pub cmds: Vec<Command>,
}

impl fmt::Display for RaftRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch of {} commands", self.cmds.len())
    }
}

/// The result of applying one [`RaftRequest`]: one result per command, same order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RaftResponse {
    /// Per-command results.
    pub results: Vec<CommandResult>,
}

/// Outcome of one applied command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CommandResult {
    /// Applied; `body` is the protobuf-encoded etcd response without its `header` field
    /// (the answering member adds its own header; protobuf lets a field be appended to an
    /// encoded message). Empty on a member that did not propose the command.
    Ok {
        /// Store revision after the command.
        revision: i64,
        /// Encoded response message.
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// Rejected by the state machine without changing data.
    Err(ApiError),
}

/// An error as etcd reports it to clients: a gRPC code and etcd's exact message (clients
/// match on the message text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (grpc code {code})")]
pub struct ApiError {
    /// `tonic::Code` as i32.
    pub code: i32,
    /// etcd's message, e.g. `etcdserver: requested lease not found`.
    pub message: String,
}

impl ApiError {
    /// Builds an error from a gRPC code and message.
    pub fn new(code: tonic::Code, message: impl Into<String>) -> Self {
        ApiError {
            code: code as i32,
            message: message.into(),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        tonic::Status::new(tonic::Code::from_i32(e.code), e.message)
    }
}

/// Whether the entry `log_id` was proposed by a leader other than `member_id` (`None`: not
/// known, counted as this member's own). Such entries reach this member in AppendEntries,
/// and no client of this member waits for their append or apply, so the log store may write
/// them on the calling thread and the state machine applies them off the Raft thread.
pub fn proposed_elsewhere(log_id: &LogId, member_id: Option<u64>) -> bool {
    member_id.is_some_and(|me| log_id.leader_id.node_id != me)
}

/// Encodes a value for the peer protocol or the log.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).expect("bincode serialization of an in-memory value cannot fail")
}

/// Decodes a value of the peer protocol or the log.
pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, bincode::Error> {
    bincode::deserialize(b)
}
