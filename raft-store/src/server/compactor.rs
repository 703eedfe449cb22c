//! etcd's auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`): the
//! leader compacts the key history on its own, so the history and the in-memory revision
//! index (`skiff-mvcc` `revisions.rs`) stay bounded without an operator or a Kubernetes
//! apiserver calling Compact.
//!
//! - `periodic` (etcd's default mode): keep `retention` of history. The leader samples the
//!   current revision every tenth of the retention and compacts to the newest sample that is
//!   at least `retention` old, as etcd 3.4's periodic compactor does.
//! - `revision`: keep the last `retention` revisions; every 5 minutes the leader compacts to
//!   `current - retention` (etcd's revision compactor and interval).
//!
//! Only the leader compacts; a member that loses leadership drops its samples, and a new
//! leader starts sampling afresh. The compaction is an ordinary replicated Compact, so every
//! member applies it at the same point of the log. The decisions are pure ([`Periodic`],
//! [`revision_target`]); [`run`] is the task around them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::proto::{PbCompactionRequest, PbCompactionResponse};
use prost::Message;
use skiff_mvcc::EtcdError;

use super::Node;
use crate::config::AutoCompaction;
use crate::raft::Command;

/// How often the revision compactor looks (etcd's `revInterval`).
const REVISION_MODE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Bounds of the periodic compactor's sampling interval.
const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
const MAX_SAMPLE_INTERVAL: Duration = Duration::from_secs(6 * 60);

/// The periodic compactor's samples and decision.
#[derive(Debug)]
pub struct Periodic {
    retention: Duration,
    /// (time since start, revision), oldest first.
    samples: VecDeque<(Duration, i64)>,
    /// The revision last compacted to.
    last: i64,
}

impl Periodic {
    /// A compactor keeping `retention` of history.
    pub fn new(retention: Duration) -> Periodic {
        Periodic {
            retention,
            samples: VecDeque::new(),
            last: 0,
        }
    }

    /// How often to sample.
    pub fn interval(&self) -> Duration {
        (self.retention / 10).clamp(MIN_SAMPLE_INTERVAL, MAX_SAMPLE_INTERVAL)
    }

    /// Records the revision `rev` seen at `now`; returns the revision to compact to, if any:
    /// the newest sample at least `retention` old, when it is above the last compaction.
    pub fn observe(&mut self, now: Duration, rev: i64) -> Option<i64> {
        self.samples.push_back((now, rev));
        let old_enough = |t: Duration| now.saturating_sub(t) >= self.retention;
        let newest_old = self.samples.iter().rposition(|&(t, _)| old_enough(t))?;
        // Older samples can never be chosen again.
        self.samples.drain(..newest_old);
        let (_, target) = self.samples[0];
        (target > self.last).then(|| {
            self.last = target;
            target
        })
    }

    /// Forgets the samples (this member stopped leading).
    pub fn reset(&mut self) {
        self.samples.clear();
    }
}

/// The revision compactor's target: `current - retention`, when above `last`.
pub fn revision_target(current: i64, retention: i64, last: i64) -> Option<i64> {
    let target = current - retention;
    (target > 0 && target > last).then_some(target)
}

/// What the leader compacts to next, for either mode.
#[derive(Debug)]
enum Plan {
    Periodic(Periodic),
    Revision { keep: i64, last: i64 },
}

impl Plan {
    fn new(mode: AutoCompaction) -> Plan {
        match mode {
            AutoCompaction::Periodic(retention) => Plan::Periodic(Periodic::new(retention)),
            AutoCompaction::Revision(keep) => Plan::Revision { keep, last: 0 },
        }
    }

    fn interval(&self) -> Duration {
        match self {
            Plan::Periodic(p) => p.interval(),
            Plan::Revision { .. } => REVISION_MODE_INTERVAL,
        }
    }

