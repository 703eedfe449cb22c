//! The explanation given for a non-linearizable partition.
//!
//! The search remembers the deepest configuration it reached: the longest sequence of
//! operations it could linearize, and the model state after it. From there no operation can go
//! next: every operation invoked before the earliest pending return is illegal in that state
//! (had one been legal, the search would have gone one level deeper). Those candidates, with the
//! one whose return closes the window, are the point where the history breaks.

use crate::model::{Model, Operation};
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
    /// The model state after the prefix, in the model's `Debug` form.
    pub state: String,
    /// The operations that could go next after the prefix, by invocation; none is legal.
    pub candidates: Vec<OpSummary>,
    /// The candidate that returns first: it must take effect before that return.
    pub first_to_return: OpSummary,
}

impl Counterexample {
    /// Builds the explanation from the deepest configuration of a failed search.
    ///
    /// `prefix` holds indices into `ops` in linearization order; `state` is the state after it.
    pub(crate) fn new<M: Model>(
        key: Option<&str>,
        ops: &[&Operation<M::Input, M::Output>],
        prefix: &[usize],
        state: &M::State,
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
        let remaining: Vec<usize> = (0..ops.len()).filter(|&i| !linearized[i]).collect();
        let first_to_return = remaining
            .iter()
            .copied()
            .min_by_key(|&i| (ops[i].ret.unwrap_or(usize::MAX), i))
            .expect("a failed search leaves at least one operation unlinearized");
        let window_end = ops[first_to_return].ret.unwrap_or(usize::MAX);
        let candidates = remaining.iter().copied().filter(|&i| ops[i].call <= window_end);
        Counterexample {
            key: key.map(str::to_owned),
            operations: ops.len(),
            prefix: prefix.iter().map(|&i| summary(i)).collect(),
            state: format!("{state:?}"),
            candidates: candidates.map(summary).collect(),
            first_to_return: summary(first_to_return),
        }
    }
}

/// Renders an optional key for messages.
pub(crate) fn show_key(key: Option<&str>) -> String {
    key.map_or_else(|| "(no key)".to_owned(), |key| format!("key {key:?}"))
}

impl fmt::Display for OpSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ret = self.ret.map_or_else(|| "never".to_owned(), |ret| (ret + 1).to_string());
        let span = format!("events {}..{ret}", self.call + 1);
        write!(f, "{span:<18} process {:<4} {}", self.process, self.description)
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
        writeln!(f, "  after it none of these operations can take effect in that state:")?;
        for op in &self.candidates {
            let marker = if *op == self.first_to_return { "  <- must take effect first" } else { "" };
            writeln!(f, "    {op}{marker}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::op;
    use crate::model::{CasRegister, RegisterInput as I, RegisterOutput as O};

    /// Candidates are the unlinearized operations invoked before the earliest pending return.
    #[test]
    fn candidates_end_at_first_return() {
        let write = op(0, Some(1), I::Write(1), O::Written);
        let stale = op(2, Some(5), I::Read, O::Read(None));
        let late = op(3, Some(4), I::Read, O::Read(Some(2)));
        let after = op(6, Some(7), I::Read, O::Read(Some(1)));
        let ops = [&write, &stale, &late, &after];
        let cex = Counterexample::new::<CasRegister>(None, &ops, &[0], &Some(1));
        assert_eq!(cex.prefix.len(), 1);
        let calls: Vec<usize> = cex.candidates.iter().map(|c| c.call).collect();
        assert_eq!(calls, vec![2, 3]);
        assert_eq!(cex.first_to_return.call, 3);
        let text = cex.to_string();
        assert!(text.contains("leaving state Some(1)"), "{text}");
        assert!(text.contains("events 3..6"), "{text}");
        assert!(text.contains("read => nil"), "{text}");
    }
}
