//! Membership changes with etcd's semantics on top of openraft's joint consensus.
//!
//! ```text
//!  Cluster.MemberAdd/Remove/Update/Promote (any member)
//!        │ follower: peer RPC ChangeMembership ──► leader
//!        ▼
//!  leader: one change at a time (MEMBERSHIP_LOCK)
//!        ├─ ClusterView::check_* (pure: etcd's validation and error messages)
//!        └─ openraft change_membership (joint config, then uniform config)
//! ```
//!
//! - **Add** picks a fresh id (a hash of the peer URLs, the cluster token and the time, as
//!   etcd does; never an id in the replicated removed set). A voter joins the config at once,
//!   so a 3-member cluster becomes 4 with quorum 3 before the new member even starts; a
//!   learner is an openraft learner.
//! - **Remove** demotes a voter to learner, proposes [`Command::RemoveMember`] (the removed
//!   set; the member itself applies it and stops), waits briefly for the member to receive
//!   it, then drops the node. Removing the leader first moves leadership away.
//! - **Update** replaces the peer URLs of a member; **Promote** makes a caught-up learner a
//!   voter.
//!
//! A member counts as *started* once it has published its name (`PublishMember`), which
//! is what etcd's "not enough started members" checks count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Membership};
use serde::{Deserialize, Serialize};

use super::errors;
use super::proposer::{LeaderRef, ProposeError};
use super::Node;
use crate::config::url_host_port;
use crate::raft::network::PeerMethod;
use crate::raft::state_machine::{member_attrs, removed_members};
use crate::raft::{ApiError, Command, MemberNode, RaftRequest};

/// Serializes membership changes on the leader: openraft refuses a change while another is
/// uncommitted, and etcd's checks must see the outcome of the previous change.
static MEMBERSHIP_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Learners a cluster may have at once (etcd 3.4's limit).
const MAX_LEARNERS: usize = 1;
/// A learner is in sync when it has at least this share of the leader's log (etcd: 90%).
const LEARNER_READY_PERCENT: f64 = 0.9;
/// How long a removal waits for the removed member to receive its own removal.
const REMOVAL_NOTICE_WAIT: Duration = Duration::from_secs(3);
/// A voter counts as connected when it answered the leader within this window (etcd's
/// `HealthInterval`).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Attempts to reach a leader that accepts the change.
const MAX_ATTEMPTS: usize = 6;

/// A membership change as a client asked for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MemberOp {
    /// `MemberAdd`.
    Add {
        /// Peer URLs of the new member.
        peer_urls: Vec<String>,
        /// Add as a learner (non-voting) member.
        learner: bool,
    },
    /// `MemberRemove`.
    Remove {
        /// The member to remove.
        id: u64,
    },
    /// `MemberUpdate`.
    Update {
        /// The member to change.
        id: u64,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
    /// `MemberPromote`.
    Promote {
        /// The learner to promote.
        id: u64,
    },
}

/// One member as etcd lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Member id.
    pub id: u64,
    /// Published name; empty while the member has not started.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Published client URLs.
    pub client_urls: Vec<String>,
    /// Non-voting member.
    pub is_learner: bool,
}

impl MemberInfo {
    /// The etcd protobuf form.
    pub fn to_pb(&self) -> etcd_client::proto::PbMember {
        etcd_client::proto::PbMember {
            id: self.id,
            name: self.name.clone(),
            peer_ur_ls: self.peer_urls.clone(),
            client_ur_ls: self.client_urls.clone(),
            is_learner: self.is_learner,
        }
    }
}

/// What a change returns: the member it concerned and the member list after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberOpResult {
    /// The added member (for `Add`).
    pub member: Option<MemberInfo>,
    /// Every member after the change, by id.
    pub members: Vec<MemberInfo>,
}

/// The cluster as seen by `ListMembers` (a joining member looks itself up in it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The cluster id.
    pub cluster_id: u64,
    /// Every member.
    pub members: Vec<MemberInfo>,
}

