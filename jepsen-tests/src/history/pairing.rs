//! Pairs each invocation with its completion (Jepsen's pairing rule).
//!
//! A completion belongs to the latest invocation of the same process. A process runs one
//! operation at a time, so a second invocation before the first completed is a broken history,
//! and so is any invocation by a process retired by an `Info`. `Fail`ed operations are dropped;
//! `Info` and never-completed operations are kept with no return position, which the checker
//! reads as "returns after everything else".
//!
//! Error messages number events from 1 in history order, which is the line number for a file
//! without blank lines; the `index` fields themselves are 0-based.

use super::{Op, OpKind};
use std::collections::HashMap;

/// An operation reassembled from its invocation and (maybe) its completion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedOp<'a> {
    /// The invocation event; it carries the function, key and argument.
    pub invoke: &'a Op,
    /// The `Ok` completion with the result; `None` when the outcome is unknown.
    pub completion: Option<&'a Op>,
    /// Index of the invocation in the history.
    pub call: usize,
    /// Index of the `Ok` completion in the history; `None` means pending to the end.
    pub ret: Option<usize>,
}

/// A history that breaks the pairing rules; `index` is the 0-based event index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    /// A completion arrived for a process with no operation in flight.
    #[error(
        "failed to pair event {}: process {process} completes an operation it never invoked",
        .index + 1
    )]
    UnmatchedCompletion {
        /// Event index.
        index: usize,
        /// The process.
        process: u64,
    },
    /// A process invoked again before its previous operation completed.
    #[error(
        "failed to pair event {}: process {process} invokes while its operation from event {} \
         is still in flight",
        .index + 1,
        .previous + 1
    )]
    ProcessBusy {
        /// Event index.
        index: usize,
        /// The process.
        process: u64,
        /// Index of the invocation still in flight.
        previous: usize,
    },
    /// A process invoked again after an `Info` retired it.
    #[error(
        "failed to pair event {}: process {process} was retired by an info completion and \
         must not be reused",
        .index + 1
    )]
    ProcessRetired {
        /// Event index.
        index: usize,
        /// The process.
        process: u64,
    },
    /// A completion names a different function or key than its invocation.
    #[error(
        "failed to pair event {}: completion {completed:?} does not match invocation \
         {invoked:?} of process {process}",
        .index + 1
    )]
    Mismatch {
        /// Event index.
        index: usize,
        /// The process.
        process: u64,
        /// Function and key of the invocation.
        invoked: (String, Option<String>),
        /// Function and key of the completion.
        completed: (String, Option<String>),
    },
    /// Timestamps decrease, so the line order cannot be the real-time order.
    #[error(
        "failed to pair event {}: time {time_ns} ns is earlier than the previous event's \
         {previous_ns} ns",
        .index + 1
    )]
    TimeWentBackwards {
        /// Event index.
        index: usize,
        /// This event's time.
        time_ns: u64,
        /// The latest earlier time.
        previous_ns: u64,
    },
}

/// Where a process stands while the history is scanned.
#[derive(Debug, Clone, Copy)]
enum ProcessState {
    /// Running the operation stored at this slot of the output.
    InFlight(usize),
    /// Got an `Info`; it must not appear again.
    Retired,
}

/// Pairs the events of `history` into operations, ordered by invocation.
pub fn pair(history: &[Op]) -> Result<Vec<PairedOp<'_>>, PairError> {
    let mut pairer = Pairer::default();
    let mut previous_ns = None;
    for (index, op) in history.iter().enumerate() {
        if let Some(time_ns) = op.time_ns {
            if let Some(previous_ns) = previous_ns.filter(|&previous| time_ns < previous) {
                return Err(PairError::TimeWentBackwards {
                    index,
                    time_ns,
                    previous_ns,
                });
            }
            previous_ns = Some(time_ns);
        }
        match op.kind {
            OpKind::Invoke => pairer.invoke(index, op)?,
            OpKind::Ok | OpKind::Fail | OpKind::Info => pairer.complete(index, op)?,
        }
    }
    Ok(pairer.finish())
}

/// Scan state of [`pair`].
#[derive(Default)]
struct Pairer<'a> {
    ops: Vec<PairedOp<'a>>,
    failed: Vec<bool>,
    processes: HashMap<u64, ProcessState>,
}

impl<'a> Pairer<'a> {
    fn invoke(&mut self, index: usize, op: &'a Op) -> Result<(), PairError> {
        let process = op.process;
        match self.processes.get(&process) {
            Some(ProcessState::InFlight(slot)) => {
                let previous = self.ops[*slot].call;
                return Err(PairError::ProcessBusy {
                    index,
                    process,
                    previous,
                });
            }
            Some(ProcessState::Retired) => {
                return Err(PairError::ProcessRetired { index, process });
            }
            None => {}
        }
        self.processes
            .insert(process, ProcessState::InFlight(self.ops.len()));
        self.ops.push(PairedOp {
            invoke: op,
            completion: None,
            call: index,
            ret: None,
        });
        self.failed.push(false);
        Ok(())
    }

