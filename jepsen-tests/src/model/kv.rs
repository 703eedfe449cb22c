//! A string register per key with get, put and append (the porcupine `kv` model).
//!
//! Each key starts as the empty string; a missing key reads as "". JSON shapes of `value`:
//!
//! | f | invoke | ok |
//! |---|---|---|
//! | `get` | `null` | the string read (`null` is read as "") |
//! | `put` | the string to store | ignored |
//! | `append` | the string to append | ignored |

use super::{argument, result, Decode, DecodeProblem, Model};
use crate::history::PairedOp;

/// The per-key string model. Keys are independent, so histories are partitioned by key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kv;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvInput {
    /// Read the string.
    Get,
    /// Replace the string.
    Put(String),
    /// Append to the string.
    Append(String),
}

/// What a client observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOutput {
    /// A get returned this string.
    Get(String),
    /// A put or append was acknowledged.
    Done,
    /// The outcome is unknown.
    Unknown,
}

impl Model for Kv {
    type State = String;
    type Input = KvInput;
    type Output = KvOutput;

    fn init() -> String {
        String::new()
    }

    fn step(state: &String, input: &KvInput, output: &KvOutput) -> Option<String> {
        match (input, output) {
            (KvInput::Get, KvOutput::Get(value)) => (value == state).then(|| state.clone()),
            (KvInput::Get, KvOutput::Unknown) => Some(state.clone()),
            (KvInput::Put(value), KvOutput::Done | KvOutput::Unknown) => Some(value.clone()),
            (KvInput::Append(suffix), KvOutput::Done | KvOutput::Unknown) => {
                Some(format!("{state}{suffix}"))
            }
            // Decoding never mixes kinds; a mixed pair has no explanation.
            (KvInput::Get, KvOutput::Done)
            | (KvInput::Put(_) | KvInput::Append(_), KvOutput::Get(_)) => None,
        }
    }

    fn heap_bytes(state: &String) -> usize {
        state.capacity()
    }

    fn always_legal(input: &KvInput, output: &KvOutput) -> bool {
        match output {
            KvOutput::Unknown => true,
            KvOutput::Done => !matches!(input, KvInput::Get),
            KvOutput::Get(_) => false,
        }
    }

    fn describe(input: &KvInput, output: &KvOutput) -> String {
        let call = match input {
            KvInput::Get => "get".to_owned(),
            KvInput::Put(value) => format!("put {value:?}"),
            KvInput::Append(value) => format!("append {value:?}"),
        };
        let outcome = match output {
            KvOutput::Get(value) => format!("{value:?}"),
            KvOutput::Done => "ok".to_owned(),
            KvOutput::Unknown => "unknown".to_owned(),
        };
        format!("{call} => {outcome}")
    }
}

impl Decode for Kv {
    fn decode(op: &PairedOp<'_>) -> Result<(KvInput, KvOutput), DecodeProblem> {
        let done = || op.completion.map_or(KvOutput::Unknown, |_| KvOutput::Done);
        match op.invoke.f.as_str() {
            "get" => {
                let read = result::<Option<String>>(op, "a string or null")?;
                let output = read.map_or(KvOutput::Unknown, |value| {
                    KvOutput::Get(value.unwrap_or_default())
                });
                Ok((KvInput::Get, output))
            }
            "put" => Ok((KvInput::Put(argument(op, "a string")?), done())),
            "append" => Ok((KvInput::Append(argument(op, "a string")?), done())),
            other => Err(DecodeProblem::UnknownFunction {
                f: other.to_owned(),
                known: "get, put, append",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends concatenate, puts replace, and gets must see exactly the current string.
    #[test]
    fn append_put_get() {
        let s = Kv::init();
        let s = Kv::step(&s, &KvInput::Append("x 0 0 y".into()), &KvOutput::Done).expect("legal");
        let s =
            Kv::step(&s, &KvInput::Append("x 1 0 y".into()), &KvOutput::Unknown).expect("legal");
        assert_eq!(s, "x 0 0 yx 1 0 y");
        assert!(Kv::step(&s, &KvInput::Get, &KvOutput::Get("x 0 0 y".into())).is_none());
        assert!(Kv::step(&s, &KvInput::Get, &KvOutput::Get(s.clone())).is_some());
        let s = Kv::step(&s, &KvInput::Put("z".into()), &KvOutput::Done).expect("legal");
        assert_eq!(s, "z");
    }

    /// A fresh key reads as the empty string.
    #[test]
    fn initial_state_is_empty() {
        assert!(Kv::step(&Kv::init(), &KvInput::Get, &KvOutput::Get(String::new())).is_some());
    }
}