/// The member list of `membership`, with the attributes members published.
pub fn member_list(node: &Node, membership: &Membership<u64, MemberNode>) -> Vec<MemberInfo> {
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let mut out: Vec<MemberInfo> = membership
        .nodes()
        .map(|(id, n)| {
            let attrs = member_attrs(&node.mvcc, *id).unwrap_or_default();
            MemberInfo {
                id: *id,
                name: if attrs.name.is_empty() {
                    n.name.clone()
                } else {
                    attrs.name
                },
                peer_urls: n.peer_urls.clone(),
                client_urls: attrs.client_urls,
                is_learner: !voters.contains(id),
            }
        })
        .collect();
    out.sort_by_key(|m| m.id);
    out
}

/// The member list of this member's current Raft config.
pub fn current_members(node: &Node) -> Vec<MemberInfo> {
    let m = node.raft.metrics().borrow().membership_config.clone();
    member_list(node, m.membership())
}

/// What the checks need to know about the cluster, free of I/O.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Voting members.
    pub voters: BTreeSet<u64>,
    /// Every member (voters and learners) with its peer URLs.
    pub nodes: BTreeMap<u64, MemberNode>,
    /// Members that have published their attributes.
    pub started: BTreeSet<u64>,
    /// Ids removed from the cluster, never to be used again.
    pub removed: BTreeSet<u64>,
    /// Voters the leader heard from recently (the leader itself included).
    pub connected: BTreeSet<u64>,
}

fn check_urls(urls: &[String]) -> Result<Vec<String>, ApiError> {
    if urls.is_empty() || urls.iter().any(|u| url_host_port(u).is_err()) {
        return Err(errors::bad_member_urls());
    }
    let mut sorted = urls.to_vec();
    sorted.sort();
    sorted.dedup();
    Ok(sorted)
}

/// Votes needed among `voters`.
fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

impl ClusterView {
    fn learners(&self) -> impl Iterator<Item = &u64> {
        self.nodes.keys().filter(|id| !self.voters.contains(id))
    }

    fn url_in_use(&self, urls: &[String], except: Option<u64>) -> bool {
        self.nodes
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .any(|(_, n)| n.peer_urls.iter().any(|u| urls.contains(u)))
    }

    /// etcd's `IsReadyToAddVotingMember`: after adding one more (unstarted) voter, the
    /// started voters must still form a quorum (a one-member cluster may always grow to two).
    fn ready_to_add_voter(&self) -> bool {
        let members = self.voters.len() + 1;
        let started = self
            .voters
            .iter()
            .filter(|v| self.started.contains(v))
            .count();
        if started == 1 && members == 2 {
            return true;
        }
        started >= quorum(members)
    }

    /// etcd's `IsReadyToRemoveVotingMember`: the started voters left must form a quorum.
    fn ready_to_remove_voter(&self, id: u64) -> bool {
        let rest: Vec<&u64> = self.voters.iter().filter(|v| **v != id).collect();
        let started = rest.iter().filter(|v| self.started.contains(v)).count();
        started >= quorum(rest.len())
    }

    /// etcd's `IsReadyToPromoteMember`: counting the learner as a started voter, the started
    /// voters must form a quorum.
    fn ready_to_promote(&self) -> bool {
        let members = self.voters.len() + 1;
        let started = 1 + self
            .voters
            .iter()
            .filter(|v| self.started.contains(v))
            .count();
        started >= quorum(members)
    }

    /// etcd's `isConnectedFullySince`: every voter answered recently.
    fn all_voters_connected(&self) -> bool {
        self.voters.iter().all(|v| self.connected.contains(v))
    }

