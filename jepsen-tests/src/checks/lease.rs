//! Lease safety, checked on the history of the lease workload:
//!
//! * **an expired lease takes its key with it**: every key put with a lease that was never
//!   kept alive (`grant-put` with `"keep": false`) must be absent from the final scan, which
//!   runs well after every such lease's TTL;
//! * **a kept-alive lease never expires**: a read that finds a kept-alive key absent is a
//!   violation if the lease was certainly alive when the read returned. "Certainly alive"
//!   is computed conservatively from client-side times: a lease granted by a request sent at
//!   `s` lives at least until `s + ttl`; a keep-alive sent at `s'` and answered (with a
//!   positive TTL) before the current bound extends the bound to `s' + ttl`. Once a keep-alive
//!   is answered after the bound, the chain is broken and nothing more is claimed.
//!
//! History shapes (`key` is the lease's key): `grant-put` `{"ttl", "keep"}` → `{"lease",
//! "ttl"}`; `keepalive` `{"lease"}` → `{"ttl"}`; `get` `null` → `{"present"}`; `scan`
//! (no key) `{"prefix"}` → `{"keys": [...]}`.

use crate::history::{pair, Op, PairedOp};
use crate::report::{CheckerResult, Validity};
use serde_json::Value;
use std::collections::BTreeMap;

/// Checks both lease properties; `final_from_ns` is when the final phase began.
pub fn check(history: &[Op], final_from_ns: u64) -> CheckerResult {
    let paired = match pair(history) {
        Ok(paired) => paired,
        Err(err) => return result(Validity::Unknown, err.to_string(), None),
    };
    let mut problems = expired_keys_present(&paired, final_from_ns);
    let scanned = paired.iter().any(|op| {
        op.invoke.f == "scan" && op.completion.is_some() && time(op.invoke) >= final_from_ns
    });
    problems.extend(kept_keys_lost(&paired));
    if !problems.is_empty() {
        let summary = format!("{} lease violations", problems.len());
        return result(Validity::Invalid, summary, Some(problems.join("\n")));
    }
    if !scanned {
        return result(
            Validity::Unknown,
            "the final scan never succeeded".into(),
            None,
        );
    }
    let leases = paired
        .iter()
        .filter(|op| op.invoke.f == "grant-put")
        .count();
    result(
        Validity::Valid,
        format!("{leases} leases: expired keys gone, kept keys never lost"),
        None,
    )
}

fn time(op: &Op) -> u64 {
    op.time_ns.unwrap_or(0)
}

fn expired_keys_present(paired: &[PairedOp<'_>], final_from_ns: u64) -> Vec<String> {
    let expiring: BTreeMap<&str, &Op> = paired
        .iter()
        .filter(|op| op.invoke.f == "grant-put" && op.invoke.value["keep"] == Value::Bool(false))
        .filter_map(|op| Some((op.invoke.key.as_deref()?, op.invoke)))
        .collect();
    let mut problems = Vec::new();
    for op in paired
        .iter()
        .filter(|op| op.invoke.f == "scan" && time(op.invoke) >= final_from_ns)
    {
        let Some(done) = op.completion else { continue };
        for key in done.value["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if let Some(grant) = expiring.get(key) {
                problems.push(format!(
                    "{key}: put with a {}s lease that was never kept alive (granted at {:.3}s), \
                     still present in the final scan at {:.3}s",
                    grant.value["ttl"],
                    time(grant) as f64 / 1e9,
                    time(op.invoke) as f64 / 1e9
                ));
            }
        }
    }
    problems
}

