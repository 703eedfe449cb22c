//! `kv/*.txt`: one EDN-like map per line, multi-key get/put/append.
//!
//! ```text
//! {:process 9, :type :invoke, :f :append, :key "0", :value "x 9 0 y"}
//! ```
//!
//! A line is read as keyword/value pairs in any order; commas count as whitespace, as in EDN.
//! Strings contain no escapes in these files, so a string runs to the next `"`.

use super::{parse_lines, ParseProblem};
use crate::history::{Op, OpKind};
use serde_json::Value;
use std::collections::HashMap;

/// One token of a map line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// `:name`, without the colon.
    Keyword(&'a str),
    /// `"text"`, without the quotes.
    Str(&'a str),
    /// A bare word such as `nil` or `9`.
    Bare(&'a str),
}

/// Parses a whole `kv/*.txt` file into a history with keys.
pub fn porcupine_kv(text: &str) -> Result<Vec<Op>, super::ParseError> {
    parse_lines(text, parse_line)
}

fn parse_line(line: &str) -> Result<Op, ParseProblem> {
    let fields = parse_map(line)?;
    let get = |name: &'static str| {
        fields
            .get(name)
            .copied()
            .ok_or(ParseProblem::MissingField(name))
    };
    let bad = |field: &'static str, token: Token<'_>| ParseProblem::BadField {
        field,
        value: format!("{token:?}"),
    };
    let process = match get("process")? {
        Token::Bare(digits) => digits
            .parse::<u64>()
            .map_err(|_| bad("process", Token::Bare(digits)))?,
        other => return Err(bad("process", other)),
    };
    let kind = match get("type")? {
        Token::Keyword("invoke") => OpKind::Invoke,
        Token::Keyword("ok") => OpKind::Ok,
        Token::Keyword("fail") => OpKind::Fail,
        Token::Keyword("info") => OpKind::Info,
        other => return Err(bad("type", other)),
    };
    let f = match get("f")? {
        Token::Keyword(f @ ("get" | "put" | "append")) => f,
        other => return Err(bad("f", other)),
    };
    let key = match get("key")? {
        Token::Str(key) => key,
        other => return Err(bad("key", other)),
    };
    let value = match get("value")? {
        Token::Str(value) => Value::String(value.to_owned()),
        Token::Bare("nil") => Value::Null,
        other => return Err(bad("value", other)),
    };
    Ok(Op::new(process, kind, f, Some(key), value))
}

/// Splits `{:k v, :k v}` into a map from keyword to value token.
fn parse_map(line: &str) -> Result<HashMap<&str, Token<'_>>, ParseProblem> {
    let inner = line
        .trim()
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or(ParseProblem::MalformedMap(
            "expected a line of the form {...}",
        ))?;
    let tokens = tokenize(inner)?;
    if tokens.len() % 2 != 0 {
        return Err(ParseProblem::MalformedMap("a keyword has no value"));
    }
    let mut fields = HashMap::new();
    for pair in tokens.chunks(2) {
        let Token::Keyword(name) = pair[0] else {
            return Err(ParseProblem::MalformedMap(
                "expected a keyword in key position",
            ));
        };
        if fields.insert(name, pair[1]).is_some() {
            return Err(ParseProblem::MalformedMap("a keyword appears twice"));
        }
    }
    Ok(fields)
}

fn tokenize(mut rest: &str) -> Result<Vec<Token<'_>>, ParseProblem> {
    let is_separator = |c: char| c.is_whitespace() || c == ',';
    let mut tokens = Vec::new();
    loop {
        rest = rest.trim_start_matches(is_separator);
        if rest.is_empty() {
            return Ok(tokens);
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or(ParseProblem::MalformedMap("unterminated string"))?;
            tokens.push(Token::Str(&quoted[..end]));
            rest = &quoted[end + 1..];
            continue;
        }
        let end = rest.find(is_separator).unwrap_or(rest.len());
        let word = &rest[..end];
        tokens.push(match word.strip_prefix(':') {
            Some(name) => Token::Keyword(name),
            None => Token::Bare(word),
        });
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Invocations and completions parse with keys and string values, spaces included.
    #[test]
    fn parses_invoke_and_ok() {
        let text = "{:process 9, :type :invoke, :f :append, :key \"0\", :value \"x 9 0 y\"}\n\
                    {:process 1, :type :invoke, :f :get, :key \"9\", :value nil}\n\
                    {:process 1, :type :ok, :f :get, :key \"9\", :value \"\"}\n";
        let ops = porcupine_kv(text).expect("valid lines");
        assert_eq!(
            ops[0],
            Op::new(9, OpKind::Invoke, "append", Some("0"), json!("x 9 0 y"))
        );
        assert_eq!(
            ops[1],
            Op::new(1, OpKind::Invoke, "get", Some("9"), Value::Null)
        );
        assert_eq!(ops[2], Op::new(1, OpKind::Ok, "get", Some("9"), json!("")));
    }

    /// Broken lines are rejected with their line number.
    #[test]
    fn rejects_malformed_lines() {
        let good = "{:process 1, :type :invoke, :f :get, :key \"9\", :value nil}";
        let cases = [
            (
                "{:process 1, :type :invoke, :f :get, :key \"9\"}",
                ParseProblem::MissingField("value"),
            ),
            (
                ":process 1",
                ParseProblem::MalformedMap("expected a line of the form {...}"),
            ),
            (
                "{:process 1, :type :invoke, :f :get, :key \"9, :value nil}",
                ParseProblem::MalformedMap("unterminated string"),
            ),
        ];
        for (line, problem) in cases {
            let err = porcupine_kv(&format!("{good}\n{line}\n")).expect_err(line);
            assert_eq!((err.line, err.problem), (2, problem), "{line}");
        }
        let err = porcupine_kv("{:process 1, :type :invoke, :f :cas, :key \"9\", :value nil}")
            .expect_err("cas is not a kv function");
        assert!(matches!(
            err.problem,
            ParseProblem::BadField { field: "f", .. }
        ));
    }
}