    /// Validates `MemberAdd`; returns the sorted peer URLs to store.
    pub fn check_add(&self, urls: &[String], learner: bool) -> Result<Vec<String>, ApiError> {
        let urls = check_urls(urls)?;
        if self.url_in_use(&urls, None) {
            return Err(errors::peer_url_exist());
        }
        if learner {
            if self.learners().count() >= MAX_LEARNERS {
                return Err(errors::too_many_learners());
            }
        } else if !self.ready_to_add_voter() {
            return Err(errors::not_enough_started());
        }
        if !self.all_voters_connected() {
            return Err(errors::unhealthy());
        }
        Ok(urls)
    }

    /// Validates `MemberRemove`.
    pub fn check_remove(&self, id: u64) -> Result<(), ApiError> {
        if !self.nodes.contains_key(&id) {
            return Err(errors::member_not_found());
        }
        if !self.voters.contains(&id) {
            return Ok(());
        }
        if !self.ready_to_remove_voter(id) {
            return Err(errors::not_enough_started());
        }
        // etcd's quorum protection: the connected voters left must still be a quorum.
        let rest = self.voters.len() - 1;
        let active = self
            .voters
            .iter()
            .filter(|v| **v != id && self.connected.contains(v))
            .count();
        if active < quorum(rest) {
            return Err(errors::unhealthy());
        }
        Ok(())
    }

    /// Validates `MemberUpdate`; returns the sorted peer URLs to store.
    pub fn check_update(&self, id: u64, urls: &[String]) -> Result<Vec<String>, ApiError> {
        let urls = check_urls(urls)?;
        if !self.nodes.contains_key(&id) {
            return Err(errors::member_not_found());
        }
        if self.url_in_use(&urls, Some(id)) {
            return Err(errors::peer_url_exist());
        }
        Ok(urls)
    }

    /// Validates `MemberPromote` given how far the learner's log matches the leader's.
    pub fn check_promote(
        &self,
        id: u64,
        learner_matched: u64,
        leader_last: u64,
    ) -> Result<(), ApiError> {
        if !self.nodes.contains_key(&id) {
            return Err(errors::member_not_found());
        }
        if self.voters.contains(&id) {
            return Err(errors::member_not_learner());
        }
        if !self.ready_to_promote() {
            return Err(errors::not_enough_started());
        }
        if !self.all_voters_connected() {
            return Err(errors::unhealthy());
        }
        if (learner_matched as f64) < (leader_last as f64) * LEARNER_READY_PERCENT {
            return Err(errors::learner_not_ready());
        }
        Ok(())
    }
}

/// A new member id: a hash of the peer URLs, the cluster token and the current time (as
/// etcd derives it), never 0 and never one in `taken`.
pub fn new_member_id(urls: &[String], token: &str, taken: &BTreeSet<u64>) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut salt = 0u64;
    loop {
        let id = crate::config::member_id(urls, &format!("{token}/{nanos}/{salt}"));
        if !taken.contains(&id) {
            return id;
        }
        salt += 1;
    }
}

/// Runs a membership change through whichever member leads.
pub async fn change(node: &Arc<Node>, op: MemberOp) -> Result<MemberOpResult, ApiError> {
    for attempt in 0..MAX_ATTEMPTS {
        let res = match node.proposer.leader().await? {
            LeaderRef::Me => change_on_leader(node, op.clone()).await,
            LeaderRef::Other(id, peer) => {
                let conn = node
                    .proposer
                    .peers()
                    .get(id, &peer)
                    .map_err(errors::internal)?;
                match conn
                    .call::<_, Result<MemberOpResult, ProposeError>>(
                        PeerMethod::ChangeMembership,
                        &op,
                        node.cfg.election_timeout * 10,
                    )
                    .await
                {
                    Ok(r) => r,
                    Err(e) if e.never_sent() => Err(ProposeError::NotLeader),
                    Err(e) => {
                        tracing::warn!(leader = id, error = %e, "forwarding a membership change failed");
                        return Err(errors::timeout());
                    }
                }
            }
        };
        match res {
            Ok(r) => return Ok(r),
            Err(ProposeError::Api(e)) => return Err(e),
            Err(ProposeError::NotLeader) => {
                tracing::debug!(attempt, "leader moved during a membership change; retrying");
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
            }
        }
    }
    Err(errors::leader_changed())
}

