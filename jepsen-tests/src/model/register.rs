//! A compare-and-set register holding an integer, initially nil (Jepsen's `cas-register`).
//!
//! JSON shapes of `value` in a history:
//!
//! | f | invoke | ok |
//! |---|---|---|
//! | `read` | `null` | `null` (nil) or an integer |
//! | `write` | integer | ignored |
//! | `cas` | `[expected, new]` | `true` if it swapped, `false` if the compare failed |
//!
//! A cas whose compare failed is an `ok` completion with `false`, not a `fail`: it ran and
//! observed that the register did not hold `expected`, which the checker must take into account.
//! `fail` is kept for requests that never ran at all, and those are dropped.

use super::{argument, result, Decode, DecodeProblem, Model};
use crate::history::PairedOp;

/// The compare-and-set register model. State: `None` is nil.
#[derive(Debug, Clone, Copy, Default)]
pub struct CasRegister;

/// What a client asked the register to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Overwrite the value.
    Write(i64),
    /// Set the value to `new` if it currently equals `expected`.
    Cas {
        /// The value the register must hold.
        expected: i64,
        /// The value to store.
        new: i64,
    },
}

/// What a client observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutput {
    /// A read returned this value (`None` is nil).
    Read(Option<i64>),
    /// A write was acknowledged.
    Written,
    /// A cas completed; `true` if it swapped, `false` if the compare failed.
    Cas(bool),
    /// The outcome is unknown: the operation may or may not have taken effect.
    Unknown,
}

impl Model for CasRegister {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init() -> Self::State {
        None
    }

    fn step(
        state: &Option<i64>,
        input: &RegisterInput,
        output: &RegisterOutput,
    ) -> Option<Self::State> {
        use RegisterInput as I;
        use RegisterOutput as O;
        match (input, output) {
            (I::Read, O::Read(value)) => (value == state).then_some(*state),
            (I::Read, O::Unknown) => Some(*state),
            (I::Write(value), O::Written | O::Unknown) => Some(Some(*value)),
            (I::Cas { expected, new }, O::Cas(true)) => {
                (*state == Some(*expected)).then_some(Some(*new))
            }
            (I::Cas { expected, .. }, O::Cas(false)) => {
                (*state != Some(*expected)).then_some(*state)
            }
            (I::Cas { expected, new }, O::Unknown) => Some(if *state == Some(*expected) {
                Some(*new)
            } else {
                *state
            }),
            // Decoding pairs each input with an output of its own kind, so a mixed pair means
            // the operation was built by hand wrongly; no state explains it.
            (I::Read, _) | (I::Write(_), _) | (I::Cas { .. }, _) => None,
        }
    }

    fn always_legal(input: &RegisterInput, output: &RegisterOutput) -> bool {
        matches!(
            (input, output),
            (_, RegisterOutput::Unknown) | (RegisterInput::Write(_), RegisterOutput::Written)
        )
    }

    fn describe_state(state: &Option<i64>) -> String {
        show(*state)
    }

    fn describe(input: &RegisterInput, output: &RegisterOutput) -> String {
        let call = match input {
            RegisterInput::Read => "read".to_owned(),
            RegisterInput::Write(value) => format!("write {value}"),
            RegisterInput::Cas { expected, new } => format!("cas {expected}->{new}"),
        };
        let outcome = match output {
            RegisterOutput::Read(value) => show(*value),
            RegisterOutput::Written => "ok".to_owned(),
            RegisterOutput::Cas(true) => "swapped".to_owned(),
            RegisterOutput::Cas(false) => "compare failed".to_owned(),
            RegisterOutput::Unknown => "unknown".to_owned(),
        };
        format!("{call} => {outcome}")
    }
}

/// Formats a register value the way Jepsen prints it.
fn show(value: Option<i64>) -> String {
    value.map_or_else(|| "nil".to_owned(), |value| value.to_string())
}

impl Decode for CasRegister {
    fn decode(op: &PairedOp<'_>) -> Result<(RegisterInput, RegisterOutput), DecodeProblem> {
        match op.invoke.f.as_str() {
            "read" => {
                let value = result::<Option<i64>>(op, "null or an integer")?;
                Ok((
                    RegisterInput::Read,
                    value.map_or(RegisterOutput::Unknown, RegisterOutput::Read),
                ))
            }
            "write" => {
                let value = argument::<i64>(op, "an integer")?;
                let output = op
                    .completion
                    .map_or(RegisterOutput::Unknown, |_| RegisterOutput::Written);
                Ok((RegisterInput::Write(value), output))
            }
            "cas" => {
                let [expected, new] = argument::<[i64; 2]>(op, "[expected, new] integers")?;
                let swapped = result::<bool>(op, "true (swapped) or false (compare failed)")?;
                let output = swapped.map_or(RegisterOutput::Unknown, RegisterOutput::Cas);
                Ok((RegisterInput::Cas { expected, new }, output))
            }
            other => Err(DecodeProblem::UnknownFunction {
                f: other.to_owned(),
                known: "read, write, cas",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegisterInput as I;
    use RegisterOutput as O;

    /// Reads must return the current value, nil included; unknown reads always pass.
    #[test]
    fn reads_observe_the_state() {
        assert_eq!(
            CasRegister::step(&None, &I::Read, &O::Read(None)),
            Some(None)
        );
        assert_eq!(CasRegister::step(&None, &I::Read, &O::Read(Some(0))), None);
        assert_eq!(
            CasRegister::step(&Some(3), &I::Read, &O::Read(Some(3))),
            Some(Some(3))
        );
        assert_eq!(
            CasRegister::step(&Some(3), &I::Read, &O::Unknown),
            Some(Some(3))
        );
    }

    /// Writes always apply, whether acknowledged or unknown.
    #[test]
    fn writes_always_apply() {
        assert_eq!(
            CasRegister::step(&None, &I::Write(2), &O::Written),
            Some(Some(2))
        );
        assert_eq!(
            CasRegister::step(&Some(1), &I::Write(2), &O::Unknown),
            Some(Some(2))
        );
    }

    /// A cas swaps only on a match, fails only on a mismatch, and an unknown cas does whichever
    /// the state dictates; nil never equals an integer.
    #[test]
    fn cas_follows_the_compare() {
        let cas = I::Cas {
            expected: 1,
            new: 2,
        };
        assert_eq!(
            CasRegister::step(&Some(1), &cas, &O::Cas(true)),
            Some(Some(2))
        );
        assert_eq!(CasRegister::step(&Some(0), &cas, &O::Cas(true)), None);
        assert_eq!(CasRegister::step(&None, &cas, &O::Cas(false)), Some(None));
        assert_eq!(CasRegister::step(&Some(1), &cas, &O::Cas(false)), None);
        assert_eq!(
            CasRegister::step(&Some(1), &cas, &O::Unknown),
            Some(Some(2))
        );
        assert_eq!(CasRegister::step(&None, &cas, &O::Unknown), Some(None));
    }

    /// An output of the wrong kind for its input is never legal.
    #[test]
    fn mismatched_output_is_illegal() {
        assert_eq!(CasRegister::step(&None, &I::Write(1), &O::Read(None)), None);
    }
}
