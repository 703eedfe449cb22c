//! Strict serializability of list-append transactions, Elle style (Kingsbury & Alvaro), for
//! histories where each key holds a list and each transaction appends unique values to keys
//! and reads whole lists.
//!
//! ```text
//!  ok/info txns ─▶ version order per key (the longest read; every read must be a prefix)
//!              ─▶ dependency graph: ww (consecutive appends), wr (append → read that ends
//!                 with it), rw (read → append of the next element), real time (T1 returned
//!                 before T2 was invoked)
//!              ─▶ cycle search (Tarjan SCC) ─▶ a cycle = no strict serial order exists
//! ```
//!
//! Also invalid without a cycle: a read that is not a prefix of the version order
//! (incompatible order), a value read twice in one list (duplicate), a value no transaction
//! appended (garbage) or only a failed one did (aborted read). `info` transactions take part
//! through their observed appends but have no completion, so no real-time edges leave them.
//!
//! JSON shapes: invoke `[["append", key, int], ["r", key, null], ...]`; the `ok` completion
//! repeats the micro-operations with reads filled in: `["r", key, [int, ...]]`.

use crate::history::{Op, OpKind};
use crate::report::{CheckerResult, Validity};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One micro-operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Micro {
    /// Append `value` to `key`.
    Append(String, i64),
    /// Read `key`; `None` until the read is known.
    Read(String, Option<Vec<i64>>),
}

/// Parses `[["append", k, v] | ["r", k, list|null], ...]`.
pub fn parse_txn(value: &Value) -> Option<Vec<Micro>> {
    value
        .as_array()?
        .iter()
        .map(|m| {
            let m = m.as_array()?;
            let key = m.get(1)?.as_str()?.to_owned();
            match m.first()?.as_str()? {
                "append" => Some(Micro::Append(key, m.get(2)?.as_i64()?)),
                "r" => {
                    let read = match m.get(2)? {
                        Value::Null => None,
                        list => Some(
                            list.as_array()?
                                .iter()
                                .map(Value::as_i64)
                                .collect::<Option<_>>()?,
                        ),
                    };
                    Some(Micro::Read(key, read))
                }
                _ => None,
            }
        })
        .collect()
}

/// Renders micro-operations in the JSON shape above.
pub fn render_txn(micros: &[Micro]) -> Value {
    Value::Array(
        micros
            .iter()
            .map(|m| match m {
                Micro::Append(k, v) => serde_json::json!(["append", k, v]),
                Micro::Read(k, r) => serde_json::json!(["r", k, r]),
            })
            .collect(),
    )
}

#[derive(Debug, Clone)]
struct Txn {
    /// Event index of the invocation (1-based in messages).
    call: usize,
    micros: Vec<Micro>,
    /// `true` for ok, `false` for info / never completed.
    ok: bool,
}

/// Why two transactions must be ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Edge {
    Ww,
    Wr,
    Rw,
    Realtime,
}

/// Checks a list-append history for strict serializability; see the module docs.
pub fn check(history: &[Op]) -> CheckerResult {
    let (txns, failed_values, realtime) = match collect(history) {
        Ok(collected) => collected,
        Err(problem) => return result(Validity::Unknown, problem, None),
    };
    let writer: HashMap<(&str, i64), usize> = txns
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            t.micros.iter().filter_map(move |m| match m {
                Micro::Append(k, v) => Some(((k.as_str(), *v), i)),
                Micro::Read(..) => None,
            })
        })
        .collect();
    let mut problems = Vec::new();
    let orders = version_orders(&txns, &writer, &failed_values, &mut problems);
    if !problems.is_empty() {
        let summary = format!("{} read anomalies", problems.len());
        return result(Validity::Invalid, summary, Some(problems.join("\n")));
    }
    let mut edges: HashMap<(usize, usize), Edge> = HashMap::new();
    dependency_edges(&txns, &writer, &orders, &mut edges);
    for (a, b) in realtime {
        edges.entry((a, b)).or_insert(Edge::Realtime);
    }
    match find_cycle(txns.len(), &edges) {
        Some(cycle) => {
            let text = describe_cycle(&cycle, &txns, &edges);
            let summary = format!(
                "not strict serializable: a {}-transaction cycle",
                cycle.len()
            );
            result(Validity::Invalid, summary, Some(text))
        }
        None => {
            let summary = format!(
                "strict serializable ({} transactions, {} keys)",
                txns.len(),
                orders.len()
            );
            result(Validity::Valid, summary, None)
        }
    }
}