fn view(node: &Node) -> ClusterView {
    let m = node.raft.metrics().borrow().membership_config.clone();
    let membership = m.membership();
    let nodes: BTreeMap<u64, MemberNode> =
        membership.nodes().map(|(i, n)| (*i, n.clone())).collect();
    let started = nodes
        .keys()
        .filter(|id| member_attrs(&node.mvcc, **id).is_some_and(|a| !a.name.is_empty()))
        .copied()
        .collect();
    let me = node.cfg.member_id;
    let peers = node.proposer.peers();
    let connected = membership
        .voter_ids()
        .filter(|v| *v == me || peers.answered_within(*v, HEALTH_INTERVAL))
        .collect();
    ClusterView {
        voters: membership.voter_ids().collect(),
        nodes,
        started,
        removed: removed_members(&node.mvcc),
        connected,
    }
}

fn is_leader(node: &Node) -> bool {
    node.raft.metrics().borrow().current_leader == Some(node.cfg.member_id)
}

/// Executes a change on the leader (called directly or from the peer service).
pub async fn change_on_leader(
    node: &Arc<Node>,
    op: MemberOp,
) -> Result<MemberOpResult, ProposeError> {
    let _one_at_a_time = MEMBERSHIP_LOCK.lock().await;
    if !is_leader(node) {
        return Err(ProposeError::NotLeader);
    }
    let v = view(node);
    tracing::info!(?op, "membership change");
    let mut added = None;
    let membership = match op {
        MemberOp::Add { peer_urls, learner } => {
            let urls = v.check_add(&peer_urls, learner)?;
            let mut taken = v.removed.clone();
            taken.extend(v.nodes.keys());
            let id = new_member_id(&urls, &node.cfg.initial_cluster_token, &taken);
            let n = MemberNode {
                name: String::new(),
                peer_urls: urls,
            };
            let change = if learner {
                ChangeMembers::AddNodes(BTreeMap::from([(id, n)]))
            } else {
                ChangeMembers::AddVoters(BTreeMap::from([(id, n)]))
            };
            added = Some(id);
            apply_change(node, change, true).await?
        }
        MemberOp::Remove { id } => {
            v.check_remove(id)?;
            if id == node.cfg.member_id {
                // The leader cannot stay in charge of a config without itself: hand over
                // leadership and let the new leader do the removal.
                hand_over_before_self_removal(node, &v).await?;
                return Err(ProposeError::NotLeader);
            }
            remove(node, &v, id).await?
        }
        MemberOp::Update { id, peer_urls } => {
            let urls = v.check_update(id, &peer_urls)?;
            let mut n = v.nodes[&id].clone();
            n.peer_urls = urls;
            apply_change(
                node,
                ChangeMembers::SetNodes(BTreeMap::from([(id, n)])),
                true,
            )
            .await?
        }
        MemberOp::Promote { id } => {
            let m = node.raft.metrics().borrow().clone();
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).cloned().flatten())
                .map_or(0, |l| l.index);
            v.check_promote(id, matched, m.last_log_index.unwrap_or(0))?;
            apply_change(node, ChangeMembers::AddVoterIds(BTreeSet::from([id])), true).await?
        }
    };
    let members = member_list(node, &membership);
    let member = added.and_then(|id| members.iter().find(|m| m.id == id).cloned());
    Ok(MemberOpResult { member, members })
}

