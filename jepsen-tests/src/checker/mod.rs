//! Linearizability checking: partitions checked concurrently, each by a Wing–Gong–Lowe search.
//!
//! ```text
//!  ops ──Model::partition──▶ partitions ──(largest first)──▶ worker threads ─┐
//!                                                                            │ search::search
//!  Report { verdict, per-partition results } ◀── first illegal cancels rest ◀┘
//! ```
//!
//! By P-compositionality (Horn & Kroening) a history is linearizable iff each partition is, so
//! one illegal partition decides the whole history: it raises a shared cancel flag and the
//! other searches stop at their next poll. Each search has its own step budget and all share
//! one deadline; running out of either gives [`Verdict::Unknown`] instead of a wrong answer or
//! an exhausted memory.

mod bitset;
mod counterexample;
mod events;
mod search;

pub use counterexample::{Counterexample, OpSummary, DISPLAY_PREFIX_OPS};

use crate::model::{Model, OperationOf, Partition};
use counterexample::show_key;
use search::{Limits, SearchOutcome};
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default step budget per partition: a few seconds of search. The golden histories need at
/// most about 55 000 steps.
pub const DEFAULT_MAX_STEPS: u64 = 5_000_000;

/// Default memory budget of each partition's cache, estimated from bitset and state sizes.
/// At most `available_parallelism` searches run at once, so a check stays within a few of
/// these even on a pathological history.
pub const DEFAULT_MAX_CACHE_BYTES: u64 = 512 << 20;

/// How a check runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    /// Step budget of each partition's search (see [`DEFAULT_MAX_STEPS`]).
    pub max_steps: u64,
    /// Memory budget of each partition's cache (see [`DEFAULT_MAX_CACHE_BYTES`]).
    pub max_cache_bytes: u64,
    /// Wall-clock limit for the whole check; `None` means no limit.
    pub timeout: Option<Duration>,
    /// Worker threads; `None` uses `available_parallelism`, which is also the cap. Never more
    /// than the partitions.
    pub threads: Option<NonZeroUsize>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            max_steps: DEFAULT_MAX_STEPS,
            max_cache_bytes: DEFAULT_MAX_CACHE_BYTES,
            timeout: None,
            threads: None,
        }
    }
}

/// Why a check could not decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownReason {
    /// A partition's search used its whole step budget.
    StepBudget {
        /// The partition's key.
        key: Option<String>,
        /// The budget it ran out of.
        max_steps: u64,
    },
    /// A partition's cache outgrew its memory budget.
    MemoryBudget {
        /// The partition's key.
        key: Option<String>,
        /// The budget, in bytes.
        max_bytes: u64,
    },
    /// The deadline passed while a partition was still being searched.
    Timeout {
        /// The partition's key.
        key: Option<String>,
    },
}

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnknownReason::StepBudget { key, max_steps } => write!(
                f,
                "{}: the search used its budget of {max_steps} steps; raise --max-steps",
                show_key(key.as_deref())
            ),
            UnknownReason::MemoryBudget { key, max_bytes } => write!(
                f,
                "{}: the search cache reached its budget of {} MiB; raise --max-cache-mb",
                show_key(key.as_deref()),
                max_bytes >> 20
            ),
            UnknownReason::Timeout { key } => write!(
                f,
                "{}: the deadline passed before the search finished; raise --timeout-ms",
                show_key(key.as_deref())
            ),
        }
    }
}

/// The answer for a whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every partition has a linearization.
    Linearizable,
    /// Some partition has none; the counterexample explains the first one found.
    NotLinearizable(Box<Counterexample>),
    /// No partition is illegal, but at least one could not be decided.
    Unknown(UnknownReason),
}

impl Verdict {
    /// The one-line verdict: `linearizable`, `not linearizable` or `unknown`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable(_) => "not linearizable",
            Verdict::Unknown(_) => "unknown",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What became of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionOutcome {
    /// It has a linearization.
    Linearizable,
    /// It has none.
    NotLinearizable(Box<Counterexample>),
    /// Its search gave up.
    Unknown(UnknownReason),
    /// It was skipped or stopped because another partition was already illegal.
    Cancelled,
}

/// The result of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    /// The partition's key.
    pub key: Option<String>,
    /// Its number of operations.
    pub operations: usize,
    /// Search steps taken (0 if it never started).
    pub steps: u64,
    /// How it ended.
    pub outcome: PartitionOutcome,
}

