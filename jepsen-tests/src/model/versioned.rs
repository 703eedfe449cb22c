//! An etcd-style versioned register: a value plus the key's `version`.
//!
//! etcd keeps two counters per key. `mod_revision` is the cluster-wide revision of the last
//! write; it is shared by all keys, so within one key's partition it jumps by amounts that
//! depend on writes to other keys and cannot be predicted. `version` is local to the key: 0
//! while the key does not exist, then +1 on every successful write. This model therefore checks
//! `version`, which gives an exact rule (as in jepsen-io/etcd's `VersionedRegister`):
//!
//! * a read returns `(value, version)` and must match the state exactly;
//! * a write always succeeds and its response carries the new version, which must be exactly
//!   the previous version + 1 (a harness gets it from `prev_kv.version + 1` on the put);
//! * a cas is a Txn `If(Version(key) == expected) Then(Put(key, value))`. It swaps iff the
//!   version matches, and then reports the new version `expected + 1`. `expected_version: 0` is
//!   the usual "create if absent" idiom.
//!
//! Deletes are not modelled (they would reset the version to 0).
//!
//! JSON shapes of `value` (invoke → ok):
//!
//! * `read`: `null` → `{"value": int or null, "version": n}`
//! * `write`: integer → `{"version": n}`
//! * `cas`: `{"expected_version": n, "value": int}` → `{"succeeded": true, "version": n}` or
//!   `{"succeeded": false}`

use super::{argument, result, Decode, DecodeProblem, Model};
use crate::history::PairedOp;
use serde::Deserialize;

/// The versioned register model.
#[derive(Debug, Clone, Copy, Default)]
pub struct VersionedRegister;

/// The state of one key: its value (`None` while absent) and its version (0 while absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub struct Versioned {
    /// The current value.
    pub value: Option<i64>,
    /// How many writes the key has seen since it was created.
    pub version: u64,
}

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionedInput {
    /// Read value and version.
    Read,
    /// Put a new value.
    Write(i64),
    /// Put `value` if the key's version equals `expected_version`.
    Cas {
        /// The version the key must have.
        expected_version: u64,
        /// The value to store.
        value: i64,
    },
}

/// What a client observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionedOutput {
    /// A read saw this value and version.
    Read(Versioned),
    /// A write succeeded; the key now has this version.
    Written {
        /// The version after the write.
        version: u64,
    },
    /// A cas swapped; the key now has this version.
    Swapped {
        /// The version after the swap.
        version: u64,
    },
    /// A cas found a different version and changed nothing.
    NotSwapped,
    /// The outcome is unknown.
    Unknown,
}

impl Model for VersionedRegister {
    type State = Versioned;
    type Input = VersionedInput;
    type Output = VersionedOutput;

    fn init() -> Versioned {
        Versioned::default()
    }

    fn step(
        state: &Versioned,
        input: &VersionedInput,
        output: &VersionedOutput,
    ) -> Option<Versioned> {
        use VersionedInput as I;
        use VersionedOutput as O;
        // A version at u64::MAX cannot be incremented; only a corrupt response reaches it.
        let next_version = state.version.checked_add(1)?;
        let written = |value| Versioned {
            value: Some(value),
            version: next_version,
        };
        match (input, output) {
            (I::Read, O::Read(seen)) => (seen == state).then_some(*state),
            (I::Read, O::Unknown) => Some(*state),
            (I::Write(value), O::Written { version }) => {
                (*version == next_version).then(|| written(*value))
            }
            (I::Write(value), O::Unknown) => Some(written(*value)),
            (
                I::Cas {
                    expected_version,
                    value,
                },
                O::Swapped { version },
            ) => {
                let matches = state.version == *expected_version && *version == next_version;
                matches.then(|| written(*value))
            }
            (
                I::Cas {
                    expected_version, ..
                },
                O::NotSwapped,
            ) => (state.version != *expected_version).then_some(*state),
            (
                I::Cas {
                    expected_version,
                    value,
                },
                O::Unknown,
            ) => Some(if state.version == *expected_version {
                written(*value)
            } else {
                *state
            }),
            // Decoding never mixes kinds; a mixed pair has no explanation.
            (I::Read, _) | (I::Write(_), _) | (I::Cas { .. }, _) => None,
        }
    }

    fn always_legal(_input: &VersionedInput, output: &VersionedOutput) -> bool {
        // Unknown outputs are accepted in every state whose version can still be incremented;
        // reachable versions count writes in the history, so they never come near u64::MAX.
        matches!(output, VersionedOutput::Unknown)
    }

    fn describe_state(state: &Versioned) -> String {
        format!("{} @ version {}", show(state.value), state.version)
    }

    fn describe(input: &VersionedInput, output: &VersionedOutput) -> String {
        let call = match input {
            VersionedInput::Read => "read".to_owned(),
            VersionedInput::Write(value) => format!("write {value}"),
            VersionedInput::Cas {
                expected_version,
                value,
            } => {
                format!("cas if version=={expected_version} then {value}")
            }
        };
        let outcome = match output {
            VersionedOutput::Read(seen) => {
                format!("{} @ version {}", show(seen.value), seen.version)
            }
            VersionedOutput::Written { version } => format!("ok @ version {version}"),
            VersionedOutput::Swapped { version } => format!("swapped @ version {version}"),
            VersionedOutput::NotSwapped => "compare failed".to_owned(),
            VersionedOutput::Unknown => "unknown".to_owned(),
        };
        format!("{call} => {outcome}")
    }
}