/// Commits one openraft membership change (joint, then uniform) and returns the result.
async fn apply_change(
    node: &Node,
    change: ChangeMembers<u64, MemberNode>,
    retain: bool,
) -> Result<Membership<u64, MemberNode>, ProposeError> {
    match node.raft.change_membership(change, retain).await {
        Ok(resp) => Ok(resp
            .membership
            .expect("a membership change response carries the new membership")),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
            Err(ProposeError::NotLeader)
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            tracing::warn!(error = %e, "openraft refused a membership change");
            Err(ProposeError::Api(errors::internal(format!(
                "membership change refused: {e}; retry once the previous change completed"
            ))))
        }
        Err(RaftError::Fatal(f)) => Err(ProposeError::Api(errors::internal(format!(
            "raft stopped: {f}"
        )))),
    }
}

/// Removes member `id` (not this leader): demote, announce, then drop the node.
async fn remove(
    node: &Arc<Node>,
    v: &ClusterView,
    id: u64,
) -> Result<Membership<u64, MemberNode>, ProposeError> {
    if v.voters.contains(&id) {
        apply_change(
            node,
            ChangeMembers::RemoveVoters(BTreeSet::from([id])),
            true,
        )
        .await?;
    }
    match node
        .proposer
        .propose_local(Command::RemoveMember { id })
        .await?
    {
        crate::raft::CommandResult::Ok { .. } => {}
        crate::raft::CommandResult::Err(e) => return Err(ProposeError::Api(e)),
    }
    // Give the member (now a learner) a moment to learn of its own removal so it stops by
    // itself; a member that is down learns it from the removed set when it restarts. The
    // learner applies the removal only once it knows it is committed, and an AppendEntries
    // sent before the commit carries an older commit index: so the leader appends an empty
    // entry now, after the commit, and waits until the learner has that one. (Waiting for
    // the removal entry itself could drop the node before any commit index reached it: the
    // member then ran on, cut off.)
    let target = match node.raft.client_write(RaftRequest::default()).await {
        Ok(written) => written.log_id.index,
        Err(e) => {
            tracing::warn!(error = %e, "could not append the entry that tells a removed member of its removal");
            node.raft.metrics().borrow().last_log_index.unwrap_or(0)
        }
    };
    let delivered = node
        .raft
        .wait(Some(REMOVAL_NOTICE_WAIT))
        .metrics(
            |m| {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .is_some_and(|l| l.index >= target)
            },
            "removed member received its removal",
        )
        .await
        .is_ok();
    tracing::info!(
        member = format!("{id:x}"),
        delivered,
        "member removed; dropping it from the config"
    );
    apply_change(
        node,
        ChangeMembers::RemoveNodes(BTreeSet::from([id])),
        false,
    )
    .await
}

