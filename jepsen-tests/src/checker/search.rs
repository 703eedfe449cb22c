//! The Wing–Gong–Lowe search for a linearization of one partition.
//!
//! The search walks the [`EventList`] from its head. At a call entry it tries to linearize that
//! operation next: if the model accepts its output in the current state and the resulting
//! configuration `(linearized set, state)` has not been explored before, it lifts the
//! operation out of the list, pushes `(operation, previous state)` and restarts from the head.
//! Otherwise it moves on to the next entry. Reaching a return entry means the operation that
//! returns there can no longer be placed later, so the search pops the latest choice, restores
//! its state, relinks it and continues after it. Lifting every operation gives a linearization
//! (with optional operations, defined below, the search may stop earlier); popping an empty
//! stack means there is none.
//!
//! Two configurations with the same linearized set and state have the same futures, so the
//! cache prunes all but the first. The cache is what makes the search exponential in the
//! number of *concurrent* operations rather than in the length of the history; it can still
//! grow large, which is why every search runs under a step budget (one cache entry at most per
//! step) and an optional deadline.
//!
//! Each scan tries the candidates in two passes, required operations first (see [`Pass`]).
//!
//! Operations that never returned (Jepsen `info`) and that the model accepts in any state
//! ([`Model::always_legal`]) are *optional*: they can always be placed last, which means they
//! never took effect. A configuration that has applied fewer optional operations, with the same
//! other operations and the same state, can do everything the fuller one can. So the cache is
//! keyed by `(linearized non-optional ops, state)` and keeps the sets of optional ops applied;
//! a configuration is pruned when a subset of its optional ops was already explored. Without
//! this, every subset of the timed-out writes in a Jepsen history is a separate configuration,
//! and a few dozen of them blow the search up by orders of magnitude.
//!
//! For the same reason the search succeeds as soon as every non-optional operation is
//! linearized: the optional ones left over go last. This is also what keeps the pruning
//! complete. A pruned configuration may be dominated by one still on the stack (reached from it
//! by optional ops that left the state unchanged), and the dominating one must then be able to
//! finish without ever applying those ops, which "done when the required ops are done" allows.
//! (Proof sketch: take an explored configuration with a completion that has the most required
//! ops linearized and, among those, the fewest optional ops before its next required op; its
//! next op was tried, and the child was either explored or pruned by an explored configuration
//! that dominates it; either way a "better" explored configuration exists, a contradiction.)

use super::bitset::Bitset;
use super::counterexample::Counterexample;
use super::events::{Entry, EventList};
use crate::model::{Model, OperationOf};
use std::collections::{hash_map, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How often, in steps, the search polls the cancel flag and the clock. Polling every step
/// would cost more than the step itself; 1024 steps take well under a millisecond.
const POLL_INTERVAL_STEPS: u64 = 1024;

/// When a search must give up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits<'a> {
    /// Loop iterations allowed; bounds time, and cache memory coarsely.
    pub(crate) max_steps: u64,
    /// Estimated bytes the cache may hold.
    pub(crate) max_cache_bytes: u64,
    /// Wall-clock instant after which the search stops.
    pub(crate) deadline: Option<Instant>,
    /// Set when another partition proved the history illegal.
    pub(crate) cancel: &'a AtomicBool,
}

/// How a search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SearchOutcome {
    /// A linearization exists.
    Linearizable,
    /// None exists; here is why.
    Illegal(Box<Counterexample>),
    /// The step budget ran out first.
    OutOfSteps,
    /// The cache outgrew its memory budget first.
    OutOfMemory,
    /// The deadline passed first.
    DeadlinePassed,
    /// Another partition was illegal, so this one no longer matters.
    Cancelled,
}

/// Searches for a linearization of `ops` under model `M`. Returns the outcome and the number
/// of steps taken.
pub(crate) fn search<M: Model>(
    key: Option<&str>,
    ops: &[&OperationOf<M>],
    limits: &Limits<'_>,
) -> (SearchOutcome, u64) {
    let mut optional = Bitset::new(ops.len());
    for (index, op) in ops.iter().enumerate() {
        if op.ret.is_none() && M::always_legal(&op.input, &op.output) {
            optional.insert(index);
        }
    }
    let required_total = ops.len() - (0..ops.len()).filter(|&i| optional.contains(i)).count();
    let mut search = Search::<M> {
        ops,
        list: EventList::new(ops),
        state: M::init(),
        linearized: Bitset::new(ops.len()),
        required_total,
        required_left: required_total,
        optional: (!optional.is_empty()).then_some(optional),
        stack: Vec::with_capacity(ops.len()),
        seen: HashMap::new(),
        cache_bytes: 0,
        best: Vec::new(),
        best_required: 0,
        best_state: M::init(),
        steps: 0,
    };
    let outcome = search.run(key, limits);
    (outcome, search.steps)
}

