//! Linearizable reads (ReadIndex), coalesced.
//!
//! A linearizable read must observe every write acknowledged before it started. The
//! barrier asks the leader for its commit index after it has confirmed its leadership with a
//! quorum (openraft's `get_read_log_id`), then waits until this member has applied that
//! index; the read is then served from local state. On a follower the leader is asked over
//! the peer connection.
//!
//! Coalescing: one round runs at a time; every read that arrives while a round is in flight
//! waits for the *next* round, which starts after it arrived, so it still sees every write
//! acknowledged before it. A thousand concurrent readers cost one quorum round trip.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::errors;
use super::proposer::{LeaderRef, ProposeError, Proposer};
use crate::raft::network::PeerMethod;
use crate::raft::{ApiError, Raft, RaftRequest};

/// Readers waiting for the next round. Bounded for backpressure.
const MAX_WAITING_READS: usize = 65_536;

type Waiter = oneshot::Sender<Result<u64, ApiError>>;

/// Hands out read barriers.
#[derive(Clone)]
pub struct ReadBarrier {
    raft: Raft,
    tx: mpsc::Sender<Waiter>,
    timeout: Duration,
    /// Test-only: skip the barrier (stale reads possible).
    unsafe_local: bool,
}

impl ReadBarrier {
    /// Starts the round task.
    pub fn start(
        raft: Raft,
        proposer: Proposer,
        timeout: Duration,
        unsafe_local: bool,
    ) -> ReadBarrier {
        let (tx, rx) = mpsc::channel(MAX_WAITING_READS);
        tokio::spawn(round_loop(proposer, rx, timeout));
        ReadBarrier {
            raft,
            tx,
            timeout,
            unsafe_local,
        }
    }

    /// Returns once this member's state reflects every write acknowledged before the call.
    pub async fn wait(&self) -> Result<(), ApiError> {
        if self.unsafe_local {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .await
            .map_err(|_| errors::internal("read barrier stopped"))?;
        let index = rx
            .await
            .map_err(|_| errors::internal("read barrier dropped"))??;
        self.raft
            .wait(Some(self.timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|_| errors::timeout())?;
        Ok(())
    }
}

async fn round_loop(proposer: Proposer, mut rx: mpsc::Receiver<Waiter>, timeout: Duration) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let res = read_index(&proposer, timeout).await;
        for w in waiters {
            let _ = w.send(res.clone());
        }
    }
}

/// One ReadIndex round: the commit index a read must wait for.
async fn read_index(proposer: &Proposer, timeout: Duration) -> Result<u64, ApiError> {
    // A leader that is handing over (or just lost) leadership answers NotLeader; keep
    // asking until a leader answers or the read's own timeout passes.
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        let res = match proposer.leader().await? {
            LeaderRef::Me => leader_read_index(proposer).await,
            LeaderRef::Other(id, node) => {
                let conn = proposer.peers().get(id, &node).map_err(errors::internal)?;
                conn.call::<_, Result<u64, ProposeError>>(PeerMethod::ReadIndex, &(), timeout)
                    .await
                    .map_err(|_| errors::timeout())?
            }
        };
        match res {
            Ok(i) => return Ok(i),
            Err(ProposeError::Api(e)) => return Err(e),
            Err(ProposeError::NotLeader) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    Err(errors::leader_changed())
}

/// On the leader: confirm leadership with a quorum and return the index to wait for.
///
/// Refused while leadership is being handed over: the round's heartbeats would renew the
/// followers' lease that the transfer waits out.
///
/// The commit index is only trustworthy once this leader has committed an entry it proposed
/// itself in its current term (Raft §8; etcd's ReadIndex waits for the same). openraft
/// restores a restarted leader in its old term without an election or a no-op entry, and
/// after a crash its commit index restarts from the state machine's applied index, which may
/// lag what was committed before: serving from it returns stale reads (found by
/// skiff-jepsen's power-loss fault). So the first read of each term commits an empty batch.
pub async fn leader_read_index(proposer: &Proposer) -> Result<u64, ProposeError> {
    if proposer.is_transferring() {
        return Err(ProposeError::NotLeader);
    }
    let raft = proposer.raft();
    let term = raft.metrics().borrow().current_term;
    if proposer.read_ready_term() < term {
        match raft.client_write(RaftRequest::default()).await {
            Ok(written) => proposer.mark_read_ready(written.log_id.leader_id.term),
            Err(openraft::error::RaftError::APIError(_)) => return Err(ProposeError::NotLeader),
            Err(e) => return Err(ProposeError::Api(errors::internal(e))),
        }
    }
    Ok(read_log_id(raft).await?.map_or(0, |l| l.index))
}

async fn read_log_id(raft: &Raft) -> Result<Option<crate::raft::LogId>, ProposeError> {
    match raft.get_read_log_id().await {
        Ok((read, _applied)) => Ok(read),
        Err(openraft::error::RaftError::APIError(_)) => Err(ProposeError::NotLeader),
        Err(e) => Err(ProposeError::Api(errors::internal(e))),
    }
}