    fn complete(&mut self, index: usize, op: &'a Op) -> Result<(), PairError> {
        let process = op.process;
        let Some(ProcessState::InFlight(slot)) = self.processes.get(&process).copied() else {
            return Err(PairError::UnmatchedCompletion { index, process });
        };
        let invoke = self.ops[slot].invoke;
        let key_differs = op.key.is_some() && op.key != invoke.key;
        if op.f != invoke.f || key_differs {
            return Err(PairError::Mismatch {
                index,
                process,
                invoked: (invoke.f.clone(), invoke.key.clone()),
                completed: (op.f.clone(), op.key.clone()),
            });
        }
        match op.kind {
            OpKind::Ok => {
                self.ops[slot].completion = Some(op);
                self.ops[slot].ret = Some(index);
                self.processes.remove(&process);
            }
            OpKind::Fail => {
                self.failed[slot] = true;
                self.processes.remove(&process);
            }
            OpKind::Info => {
                self.processes.insert(process, ProcessState::Retired);
            }
            OpKind::Invoke => unreachable!("pair() routes invocations to Pairer::invoke"),
        }
        Ok(())
    }

    fn finish(self) -> Vec<PairedOp<'a>> {
        let failed = self.failed;
        self.ops
            .into_iter()
            .zip(failed)
            .filter_map(|(op, failed)| (!failed).then_some(op))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(process: u64, kind: OpKind, f: &str, value: serde_json::Value) -> Op {
        Op::new(process, kind, f, None, value)
    }

    /// Completions pair with their own process's invocation even when interleaved.
    #[test]
    fn interleaved_processes_pair_by_process() {
        let history = vec![
            op(0, OpKind::Invoke, "write", json!(1)),
            op(1, OpKind::Invoke, "read", json!(null)),
            op(1, OpKind::Ok, "read", json!(1)),
            op(0, OpKind::Ok, "write", json!(1)),
        ];
        let paired = pair(&history).expect("well-formed");
        assert_eq!(paired.len(), 2);
        assert_eq!((paired[0].call, paired[0].ret), (0, Some(3)));
        assert_eq!((paired[1].call, paired[1].ret), (1, Some(2)));
        assert_eq!(paired[1].completion.map(|c| &c.value), Some(&json!(1)));
    }

    /// A Fail drops the operation; an Info keeps it pending to the end.
    #[test]
    fn fail_is_dropped_and_info_stays_pending() {
        let history = vec![
            op(0, OpKind::Invoke, "write", json!(1)),
            op(1, OpKind::Invoke, "write", json!(2)),
            op(0, OpKind::Fail, "write", json!(1)),
            op(1, OpKind::Info, "write", json!(2)),
        ];
        let paired = pair(&history).expect("well-formed");
        assert_eq!(paired.len(), 1);
        assert_eq!(paired[0].invoke.value, json!(2));
        assert_eq!((paired[0].ret, paired[0].completion), (None, None));
    }

    /// Reusing a retired process, double invocations and stray completions are rejected.
    #[test]
    fn broken_histories_are_rejected() {
        let retired = vec![
            op(0, OpKind::Invoke, "read", json!(null)),
            op(0, OpKind::Info, "read", json!(null)),
            op(0, OpKind::Invoke, "read", json!(null)),
        ];
        assert_eq!(
            pair(&retired),
            Err(PairError::ProcessRetired {
                index: 2,
                process: 0
            })
        );
        let busy = vec![op(4, OpKind::Invoke, "read", json!(null)); 2];
        assert!(matches!(
            pair(&busy),
            Err(PairError::ProcessBusy {
                index: 1,
                previous: 0,
                ..
            })
        ));
        let stray = vec![op(4, OpKind::Ok, "read", json!(null))];
        assert!(matches!(
            pair(&stray),
            Err(PairError::UnmatchedCompletion { index: 0, .. })
        ));
        let mismatch = vec![
            op(1, OpKind::Invoke, "read", json!(null)),
            op(1, OpKind::Ok, "write", json!(1)),
        ];
        assert!(matches!(
            pair(&mismatch),
            Err(PairError::Mismatch { index: 1, .. })
        ));
    }

    /// Decreasing timestamps mean the file is not in real-time order.
    #[test]
    fn time_must_not_go_backwards() {
        let mut first = op(0, OpKind::Invoke, "read", json!(null));
        first.time_ns = Some(10);
        let mut second = op(0, OpKind::Ok, "read", json!(null));
        second.time_ns = Some(9);
        assert!(matches!(
            pair(&[first, second]),
            Err(PairError::TimeWentBackwards {
                index: 1,
                time_ns: 9,
                previous_ns: 10
            })
        ));
    }
}
