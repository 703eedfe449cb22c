//! Getting client writes into the Raft log: batching on the leader, forwarding from
//! followers.
//!
//! ```text
//!  gRPC handler ─► Proposer::propose ─┬─ leader?   ─► queue ─► batch task ─► raft.client_write(batch)
//!                                     └─ follower? ─► peer RPC Propose ─► leader's queue
//! ```
//!
//! openraft 0.9 fsyncs once per appended entry, so the batch task packs every command that
//! queued up while the previous batches were in flight into one entry: under load one
//! fsync and one replication round trip acknowledge hundreds of writes. When nothing is
//! queued and a batch slot is free, the handler writes its command as a batch of one itself
//! (the fast path), saving the two task hand-offs that matter when a single client waits.
//!
//! Retries are only made when the command certainly was not appended (openraft answered
//! `ForwardToLeader`, which it does before appending, or after truncating the entry). Any
//! other failure is returned to the client as an unknown outcome, since re-proposing a write
//! that may already be committed could apply it twice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::errors;
use super::metrics::PipelineTimers;
use crate::raft::network::{PeerMethod, Peers};
use crate::raft::{ApiError, Command, CommandResult, MemberNode, Raft, RaftRequest};

/// Commands queued on the leader waiting for a batch slot. Bounded so a burst of clients
/// gets backpressure instead of growing memory; 64k small commands is a few MiB.
const MAX_QUEUED_COMMANDS: usize = 65_536;
/// Commands in one Raft entry.
const MAX_BATCH_COMMANDS: usize = 4_096;
/// Encoded bytes in one Raft entry: at most one AppendEntries payload
/// (`network::MAX_APPEND_BYTES`), so replication never has to send more in one RPC.
const MAX_BATCH_BYTES: usize = crate::raft::network::MAX_APPEND_BYTES as usize;
/// Raft entries being appended/replicated at once.
const MAX_INFLIGHT_BATCHES: usize = 4;
/// Attempts to find a leader that accepts the command.
const MAX_ATTEMPTS: usize = 8;

/// Why a proposal did not go through on this member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ProposeError {
    /// This member is not the leader; the command was not appended.
    NotLeader,
    /// A client-visible error.
    Api(ApiError),
}

impl From<ApiError> for ProposeError {
    fn from(e: ApiError) -> Self {
        ProposeError::Api(e)
    }
}

struct Pending {
    cmd: Command,
    reply: oneshot::Sender<Result<CommandResult, ProposeError>>,
    queued: Instant,
}

/// Proposes commands to Raft from any member.
#[derive(Clone)]
pub struct Proposer {
    raft: Raft,
    peers: Peers,
    member_id: u64,
    queue: mpsc::Sender<Pending>,
    /// Batches in flight: `MAX_INFLIGHT_BATCHES` permits shared by the batch task and the
    /// fast path.
    slots: Arc<Semaphore>,
    timers: PipelineTimers,
    leader_wait: Duration,
    request_timeout: Duration,
    /// Set on the leader while it hands leadership over (MoveLeader): it then refuses new
    /// writes and read-index rounds as if it no longer led, so the target can catch up and
    /// the followers' leader lease can lapse. Callers retry and find the new leader.
    transferring: Arc<AtomicBool>,
    /// The latest term in which this process, as leader, committed an entry it proposed
    /// itself (0: none). Only then does its commit index cover everything committed before:
    /// openraft restores a restarted leader in its old term without a new entry, with a
    /// commit index that restarts from the (possibly older) applied index. See
    /// `reads::leader_read_index`.
    read_ready_term: Arc<AtomicU64>,
}

type ServerMetricsRx =
    tokio::sync::watch::Receiver<openraft::metrics::RaftServerMetrics<u64, MemberNode>>;

/// Where the leader is, as far as this member knows.
pub enum LeaderRef {
    /// This member leads.
    Me,
    /// Another member leads.
    Other(u64, MemberNode),
}