fn kept_keys_lost(paired: &[PairedOp<'_>]) -> Vec<String> {
    let mut by_key: BTreeMap<&str, Vec<&PairedOp<'_>>> = BTreeMap::new();
    for op in paired {
        if let Some(key) = op.invoke.key.as_deref() {
            by_key.entry(key).or_default().push(op);
        }
    }
    let mut problems = Vec::new();
    for (key, ops) in by_key {
        let Some(grant) = ops.iter().find(|op| op.invoke.f == "grant-put") else {
            continue;
        };
        let (Some(done), true) = (
            grant.completion,
            grant.invoke.value["keep"] == Value::Bool(true),
        ) else {
            continue;
        };
        let Some(ttl_ns) = done.value["ttl"].as_u64().map(|s| s * 1_000_000_000) else {
            continue;
        };
        let mut alive_until = time(grant.invoke) + ttl_ns;
        let mut keepalives = ops
            .iter()
            .filter(|op| op.invoke.f == "keepalive")
            .filter_map(|op| Some((op.invoke, op.completion?)))
            .filter(|(_, done)| done.value["ttl"].as_i64().is_some_and(|t| t > 0))
            .peekable();
        let mut broken = false;
        let mut reads: Vec<_> = ops
            .iter()
            .filter(|op| op.invoke.f == "get")
            .filter_map(|op| Some((op.invoke, op.completion?)))
            .collect();
        reads.sort_by_key(|(_, done)| time(done));
        for (invoke, done) in reads {
            // Extend the bound with every keep-alive answered before this read returned.
            while let Some((k_invoke, k_done)) = keepalives.next_if(|(_, d)| time(d) <= time(done))
            {
                if broken || time(k_done) >= alive_until {
                    broken = true;
                    continue;
                }
                alive_until = alive_until.max(time(k_invoke) + ttl_ns);
            }
            if done.value["present"] == Value::Bool(false) && !broken && time(done) < alive_until {
                problems.push(format!(
                    "{key}: read at {:.3}s..{:.3}s found the key gone, but its lease was kept \
                     alive and certainly valid until {:.3}s",
                    time(invoke) as f64 / 1e9,
                    time(done) as f64 / 1e9,
                    alive_until as f64 / 1e9
                ));
            }
        }
    }
    problems
}

fn result(validity: Validity, summary: String, details: Option<String>) -> CheckerResult {
    CheckerResult {
        name: "lease: expired keys gone, kept-alive keys never lost".into(),
        validity,
        summary,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpKind;
    use serde_json::json;

    const S: u64 = 1_000_000_000;

    fn op(process: u64, kind: OpKind, f: &str, key: Option<&str>, value: Value, t: u64) -> Op {
        let mut op = Op::new(process, kind, f, key, value);
        op.time_ns = Some(t);
        op
    }

    fn kept(read_at: u64, keepalive_at: u64, present: bool) -> Vec<Op> {
        let k = Some("l/k/0");
        let mut h = vec![
            op(
                0,
                OpKind::Invoke,
                "grant-put",
                k,
                json!({"ttl": 3, "keep": true}),
                0,
            ),
            op(
                0,
                OpKind::Ok,
                "grant-put",
                k,
                json!({"lease": 1, "ttl": 3}),
                S / 10,
            ),
            op(
                0,
                OpKind::Invoke,
                "keepalive",
                k,
                json!({"lease": 1}),
                keepalive_at,
            ),
            op(
                0,
                OpKind::Ok,
                "keepalive",
                k,
                json!({"ttl": 3}),
                keepalive_at + S / 10,
            ),
        ];
        h.push(op(1, OpKind::Invoke, "get", k, Value::Null, read_at));
        h.push(op(
            1,
            OpKind::Ok,
            "get",
            k,
            json!({"present": present}),
            read_at + S / 10,
        ));
        h.push(op(
            2,
            OpKind::Invoke,
            "scan",
            None,
            json!({"prefix": "l/e/"}),
            100 * S,
        ));
        h.push(op(
            2,
            OpKind::Ok,
            "scan",
            None,
            json!({"keys": []}),
            100 * S + 1,
        ));
        h
    }

    /// A kept-alive key found missing while its lease was certainly valid is a violation;
    /// missing after the keep-alives stopped long enough is allowed.
    #[test]
    fn kept_alive_key_must_not_vanish() {
        assert_eq!(
            check(&kept(4 * S, 2 * S, false), 50 * S).validity,
            Validity::Invalid
        );
        assert_eq!(
            check(&kept(4 * S, 2 * S, true), 50 * S).validity,
            Validity::Valid
        );
        // Read at 9 s: the last keep-alive (sent at 2 s) only guarantees 5 s.
        assert_eq!(
            check(&kept(9 * S, 2 * S, false), 50 * S).validity,
            Validity::Valid
        );
        // The keep-alive came back after the grant's bound: the chain is broken.
        assert_eq!(
            check(&kept(4 * S, 3 * S - S / 20, false), 50 * S).validity,
            Validity::Valid
        );
    }

    /// A never-kept-alive key still present in the final scan is a violation.
    #[test]
    fn expired_key_must_be_gone() {
        let e = Some("l/e/0");
        let h = |keys: Value| {
            vec![
                op(
                    0,
                    OpKind::Invoke,
                    "grant-put",
                    e,
                    json!({"ttl": 3, "keep": false}),
                    0,
                ),
                op(
                    0,
                    OpKind::Ok,
                    "grant-put",
                    e,
                    json!({"lease": 1, "ttl": 3}),
                    1,
                ),
                op(
                    1,
                    OpKind::Invoke,
                    "scan",
                    None,
                    json!({"prefix": "l/e/"}),
                    20 * S,
                ),
                op(
                    1,
                    OpKind::Ok,
                    "scan",
                    None,
                    json!({ "keys": keys }),
                    20 * S + 1,
                ),
            ]
        };
        assert_eq!(check(&h(json!([])), 10 * S).validity, Validity::Valid);
        let bad = check(&h(json!(["l/e/0"])), 10 * S);
        assert_eq!(bad.validity, Validity::Invalid);
        assert!(bad.details.expect("names the key").contains("l/e/0"));
        assert_eq!(check(&h(json!([])), 30 * S).validity, Validity::Unknown);
    }
}