fn show(value: Option<i64>) -> String {
    value.map_or_else(|| "nil".to_owned(), |value| value.to_string())
}

/// JSON of a write response.
#[derive(Deserialize)]
struct WriteResult {
    version: u64,
}

/// JSON of a cas argument.
#[derive(Deserialize)]
struct CasArgument {
    expected_version: u64,
    value: i64,
}

/// JSON of a cas response; `version` is required when `succeeded` is true.
#[derive(Deserialize)]
struct CasResult {
    succeeded: bool,
    version: Option<u64>,
}

impl Decode for VersionedRegister {
    fn decode(op: &PairedOp<'_>) -> Result<(VersionedInput, VersionedOutput), DecodeProblem> {
        use VersionedOutput as O;
        match op.invoke.f.as_str() {
            "read" => {
                let seen = result::<Versioned>(op, r#"{"value": int or null, "version": n}"#)?;
                Ok((VersionedInput::Read, seen.map_or(O::Unknown, O::Read)))
            }
            "write" => {
                let value = argument::<i64>(op, "an integer")?;
                let done = result::<WriteResult>(op, r#"{"version": n}"#)?;
                let output = done.map_or(O::Unknown, |w| O::Written { version: w.version });
                Ok((VersionedInput::Write(value), output))
            }
            "cas" => decode_cas(op),
            other => Err(DecodeProblem::UnknownFunction {
                f: other.to_owned(),
                known: "read, write, cas",
            }),
        }
    }
}

fn decode_cas(op: &PairedOp<'_>) -> Result<(VersionedInput, VersionedOutput), DecodeProblem> {
    const RESULT_SHAPE: &str = r#"{"succeeded": true, "version": n} or {"succeeded": false}"#;
    let CasArgument {
        expected_version,
        value,
    } = argument(op, r#"{"expected_version": n, "value": int}"#)?;
    let output = match result::<CasResult>(op, RESULT_SHAPE)? {
        None => VersionedOutput::Unknown,
        Some(CasResult {
            succeeded: false, ..
        }) => VersionedOutput::NotSwapped,
        Some(CasResult {
            succeeded: true,
            version: Some(version),
        }) => VersionedOutput::Swapped { version },
        Some(CasResult {
            succeeded: true,
            version: None,
        }) => {
            let value = op.completion.map(|c| c.value.clone()).unwrap_or_default();
            return Err(DecodeProblem::Result {
                value,
                expected: RESULT_SHAPE,
            });
        }
    };
    Ok((
        VersionedInput::Cas {
            expected_version,
            value,
        },
        output,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use VersionedInput as I;
    use VersionedOutput as O;

    fn state(value: Option<i64>, version: u64) -> Versioned {
        Versioned { value, version }
    }

    /// A write must report exactly the next version.
    #[test]
    fn write_bumps_version_by_one() {
        let s = VersionedRegister::init();
        let s = VersionedRegister::step(&s, &I::Write(7), &O::Written { version: 1 });
        assert_eq!(s, Some(state(Some(7), 1)));
        let skipped =
            VersionedRegister::step(&state(Some(7), 1), &I::Write(8), &O::Written { version: 3 });
        assert_eq!(skipped, None);
        let unknown = VersionedRegister::step(&state(Some(7), 1), &I::Write(8), &O::Unknown);
        assert_eq!(unknown, Some(state(Some(8), 2)));
    }

    /// Reads see value and version together.
    #[test]
    fn read_matches_value_and_version() {
        let s = state(Some(7), 4);
        assert_eq!(VersionedRegister::step(&s, &I::Read, &O::Read(s)), Some(s));
        assert_eq!(
            VersionedRegister::step(&s, &I::Read, &O::Read(state(Some(7), 3))),
            None
        );
        let absent = VersionedRegister::init();
        assert_eq!(
            VersionedRegister::step(&absent, &I::Read, &O::Read(state(None, 0))),
            Some(absent)
        );
    }

    /// A version-guarded cas swaps only on the expected version.
    #[test]
    fn cas_on_version() {
        let s = state(Some(1), 2);
        let cas = I::Cas {
            expected_version: 2,
            value: 9,
        };
        assert_eq!(
            VersionedRegister::step(&s, &cas, &O::Swapped { version: 3 }),
            Some(state(Some(9), 3))
        );
        assert_eq!(VersionedRegister::step(&s, &cas, &O::NotSwapped), None);
        let stale = I::Cas {
            expected_version: 1,
            value: 9,
        };
        assert_eq!(VersionedRegister::step(&s, &stale, &O::NotSwapped), Some(s));
        assert_eq!(
            VersionedRegister::step(&s, &stale, &O::Swapped { version: 2 }),
            None
        );
        assert_eq!(VersionedRegister::step(&s, &stale, &O::Unknown), Some(s));
        let create = I::Cas {
            expected_version: 0,
            value: 5,
        };
        let fresh = VersionedRegister::init();
        assert_eq!(
            VersionedRegister::step(&fresh, &create, &O::Unknown),
            Some(state(Some(5), 1))
        );
    }
}
