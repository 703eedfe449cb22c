//! `jepsen/etcd_NNN.log`: Jepsen 2014 console lines for one cas register.
//!
//! Each line is `INFO  jepsen.util - <process> <type> <f> <value>`, fields separated by tabs
//! or runs of spaces, so the line is split on any whitespace (which splits a cas value `[a b]`
//! into two tokens). How each shape maps onto the crate's history:
//!
//! | line | event |
//! |---|---|
//! | `p :invoke :read nil` | invoke read |
//! | `p :invoke :write V` / `p :invoke :cas [A B]` | invoke write `V` / cas `[A, B]` |
//! | `p :ok :read nil\|V` | ok, value `null` / `V` |
//! | `p :ok :write V` | ok |
//! | `p :ok :cas [A B]` | ok, value `true` (swapped) |
//! | `p :fail :cas [A B]` | ok, value `false`: the cas ran and its compare failed |
//! | `p :fail :read :timed-out` | fail (see below) |
//! | `p :info :write\|:cas :timed-out` | info: pending to the end |
//!
//! Porcupine gives a timed-out read an *unknown output*. Such a read is legal in every state
//! and changes nothing, so it admits exactly the same linearizations as no read at all; it is
//! recorded as `fail`, which drops it, because its process goes on to issue more operations and
//! an `info` would retire it. Porcupine ignores the `:info` lines, leaving those operations
//! pending to the end; an `info` event means exactly that here.

use super::{parse_lines, ParseError, ParseProblem};
use crate::history::{Op, OpKind};
use serde_json::{json, Value};

/// The fourth field of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EtcdValue {
    Nil,
    Int(i64),
    Pair(i64, i64),
    TimedOut,
}

/// Parses a whole `etcd_NNN.log` file into a history (no keys: one register).
pub fn porcupine_etcd(text: &str) -> Result<Vec<Op>, ParseError> {
    parse_lines(text, parse_line)
}

fn parse_line(line: &str) -> Result<Op, ParseProblem> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    if tokens.get(..3) != Some(&["INFO", "jepsen.util", "-"][..]) {
        return Err(ParseProblem::MissingPrefix);
    }
    let field = |index: usize, name| {
        tokens
            .get(index)
            .copied()
            .ok_or(ParseProblem::MissingField(name))
    };
    let process_token = field(3, "process")?;
    let process = process_token
        .parse::<u64>()
        .map_err(|_| ParseProblem::BadField {
            field: "process",
            value: process_token.to_owned(),
        })?;
    let kind = field(4, "type")?;
    let f = field(5, "f")?;
    field(6, "value")?;
    let value = parse_value(&tokens[6..])?;
    let (kind, f, value) = classify(kind, f, value)
        .ok_or_else(|| ParseProblem::UnexpectedShape(tokens[4..].join(" ")))?;
    Ok(Op::new(process, kind, f, None, value))
}

/// Maps a `(type, f, value)` combination onto an event, or `None` if the format lacks it.
fn classify(kind: &str, f: &str, value: EtcdValue) -> Option<(OpKind, &'static str, Value)> {
    use EtcdValue::{Int, Nil, Pair, TimedOut};
    let event = match (kind, f, value) {
        (":invoke", ":read", Nil) => (OpKind::Invoke, "read", Value::Null),
        (":invoke", ":write", Int(v)) => (OpKind::Invoke, "write", json!(v)),
        (":invoke", ":cas", Pair(a, b)) => (OpKind::Invoke, "cas", json!([a, b])),
        (":ok", ":read", Nil) => (OpKind::Ok, "read", Value::Null),
        (":ok", ":read", Int(v)) => (OpKind::Ok, "read", json!(v)),
        (":ok", ":write", Int(v)) => (OpKind::Ok, "write", json!(v)),
        (":ok", ":cas", Pair(..)) => (OpKind::Ok, "cas", json!(true)),
        (":fail", ":cas", Pair(..)) => (OpKind::Ok, "cas", json!(false)),
        (":fail", ":read", TimedOut) => (OpKind::Fail, "read", Value::Null),
        (":info", ":write", TimedOut) => (OpKind::Info, "write", Value::Null),
        (":info", ":cas", TimedOut) => (OpKind::Info, "cas", Value::Null),
        _ => return None,
    };
    Some(event)
}

fn parse_value(tokens: &[&str]) -> Result<EtcdValue, ParseProblem> {
    let bad = || ParseProblem::BadField {
        field: "value",
        value: tokens.join(" "),
    };
    let int = |token: &str| token.parse::<i64>().map_err(|_| bad());
    match tokens {
        ["nil"] => Ok(EtcdValue::Nil),
        [":timed-out"] => Ok(EtcdValue::TimedOut),
        [single] => Ok(EtcdValue::Int(int(single)?)),
        [first, second] => {
            let a = first.strip_prefix('[').ok_or_else(bad)?;
            let b = second.strip_suffix(']').ok_or_else(bad)?;
            Ok(EtcdValue::Pair(int(a)?, int(b)?))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tab- and space-separated lines parse alike, cas values included.
    #[test]
    fn parses_every_shape() {
        let text = "INFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]\n\
                    INFO  jepsen.util - 2   :fail   :cas    [3 0]\n\
                    INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
                    INFO  jepsen.util - 0\t:fail\t:read\t:timed-out\n\
                    INFO  jepsen.util - 1\t:invoke\t:write\t4\n\
                    INFO  jepsen.util - 1\t:info\t:write\t:timed-out\n";
        let ops = porcupine_etcd(text).expect("valid lines");
        let summary: Vec<_> = ops
            .iter()
            .map(|op| (op.process, op.kind, op.f.as_str(), op.value.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (2, OpKind::Invoke, "cas", json!([3, 0])),
                (2, OpKind::Ok, "cas", json!(false)),
                (0, OpKind::Invoke, "read", Value::Null),
                (0, OpKind::Fail, "read", Value::Null),
                (1, OpKind::Invoke, "write", json!(4)),
                (1, OpKind::Info, "write", Value::Null),
            ]
        );
    }

    /// Errors name the line number and its content.
    #[test]
    fn errors_name_the_line() {
        let text =
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\t[1\n";
        let err = porcupine_etcd(text).expect_err("truncated cas value");
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(err.to_string().contains(":ok\\t:read\\t[1"), "{err}");
        let err = porcupine_etcd("WARN x - 0 :invoke :read nil").expect_err("wrong prefix");
        assert_eq!(err.problem, ParseProblem::MissingPrefix);
        let err = porcupine_etcd("INFO jepsen.util - 0 :ok :write nil").expect_err("no such shape");
        assert!(matches!(err.problem, ParseProblem::UnexpectedShape(_)));
    }
}