/// The result of a check: the verdict and how each partition fared, in partition order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The answer for the whole history.
    pub verdict: Verdict,
    /// One entry per partition, in the order [`Model::partition`] returned them.
    pub partitions: Vec<PartitionResult>,
}

/// Checks whether `ops` is linearizable with respect to model `M`.
///
/// # Panics
///
/// If an operation returns before it is invoked (`ret < call`), which decoding never produces.
pub fn check<M: Model>(ops: &[OperationOf<M>], options: &CheckOptions) -> Report {
    let partitions = M::partition(ops);
    let cancel = AtomicBool::new(false);
    let limits = Limits {
        max_steps: options.max_steps,
        max_cache_bytes: options.max_cache_bytes,
        deadline: options
            .timeout
            .and_then(|timeout| Instant::now().checked_add(timeout)),
        cancel: &cancel,
    };
    let threads = worker_threads(options.threads, partitions.len());
    let outcomes = run_partitions::<M>(ops, &partitions, &limits, threads);
    let results: Vec<PartitionResult> = partitions
        .iter()
        .zip(outcomes)
        .map(|(partition, (outcome, steps))| PartitionResult {
            key: partition.key.clone(),
            operations: partition.ops.len(),
            steps,
            outcome: partition_outcome(outcome, partition, options),
        })
        .collect();
    Report {
        verdict: overall_verdict(&results),
        partitions: results,
    }
}

/// How many workers to run: as requested, but never more than the machine's parallelism
/// (the searches are CPU-bound, so extra threads only add memory) nor than the partitions.
fn worker_threads(requested: Option<NonZeroUsize>, partitions: usize) -> usize {
    let available = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    requested
        .map_or(available, NonZeroUsize::get)
        .min(available)
        .min(partitions)
        .max(1)
}

/// Runs every partition's search on `threads` workers, largest partitions first so the long
/// searches start early. Returns outcomes in partition order.
fn run_partitions<M: Model>(
    ops: &[OperationOf<M>],
    partitions: &[Partition],
    limits: &Limits<'_>,
    threads: usize,
) -> Vec<(SearchOutcome, u64)> {
    let mut order: Vec<usize> = (0..partitions.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(partitions[index].ops.len()));
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<(SearchOutcome, u64)>>> = Mutex::new(vec![None; partitions.len()]);
    let worker = || {
        while let Some(&index) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            let result = run_one::<M>(ops, &partitions[index], limits);
            if matches!(result.0, SearchOutcome::Illegal(_)) {
                limits.cancel.store(true, Ordering::Relaxed);
            }
            slots
                .lock()
                .expect("workers never panic while holding the lock")[index] = Some(result);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(worker);
        }
        worker();
    });
    slots
        .into_inner()
        .expect("workers never panic while holding the lock")
        .into_iter()
        .map(|slot| slot.expect("every partition index is taken by exactly one worker"))
        .collect()
}

fn run_one<M: Model>(
    ops: &[OperationOf<M>],
    partition: &Partition,
    limits: &Limits<'_>,
) -> (SearchOutcome, u64) {
    if limits.cancel.load(Ordering::Relaxed) {
        return (SearchOutcome::Cancelled, 0);
    }
    let members: Vec<&OperationOf<M>> = partition.ops.iter().map(|&index| &ops[index]).collect();
    search::search::<M>(partition.key.as_deref(), &members, limits)
}

fn partition_outcome(
    outcome: SearchOutcome,
    partition: &Partition,
    options: &CheckOptions,
) -> PartitionOutcome {
    let key = partition.key.clone();
    match outcome {
        SearchOutcome::Linearizable => PartitionOutcome::Linearizable,
        SearchOutcome::Illegal(cex) => PartitionOutcome::NotLinearizable(cex),
        SearchOutcome::OutOfSteps => PartitionOutcome::Unknown(UnknownReason::StepBudget {
            key,
            max_steps: options.max_steps,
        }),
        SearchOutcome::OutOfMemory => PartitionOutcome::Unknown(UnknownReason::MemoryBudget {
            key,
            max_bytes: options.max_cache_bytes,
        }),
        SearchOutcome::DeadlinePassed => PartitionOutcome::Unknown(UnknownReason::Timeout { key }),
        SearchOutcome::Cancelled => PartitionOutcome::Cancelled,
    }
}