/// Moves leadership to the most up-to-date other started voter.
async fn hand_over_before_self_removal(
    node: &Arc<Node>,
    v: &ClusterView,
) -> Result<(), ProposeError> {
    let m = node.raft.metrics().borrow().clone();
    let best = v
        .voters
        .iter()
        .filter(|id| **id != node.cfg.member_id && v.started.contains(id))
        .max_by_key(|id| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map_or(0, |l| l.index)
        })
        .copied()
        .ok_or_else(|| ProposeError::Api(errors::not_enough_started()))?;
    tracing::info!(
        to = format!("{best:x}"),
        "removing the leader: moving leadership first"
    );
    super::transfer::move_leader(node, best).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(voters: &[u64], learners: &[u64], started: &[u64]) -> ClusterView {
        let node = |i: u64| MemberNode {
            name: format!("m{i}"),
            peer_urls: vec![format!("http://127.0.0.1:{}", 2380 + i)],
        };
        ClusterView {
            voters: voters.iter().copied().collect(),
            nodes: voters
                .iter()
                .chain(learners)
                .map(|i| (*i, node(*i)))
                .collect(),
            started: started.iter().copied().collect(),
            removed: BTreeSet::new(),
            connected: voters.iter().copied().collect(),
        }
    }

    fn msg(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        r.unwrap_err().message
    }

    // Adding voters follows etcd's started-quorum rule; a learner limit of one applies.
    #[test]
    fn add_checks() {
        let url = vec!["http://127.0.0.1:3000".to_string()];
        let c = cluster(&[1, 2, 3], &[], &[1, 2, 3]);
        assert_eq!(c.check_add(&url, false).unwrap(), url);
        // 2 started of 3 voters, plus the new one: 2 < quorum(4) = 3.
        let c = cluster(&[1, 2, 3], &[], &[1, 2]);
        assert!(msg(c.check_add(&url, false)).contains("not enough started"));
        // A single-member cluster may always grow to two.
        assert!(cluster(&[1], &[], &[1]).check_add(&url, false).is_ok());
        let c = cluster(&[1, 2, 3], &[4], &[1, 2, 3]);
        assert_eq!(
            msg(c.check_add(&url, true)),
            "etcdserver: too many learner members in cluster"
        );
        let taken = vec!["http://127.0.0.1:2381".to_string()];
        assert_eq!(
            msg(c.check_add(&taken, false)),
            "etcdserver: Peer URLs already exists"
        );
        assert_eq!(
            msg(c.check_add(&["ftp://x".to_string()], false)),
            "etcdserver: given member URLs are invalid"
        );
    }

    // Removing needs the member to exist and a started quorum to remain.
    #[test]
    fn remove_checks() {
        let c = cluster(&[1, 2, 3], &[4], &[1, 2]);
        assert_eq!(msg(c.check_remove(9)), "etcdserver: member not found");
        // Removing started member 2 leaves {1, 3} with only 1 started: not a quorum.
        assert!(msg(c.check_remove(2)).contains("not enough started"));
        // Removing the unstarted member 3 leaves {1, 2}, both started.
        assert!(c.check_remove(3).is_ok());
        // Learners can always go.
        assert!(c.check_remove(4).is_ok());
        assert!(msg(cluster(&[1], &[], &[1]).check_remove(1)).contains("not enough started"));
    }

    // Promotion needs a learner that has at least 90% of the leader's log.
    #[test]
    fn promote_checks() {
        let c = cluster(&[1, 2, 3], &[4], &[1, 2, 3]);
        assert_eq!(
            msg(c.check_promote(2, 100, 100)),
            "etcdserver: can only promote a learner member"
        );
        assert_eq!(
            msg(c.check_promote(4, 10, 100)),
            "etcdserver: can only promote a learner member which is in sync with leader"
        );
        assert!(c.check_promote(4, 95, 100).is_ok());
        assert_eq!(
            msg(c.check_promote(7, 95, 100)),
            "etcdserver: member not found"
        );
    }

    // A voter that has not answered recently blocks adds and promotions; removals must leave
    // a connected quorum.
    #[test]
    fn unhealthy_checks() {
        let url = vec!["http://127.0.0.1:3000".to_string()];
        let mut c = cluster(&[1, 2, 3, 4], &[5], &[1, 2, 3]);
        c.connected.remove(&4);
        assert_eq!(
            msg(c.check_add(&url, false)),
            "etcdserver: unhealthy cluster"
        );
        assert_eq!(
            msg(c.check_promote(5, 100, 100)),
            "etcdserver: unhealthy cluster"
        );
        // Removing the down member 4 leaves 3 connected of 3.
        assert!(c.check_remove(4).is_ok());
        c.connected.remove(&3);
        // Removing 1 leaves {2, 3, 4}: two started (a quorum) but only 2 connected.
        assert_eq!(msg(c.check_remove(1)), "etcdserver: unhealthy cluster");
    }

    // New ids avoid every taken id, and two adds of the same URLs get different ids.
    #[test]
    fn ids_are_fresh() {
        let urls = vec!["http://127.0.0.1:3000".to_string()];
        let a = new_member_id(&urls, "tok", &BTreeSet::new());
        let b = new_member_id(&urls, "tok", &BTreeSet::from([a]));
        assert_ne!(a, b);
        assert_ne!(a, 0);
    }
}