/// Which candidates a scan tries. Required operations go first: each must be placed before
/// its return, while an optional one can always wait, so trying required ones first finds a
/// linearization sooner. Every candidate is still tried once from every configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Required,
    Optional,
}

/// A position in the scan of the event list.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    node: usize,
    pass: Pass,
}

/// A linearized operation on the search stack.
struct Frame<S> {
    /// Its call node in the event list.
    call: usize,
    /// Its index in the partition.
    op: usize,
    /// The state before it.
    before: S,
}

struct Search<'o, M: Model> {
    ops: &'o [&'o OperationOf<M>],
    list: EventList,
    state: M::State,
    linearized: Bitset,
    /// The optional operations (see the module docs), if there are any.
    optional: Option<Bitset>,
    /// Non-optional operations not linearized yet; the search succeeds when it reaches 0.
    required_left: usize,
    stack: Vec<Frame<M::State>>,
    /// Configurations already explored: `(linearized non-optional ops, state)`, hashing both,
    /// mapped to the sets of optional ops applied, none a superset of another.
    seen: HashMap<(Bitset, M::State), Vec<Bitset>>,
    /// Estimated bytes held by `seen`.
    cache_bytes: u64,
    /// All non-optional operations.
    required_total: usize,
    /// The linearized sequence with the most required operations, for the counterexample.
    best: Vec<usize>,
    /// How many required operations `best` holds.
    best_required: usize,
    best_state: M::State,
    steps: u64,
}

