//! Fault injection ("nemesis"): which faults exist, a seeded schedule of them, and the
//! executor that applies a schedule to a cluster.
//!
//! ```text
//!  --nemesis kinds, seed, time limit ──schedule()──▶ Vec<Step>   (pure, unit-tested)
//!                                                       │
//!            cluster::Cluster ◀── Executor::run ◀───────┘ ──▶ Timeline (logged, reported)
//! ```
//!
//! Every random choice (which fault, which member, which permutation for a partition shape,
//! how long) is made here from the seed, so a seed reproduces the same schedule. Only "the
//! leader" is resolved when the fault starts, by asking the cluster. Faults never overlap: a
//! step is applied, held for its duration, then healed, then the cluster gets a quiet gap.

pub mod executor;
pub mod grudge;

pub use executor::{Executor, FaultRecord, Timeline};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// The fault families selectable with `--nemesis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NemesisKind {
    /// SIGKILL one member, the leader, a majority or all members; restart them afterwards.
    Kill,
    /// SIGSTOP one member, the leader, a majority or all; SIGCONT afterwards.
    Pause,
    /// Cut member-to-member traffic: isolate the leader or one member, random halves,
    /// majorities ring, bridge.
    Partition,
    /// Kill every member at once and throw away everything not fsynced (ext4 shutdown without
    /// log flush on each member's loop-mounted data dir), then restart.
    PowerLoss,
    /// Remove a member (MemberRemove), wipe it, add it back (MemberAdd) and restart it as a
    /// joining member. A server without MemberAdd/MemberRemove stops the run with a clear
    /// error; drop `member` from `--nemesis` for such a server (etcd-compatible stores
    /// older than skiff's membership support).
    Member,
}

impl NemesisKind {
    /// The kinds `--nemesis all` means: every kind.
    pub const ALL_DEFAULT: [NemesisKind; 5] = [
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Partition,
        NemesisKind::PowerLoss,
        NemesisKind::Member,
    ];
}

/// Which members a process fault hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// One member, chosen by the schedule.
    One(usize),
    /// The member that is leader when the fault starts.
    Leader,
    /// These members (a majority, chosen by the schedule).
    Majority(Vec<usize>),
    /// Every member.
    All,
}

/// A partition shape; permutations are chosen by the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// The leader at the time the fault starts, alone.
    IsolateLeader,
    /// This member alone.
    IsolateOne(usize),
    /// [`grudge::halves`] over this order.
    Halves(Vec<usize>),
    /// [`grudge::majorities_ring`] over this order.
    MajoritiesRing(Vec<usize>),
    /// [`grudge::bridge`] over this order.
    Bridge(Vec<usize>),
}

/// One concrete fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL, later restart.
    Kill(Target),
    /// SIGSTOP, later SIGCONT.
    Pause(Target),
    /// iptables drops between members, later flushed.
    Partition(Shape),
    /// Kill all, lose unsynced writes, restart.
    PowerLoss,
    /// Remove, wipe, re-add and restart this member.
    Member(usize),
}

impl Fault {
    /// The family this fault belongs to.
    pub fn kind(&self) -> NemesisKind {
        match self {
            Fault::Kill(_) => NemesisKind::Kill,
            Fault::Pause(_) => NemesisKind::Pause,
            Fault::Partition(_) => NemesisKind::Partition,
            Fault::PowerLoss => NemesisKind::PowerLoss,
            Fault::Member(_) => NemesisKind::Member,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::One(i) => write!(f, "m{i}"),
            Target::Leader => f.write_str("the leader"),
            Target::Majority(members) => write!(f, "majority {}", names(members)),
            Target::All => f.write_str("all members"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(target) => write!(f, "kill -9 {target}"),
            Fault::Pause(target) => write!(f, "pause (SIGSTOP) {target}"),
            Fault::Partition(Shape::IsolateLeader) => f.write_str("partition: isolate the leader"),
            Fault::Partition(Shape::IsolateOne(i)) => write!(f, "partition: isolate m{i}"),
            Fault::Partition(Shape::Halves(order)) => {
                write!(f, "partition: random halves over {}", names(order))
            }
            Fault::Partition(Shape::MajoritiesRing(order)) => {
                write!(f, "partition: majorities ring over {}", names(order))
            }
            Fault::Partition(Shape::Bridge(order)) => {
                write!(f, "partition: bridge over {}", names(order))
            }
            Fault::PowerLoss => f.write_str("power loss of all members (unsynced writes lost)"),
            Fault::Member(i) => write!(f, "membership: remove m{i}, wipe it, add it back"),
        }
    }
}

fn names(members: &[usize]) -> String {
    let names: Vec<String> = members.iter().map(|i| format!("m{i}")).collect();
    format!("[{}]", names.join(" "))
}

/// One scheduled fault: applied at `start` (from the beginning of the run), healed after
/// `duration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// When to apply it.
    pub start: Duration,
    /// How long to hold it before healing.
    pub duration: Duration,
    /// What to do.
    pub fault: Fault,
}

/// Timing of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// Faults are scheduled only inside `[0, time_limit)`, and each is healed before it ends.
    pub time_limit: Duration,
    /// Quiet time before the first fault and between two faults.
    pub gap: Duration,
    /// Shortest time a fault is held.
    pub min_fault: Duration,
    /// Longest time a fault is held.
    pub max_fault: Duration,
}