type Collected = (Vec<Txn>, HashSet<(String, i64)>, Vec<(usize, usize)>);

/// Pairs the history into transactions and computes the real-time edges with Elle's frontier
/// (only the transitive reduction is kept: each new invocation links from the completed
/// transactions no later completion superseded).
fn collect(history: &[Op]) -> Result<Collected, String> {
    let paired = crate::history::pair(history).map_err(|e| e.to_string())?;
    let mut failed = HashSet::new();
    for (index, op) in history.iter().enumerate() {
        if op.kind == OpKind::Fail {
            // The failed op's appends come from its invocation; find it by process.
            let invoke = history[..index]
                .iter()
                .rev()
                .find(|o| o.process == op.process && o.kind == OpKind::Invoke);
            if let Some(micros) = invoke.and_then(|i| parse_txn(&i.value)) {
                for m in micros {
                    if let Micro::Append(k, v) = m {
                        failed.insert((k, v));
                    }
                }
            }
        }
    }
    let mut txns = Vec::new();
    let mut by_call: BTreeMap<usize, usize> = BTreeMap::new();
    let mut by_ret: BTreeMap<usize, usize> = BTreeMap::new();
    for op in &paired {
        let source = op.completion.map_or(&op.invoke.value, |c| &c.value);
        let micros = parse_txn(source)
            .ok_or_else(|| format!("event {} is not a list-append transaction", op.call + 1))?;
        by_call.insert(op.call, txns.len());
        if let Some(ret) = op.ret {
            by_ret.insert(ret, txns.len());
        }
        txns.push(Txn {
            call: op.call,
            micros,
            ok: op.completion.is_some(),
        });
    }
    let mut frontier: Vec<usize> = Vec::new();
    let mut preds: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut realtime = Vec::new();
    for index in 0..history.len() {
        if let Some(&t) = by_call.get(&index) {
            realtime.extend(frontier.iter().map(|&p| (p, t)));
            preds.insert(t, frontier.clone());
        }
        if let Some(&t) = by_ret.get(&index) {
            let before = preds.remove(&t).unwrap_or_default();
            frontier.retain(|p| !before.contains(p));
            frontier.push(t);
        }
    }
    Ok((txns, failed, realtime))
}

fn version_orders<'a>(
    txns: &'a [Txn],
    writer: &HashMap<(&str, i64), usize>,
    failed: &HashSet<(String, i64)>,
    problems: &mut Vec<String>,
) -> BTreeMap<&'a str, Vec<i64>> {
    let mut orders: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for txn in txns.iter().filter(|t| t.ok) {
        for m in &txn.micros {
            if let Micro::Read(k, Some(list)) = m {
                let order = orders.entry(k.as_str()).or_default();
                if list.len() > order.len() {
                    *order = list.clone();
                }
            }
        }
    }
    for txn in txns.iter().filter(|t| t.ok) {
        for m in &txn.micros {
            let Micro::Read(k, Some(list)) = m else {
                continue;
            };
            let at = format!("txn at event {}", txn.call + 1);
            if !orders[k.as_str()].starts_with(list) {
                problems.push(format!(
                    "{at}: read of {k} {list:?} is not a prefix of {:?}",
                    orders[k.as_str()]
                ));
            }
            let mut seen = HashSet::new();
            for v in list {
                if !seen.insert(v) {
                    problems.push(format!("{at}: read of {k} holds {v} twice"));
                } else if failed.contains(&(k.clone(), *v)) {
                    problems.push(format!(
                        "{at}: read of {k} holds {v}, appended by a failed txn"
                    ));
                } else if !writer.contains_key(&(k.as_str(), *v)) {
                    problems.push(format!(
                        "{at}: read of {k} holds {v}, which nobody appended"
                    ));
                }
            }
        }
    }
    orders
}

