//! Applies a schedule to a [`Cluster`], recording what happened in a [`Timeline`].
//!
//! Each step: wait for its start, resolve runtime targets (the current leader), apply, hold
//! for its duration (or until stopped), heal that fault, record. A fault that fails to apply
//! is recorded with its error and the run goes on, except a membership change the server does
//! not implement, which stops the run with [`NemesisError::MembershipUnsupported`].

use super::grudge::{self, Grudge};
use super::{Fault, Shape, Step, Target};
use crate::client;
use crate::cluster::{Cluster, ClusterError, StartMode};
use crate::history::{Clock, MonotonicClock};
use etcd_client::Member;
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// The fault family (`kill`, `pause`, `partition`, `power-loss`, `member`).
    pub kind: super::NemesisKind,
    /// What was scheduled.
    pub fault: String,
    /// What it resolved to (members hit, partition rules).
    pub detail: String,
    /// When it was applied, ns since the run started.
    pub start_ns: u64,
    /// When it was healed; `None` if the run ended first (the final heal covers it).
    pub end_ns: Option<u64>,
    /// Why applying or healing failed, if it did.
    pub error: Option<String>,
}

/// Everything the nemesis did, in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// The faults, in the order applied.
    pub faults: Vec<FaultRecord>,
}

impl Timeline {
    /// `timeline.txt`: one line per fault start and end, times in seconds.
    pub fn to_text(&self) -> String {
        let mut lines: Vec<(u64, String)> = Vec::new();
        for record in &self.faults {
            lines.push((
                record.start_ns,
                format!("start {}: {}", record.fault, record.detail),
            ));
            if let Some(end) = record.end_ns {
                lines.push((end, format!("heal  {}", record.fault)));
            }
            if let Some(error) = &record.error {
                lines.push((record.start_ns, format!("error {}: {error}", record.fault)));
            }
        }
        lines.sort_by_key(|(at, _)| *at);
        lines
            .iter()
            .map(|(at, text)| format!("{:>9.3}s  {text}\n", *at as f64 / 1e9))
            .collect()
    }
}

/// Errors that stop the nemesis.
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    /// MemberAdd/MemberRemove answered Unimplemented.
    #[error(
        "failed to change membership: the server does not implement {rpc} ({detail}); drop \
         `member` from --nemesis, or run against a build that has MemberAdd/MemberRemove"
    )]
    MembershipUnsupported {
        /// The RPC.
        rpc: &'static str,
        /// The server's message.
        detail: String,
    },
}

/// What an applied fault needs to be healed.
enum Applied {
    Killed(Vec<usize>),
    Paused(Vec<usize>),
    Partitioned,
    PoweredOff,
    Removed(usize),
    Nothing,
}

/// Runs a schedule against a cluster.
pub struct Executor {
    cluster: Arc<dyn Cluster>,
    clock: MonotonicClock,
    timeline: Arc<Mutex<Timeline>>,
}

impl Executor {
    /// An executor timing steps on `clock` (shared with the history recorder).
    pub fn new(cluster: Arc<dyn Cluster>, clock: MonotonicClock) -> Self {
        Executor {
            cluster,
            clock,
            timeline: Arc::default(),
        }
    }

