//! `skiff-jepsen check`: from file contents to a [`Report`].
//!
//! ```text
//!  text ──load(format)──▶ Vec<Op> ──choose_model──▶ pair ──decode──▶ checker::check ──▶ Report
//! ```

use crate::checker::{self, CheckOptions, Report};
use crate::history::{self, HistoryError, Op, PairError};
use crate::model::{self, CasRegister, Decode, DecodeError, Kv, VersionedRegister};
use crate::parse::{self, ParseError};
use std::collections::BTreeSet;
use std::fmt;

/// The history file formats the checker reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// porcupine `kv/*.txt` (EDN-like maps, get/put/append per key).
    PorcupineKv,
    /// porcupine `jepsen/etcd_NNN.log` (Jepsen console lines, one cas register).
    PorcupineEtcd,
    /// The crate's own JSON-lines history (see `history`).
    Skiff,
}

/// The models a history can be checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelChoice {
    /// `model::CasRegister`: read/write/cas on integers.
    CasRegister,
    /// `model::Kv`: get/put/append on strings.
    Kv,
    /// `model::VersionedRegister`: etcd-style value + version.
    VersionedRegister,
}

impl fmt::Display for ModelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelChoice::CasRegister => "cas-register",
            ModelChoice::Kv => "kv",
            ModelChoice::VersionedRegister => "versioned-register",
        })
    }
}

/// Why a history could not be checked. All of these are problems with the input.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A porcupine file has a malformed line.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A JSON-lines history has a malformed line.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// Invocations and completions do not pair up.
    #[error(transparent)]
    Pair(#[from] PairError),
    /// An operation's values do not fit the model.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The requested model does not fit the format.
    #[error("failed to choose a model: format {format:?} always uses {fixed}, not {requested}")]
    ModelMismatch {
        /// The input format.
        format: Format,
        /// The model that format implies.
        fixed: ModelChoice,
        /// The model asked for.
        requested: ModelChoice,
    },
    /// The functions in a skiff history do not identify a model.
    #[error("failed to infer the model from the functions {functions:?}; pass --model")]
    UnknownModel {
        /// The distinct functions found.
        functions: Vec<String>,
    },
}

/// Parses `text` in `format` into a history.
pub fn load(format: Format, text: &str) -> Result<Vec<Op>, CheckError> {
    Ok(match format {
        Format::PorcupineKv => parse::porcupine_kv(text)?,
        Format::PorcupineEtcd => parse::porcupine_etcd(text)?,
        Format::Skiff => history::read_jsonl(text.as_bytes())?,
    })
}

/// Picks the model: fixed for the porcupine formats, else `requested`, else inferred from
/// the functions: get/put/append is [`Kv`]; read/write/cas is [`VersionedRegister`] when
/// some value is a JSON object (its results carry versions) and [`CasRegister`] otherwise.
pub fn choose_model(
    format: Format,
    requested: Option<ModelChoice>,
    ops: &[Op],
) -> Result<ModelChoice, CheckError> {
    let fixed = match format {
        Format::PorcupineKv => ModelChoice::Kv,
        Format::PorcupineEtcd => ModelChoice::CasRegister,
        Format::Skiff => return requested.map_or_else(|| infer_model(ops), Ok),
    };
    match requested {
        Some(requested) if requested != fixed => Err(CheckError::ModelMismatch {
            format,
            fixed,
            requested,
        }),
        _ => Ok(fixed),
    }
}

fn infer_model(ops: &[Op]) -> Result<ModelChoice, CheckError> {
    let functions: BTreeSet<&str> = ops.iter().map(|op| op.f.as_str()).collect();
    let within = |known: &[&str]| functions.iter().all(|f| known.contains(f));
    if !functions.is_empty() && within(&["get", "put", "append"]) {
        Ok(ModelChoice::Kv)
    } else if within(&["read", "write", "cas"]) {
        let versioned = ops.iter().any(|op| op.value.is_object());
        Ok(if versioned {
            ModelChoice::VersionedRegister
        } else {
            ModelChoice::CasRegister
        })
    } else {
        let functions = functions.into_iter().map(str::to_owned).collect();
        Err(CheckError::UnknownModel { functions })
    }
}

