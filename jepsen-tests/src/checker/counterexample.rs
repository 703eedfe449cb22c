//! The explanation given for a non-linearizable partition.
//!
//! The search remembers the configuration with the most *required* operations linearized (see
//! `search` for required and optional operations): the sequence it linearized and the model
//! state after it. From there no required operation can go next: each one invoked before the
//! earliest pending return is illegal in that state (had one been legal, the search would have
//! reached a configuration with more required operations). Those candidates, with the one whose
//! return closes the window, are the point where the history breaks. The other operations that
//! overlap the window are listed too, since their order is what a reader will question:
//! linearized ones, and operations with unknown outcome that were not applied.

use crate::model::{Model, OperationOf};
use std::fmt;

/// How many prefix operations [`Counterexample`]'s `Display` shows; earlier ones are counted.
pub const DISPLAY_PREFIX_OPS: usize = 12;

/// One operation, rendered for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpSummary {
    /// The process that ran it.
    pub process: u64,
    /// 0-based history position of the invocation.
    pub call: usize,
    /// 0-based history position of the completion; `None` if it never returned.
    pub ret: Option<usize>,
    /// Input and output, as the model describes them.
    pub description: String,
}

/// Why a partition has no linearization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample {
    /// The partition's key, if the history has keys.
    pub key: Option<String>,
    /// How many operations the partition has.
    pub operations: usize,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<OpSummary>,
    /// The model state after the prefix, as [`Model::describe_state`] renders it.
    pub state: String,
    /// The required operations that could go next after the prefix, by invocation; none of
    /// them is legal in `state`.
    pub candidates: Vec<OpSummary>,
    /// The candidate that returns first: it must take effect before that return.
    pub first_to_return: OpSummary,
    /// Operations of the prefix that overlap the candidates' window, in linearization order.
    pub overlapping_linearized: Vec<OpSummary>,
    /// Operations with unknown outcome, not applied in the prefix, invoked before the window
    /// ends; they may still take effect at any later point, or never.
    pub overlapping_unapplied: Vec<OpSummary>,
}

impl Counterexample {
    /// Builds the explanation from the configuration of a failed search with the most
    /// required operations linearized.
    ///
    /// `prefix` holds indices into `ops` in linearization order; `state` is the state after it;
    /// `optional(i)` says whether operation `i` is optional.
    pub(crate) fn new<M: Model>(
        key: Option<&str>,
        ops: &[&OperationOf<M>],
        prefix: &[usize],
        state: &M::State,
        optional: impl Fn(usize) -> bool,
    ) -> Self {
        let summary = |index: usize| {
            let op = ops[index];
            OpSummary {
                process: op.process,
                call: op.call,
                ret: op.ret,
                description: M::describe(&op.input, &op.output),
            }
        };
        let mut linearized = vec![false; ops.len()];
        for &index in prefix {
            linearized[index] = true;
        }
        let ret = |i: usize| ops[i].ret.unwrap_or(usize::MAX);
        let (unapplied, required): (Vec<usize>, Vec<usize>) = (0..ops.len())
            .filter(|&i| !linearized[i])
            .partition(|&i| optional(i));
        let first_to_return = required
            .iter()
            .copied()
            .min_by_key(|&i| (ret(i), i))
            .expect("a failed search leaves a required operation unlinearized");
        let window_end = ret(first_to_return);
        let in_window = |i: &usize| ops[*i].call <= window_end;
        let candidates: Vec<usize> = required.into_iter().filter(in_window).collect();
        for &i in &candidates {
            // The search guarantees this (see the module docs); a legal candidate would mean
            // it gave up on a configuration it could still extend.
            let legal = M::step(state, &ops[i].input, &ops[i].output).is_some();
            assert!(
                !legal,
                "candidate invoked at {} is legal after the best prefix",
                ops[i].call
            );
        }
        let window_start = candidates
            .iter()
            .map(|&i| ops[i].call)
            .min()
            .unwrap_or(window_end);
        let overlaps = |i: &usize| in_window(i) && ret(*i) >= window_start;
        let summaries = |indices: &mut dyn Iterator<Item = usize>| indices.map(summary).collect();
        Counterexample {
            key: key.map(str::to_owned),
            operations: ops.len(),
            prefix: summaries(&mut prefix.iter().copied()),
            state: M::describe_state(state),
            candidates: summaries(&mut candidates.iter().copied()),
            first_to_return: summary(first_to_return),
            overlapping_linearized: summaries(&mut prefix.iter().copied().filter(overlaps)),
            overlapping_unapplied: summaries(&mut unapplied.into_iter().filter(in_window)),
        }
    }
}