    /// The timeline so far.
    pub fn timeline(&self) -> Timeline {
        self.timeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `steps` until they are done or `stop` turns true. Heals each fault it applied
    /// before returning, also when stopped mid-fault.
    pub async fn run(
        &self,
        steps: &[Step],
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), NemesisError> {
        for step in steps {
            let now = Duration::from_nanos(self.clock.now_ns());
            if sleep_or_stop(step.start.saturating_sub(now), &mut stop).await {
                return Ok(());
            }
            let index = self.begin(step);
            let applied = match self.apply(&step.fault).await {
                Ok((applied, detail)) => {
                    tracing::info!(fault = %step.fault, %detail, "nemesis: fault applied");
                    self.update(index, |r| r.detail = detail);
                    applied
                }
                Err(ApplyError::Fatal(err)) => {
                    self.update(index, |r| r.error = Some(err.to_string()));
                    return Err(err);
                }
                Err(ApplyError::Cluster(err)) => {
                    tracing::warn!(fault = %step.fault, %err, "nemesis: fault failed to apply");
                    self.update(index, |r| r.error = Some(err.to_string()));
                    Applied::Nothing
                }
            };
            // Heal even when stopped mid-fault: a removed member must be added back here, as
            // the final heal only restarts members with their existing data.
            let stopped = sleep_or_stop(step.duration, &mut stop).await;
            let healed = self.heal(applied).await;
            let end = self.clock.now_ns();
            self.update(index, |r| {
                r.end_ns = Some(end);
                if let Err(err) = &healed {
                    r.error.get_or_insert_with(|| format!("heal: {err}"));
                }
            });
            tracing::info!(fault = %step.fault, "nemesis: fault healed");
            if stopped {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Records the end of any fault still open (the caller healed everything).
    pub fn close_open_faults(&self) {
        let end = self.clock.now_ns();
        let mut timeline = self.timeline.lock().unwrap_or_else(PoisonError::into_inner);
        for record in &mut timeline.faults {
            record.end_ns.get_or_insert(end);
        }
    }

    fn begin(&self, step: &Step) -> usize {
        let mut timeline = self.timeline.lock().unwrap_or_else(PoisonError::into_inner);
        timeline.faults.push(FaultRecord {
            kind: step.fault.kind(),
            fault: step.fault.to_string(),
            detail: String::new(),
            start_ns: self.clock.now_ns(),
            end_ns: None,
            error: None,
        });
        timeline.faults.len() - 1
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut FaultRecord)) {
        let mut timeline = self.timeline.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut timeline.faults[index]);
    }

    async fn apply(&self, fault: &Fault) -> Result<(Applied, String), ApplyError> {
        match fault {
            Fault::Kill(target) => {
                let members = self.resolve(target).await?;
                self.each(&members, |c, i| c.kill(i)).await?;
                Ok((
                    Applied::Killed(members.clone()),
                    format!("killed {}", names(&members)),
                ))
            }
            Fault::Pause(target) => {
                let members = self.resolve(target).await?;
                self.each(&members, |c, i| c.pause(i)).await?;
                Ok((
                    Applied::Paused(members.clone()),
                    format!("paused {}", names(&members)),
                ))
            }
            Fault::Partition(shape) => {
                let grudge = self.grudge(shape).await?;
                let detail = grudge::describe(&grudge);
                self.blocking(move |c| c.partition(&grudge)).await?;
                Ok((Applied::Partitioned, detail))
            }
            Fault::PowerLoss => {
                self.blocking(|c| c.power_loss()).await?;
                Ok((
                    Applied::PoweredOff,
                    "all members down, unsynced writes dropped".into(),
                ))
            }
            Fault::Member(i) => {
                // A membership change needs a quorum; right after another fault's heal the
                // cluster may still be recovering, and a request that times out there may
                // take effect much later, behind the nemesis' back.
                let unhealthy =
                    client::wait_healthy(&self.cluster.client_urls(), MEMBERSHIP_SETTLE).await;
                if !unhealthy.is_empty() {
                    return Err(cluster_error(format!(
                        "skipped: members {unhealthy:?} not healthy before the membership change"
                    )));
                }
                let detail = self.remove_member(*i).await?;
                Ok((Applied::Removed(*i), detail))
            }
        }
    }

    async fn heal(&self, applied: Applied) -> Result<(), ApplyError> {
        let size = self.cluster.size();
        match applied {
            Applied::Killed(members) => {
                self.each(&members, |c, i| c.start(i, StartMode::Initial))
                    .await
            }
            Applied::Paused(members) => self.each(&members, |c, i| c.resume(i)).await,
            Applied::Partitioned => self.blocking(|c| c.heal_network()).await,
            Applied::PoweredOff => {
                let all: Vec<usize> = (0..size).collect();
                self.each(&all, |c, i| c.start(i, StartMode::Initial)).await
            }
            Applied::Removed(i) => self.add_member(i).await,
            Applied::Nothing => Ok(()),
        }
    }

    async fn resolve(&self, target: &Target) -> Result<Vec<usize>, ApplyError> {
        Ok(match target {
            Target::One(i) => vec![*i],
            Target::Leader => vec![self.leader().await?],
            Target::Majority(members) => members.clone(),
            Target::All => (0..self.cluster.size()).collect(),
        })
    }

    async fn grudge(&self, shape: &Shape) -> Result<Grudge, ApplyError> {
        let n = self.cluster.size();
        Ok(match shape {
            Shape::IsolateLeader => grudge::isolate(n, self.leader().await?),
            Shape::IsolateOne(i) => grudge::isolate(n, *i),
            Shape::Halves(order) => grudge::halves(order),
            Shape::MajoritiesRing(order) => grudge::majorities_ring(order),
            Shape::Bridge(order) => grudge::bridge(order),
        })
    }

    async fn leader(&self) -> Result<usize, ApplyError> {
        client::leader_index(&self.cluster.client_urls())
            .await
            .ok_or_else(|| {
                ApplyError::Cluster(ClusterError::Unsupported(
                    "no member reports itself leader; fault skipped".into(),
                ))
            })
    }

    async fn each(
        &self,
        members: &[usize],
        action: impl Fn(&dyn Cluster, usize) -> Result<(), ClusterError> + Send + 'static,
    ) -> Result<(), ApplyError> {
        let members = members.to_vec();
        self.blocking(move |c| members.iter().try_for_each(|&i| action(c, i)))
            .await
    }

    async fn blocking(
        &self,
        action: impl FnOnce(&dyn Cluster) -> Result<(), ClusterError> + Send + 'static,
    ) -> Result<(), ApplyError> {
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || action(cluster.as_ref()))
            .await
            .expect("cluster control never panics")
            .map_err(ApplyError::Cluster)
    }

    /// Removes member `i` (found by its peer URL: an unstarted member has no name yet), kills
    /// and wipes it. A member already missing from the list (an earlier request took effect
    /// late) is wiped too, so the heal adds it back.
    async fn remove_member(&self, i: usize) -> Result<String, ApplyError> {
        let others: Vec<String> = (0..self.cluster.size())
            .filter(|&j| j != i)
            .map(|j| self.cluster.client_url(j))
            .collect();
        let mut client = client::connect_with_timeout(&others, MEMBERSHIP_TIMEOUT)
            .await
            .map_err(cluster_error)?;
        let list = client
            .member_list()
            .await
            .map_err(|e| membership_error("MemberList", e))?;
        let peer = self.cluster.peer_url(i);
        let Some(id) = list
            .members()
            .iter()
            .find(|m| m.peer_urls().contains(&peer))
            .map(|m| m.id())
        else {
            self.blocking(move |c| c.kill(i).and_then(|()| c.wipe(i)))
                .await?;
            return Ok(format!("m{i} was already out of the cluster; wiped it"));
        };
        if let Err(err) = client.member_remove(id).await {
            // A timed-out removal may still happen: only the member list can tell, and only
            // after the removal had time to commit.
            if let unsupported @ ApplyError::Fatal(_) = membership_error("MemberRemove", err) {
                return Err(unsupported);
            }
            let gone =
                poll_member_list(&mut client, |list| list.iter().all(|m| m.id() != id)).await;
            if gone.is_none() {
                return Err(cluster_error(format!(
                    "MemberRemove of m{i} did not take effect"
                )));
            }
            tracing::warn!(member = i, "MemberRemove failed but the member is gone");
        }
        self.blocking(move |c| c.kill(i).and_then(|()| c.wipe(i)))
            .await?;
        Ok(format!("removed and wiped m{i}"))
    }

    /// Adds member `i` back and starts it as a joining member, retrying while the cluster
    /// recovers from whatever else happened meanwhile.
    async fn add_member(&self, i: usize) -> Result<(), ApplyError> {
        let mut last = None;
        for _ in 0..ADD_ATTEMPTS {
            match self.add_member_once(i).await {
                Ok(()) => return Ok(()),
                Err(fatal @ ApplyError::Fatal(_)) => return Err(fatal),
                Err(err) => {
                    tracing::warn!(member = i, %err, "adding the member back failed; retrying");
                    last = Some(err);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    async fn add_member_once(&self, i: usize) -> Result<(), ApplyError> {
        let others: Vec<String> = (0..self.cluster.size())
            .filter(|&j| j != i)
            .map(|j| self.cluster.client_url(j))
            .collect();
        let mut client = client::connect_with_timeout(&others, MEMBERSHIP_TIMEOUT)
            .await
            .map_err(cluster_error)?;
        let peer = self.cluster.peer_url(i);
        let members = match client.member_add([peer.as_str()], None).await {
            Ok(added) => added.member_list().to_vec(),
            Err(err) => {
                // A timed-out add may still happen; then the member must be started, or the
                // cluster keeps an unstarted voter that counts against its quorum.
                if let unsupported @ ApplyError::Fatal(_) = membership_error("MemberAdd", err) {
                    return Err(unsupported);
                }
                let added = |list: &[Member]| list.iter().any(|m| m.peer_urls().contains(&peer));
                let Some(list) = poll_member_list(&mut client, added).await else {
                    return Err(cluster_error(format!(
                        "MemberAdd of m{i} did not take effect"
                    )));
                };
                tracing::warn!(member = i, "MemberAdd failed but the member was added");
                list
            }
        };
        let name = self.cluster.name(i);
        let initial: Vec<String> = members
            .iter()
            .filter_map(|m| {
                let url = m.peer_urls().first()?;
                let member = if m.name().is_empty() {
                    name.as_str()
                } else {
                    m.name()
                };
                Some(format!("{member}={url}"))
            })
            .collect();
        let join = StartMode::Join(initial.join(","));
        self.blocking(move |c| c.start(i, join)).await?;
        self.confirm_join_later(i);
        Ok(())
    }

    /// Confirms member `i`'s join once it serves a read, without holding up the schedule (a
    /// fault may hit the member mid-join). Holds only a weak reference, so a finished run's
    /// cluster is torn down at once.
    fn confirm_join_later(&self, i: usize) {
        let url = self.cluster.client_url(i);
        let cluster = Arc::downgrade(&self.cluster);
        tokio::spawn(async move {
            if client::wait_healthy(&[url], JOIN_CONFIRM_TIMEOUT)
                .await
                .is_empty()
            {
                if let Some(cluster) = cluster.upgrade() {
                    tokio::task::spawn_blocking(move || cluster.confirm_joined(i));
                }
            }
        });
    }
}

/// Deadline of one membership request (a removal of the leader first moves leadership).
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to watch the member list for a membership change whose request failed, and how
/// long a membership fault waits for a healthy cluster before it starts.
const MEMBERSHIP_SETTLE: Duration = Duration::from_secs(30);
/// How long a re-added member may take to serve its first read before the harness stops
/// waiting to confirm its join (it then keeps restarting as a joining member, which is safe).
const JOIN_CONFIRM_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts to add a removed member back at the heal.
const ADD_ATTEMPTS: usize = 5;

/// Polls the member list until `done` holds (returning the list) or [`MEMBERSHIP_SETTLE`]
/// passes (returning `None`).
async fn poll_member_list(
    client: &mut etcd_client::Client,
    done: impl Fn(&[Member]) -> bool,
) -> Option<Vec<Member>> {
    let deadline = tokio::time::Instant::now() + MEMBERSHIP_SETTLE;
    while tokio::time::Instant::now() < deadline {
        if let Ok(list) = client.member_list().await {
            if done(list.members()) {
                return Some(list.members().to_vec());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// Why a fault could not be applied or healed.
enum ApplyError {
    Cluster(ClusterError),
    Fatal(NemesisError),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Cluster(err) => err.fmt(f),
            ApplyError::Fatal(err) => err.fmt(f),
        }
    }
}

fn cluster_error(err: impl std::fmt::Display) -> ApplyError {
    ApplyError::Cluster(ClusterError::Unsupported(err.to_string()))
}

fn membership_error(rpc: &'static str, err: etcd_client::Error) -> ApplyError {
    match &err {
        etcd_client::Error::GRpcStatus(status) if status.code() == tonic::Code::Unimplemented => {
            ApplyError::Fatal(NemesisError::MembershipUnsupported {
                rpc,
                detail: status.message().to_owned(),
            })
        }
        _ => cluster_error(format!("{rpc}: {err}")),
    }
}

fn names(members: &[usize]) -> String {
    let names: Vec<String> = members.iter().map(|i| format!("m{i}")).collect();
    names.join(", ")
}

/// Sleeps for `duration` unless `stop` turns true first; returns whether it was stopped.
async fn sleep_or_stop(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    let stopped = tokio::select! {
        () = tokio::time::sleep(duration) => None,
        _ = stop.wait_for(|stopped| *stopped) => Some(true),
    };
    stopped.unwrap_or_else(|| *stop.borrow())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::NemesisKind;

    /// The text timeline lists starts, heals and errors in time order, in seconds.
    #[test]
    fn timeline_text_is_time_ordered() {
        let record = |fault: &str, start: u64, end: Option<u64>, error: Option<&str>| FaultRecord {
            kind: NemesisKind::Kill,
            fault: fault.into(),
            detail: "killed m1".into(),
            start_ns: start,
            end_ns: end,
            error: error.map(str::to_owned),
        };
        let timeline = Timeline {
            faults: vec![
                record("kill -9 m1", 1_000_000_000, Some(3_500_000_000), None),
                record("kill -9 the leader", 5_000_000_000, None, Some("no leader")),
            ],
        };
        let text = timeline.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].contains("1.000s  start kill -9 m1: killed m1"),
            "{text}"
        );
        assert!(lines[1].contains("3.500s  heal  kill -9 m1"), "{text}");
        assert!(
            lines[3].contains("error kill -9 the leader: no leader"),
            "{text}"
        );
    }
}