/// Illegal beats unknown beats linearizable; ties go to the first partition in order.
fn overall_verdict(results: &[PartitionResult]) -> Verdict {
    let illegal = results.iter().find_map(|result| match &result.outcome {
        PartitionOutcome::NotLinearizable(cex) => Some(cex.clone()),
        _ => None,
    });
    if let Some(cex) = illegal {
        return Verdict::NotLinearizable(cex);
    }
    for result in results {
        match &result.outcome {
            PartitionOutcome::Unknown(reason) => return Verdict::Unknown(reason.clone()),
            PartitionOutcome::Cancelled => {
                panic!("partition cancelled although no partition was illegal")
            }
            PartitionOutcome::Linearizable | PartitionOutcome::NotLinearizable(_) => {}
        }
    }
    Verdict::Linearizable
}

/// How many partition lines [`Report`]'s `Display` prints before summarising the rest.
pub const DISPLAY_PARTITIONS: usize = 50;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "partitions: {}", self.partitions.len())?;
        for result in self.partitions.iter().take(DISPLAY_PARTITIONS) {
            let outcome = match &result.outcome {
                PartitionOutcome::Linearizable => "linearizable",
                PartitionOutcome::NotLinearizable(_) => "NOT linearizable",
                PartitionOutcome::Unknown(_) => "unknown",
                PartitionOutcome::Cancelled => "cancelled (another partition is illegal)",
            };
            let key = show_key(result.key.as_deref());
            writeln!(
                f,
                "  {key}: {outcome} ({} ops, {} steps)",
                result.operations, result.steps
            )?;
        }
        if let Some(hidden) = self.partitions.len().checked_sub(DISPLAY_PARTITIONS) {
            if hidden > 0 {
                writeln!(f, "  ... {hidden} more partitions")?;
            }
        }
        match &self.verdict {
            Verdict::Linearizable => Ok(()),
            Verdict::NotLinearizable(cex) => write!(f, "{cex}"),
            Verdict::Unknown(reason) => writeln!(f, "undecided: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{pair, Op, OpKind};
    use crate::model::test_support::op;
    use crate::model::{decode_history, CasRegister, Kv, KvInput, KvOutput, Operation};
    use crate::model::{RegisterInput as I, RegisterOutput as O};
    use serde_json::json;

    fn keyed(
        key: &str,
        call: usize,
        ret: usize,
        input: KvInput,
        output: KvOutput,
    ) -> Operation<KvInput, KvOutput> {
        Operation {
            key: Some(key.to_owned()),
            ..op(call, Some(ret), input, output)
        }
    }

    /// A failed write is dropped, so a read may not observe it.
    #[test]
    fn failed_write_is_dropped() {
        let history = |seen| {
            vec![
                Op::new(0, OpKind::Invoke, "write", None, json!(1)),
                Op::new(0, OpKind::Fail, "write", None, json!(1)),
                Op::new(1, OpKind::Invoke, "read", None, json!(null)),
                Op::new(1, OpKind::Ok, "read", None, seen),
            ]
        };
        let verdict = |seen| {
            let events = history(seen);
            let ops = decode_history::<CasRegister>(&pair(&events).expect("well-formed"))
                .expect("register values");
            check::<CasRegister>(&ops, &CheckOptions::default()).verdict
        };
        assert_eq!(verdict(json!(null)), Verdict::Linearizable);
        assert!(matches!(verdict(json!(1)), Verdict::NotLinearizable(_)));
    }

    /// Keys are checked separately and one illegal key makes the history illegal.
    #[test]
    fn one_illegal_key_decides() {
        let ops = vec![
            keyed("a", 0, 1, KvInput::Put("x".into()), KvOutput::Done),
            keyed("b", 2, 3, KvInput::Get, KvOutput::Get("x".into())),
            keyed("a", 4, 5, KvInput::Get, KvOutput::Get("x".into())),
        ];
        let report = check::<Kv>(&ops, &CheckOptions::default());
        let Verdict::NotLinearizable(cex) = &report.verdict else {
            panic!("key b reads a value never written to it");
        };
        assert_eq!(cex.key.as_deref(), Some("b"));
        assert_eq!(report.partitions.len(), 2);
        assert_eq!(report.partitions[0].outcome, PartitionOutcome::Linearizable);
        assert!(report.to_string().contains("key \"b\": NOT linearizable"));
    }

    /// An exhausted budget on one partition gives Unknown for the whole history.
    #[test]
    fn budget_exhaustion_gives_unknown() {
        let mut ops: Vec<Operation<I, O>> = (0..8)
            .map(|i| op(i, Some(20 + i), I::Write(i as i64), O::Written))
            .collect();
        ops.push(op(40, Some(41), I::Read, O::Read(Some(99))));
        let options = CheckOptions {
            max_steps: 100,
            ..CheckOptions::default()
        };
        let report = check::<CasRegister>(&ops, &options);
        assert_eq!(
            report.verdict,
            Verdict::Unknown(UnknownReason::StepBudget {
                key: None,
                max_steps: 100
            })
        );
        assert_eq!(report.verdict.as_str(), "unknown");
    }

    /// A tiny deterministic generator (SplitMix64), so the randomized test is reproducible
    /// without extra dependencies.
    struct SplitMix(u64);

    impl SplitMix {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % bound
        }
    }

    /// A random register history: operations take effect at a random instant inside their
    /// interval (or, if pending, maybe never), and then a read is sometimes corrupted.
    fn random_history(rng: &mut SplitMix, count: usize) -> Vec<Operation<I, O>> {
        let mut timed = Vec::new();
        for i in 0..count {
            // Times are scaled by 16 and offset by i so every position is distinct.
            let at = |x: u64| (x as usize) * 16 + i;
            let call = rng.below(40);
            let effect = call + 1 + rng.below(15);
            let ret = effect + 1 + rng.below(15);
            let pending = rng.below(6) == 0;
            let applies = !pending || rng.below(2) == 0;
            let input = match rng.below(3) {
                0 => I::Read,
                1 => I::Write(rng.below(3) as i64),
                _ => I::Cas {
                    expected: rng.below(3) as i64,
                    new: rng.below(3) as i64,
                },
            };
            let effect = if applies { at(effect) } else { usize::MAX };
            timed.push((
                effect,
                op(at(call), (!pending).then(|| at(ret)), input, O::Unknown),
            ));
        }
        timed.sort_by_key(|(effect, _)| *effect);
        let mut state = None;
        for (_, op) in &mut timed {
            let output = match op.input {
                I::Read => O::Read(state),
                I::Write(value) => {
                    state = Some(value);
                    O::Written
                }
                I::Cas { expected, new } => {
                    let swapped = state == Some(expected);
                    if swapped {
                        state = Some(new);
                    }
                    O::Cas(swapped)
                }
            };
            // Operations that never apply sort last and are pending, so their effect on
            // `state` above is never observed.
            if op.ret.is_some() {
                op.output = output;
            }
        }
        let mut ops: Vec<_> = timed.into_iter().map(|(_, op)| op).collect();
        let reads: Vec<usize> = (0..ops.len())
            .filter(|&i| matches!(ops[i].output, O::Read(_)))
            .collect();
        if !reads.is_empty() && rng.below(2) == 0 {
            let victim = reads[rng.below(reads.len() as u64) as usize];
            ops[victim].output = O::Read(Some(rng.below(3) as i64));
        }
        ops
    }

    /// Brute force: try every order that respects real time.
    fn brute_force(ops: &[Operation<I, O>], done: &mut Vec<bool>, state: Option<i64>) -> bool {
        if done.iter().all(|&d| d) {
            return true;
        }
        for i in 0..ops.len() {
            let blocked = (0..ops.len())
                .any(|j| !done[j] && j != i && ops[j].ret.is_some_and(|r| r < ops[i].call));
            if done[i] || blocked {
                continue;
            }
            if let Some(next) = CasRegister::step(&state, &ops[i].input, &ops[i].output) {
                done[i] = true;
                let found = brute_force(ops, done, next);
                done[i] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }

    /// The search agrees with brute force on hundreds of small random histories.
    #[test]
    fn agrees_with_brute_force_on_random_histories() {
        let mut rng = SplitMix(0x5EED);
        let mut verdicts = [0usize; 2];
        for _ in 0..600 {
            let count = 1 + rng.below(7) as usize;
            let ops = random_history(&mut rng, count);
            let expected = brute_force(&ops, &mut vec![false; ops.len()], None);
            let report = check::<CasRegister>(&ops, &CheckOptions::default());
            let got = match report.verdict {
                Verdict::Linearizable => true,
                Verdict::NotLinearizable(_) => false,
                Verdict::Unknown(reason) => panic!("tiny history left undecided: {reason}"),
            };
            assert_eq!(got, expected, "history: {ops:#?}");
            verdicts[usize::from(got)] += 1;
        }
        assert!(
            verdicts[0] > 50 && verdicts[1] > 50,
            "both verdicts exercised: {verdicts:?}"
        );
    }
}