/// Pairs, decodes and checks `ops` against `model`.
pub fn check_history(
    ops: &[Op],
    model: ModelChoice,
    options: &CheckOptions,
) -> Result<Report, CheckError> {
    let paired = history::pair(ops)?;
    match model {
        ModelChoice::CasRegister => decode_and_check::<CasRegister>(&paired, options),
        ModelChoice::Kv => decode_and_check::<Kv>(&paired, options),
        ModelChoice::VersionedRegister => decode_and_check::<VersionedRegister>(&paired, options),
    }
}

fn decode_and_check<M: Decode>(
    paired: &[history::PairedOp<'_>],
    options: &CheckOptions,
) -> Result<Report, CheckError> {
    let ops = model::decode_history::<M>(paired)?;
    Ok(checker::check::<M>(&ops, options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Verdict;
    use crate::history::OpKind;
    use serde_json::json;

    /// Skiff histories get their model from their functions and value shapes.
    #[test]
    fn infers_model_for_skiff() {
        let op = |f: &str, value| Op::new(0, OpKind::Invoke, f, None, value);
        let infer = |ops: &[Op]| choose_model(Format::Skiff, None, ops).ok();
        assert_eq!(infer(&[op("get", json!(null))]), Some(ModelChoice::Kv));
        assert_eq!(
            infer(&[op("cas", json!([1, 2]))]),
            Some(ModelChoice::CasRegister)
        );
        let versioned = [op("cas", json!({"expected_version": 0, "value": 1}))];
        assert_eq!(infer(&versioned), Some(ModelChoice::VersionedRegister));
        assert_eq!(
            infer(&[op("get", json!(null)), op("cas", json!([1, 2]))]),
            None
        );
        let forced = choose_model(Format::Skiff, Some(ModelChoice::Kv), &[]);
        assert_eq!(forced.ok(), Some(ModelChoice::Kv));
    }

    /// Porcupine formats imply their model; asking for another is an error.
    #[test]
    fn porcupine_formats_fix_the_model() {
        assert!(choose_model(Format::PorcupineEtcd, None, &[]).is_ok());
        let mismatch = choose_model(Format::PorcupineKv, Some(ModelChoice::CasRegister), &[]);
        assert!(matches!(mismatch, Err(CheckError::ModelMismatch { .. })));
    }

    /// A versioned-register history written as JSON lines is checked end to end.
    #[test]
    fn versioned_register_history_end_to_end() {
        let text = r#"
{"process":0,"type":"invoke","f":"write","key":"a","value":5}
{"process":1,"type":"invoke","f":"cas","key":"a","value":{"expected_version":1,"value":6}}
{"process":0,"type":"ok","f":"write","key":"a","value":{"version":1}}
{"process":1,"type":"ok","f":"cas","key":"a","value":{"succeeded":true,"version":2}}
{"process":0,"type":"invoke","f":"read","key":"a","value":null}
{"process":0,"type":"ok","f":"read","key":"a","value":{"value":6,"version":2}}
"#;
        let ops = load(Format::Skiff, text).expect("valid JSON lines");
        let model = choose_model(Format::Skiff, None, &ops).expect("inferable");
        assert_eq!(model, ModelChoice::VersionedRegister);
        let report = check_history(&ops, model, &CheckOptions::default()).expect("decodable");
        assert_eq!(report.verdict, Verdict::Linearizable);
        let stale = text.replace(r#"{"value":6,"version":2}"#, r#"{"value":5,"version":1}"#);
        let ops = load(Format::Skiff, &stale).expect("valid JSON lines");
        let report = check_history(&ops, model, &CheckOptions::default()).expect("decodable");
        assert!(matches!(report.verdict, Verdict::NotLinearizable(_)));
    }
}