    /// The revision to compact to now, if any (`now` is the time since start).
    fn next(&mut self, now: Duration, current: i64) -> Option<i64> {
        match self {
            Plan::Periodic(p) => p.observe(now, current),
            Plan::Revision { keep, last } => {
                let target = revision_target(current, *keep, *last)?;
                *last = target;
                Some(target)
            }
        }
    }

    /// This member is not leading: a periodic plan forgets its samples.
    fn pause(&mut self) {
        if let Plan::Periodic(p) = self {
            p.reset();
        }
    }
}

/// Runs the auto-compaction of `node` forever.
pub async fn run(node: Arc<Node>, mode: AutoCompaction) {
    let start = Instant::now();
    let mut plan = Plan::new(mode);
    tracing::info!(?mode, interval = ?plan.interval(), "auto-compaction enabled");
    let mut tick = tokio::time::interval(plan.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !node.lessor.is_primary() {
            plan.pause();
            continue;
        }
        if let Some(target) = plan.next(start.elapsed(), node.mvcc.current_revision()) {
            compact(&node, target).await;
        }
    }
}

async fn compact(node: &Node, revision: i64) {
    let req = PbCompactionRequest {
        revision,
        physical: false,
    };
    let started = Instant::now();
    match node
        .write::<PbCompactionResponse>(Command::Compact(req.encode_to_vec()))
        .await
    {
        Ok(_) => tracing::info!(
            revision,
            took_ms = started.elapsed().as_millis() as u64,
            "finished auto-compaction"
        ),
        // Someone compacted further already: nothing to do.
        Err(e) if e.message == EtcdError::Compacted.etcd_message() => {
            tracing::debug!(revision, error = %e.message, "auto-compaction skipped")
        }
        Err(e) => tracing::warn!(revision, error = %e.message, "auto-compaction failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    // Samples every tenth of the retention; compacts to the newest sample at least one
    // retention old, once per new target.
    #[test]
    fn periodic_compacts_to_the_revision_one_retention_ago() {
        let mut p = Periodic::new(s(10));
        assert_eq!(p.interval(), s(1));
        assert_eq!(p.observe(s(0), 5), None);
        assert_eq!(p.observe(s(5), 9), None, "nothing is 10 s old yet");
        assert_eq!(p.observe(s(10), 12), Some(5));
        assert_eq!(p.observe(s(11), 13), None, "5 is done; 9 is 6 s old");
        assert_eq!(p.observe(s(15), 20), Some(9));
        assert_eq!(p.observe(s(40), 20), Some(20), "the newest old sample wins");
        assert_eq!(p.observe(s(60), 20), None, "no new revision");
        p.reset();
        assert_eq!(p.observe(s(61), 30), None, "a new leader samples afresh");
        assert_eq!(p.observe(s(71), 31), Some(30));
    }

    #[test]
    fn sampling_interval_is_bounded() {
        assert_eq!(
            Periodic::new(Duration::from_millis(200)).interval(),
            MIN_SAMPLE_INTERVAL
        );
        assert_eq!(Periodic::new(s(24 * 3600)).interval(), MAX_SAMPLE_INTERVAL);
    }

    // The revision plan compacts each target once; only the periodic plan has samples to
    // forget when leadership moves.
    #[test]
    fn revision_plan_compacts_each_target_once() {
        let mut plan = Plan::new(AutoCompaction::Revision(1000));
        assert_eq!(plan.interval(), REVISION_MODE_INTERVAL);
        assert_eq!(plan.next(s(0), 1500), Some(500));
        assert_eq!(plan.next(s(300), 1500), None);
        plan.pause();
        assert_eq!(plan.next(s(600), 1700), Some(700));
    }

    // Keeps the last `retention` revisions.
    #[test]
    fn revision_mode_keeps_the_last_revisions() {
        assert_eq!(revision_target(100, 1000, 0), None);
        assert_eq!(revision_target(1500, 1000, 0), Some(500));
        assert_eq!(revision_target(1500, 1000, 500), None);
        assert_eq!(revision_target(1501, 1000, 500), Some(501));
    }
}
