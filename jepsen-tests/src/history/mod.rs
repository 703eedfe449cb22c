//! The crate's own history model, in the style of Jepsen.
//!
//! A history is a list of [`Op`] events in real-time order: every operation appears once as an
//! [`OpKind::Invoke`] and at most once more as its completion ([`OpKind::Ok`], [`OpKind::Fail`]
//! or [`OpKind::Info`]). The meaning of the completions follows Jepsen:
//!
//! * `Ok`: the operation took effect and `value` holds its result.
//! * `Fail`: the operation definitely did not take effect; the checker drops it.
//! * `Info`: the outcome is unknown. The operation may have taken effect at any moment after its
//!   invocation, or never, so it stays pending until the end of the history. The process that
//!   issued it is retired and never invokes again (see [`Recorder`]).
//!
//! An invoke with no completion at all is treated like `Info`.
//!
//! # File format (`--format skiff`)
//!
//! JSON lines: one [`Op`] object per line, in real-time order. The field names match Jepsen's
//! JSON output (and elle-cli's input) so the same file can be given to those tools:
//!
//! ```text
//! {"process":0,"type":"invoke","f":"cas","key":"k1","value":[1,2],"time":1200}
//! {"process":0,"type":"ok","f":"cas","key":"k1","value":true,"time":5300}
//! ```
//!
//! `key` and `time` (nanoseconds, monotonic, from the start of the run) are optional. The shape
//! of `value` depends on the model; each model module documents its own. Unknown fields are
//! ignored so Jepsen's extra fields (such as `index`) do not break parsing.
//!
//! ```text
//!  JSON lines / parse::* ──▶ Vec<Op> ──pair()──▶ Vec<PairedOp> ──model::decode──▶ checker
//! ```

mod pairing;
mod recorder;

pub use pairing::{pair, PairError, PairedOp};
pub use recorder::{Clock, Completion, MonotonicClock, Recorder, RecorderError};

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

/// What an event in the history says about its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// The client sent the request.
    Invoke,
    /// The operation took effect; `value` is its result.
    Ok,
    /// The operation definitely did not take effect.
    Fail,
    /// The outcome is unknown (for example a timeout); the process is retired.
    Info,
}

/// One event of a history: an invocation or a completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// The logical client that issued the operation. A process runs one operation at a time.
    pub process: u64,
    /// Whether this event invokes or completes an operation, and how it completed.
    #[serde(rename = "type")]
    pub kind: OpKind,
    /// The function, such as `read`, `write`, `cas`, `get`, `put` or `append`.
    pub f: String,
    /// The key (independent object) the operation addresses; `None` for single-object histories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The argument (on invoke) or result (on `Ok`); its shape is defined by the model.
    #[serde(default)]
    pub value: serde_json::Value,
    /// Monotonic nanoseconds since the start of the run, when known.
    #[serde(default, rename = "time", skip_serializing_if = "Option::is_none")]
    pub time_ns: Option<u64>,
}

impl Op {
    /// Builds an event without a timestamp; handy for parsers and tests.
    pub fn new(
        process: u64,
        kind: OpKind,
        f: &str,
        key: Option<&str>,
        value: serde_json::Value,
    ) -> Self {
        Op {
            process,
            kind,
            f: f.to_owned(),
            key: key.map(str::to_owned),
            value,
            time_ns: None,
        }
    }
}

/// Errors from reading or writing a JSON-lines history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A line is not a valid [`Op`] object.
    #[error("failed to parse history line {line} ({content:?}): {source}")]
    Json {
        /// 1-based line number.
        line: usize,
        /// The offending line.
        content: String,
        /// What serde_json objected to.
        #[source]
        source: serde_json::Error,
    },
    /// The underlying reader or writer failed.
    #[error("failed to read or write history: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a JSON-lines history. Blank lines are skipped; anything else must be an [`Op`].
pub fn read_jsonl(reader: impl BufRead) -> Result<Vec<Op>, HistoryError> {
    let mut ops = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let op = serde_json::from_str(&line).map_err(|source| HistoryError::Json {
            line: index + 1,
            content: line.clone(),
            source,
        })?;
        ops.push(op);
    }
    Ok(ops)
}

/// Writes `ops` as JSON lines, one object per line.
pub fn write_jsonl(ops: &[Op], mut writer: impl Write) -> Result<(), HistoryError> {
    for op in ops {
        let line = serde_json::to_string(op)
            .expect("an Op holds only strings, integers and JSON values, which always serialize");
        writeln!(writer, "{line}")?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A history written as JSON lines reads back identically, in Jepsen's field names.
    #[test]
    fn jsonl_round_trip_uses_jepsen_field_names() {
        let mut op = Op::new(3, OpKind::Invoke, "cas", Some("k"), json!([1, 2]));
        op.time_ns = Some(42);
        let ops = vec![op, Op::new(3, OpKind::Info, "cas", Some("k"), json!(null))];
        let mut buf = Vec::new();
        write_jsonl(&ops, &mut buf).expect("writing to a Vec cannot fail");
        let text = String::from_utf8(buf).expect("serde_json writes UTF-8");
        assert!(text.starts_with(r#"{"process":3,"type":"invoke","f":"cas","key":"k""#));
        assert!(text.contains(r#""time":42"#));
        assert_eq!(read_jsonl(text.as_bytes()).expect("round trip"), ops);
    }

    /// A malformed line is reported with its line number and content.
    #[test]
    fn malformed_line_names_line_and_content() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n\n{\"process\":1}\n";
        let err = read_jsonl(text.as_bytes()).expect_err("line 3 lacks type and f");
        let message = err.to_string();
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains(r#"{\"process\":1}"#), "{message}");
    }
}