impl Proposer {
    /// Starts the batch task. `election_timeout` bounds how long a request waits for a leader.
    /// `timers` observes the queue wait and each batch's Raft write.
    pub fn start(
        raft: Raft,
        peers: Peers,
        member_id: u64,
        election_timeout: Duration,
        timers: PipelineTimers,
    ) -> Proposer {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_COMMANDS);
        let slots = Arc::new(Semaphore::new(MAX_INFLIGHT_BATCHES));
        tokio::spawn(batch_loop(raft.clone(), rx, slots.clone(), timers.clone()));
        Proposer {
            raft,
            peers,
            member_id,
            queue: tx,
            slots,
            timers,
            leader_wait: election_timeout * 3,
            request_timeout: election_timeout * 2 + Duration::from_secs(5),
            transferring: Arc::new(AtomicBool::new(false)),
            read_ready_term: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The term recorded by [`Proposer::mark_read_ready`] (0: none yet).
    pub fn read_ready_term(&self) -> u64 {
        self.read_ready_term.load(Ordering::SeqCst)
    }

    /// Records that an entry this leader proposed in `term` was committed.
    pub fn mark_read_ready(&self, term: u64) {
        self.read_ready_term.fetch_max(term, Ordering::SeqCst);
    }

    /// The Raft handle.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Connections to the other members.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Finds the current leader, waiting up to three election timeouts for one to emerge.
    /// Reads openraft's server metrics, which change only with the leader, term or
    /// membership; when a leader is known (every write in steady state) no timer is set.
    pub async fn leader(&self) -> Result<LeaderRef, ApiError> {
        let mut rx = self.raft.server_metrics();
        if let Some(l) = self.known_leader(&mut rx) {
            return Ok(l);
        }
        let wait = async {
            loop {
                if rx.changed().await.is_err() {
                    return None;
                }
                if let Some(l) = self.known_leader(&mut rx) {
                    return Some(l);
                }
            }
        };
        match tokio::time::timeout(self.leader_wait, wait).await {
            Ok(Some(l)) => Ok(l),
            _ => Err(errors::no_leader()),
        }
    }

    /// The leader in the latest server metrics, if there is one this member can reach.
    fn known_leader(&self, rx: &mut ServerMetricsRx) -> Option<LeaderRef> {
        let m = rx.borrow_and_update();
        let id = m.current_leader?;
        if id == self.member_id {
            return Some(LeaderRef::Me);
        }
        let node = m.membership_config.membership().get_node(&id)?;
        Some(LeaderRef::Other(id, node.clone()))
    }

    /// Proposes `cmd` through whichever member leads and returns its applied result.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResult, ApiError> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        for attempt in 0..MAX_ATTEMPTS {
            let res = match self.leader().await? {
                LeaderRef::Me => self.propose_local(cmd.clone()).await,
                LeaderRef::Other(id, node) => {
                    let conn = self.peers.get(id, &node).map_err(errors::internal)?;
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match conn
                        .call::<_, Result<CommandResult, ProposeError>>(
                            PeerMethod::Propose,
                            &cmd,
                            left,
                        )
                        .await
                    {
                        Ok(r) => r,
                        // The connection could not even be made, so the leader never saw the
                        // command: safe to retry once a new leader is known.
                        Err(e) if e.never_sent() => Err(ProposeError::NotLeader),
                        Err(e) => {
                            tracing::warn!(leader = id, error = %e, "forwarding a write to the leader failed");
                            return Err(errors::timeout());
                        }
                    }
                }
            };
            match res {
                Ok(r) => return Ok(r),
                Err(ProposeError::Api(e)) => return Err(e),
                Err(ProposeError::NotLeader) => {
                    tracing::debug!(
                        attempt,
                        "leader moved before the command was appended; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        Err(errors::leader_changed())
    }

    /// Marks the start (`true`) or end of a leadership transfer away from this member.
    pub fn set_transferring(&self, on: bool) {
        self.transferring.store(on, Ordering::SeqCst);
    }

    /// Whether this member is handing its leadership over.
    pub fn is_transferring(&self) -> bool {
        self.transferring.load(Ordering::SeqCst)
    }

    /// Queues `cmd` for this member's next batch; `NotLeader` if this member does not lead.
    pub async fn propose_local(&self, cmd: Command) -> Result<CommandResult, ProposeError> {
        if self.is_transferring() {
            return Err(ProposeError::NotLeader);
        }
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            cmd,
            reply: tx,
            queued: Instant::now(),
        };
        // Nothing queued (every permit of the queue is free) and a batch slot free: the
        // batch task is idle, so this command would be a batch of one anyway.
        let idle = self.queue.capacity() == self.queue.max_capacity();
        let fast = if idle {
            self.slots.clone().try_acquire_owned().ok()
        } else {
            None
        };
        let result = async {
            match fast {
                Some(permit) => {
                    self.timers.queue_wait.observe(0.0);
                    let start = Instant::now();
                    write_batch(&self.raft, vec![pending]).await;
                    self.timers
                        .raft_write
                        .observe(start.elapsed().as_secs_f64());
                    drop(permit);
                }
                None => self
                    .queue
                    .send(pending)
                    .await
                    .map_err(|_| ProposeError::Api(errors::internal("proposer stopped")))?,
            }
            rx.await
                .map_err(|_| ProposeError::Api(errors::internal("proposal dropped")))?
        };
        // A leader that loses its leadership may never hear how an appended entry ended;
        // like etcd, the client then gets "request timed out" (outcome unknown).
        match tokio::time::timeout(self.request_timeout, result).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!("a local proposal got no result in time (leadership changed?)");
                Err(ProposeError::Api(errors::timeout()))
            }
        }
    }
}

/// Packs queued commands into Raft entries, at most `MAX_INFLIGHT_BATCHES` at a time.
async fn batch_loop(
    raft: Raft,
    mut rx: mpsc::Receiver<Pending>,
    slots: Arc<Semaphore>,
    timers: PipelineTimers,
) {
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        // Waiting for a slot is what lets the batch grow: everything that queued meanwhile
        // goes into this entry.
        let mut bytes = approx_size(&first.cmd);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_COMMANDS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += approx_size(&p.cmd);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let now = Instant::now();
        for p in &batch {
            timers
                .queue_wait
                .observe(now.duration_since(p.queued).as_secs_f64());
        }
        let raft = raft.clone();
        let raft_write = timers.raft_write.clone();
        tokio::spawn(async move {
            write_batch(&raft, batch).await;
            raft_write.observe(now.elapsed().as_secs_f64());
            drop(permit);
        });
    }
}

fn approx_size(cmd: &Command) -> usize {
    match cmd {
        Command::Put(b) | Command::DeleteRange(b) | Command::Txn(b) | Command::Compact(b) => {
            b.len() + 16
        }
        _ => 64,
    }
}

async fn write_batch(raft: &Raft, batch: Vec<Pending>) {
    let (cmds, replies): (Vec<Command>, Vec<_>) =
        batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
    let n = cmds.len();
    match raft.client_write(RaftRequest { cmds }).await {
        Ok(resp) => {
            let results = resp.data.results;
            assert_eq!(
                results.len(),
                n,
                "one result per command of an applied batch"
            );
            for (reply, r) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(r));
            }
        }
        Err(e) => {
            let err = match e {
                RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                    ProposeError::NotLeader
                }
                RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                    ProposeError::Api(errors::internal(e))
                }
                RaftError::Fatal(f) => {
                    ProposeError::Api(errors::internal(format!("raft stopped: {f}")))
                }
            };
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}
