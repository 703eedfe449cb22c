//! Leadership transfer (`Maintenance.MoveLeader`) on openraft 0.9, which has no built-in
//! transfer.
//!
//! openraft's followers refuse to vote while their leader lease (the maximum election
//! timeout since the leader's last message) is valid, so the target cannot simply call an
//! election. The leader therefore makes the old leadership lapse in a controlled way:
//!
//! ```text
//!  leader                         other voters              target
//!    │ wait: target caught up          │                      │
//!    │ stop accepting writes/reads     │                      │
//!    │── PauseElection(ms) ──────────►│ elect(false)          │
//!    │ heartbeat(false)                │                      │
//!    │── Campaign(ms) ─────────────────┼────────────────────►│ trigger().elect() until it
//!    │◄───────────── vote request (higher term) ─────────────│ leads or the deadline passes
//!    │ steps down when its lease lapsed                       │
//!    │ heartbeat(true), resume, PauseElection(None) ─►        │
//! ```
//!
//! Pausing the other voters' elections keeps them from racing the target once the old
//! lease runs out; every pause expires by itself, so a leader that dies mid-transfer never
//! leaves a cluster unable to elect. The transfer takes at most about one leader lease
//! (twice `--election-timeout`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::errors;
use super::Node;
use crate::raft::network::PeerMethod;
use crate::raft::ApiError;

/// One transfer at a time on a leader.
static TRANSFER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Generation of the latest election pause on this member, so an old pause's timer does not
/// end a newer one early.
static PAUSE_GENERATION: AtomicU64 = AtomicU64::new(0);

/// How long a whole transfer may take, in election timeouts (the old lease is two).
const TRANSFER_ELECTION_TIMEOUTS: u32 = 4;

fn transfer_deadline(node: &Node) -> Duration {
    node.cfg.election_timeout * TRANSFER_ELECTION_TIMEOUTS
}

/// Moves leadership from this member (which must lead) to voter `target`.
pub async fn move_leader(node: &Arc<Node>, target: u64) -> Result<(), ApiError> {
    let _one = TRANSFER_LOCK.lock().await;
    let m = node.raft.metrics().borrow().clone();
    if m.current_leader != Some(node.cfg.member_id) {
        return Err(errors::not_leader());
    }
    let membership = m.membership_config.membership().clone();
    if !membership.voter_ids().any(|v| v == target) {
        return Err(errors::bad_leader_transferee());
    }
    if target == node.cfg.member_id {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + transfer_deadline(node);
    tracing::info!(
        target = format!("{target:x}"),
        "moving leadership: waiting for the target to catch up"
    );
    node.proposer.set_transferring(true);
    let res = run_transfer(node, target, &membership, deadline).await;
    node.raft.runtime_config().heartbeat(true);
    node.proposer.set_transferring(false);
    for v in membership.voter_ids().filter(|v| *v != target) {
        pause_elections(node, v, None).await;
    }
    match &res {
        Ok(()) => tracing::info!(target = format!("{target:x}"), "leadership moved"),
        Err(e) => {
            tracing::warn!(target = format!("{target:x}"), error = %e, "leadership transfer failed")
        }
    }
    res
}

async fn run_transfer(
    node: &Arc<Node>,
    target: u64,
    membership: &openraft::Membership<u64, crate::raft::MemberNode>,
    deadline: tokio::time::Instant,
) -> Result<(), ApiError> {
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    // New writes are refused from here on, so the target can reach the leader's last entry.
    let caught_up = node
        .raft
        .wait(Some(left()))
        .metrics(
            |m| {
                let last = m.last_log_index.unwrap_or(0);
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&target).cloned().flatten())
                    .is_some_and(|l| l.index >= last)
            },
            "transfer target caught up",
        )
        .await;
    if caught_up.is_err() {
        return Err(errors::leader_transfer_timeout());
    }
    let pause = left();
    for v in membership
        .voter_ids()
        .filter(|v| *v != target && *v != node.cfg.member_id)
    {
        pause_elections(node, v, Some(pause)).await;
    }
    node.raft.runtime_config().heartbeat(false);
    let Some(peer) = membership.get_node(&target).cloned() else {
        return Err(errors::bad_leader_transferee());
    };
    let conn = node
        .proposer
        .peers()
        .get(target, &peer)
        .map_err(errors::internal)?;
    let limit = left();
    let campaign = conn.call::<_, Result<(), String>>(PeerMethod::Campaign, &limit, limit);
    let waiter = node.raft.wait(Some(limit));
    let moved = waiter.metrics(
        |m| m.current_leader == Some(target),
        "leadership moved to the target",
    );
    let (c, moved) = tokio::join!(campaign, moved);
    match c {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "the transfer target's campaign failed"),
        Err(e) => tracing::debug!(error = %e, "could not ask the transfer target to campaign"),
    }
    moved
        .map(|_| ())
        .map_err(|_| errors::leader_transfer_timeout())
}

/// Pauses (`Some`) or resumes (`None`) elections on voter `id`; best effort.
async fn pause_elections(node: &Node, id: u64, pause: Option<Duration>) {
    if id == node.cfg.member_id {
        local_pause_elections(node, pause);
        return;
    }
    let m = node.raft.metrics().borrow().clone();
    let Some(peer) = m.membership_config.membership().get_node(&id).cloned() else {
        return;
    };
    let Ok(conn) = node.proposer.peers().get(id, &peer) else {
        return;
    };
    if let Err(e) = conn
        .call::<_, ()>(PeerMethod::PauseElection, &pause, node.cfg.election_timeout)
        .await
    {
        tracing::debug!(member = format!("{id:x}"), error = %e, "could not pause elections on a voter");
    }
}

/// Peer service side of `PauseElection`: disables elections here for `pause` (or
/// re-enables them at once for `None`).
pub fn local_pause_elections(node: &Node, pause: Option<Duration>) {
    let generation = PAUSE_GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    match pause {
        None => node.raft.runtime_config().elect(true),
        Some(d) => {
            node.raft.runtime_config().elect(false);
            let raft = node.raft.clone();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                if PAUSE_GENERATION.load(Ordering::SeqCst) == generation {
                    raft.runtime_config().elect(true);
                }
            });
        }
    }
}

/// Peer service side of `Campaign`: calls elections until this member leads or `limit`
/// passes. Each attempt waits half an election timeout for the votes to come in.
pub async fn campaign(node: &Node, limit: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    let me = node.cfg.member_id;
    let attempt_wait = node.cfg.election_timeout / 2;
    while tokio::time::Instant::now() < deadline {
        if node.raft.metrics().borrow().current_leader == Some(me) {
            return Ok(());
        }
        node.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| e.to_string())?;
        let _ = node
            .raft
            .wait(Some(attempt_wait))
            .metrics(|m| m.current_leader == Some(me), "campaign won")
            .await;
    }
    if node.raft.metrics().borrow().current_leader == Some(me) {
        Ok(())
    } else {
        Err("campaign did not win before the deadline".into())
    }
}
