//! Sequential specifications ("models") of the objects whose histories are checked.
//!
//! A [`Model`] says which single-threaded behaviours are legal: [`Model::step`] takes a state,
//! an input and the output the client observed, and returns the next state if that output is
//! possible. An output may be *unknown* (the client timed out); every model accepts an unknown
//! output wherever the input could have run, and applies the input's effect.
//!
//! Models are pure and deterministic, so the checker can cache `(linearized ops, state)` pairs.
//! [`Decode`] turns paired history events (see [`crate::history`]) into typed operations; each
//! model module documents the JSON shape of `value` it expects.
//!
//! | model | functions | state | partitioned by |
//! |---|---|---|---|
//! | [`CasRegister`] | read, write, cas | `Option<i64>` (nil at start) | key |
//! | [`Kv`] | get, put, append | `String` ("" at start) | key |
//! | [`VersionedRegister`] | read, write, cas on version | value + version | key |

mod kv;
mod register;
mod versioned;

pub use kv::{Kv, KvInput, KvOutput};
pub use register::{CasRegister, RegisterInput, RegisterOutput};
pub use versioned::{Versioned, VersionedInput, VersionedOutput, VersionedRegister};

use crate::history::PairedOp;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification, checked one partition at a time.
pub trait Model {
    /// The object's state. `Eq + Hash` let the search recognise configurations it has seen.
    type State: Clone + Eq + Hash + Debug;
    /// What a client asked for.
    type Input: Debug + Sync;
    /// What the client observed, including an "unknown" variant for indeterminate outcomes.
    type Output: Debug + Sync;

    /// The state before any operation.
    fn init() -> Self::State;

    /// The state after `input` ran on `state` and produced `output`, or `None` if that output
    /// is impossible in `state`. Must be a pure function of its arguments.
    fn step(state: &Self::State, input: &Self::Input, output: &Self::Output)
        -> Option<Self::State>;

    /// Whether `step` accepts this input and output in every reachable state.
    ///
    /// The checker uses it for operations that never returned: such an operation may be
    /// linearized last (which is the same as never taking effect), so a configuration that has
    /// not yet applied it is at least as good as one that has, and the search prunes the latter
    /// when it has seen the former. Returning `false` is always safe, just slower.
    fn always_legal(_input: &Self::Input, _output: &Self::Output) -> bool {
        false
    }

    /// Bytes `state` owns on the heap, for the checker's memory budget. The default suits
    /// states without heap data.
    fn heap_bytes(_state: &Self::State) -> usize {
        0
    }

    /// Splits a history into sub-histories that can be checked independently
    /// (P-compositionality): the whole history is linearizable iff every partition is.
    ///
    /// The default treats every key as a separate object, which is right for every model whose
    /// state describes a single key. A model whose state spans keys must override this.
    fn partition(ops: &[Operation<Self::Input, Self::Output>]) -> Vec<Partition> {
        partition_by_key(ops)
    }

    /// A short human-readable description of a state, for counterexamples.
    fn describe_state(state: &Self::State) -> String {
        format!("{state:?}")
    }

    /// A short human-readable description of one operation, for counterexamples.
    fn describe(input: &Self::Input, output: &Self::Output) -> String {
        format!("{input:?} -> {output:?}")
    }
}

/// Builds typed operations of a model from paired history events.
pub trait Decode: Model {
    /// The input and output of `op`. `op.completion` is `None` when the outcome is unknown, in
    /// which case the output must be the model's unknown output.
    fn decode(op: &PairedOp<'_>) -> Result<(Self::Input, Self::Output), DecodeProblem>;
}

/// One complete operation, as the checker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The process that ran it.
    pub process: u64,
    /// The key (object) it addressed, used for partitioning.
    pub key: Option<String>,
    /// What the client asked for.
    pub input: I,
    /// What the client observed.
    pub output: O,
    /// Position of the invocation in the history (0-based event index).
    pub call: usize,
    /// Position of the completion, never before `call`; `None` means it returns after every
    /// other event.
    pub ret: Option<usize>,
}

/// The operation type of model `M`.
pub type OperationOf<M> = Operation<<M as Model>::Input, <M as Model>::Output>;

/// A set of operations checked together: indices into the slice given to [`Model::partition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The key shared by the operations, if the history has keys.
    pub key: Option<String>,
    /// Indices of the partition's operations, in increasing order.
    pub ops: Vec<usize>,
}