impl ScheduleOptions {
    /// Defaults close to Jepsen's etcd test (a fault about every 5 s), for a given run length.
    pub fn for_time_limit(time_limit: Duration) -> Self {
        ScheduleOptions {
            time_limit,
            gap: Duration::from_secs(3),
            min_fault: Duration::from_secs(2),
            max_fault: Duration::from_secs(6),
        }
    }
}

/// Generates the fault schedule for a cluster of `members` from `seed`. Kinds are drawn in
/// rounds: every enabled kind appears once per round in a random order, so even a short run
/// exercises all of them. Returns an empty schedule when `kinds` is empty.
pub fn schedule(
    kinds: &[NemesisKind],
    members: usize,
    seed: u64,
    options: &ScheduleOptions,
) -> Vec<Step> {
    assert!(members >= 1, "a cluster has at least one member");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut round: Vec<NemesisKind> = Vec::new();
    let mut at = options.gap;
    while !kinds.is_empty() {
        let duration = random_duration(&mut rng, options.min_fault, options.max_fault);
        if at + duration >= options.time_limit {
            break;
        }
        if round.is_empty() {
            round = kinds.to_vec();
            round.shuffle(&mut rng);
        }
        let kind = round.pop().expect("refilled above");
        let fault = random_fault(&mut rng, kind, members);
        steps.push(Step {
            start: at,
            duration,
            fault,
        });
        at += duration + options.gap;
    }
    steps
}

fn random_duration(rng: &mut StdRng, min: Duration, max: Duration) -> Duration {
    let (lo, hi) = (
        min.as_millis() as u64,
        max.as_millis().max(min.as_millis()) as u64,
    );
    Duration::from_millis(rng.gen_range(lo..=hi))
}

fn random_fault(rng: &mut StdRng, kind: NemesisKind, n: usize) -> Fault {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    match kind {
        NemesisKind::Kill => Fault::Kill(random_target(rng, order)),
        NemesisKind::Pause => Fault::Pause(random_target(rng, order)),
        NemesisKind::Partition => Fault::Partition(match rng.gen_range(0..5) {
            0 => Shape::IsolateLeader,
            1 => Shape::IsolateOne(order[0]),
            2 => Shape::Halves(order),
            3 => Shape::MajoritiesRing(order),
            _ => Shape::Bridge(order),
        }),
        NemesisKind::PowerLoss => Fault::PowerLoss,
        NemesisKind::Member => Fault::Member(order[0]),
    }
}

fn random_target(rng: &mut StdRng, mut order: Vec<usize>) -> Target {
    match rng.gen_range(0..4) {
        0 => Target::One(order[0]),
        1 => Target::Leader,
        2 => {
            order.truncate(order.len() / 2 + 1);
            order.sort_unstable();
            Target::Majority(order)
        }
        _ => Target::All,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn options(secs: u64) -> ScheduleOptions {
        ScheduleOptions::for_time_limit(Duration::from_secs(secs))
    }

    /// The same seed gives the same schedule; another seed gives another.
    #[test]
    fn schedule_is_reproducible_from_the_seed() {
        let kinds = NemesisKind::ALL_DEFAULT;
        let a = schedule(&kinds, 5, 42, &options(300));
        assert_eq!(a, schedule(&kinds, 5, 42, &options(300)));
        assert_ne!(a, schedule(&kinds, 5, 43, &options(300)));
    }

    /// Faults do not overlap, leave quiet gaps and are healed before the time limit.
    #[test]
    fn faults_are_sequential_and_inside_the_limit() {
        let o = options(120);
        let steps = schedule(&NemesisKind::ALL_DEFAULT, 3, 7, &o);
        assert!(steps.len() >= 10, "{} steps", steps.len());
        let mut free_from = Duration::ZERO;
        for step in &steps {
            assert!(step.start >= free_from + o.gap);
            assert!(step.duration >= o.min_fault && step.duration <= o.max_fault);
            free_from = step.start + step.duration;
        }
        assert!(free_from < o.time_limit);
    }

    /// A one-minute run with every kind sees every kind at least once.
    #[test]
    fn a_short_run_covers_every_kind() {
        for seed in 0..20 {
            let steps = schedule(&NemesisKind::ALL_DEFAULT, 3, seed, &options(60));
            let kinds: BTreeSet<NemesisKind> = steps.iter().map(|s| s.fault.kind()).collect();
            assert_eq!(kinds.len(), 5, "seed {seed}: {steps:?}");
        }
    }

    /// Only the requested kinds are scheduled, and targets are valid member indexes.
    #[test]
    fn respects_kinds_and_member_count() {
        let steps = schedule(&[NemesisKind::Pause], 5, 3, &options(200));
        for step in &steps {
            let Fault::Pause(target) = &step.fault else {
                panic!("unexpected {:?}", step.fault);
            };
            match target {
                Target::One(i) => assert!(*i < 5),
                Target::Majority(members) => {
                    assert_eq!(members.len(), 3);
                    assert!(members.iter().all(|i| *i < 5));
                }
                Target::Leader | Target::All => {}
            }
        }
        assert!(schedule(&[], 3, 1, &options(60)).is_empty());
    }

    /// Fault descriptions read as a timeline line.
    #[test]
    fn faults_describe_themselves() {
        assert_eq!(Fault::Kill(Target::One(2)).to_string(), "kill -9 m2");
        let ring = Fault::Partition(Shape::MajoritiesRing(vec![1, 0, 2]));
        assert_eq!(
            ring.to_string(),
            "partition: majorities ring over [m1 m0 m2]"
        );
    }
}