/// Renders an optional key for messages.
pub(crate) fn show_key(key: Option<&str>) -> String {
    key.map_or_else(|| "(no key)".to_owned(), |key| format!("key {key:?}"))
}

impl fmt::Display for OpSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ret = self
            .ret
            .map_or_else(|| "never".to_owned(), |ret| (ret + 1).to_string());
        let span = format!("events {}..{ret}", self.call + 1);
        write!(
            f,
            "{span:<18} process {:<4} {}",
            self.process, self.description
        )
    }
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: no linearization of its {} operations exists (events numbered from 1)",
            show_key(self.key.as_deref()),
            self.operations
        )?;
        writeln!(
            f,
            "  longest linearizable prefix: {} operations, leaving state {}",
            self.prefix.len(),
            self.state
        )?;
        let hidden = self.prefix.len().saturating_sub(DISPLAY_PREFIX_OPS);
        if hidden > 0 {
            writeln!(f, "    ... {hidden} earlier operations")?;
        }
        for op in &self.prefix[hidden..] {
            writeln!(f, "    {op}")?;
        }
        writeln!(
            f,
            "  after it none of these operations can take effect in that state:"
        )?;
        for op in &self.candidates {
            let marker = if *op == self.first_to_return {
                "  <- must take effect first"
            } else {
                ""
            };
            writeln!(f, "    {op}{marker}")?;
        }
        let overlapping = [
            (
                "linearized operations overlapping them (in linearization order):",
                &self.overlapping_linearized,
            ),
            (
                "operations with unknown outcome, not applied in the prefix:",
                &self.overlapping_unapplied,
            ),
        ];
        for (title, ops) in overlapping {
            if !ops.is_empty() {
                writeln!(f, "  {title}")?;
                for op in ops {
                    writeln!(f, "    {op}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::op;
    use crate::model::{CasRegister, RegisterInput as I, RegisterOutput as O};

    /// Candidates are the required operations invoked before the earliest pending return;
    /// overlapping linearized and unapplied unknown-outcome operations are listed apart.
    #[test]
    fn window_candidates_and_overlaps() {
        let early = op(0, Some(1), I::Write(1), O::Written);
        let overlapping = op(2, Some(8), I::Write(2), O::Written);
        let timed_out = op(3, None, I::Write(7), O::Unknown);
        let stale = op(4, Some(6), I::Read, O::Read(None));
        let bogus = op(5, Some(7), I::Read, O::Read(Some(5)));
        let after = op(9, Some(10), I::Read, O::Read(Some(2)));
        let ops = [&early, &overlapping, &timed_out, &stale, &bogus, &after];
        let cex = Counterexample::new::<CasRegister>(None, &ops, &[0, 1], &Some(2), |i| i == 2);
        let calls = |list: &[OpSummary]| list.iter().map(|c| c.call).collect::<Vec<_>>();
        assert_eq!(calls(&cex.prefix), vec![0, 2]);
        assert_eq!(calls(&cex.candidates), vec![4, 5]);
        assert_eq!(cex.first_to_return.call, 4);
        assert_eq!(calls(&cex.overlapping_linearized), vec![2]);
        assert_eq!(calls(&cex.overlapping_unapplied), vec![3]);
        let text = cex.to_string();
        assert!(text.contains("leaving state 2"), "{text}");
        assert!(text.contains("events 5..7"), "{text}");
        assert!(
            text.contains("read => nil  <- must take effect first"),
            "{text}"
        );
        assert!(text.contains("events 4..never"), "{text}");
    }
}