/// One partition per distinct key (operations without a key form their own partition), in key
/// order so results are reported deterministically.
pub fn partition_by_key<I, O>(ops: &[Operation<I, O>]) -> Vec<Partition> {
    let mut by_key: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (index, op) in ops.iter().enumerate() {
        by_key.entry(op.key.as_deref()).or_default().push(index);
    }
    by_key
        .into_iter()
        .map(|(key, ops)| Partition {
            key: key.map(str::to_owned),
            ops,
        })
        .collect()
}

/// Why an operation's value does not fit the model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeProblem {
    /// The function is not one the model knows.
    #[error("the model has no function {f:?} (it knows {known})")]
    UnknownFunction {
        /// The function found.
        f: String,
        /// The functions the model knows, for the message.
        known: &'static str,
    },
    /// The invocation's argument has the wrong shape.
    #[error("argument {value} is not {expected}")]
    Argument {
        /// The argument found.
        value: serde_json::Value,
        /// What the model wanted.
        expected: &'static str,
    },
    /// The completion's result has the wrong shape.
    #[error("result {value} is not {expected}")]
    Result {
        /// The result found.
        value: serde_json::Value,
        /// What the model wanted.
        expected: &'static str,
    },
}

/// An operation that could not be decoded, with its position in the history (shown 1-based).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "failed to decode the operation invoked at event {} ({f} by process {process}): {problem}",
    .index + 1
)]
pub struct DecodeError {
    /// 0-based index of the invocation.
    pub index: usize,
    /// Its function.
    pub f: String,
    /// Its process.
    pub process: u64,
    /// What is wrong with it.
    pub problem: DecodeProblem,
}

/// Decodes every paired operation of a history for model `M`.
pub fn decode_history<M: Decode>(
    paired: &[PairedOp<'_>],
) -> Result<Vec<OperationOf<M>>, DecodeError> {
    paired
        .iter()
        .map(|op| {
            let (input, output) = M::decode(op).map_err(|problem| DecodeError {
                index: op.call,
                f: op.invoke.f.clone(),
                process: op.invoke.process,
                problem,
            })?;
            Ok(Operation {
                process: op.invoke.process,
                key: op.invoke.key.clone(),
                input,
                output,
                call: op.call,
                ret: op.ret,
            })
        })
        .collect()
}

/// Reads the invocation's argument as a `T`.
fn argument<T: DeserializeOwned>(
    op: &PairedOp<'_>,
    expected: &'static str,
) -> Result<T, DecodeProblem> {
    let value = &op.invoke.value;
    T::deserialize(value).map_err(|_| DecodeProblem::Argument {
        value: value.clone(),
        expected,
    })
}

/// Reads the completion's result as a `T`, or `None` when the outcome is unknown.
fn result<T: DeserializeOwned>(
    op: &PairedOp<'_>,
    expected: &'static str,
) -> Result<Option<T>, DecodeProblem> {
    let Some(completion) = op.completion else {
        return Ok(None);
    };
    let value = &completion.value;
    T::deserialize(value)
        .map(Some)
        .map_err(|_| DecodeProblem::Result {
            value: value.clone(),
            expected,
        })
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders for hand-made operations in unit tests.

    use super::Operation;

    /// An operation of the unkeyed object, invoked at `call` and returning at `ret`.
    pub fn op<I, O>(call: usize, ret: Option<usize>, input: I, output: O) -> Operation<I, O> {
        Operation {
            process: call as u64,
            key: None,
            input,
            output,
            call,
            ret,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{pair, Op, OpKind};
    use serde_json::json;

    /// Operations are grouped per key, unkeyed ones together, in key order.
    #[test]
    fn partition_by_key_groups_and_sorts() {
        let mk = |key: Option<&str>| Operation {
            process: 0,
            key: key.map(str::to_owned),
            input: (),
            output: (),
            call: 0,
            ret: None,
        };
        let ops = vec![mk(Some("b")), mk(None), mk(Some("a")), mk(Some("b"))];
        let parts = partition_by_key(&ops);
        let summary: Vec<_> = parts
            .iter()
            .map(|p| (p.key.as_deref(), p.ops.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (None, vec![1]),
                (Some("a"), vec![2]),
                (Some("b"), vec![0, 3])
            ]
        );
    }

    /// A badly shaped argument is reported with the invocation's event index.
    #[test]
    fn decode_errors_name_the_event() {
        let history = vec![
            Op::new(0, OpKind::Invoke, "read", None, json!(null)),
            Op::new(1, OpKind::Invoke, "write", None, json!("three")),
        ];
        let paired = pair(&history).expect("well-formed");
        let err = decode_history::<CasRegister>(&paired).expect_err("write needs an integer");
        assert_eq!((err.index, err.f.as_str()), (1, "write"));
        assert!(
            err.to_string().contains("\"three\" is not an integer"),
            "{err}"
        );
    }
}