fn dependency_edges(
    txns: &[Txn],
    writer: &HashMap<(&str, i64), usize>,
    orders: &BTreeMap<&str, Vec<i64>>,
    edges: &mut HashMap<(usize, usize), Edge>,
) {
    let mut add = |a: usize, b: usize, edge: Edge| {
        if a != b {
            edges.entry((a, b)).or_insert(edge);
        }
    };
    for (k, order) in orders {
        for pair in order.windows(2) {
            add(writer[&(*k, pair[0])], writer[&(*k, pair[1])], Edge::Ww);
        }
    }
    for (reader, txn) in txns.iter().enumerate().filter(|(_, t)| t.ok) {
        let own: HashSet<(&str, i64)> = txn
            .micros
            .iter()
            .filter_map(|m| match m {
                Micro::Append(k, v) => Some((k.as_str(), *v)),
                Micro::Read(..) => None,
            })
            .collect();
        for m in &txn.micros {
            let Micro::Read(k, Some(list)) = m else {
                continue;
            };
            // Values this txn appended itself say nothing about other transactions.
            let external: Vec<i64> = list
                .iter()
                .copied()
                .filter(|v| !own.contains(&(k.as_str(), *v)))
                .collect();
            if let Some(last) = external.last() {
                add(writer[&(k.as_str(), *last)], reader, Edge::Wr);
            }
            if let Some(next) = orders[k.as_str()].get(external.len()) {
                add(reader, writer[&(k.as_str(), *next)], Edge::Rw);
            }
        }
    }
}

