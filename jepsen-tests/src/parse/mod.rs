//! Parsers for the golden history formats of porcupine's test data.
//!
//! Both formats are turned into the crate's own [`Op`](crate::history::Op) history, so the rest
//! of the pipeline (pairing, decoding, checking) is the same for every input:
//!
//! * [`porcupine_kv`]: `kv/*.txt`, EDN-like maps, multi-key get/put/append
//!   (model [`crate::model::Kv`]).
//! * [`porcupine_etcd`]: `jepsen/etcd_NNN.log`, Jepsen console lines for a single cas register
//!   (model [`crate::model::CasRegister`]).
//!
//! Line order is time order. Blank lines are skipped; any other line that does not match a known
//! shape is an error naming the line, so a truncated or foreign file is never checked silently.

mod etcd;
mod kv;

pub use etcd::porcupine_etcd;
pub use kv::porcupine_kv;

/// A line that does not fit the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse line {line} ({content:?}): {problem}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// The line as read.
    pub content: String,
    /// What is wrong with it.
    pub problem: ParseProblem,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseProblem {
    /// The fixed `INFO jepsen.util -` prefix is missing.
    #[error("expected the prefix `INFO jepsen.util -`")]
    MissingPrefix,
    /// A required field is missing.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field has a value outside the format.
    #[error("field {field} has unexpected value {value:?}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What was found.
        value: String,
    },
    /// The fields are individually valid but the combination is not one the format defines.
    #[error("unexpected combination {0}")]
    UnexpectedShape(String),
    /// The line is not a `{...}` map of keyword/value pairs.
    #[error("malformed map: {0}")]
    MalformedMap(&'static str),
}

/// Applies `parse_line` to every non-blank line, attaching line numbers to errors.
fn parse_lines<T>(
    text: &str,
    mut parse_line: impl FnMut(&str) -> Result<T, ParseProblem>,
) -> Result<Vec<T>, ParseError> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item = parse_line(line).map_err(|problem| ParseError {
            line: index + 1,
            content: line.to_owned(),
            problem,
        })?;
        out.push(item);
    }
    Ok(out)
}