impl<M: Model> Search<'_, M> {
    fn run(&mut self, key: Option<&str>, limits: &Limits<'_>) -> SearchOutcome {
        let mut cursor = self.restart();
        loop {
            if self.required_left == 0 {
                return SearchOutcome::Linearizable;
            }
            if let Some(stop) = self.poll(limits) {
                return stop;
            }
            let Cursor { node, pass } = cursor;
            cursor = match self.list.entry(node) {
                Entry::Call { op, .. } if self.pass_of(op) != pass => self.advance(cursor),
                Entry::Call { op, .. } if self.try_lift(node, op) => self.restart(),
                Entry::Call { .. } => self.advance(cursor),
                Entry::Return { .. } if pass == Pass::Required && self.optional.is_some() => {
                    Cursor {
                        node: self.list.first(),
                        pass: Pass::Optional,
                    }
                }
                Entry::Return { .. } => match self.backtrack() {
                    Some((call, op)) => Cursor {
                        node: self.list.next(call),
                        pass: self.pass_of(op),
                    },
                    None => return SearchOutcome::Illegal(Box::new(self.counterexample(key))),
                },
            };
        }
    }

    /// Where a scan starts after a new operation was linearized.
    fn restart(&self) -> Cursor {
        Cursor {
            node: self.list.first(),
            pass: Pass::Required,
        }
    }

    fn advance(&self, cursor: Cursor) -> Cursor {
        Cursor {
            node: self.list.next(cursor.node),
            ..cursor
        }
    }

    fn pass_of(&self, op: usize) -> Pass {
        if self.is_optional(op) {
            Pass::Optional
        } else {
            Pass::Required
        }
    }

    /// Counts a step and reports whether the search must stop.
    fn poll(&mut self, limits: &Limits<'_>) -> Option<SearchOutcome> {
        self.steps += 1;
        if self.steps > limits.max_steps {
            return Some(SearchOutcome::OutOfSteps);
        }
        if self.cache_bytes > limits.max_cache_bytes {
            return Some(SearchOutcome::OutOfMemory);
        }
        if self.steps % POLL_INTERVAL_STEPS == 1 {
            if limits.cancel.load(Ordering::Relaxed) {
                return Some(SearchOutcome::Cancelled);
            }
            if limits
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                return Some(SearchOutcome::DeadlinePassed);
            }
        }
        None
    }

    /// Linearizes the operation whose call is at `node` next, if legal and not yet explored.
    fn try_lift(&mut self, node: usize, op: usize) -> bool {
        let operation = self.ops[op];
        let Some(next) = M::step(&self.state, &operation.input, &operation.output) else {
            return false;
        };
        self.linearized.insert(op);
        if !self.remember(next.clone()) {
            self.linearized.remove(op);
            return false;
        }
        let before = std::mem::replace(&mut self.state, next);
        self.stack.push(Frame {
            call: node,
            op,
            before,
        });
        if !self.is_optional(op) {
            self.required_left -= 1;
        }
        self.list.lift(node);
        let required_done = self.required_total - self.required_left;
        if required_done > self.best_required {
            self.best_required = required_done;
            self.best = self.stack.iter().map(|frame| frame.op).collect();
            self.best_state = self.state.clone();
        }
        true
    }

    /// Explains the failure from the configuration with the most required ops linearized.
    fn counterexample(&self, key: Option<&str>) -> Counterexample {
        let optional = |op| self.is_optional(op);
        Counterexample::new::<M>(key, self.ops, &self.best, &self.best_state, optional)
    }

    fn is_optional(&self, op: usize) -> bool {
        self.optional
            .as_ref()
            .is_some_and(|optional| optional.contains(op))
    }

    /// Records the configuration `(self.linearized, state)`; returns `false` if it, or one
    /// that dominates it, was explored before.
    fn remember(&mut self, state: M::State) -> bool {
        let Some(optional) = &self.optional else {
            // No optional ops: plain exact-match caching, with an empty (unallocated) set.
            let cost = self.key_cost(&self.linearized, &state);
            let fresh = self
                .seen
                .insert((self.linearized.clone(), state), Vec::new())
                .is_none();
            if fresh {
                self.cache_bytes += cost;
            }
            return fresh;
        };
        let required = self.linearized.difference(optional);
        let applied = self.linearized.intersection(optional);
        let key_cost = self.key_cost(&required, &state);
        let set_cost = (std::mem::size_of::<Bitset>() + applied.heap_bytes()) as u64;
        let explored = match self.seen.entry((required, state)) {
            hash_map::Entry::Occupied(entry) => entry.into_mut(),
            hash_map::Entry::Vacant(entry) => {
                self.cache_bytes += key_cost;
                entry.insert(Vec::new())
            }
        };
        if explored.iter().any(|earlier| earlier.is_subset(&applied)) {
            return false;
        }
        // Entries the new one dominates can go: anything they would prune, it prunes too.
        // Their memory is not subtracted; the estimate errs on the safe side.
        explored.retain(|earlier| !applied.is_subset(earlier));
        explored.push(applied);
        self.cache_bytes += set_cost;
        true
    }

    /// Estimated bytes of one cache key plus its hash-table slot.
    fn key_cost(&self, bits: &Bitset, state: &M::State) -> u64 {
        /// Control bytes, padding and the empty `Vec` of a hashbrown slot, roughly.
        const SLOT_OVERHEAD_BYTES: usize = 32;
        let inline = std::mem::size_of::<(Bitset, M::State)>() + SLOT_OVERHEAD_BYTES;
        (inline + bits.heap_bytes() + M::heap_bytes(state)) as u64
    }

    /// Undoes the latest choice; returns its call node and operation, or `None` if there was
    /// none.
    fn backtrack(&mut self) -> Option<(usize, usize)> {
        let frame = self.stack.pop()?;
        if !self.is_optional(frame.op) {
            self.required_left += 1;
        }
        self.linearized.remove(frame.op);
        self.state = frame.before;
        self.list.unlift(frame.call);
        Some((frame.call, frame.op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::op;
    use crate::model::{CasRegister, Operation, RegisterInput as I, RegisterOutput as O};

    type RegisterOp = Operation<I, O>;

    fn run(ops: &[RegisterOp], max_steps: u64) -> SearchOutcome {
        let cancel = AtomicBool::new(false);
        let limits = Limits {
            max_steps,
            max_cache_bytes: u64::MAX,
            deadline: None,
            cancel: &cancel,
        };
        let refs: Vec<&RegisterOp> = ops.iter().collect();
        search::<CasRegister>(None, &refs, &limits).0
    }

    fn legal(ops: &[RegisterOp]) -> bool {
        match run(ops, u64::MAX) {
            SearchOutcome::Linearizable => true,
            SearchOutcome::Illegal(_) => false,
            other => panic!("an unlimited search must decide, got {other:?}"),
        }
    }

    /// A read that starts after a write finished must not see the older value.
    #[test]
    fn stale_read_is_illegal() {
        let ops = [
            op(0, Some(1), I::Write(1), O::Written),
            op(2, Some(3), I::Read, O::Read(None)),
        ];
        assert!(!legal(&ops));
    }

    /// Two overlapping writes may take effect in either order.
    #[test]
    fn concurrent_writes_either_order() {
        for seen in [1, 2] {
            let ops = [
                op(0, Some(3), I::Write(1), O::Written),
                op(1, Some(2), I::Write(2), O::Written),
                op(4, Some(5), I::Read, O::Read(Some(seen))),
            ];
            assert!(legal(&ops), "reading {seen} after both writes is legal");
        }
    }

    /// A write with unknown outcome may take effect, or not, but not both.
    #[test]
    fn info_write_may_or_may_not_apply() {
        let info = op(0, None, I::Write(1), O::Unknown);
        let read = |call, value| op(call, Some(call + 1), I::Read, O::Read(value));
        assert!(
            legal(&[info.clone(), read(1, Some(1))]),
            "the write took effect"
        );
        assert!(
            legal(&[info.clone(), read(1, None)]),
            "the write never took effect"
        );
        assert!(
            legal(&[info.clone(), read(1, None), read(3, Some(1))]),
            "it took effect late"
        );
        assert!(
            !legal(&[info, read(1, Some(1)), read(3, None)]),
            "an effect cannot be undone"
        );
    }

    /// A failed compare is evidence: the register did not hold the expected value.
    #[test]
    fn failed_cas_constrains_the_state() {
        let write = op(0, Some(1), I::Write(1), O::Written);
        let cas = |swapped| {
            op(
                2,
                Some(3),
                I::Cas {
                    expected: 1,
                    new: 2,
                },
                O::Cas(swapped),
            )
        };
        assert!(legal(&[write.clone(), cas(true)]));
        assert!(!legal(&[write, cas(false)]));
    }

    /// A partition with no operations is trivially linearizable.
    #[test]
    fn empty_partition_is_linearizable() {
        assert!(legal(&[]));
    }

    /// A search that needs more steps than allowed gives up instead of answering.
    #[test]
    fn exhausted_budget_gives_out_of_steps() {
        let mut ops: Vec<RegisterOp> = (0..8)
            .map(|i| op(i, Some(20 + i), I::Write(i as i64), O::Written))
            .collect();
        ops.push(op(40, Some(41), I::Read, O::Read(Some(99))));
        assert_eq!(run(&ops, 50), SearchOutcome::OutOfSteps);
        assert!(!legal(&ops), "with no budget the same history is refuted");
    }

    /// A cache that outgrows its memory budget stops the search.
    #[test]
    fn memory_budget_gives_out_of_memory() {
        let ops: Vec<RegisterOp> = (0..8)
            .map(|i| op(i, Some(20 + i), I::Write(i as i64), O::Written))
            .collect();
        let refs: Vec<&RegisterOp> = ops.iter().collect();
        let cancel = AtomicBool::new(false);
        let limits = Limits {
            max_steps: u64::MAX,
            max_cache_bytes: 200,
            deadline: None,
            cancel: &cancel,
        };
        assert_eq!(
            search::<CasRegister>(None, &refs, &limits).0,
            SearchOutcome::OutOfMemory
        );
    }

    /// A passed deadline or a raised cancel flag stops the search at its first poll.
    #[test]
    fn deadline_and_cancel_stop_the_search() {
        let ops = [op(0, Some(1), I::Write(1), O::Written)];
        let refs: Vec<&RegisterOp> = ops.iter().collect();
        let cancel = AtomicBool::new(false);
        let past = Limits {
            max_steps: 10,
            max_cache_bytes: u64::MAX,
            deadline: Some(Instant::now()),
            cancel: &cancel,
        };
        assert_eq!(
            search::<CasRegister>(None, &refs, &past).0,
            SearchOutcome::DeadlinePassed
        );
        cancel.store(true, Ordering::Relaxed);
        let cancelled = Limits {
            max_steps: 10,
            max_cache_bytes: u64::MAX,
            deadline: None,
            cancel: &cancel,
        };
        assert_eq!(
            search::<CasRegister>(None, &refs, &cancelled).0,
            SearchOutcome::Cancelled
        );
    }

    /// The counterexample shows the deepest prefix and the stuck candidates.
    #[test]
    fn counterexample_points_at_the_stale_read() {
        let ops = [
            op(0, Some(1), I::Write(1), O::Written),
            op(2, Some(5), I::Write(2), O::Written),
            op(3, Some(4), I::Read, O::Read(Some(3))),
        ];
        let SearchOutcome::Illegal(cex) = run(&ops, u64::MAX) else {
            panic!("reading a value never written is illegal");
        };
        assert_eq!(cex.first_to_return.call, 3);
        assert!(cex.candidates.iter().any(|c| c.call == 3));
        assert!(!cex.prefix.is_empty());
    }
}