/// A cycle as a list of nodes (the last links back to the first), if the graph has one.
fn find_cycle(n: usize, edges: &HashMap<(usize, usize), Edge>) -> Option<Vec<usize>> {
    let mut adjacency = vec![Vec::new(); n];
    for &(a, b) in edges.keys() {
        adjacency[a].push(b);
    }
    for list in &mut adjacency {
        list.sort_unstable();
    }
    let component = tarjan(&adjacency).into_iter().find(|c| c.len() > 1)?;
    let members: HashSet<usize> = component.iter().copied().collect();
    // Breadth-first from one member back to itself, staying inside the component.
    let start = component[0];
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in &adjacency[node] {
            if !members.contains(&next) {
                continue;
            }
            if next == start {
                let mut cycle = vec![node];
                while let Some(&p) = parent.get(cycle.last().expect("non-empty")) {
                    cycle.push(p);
                }
                cycle.reverse();
                return Some(cycle);
            }
            if next != start && !parent.contains_key(&next) {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    unreachable!(
        "a strongly connected component of two or more nodes has a cycle through each member"
    )
}

/// Strongly connected components (iterative Tarjan).
fn tarjan(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = adjacency.len();
    let (mut index, mut low, mut on_stack) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut stack, mut components, mut counter) = (Vec::new(), Vec::new(), 0);
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (node, ref mut next)) = work.last_mut() {
            if *next == 0 {
                index[node] = counter;
                low[node] = counter;
                counter += 1;
                stack.push(node);
                on_stack[node] = true;
            }
            if let Some(&child) = adjacency[node].get(*next) {
                *next += 1;
                if index[child] == usize::MAX {
                    work.push((child, 0));
                } else if on_stack[child] {
                    low[node] = low[node].min(index[child]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                while let Some(top) = stack.pop() {
                    on_stack[top] = false;
                    component.push(top);
                    if top == node {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

fn describe_cycle(cycle: &[usize], txns: &[Txn], edges: &HashMap<(usize, usize), Edge>) -> String {
    let mut text = String::from("each transaction must come before the next (events from 1):\n");
    for (i, &node) in cycle.iter().enumerate() {
        let next = cycle[(i + 1) % cycle.len()];
        let edge = edges[&(node, next)];
        let txn = &txns[node];
        text.push_str(&format!(
            "  txn at event {} {}: {}\n    --{edge:?}--> txn at event {}\n",
            txn.call + 1,
            if txn.ok { "(ok)" } else { "(info)" },
            render_txn(&txn.micros),
            txns[next].call + 1
        ));
    }
    text
}

fn result(validity: Validity, summary: String, details: Option<String>) -> CheckerResult {
    CheckerResult {
        name: "strict serializable (list append)".into(),
        validity,
        summary,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn txn(process: u64, invoke: Value, ok: Value) -> [Op; 2] {
        [
            Op::new(process, OpKind::Invoke, "txn", None, invoke),
            Op::new(process, OpKind::Ok, "txn", None, ok),
        ]
    }

    /// Sequential appends and reads that see them are valid.
    #[test]
    fn sequential_history_is_valid() {
        let mut h = Vec::new();
        h.extend(txn(
            0,
            json!([["append", "x", 1]]),
            json!([["append", "x", 1]]),
        ));
        h.extend(txn(
            1,
            json!([["r", "x", null], ["append", "x", 2]]),
            json!([["r", "x", [1]], ["append", "x", 2]]),
        ));
        h.extend(txn(
            0,
            json!([["r", "x", null]]),
            json!([["r", "x", [1, 2]]]),
        ));
        assert_eq!(check(&h).validity, Validity::Valid);
    }

    /// A read that misses a write acknowledged before it began is a real-time cycle.
    #[test]
    fn stale_read_is_a_realtime_cycle() {
        let mut h = Vec::new();
        h.extend(txn(
            0,
            json!([["append", "x", 1]]),
            json!([["append", "x", 1]]),
        ));
        h.extend(txn(
            0,
            json!([["append", "x", 2]]),
            json!([["append", "x", 2]]),
        ));
        h.extend(txn(1, json!([["r", "x", null]]), json!([["r", "x", [1]]])));
        h.extend(txn(
            2,
            json!([["r", "x", null]]),
            json!([["r", "x", [1, 2]]]),
        ));
        let r = check(&h);
        assert_eq!(r.validity, Validity::Invalid, "{r:?}");
        assert!(r.details.expect("cycle").contains("Realtime"));
    }

    /// Write skew across two keys (G2) is a cycle of rw edges even without real time.
    #[test]
    fn write_skew_is_a_cycle() {
        let h = vec![
            Op::new(
                0,
                OpKind::Invoke,
                "txn",
                None,
                json!([["r", "x", null], ["append", "y", 1]]),
            ),
            Op::new(
                1,
                OpKind::Invoke,
                "txn",
                None,
                json!([["r", "y", null], ["append", "x", 1]]),
            ),
            Op::new(
                0,
                OpKind::Ok,
                "txn",
                None,
                json!([["r", "x", []], ["append", "y", 1]]),
            ),
            Op::new(
                1,
                OpKind::Ok,
                "txn",
                None,
                json!([["r", "y", []], ["append", "x", 1]]),
            ),
            Op::new(
                2,
                OpKind::Invoke,
                "txn",
                None,
                json!([["r", "x", null], ["r", "y", null]]),
            ),
            Op::new(
                2,
                OpKind::Ok,
                "txn",
                None,
                json!([["r", "x", [1]], ["r", "y", [1]]]),
            ),
        ];
        assert_eq!(check(&h).validity, Validity::Invalid);
    }

    /// Incompatible orders, duplicates, garbage and aborted reads are anomalies.
    #[test]
    fn read_anomalies_are_invalid() {
        let base = || {
            let mut h = Vec::new();
            h.extend(txn(
                0,
                json!([["append", "x", 1]]),
                json!([["append", "x", 1]]),
            ));
            h.extend(txn(
                0,
                json!([["append", "x", 2]]),
                json!([["append", "x", 2]]),
            ));
            h.push(Op::new(
                3,
                OpKind::Invoke,
                "txn",
                None,
                json!([["append", "x", 9]]),
            ));
            h.push(Op::new(3, OpKind::Fail, "txn", None, json!(null)));
            h
        };
        for bad in [json!([1, 2, 1]), json!([2]), json!([1, 7]), json!([1, 9])] {
            let mut h = base();
            h.extend(txn(
                1,
                json!([["r", "x", null]]),
                json!([["r", "x", bad.clone()]]),
            ));
            h.extend(txn(
                2,
                json!([["r", "x", null]]),
                json!([["r", "x", [1, 2]]]),
            ));
            assert_eq!(check(&h).validity, Validity::Invalid, "{bad}");
        }
    }

    /// Tarjan finds the one non-trivial component.
    #[test]
    fn tarjan_components() {
        let adjacency = vec![vec![1], vec![2], vec![0, 3], vec![]];
        let mut components: Vec<Vec<usize>> = tarjan(&adjacency)
            .into_iter()
            .map(|mut c| {
                c.sort_unstable();
                c
            })
            .collect();
        components.sort();
        assert_eq!(components, vec![vec![0, 1, 2], vec![3]]);
    }
}
