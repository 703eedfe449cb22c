//! The watch guarantees, checked on what watchers saw (etcd's Ordered, Unique, Reliable).
//!
//! All watchers watch the same prefix from the same start revision, and the workload's
//! writers only `Put` single keys under that prefix, so the cluster's revisions after the start
//! are exactly one event each. Then:
//!
//! * every watcher's revisions rise by exactly 1 (no gap, no duplicate, no reordering);
//! * every watcher's sequence is a prefix of the longest one (the canonical sequence): same
//!   key, value and revision at every position;
//! * every acknowledged put appears in the canonical sequence, if a watcher reached the final
//!   revision (otherwise the check is unknown: the watchers never caught up).

use crate::report::{CheckerResult, Validity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One event as a watcher received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The event's `mod_revision`.
    pub revision: i64,
    /// The key.
    pub key: String,
    /// The value (empty for deletes).
    pub value: String,
    /// Whether it is a delete.
    pub delete: bool,
}

/// What the checker needs.
#[derive(Debug, Clone, Default)]
pub struct WatchObservation {
    /// The revision every watcher started from.
    pub start_revision: i64,
    /// The cluster's revision once all writes had stopped (0 if it could not be read).
    pub final_revision: i64,
    /// Each watcher's events, in arrival order, with its name.
    pub logs: Vec<(String, Vec<WatchEvent>)>,
    /// `(key, value)` of every acknowledged put.
    pub acknowledged: Vec<(String, String)>,
}

/// Checks the watch guarantees; see the module docs.
pub fn check(observation: &WatchObservation) -> CheckerResult {
    let mut problems = Vec::new();
    for (name, log) in &observation.logs {
        problems.extend(order_problems(name, observation.start_revision, log));
    }
    let canonical = observation
        .logs
        .iter()
        .map(|(_, log)| log)
        .max_by_key(|log| log.len())
        .cloned()
        .unwrap_or_default();
    for (name, log) in &observation.logs {
        if let Some(position) = log.iter().zip(&canonical).position(|(a, b)| a != b) {
            problems.push(format!(
                "{name}: event {position} is {:?} but the canonical sequence has {:?}",
                log[position], canonical[position]
            ));
        }
    }
    if !problems.is_empty() {
        let summary = format!("{} watch guarantee violations", problems.len());
        return result(Validity::Invalid, summary, Some(problems.join("\n")));
    }
    let last = canonical
        .last()
        .map_or(observation.start_revision - 1, |e| e.revision);
    if observation.final_revision == 0 || last < observation.final_revision {
        let summary = format!(
            "no watcher reached the final revision {} (longest stopped at {last})",
            observation.final_revision
        );
        return result(Validity::Unknown, summary, None);
    }
    let seen: BTreeSet<(&str, &str)> = canonical
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let missing: Vec<String> = observation
        .acknowledged
        .iter()
        .filter(|(k, v)| !seen.contains(&(k.as_str(), v.as_str())))
        .map(|(k, v)| format!("acknowledged put {k}={v} never delivered"))
        .collect();
    if !missing.is_empty() {
        let summary = format!(
            "{} acknowledged puts missing from every watch",
            missing.len()
        );
        return result(Validity::Invalid, summary, Some(missing.join("\n")));
    }
    let caught_up = observation
        .logs
        .iter()
        .filter(|(_, log)| log.len() == canonical.len())
        .count();
    let summary = format!(
        "{} events, {caught_up}/{} watchers complete, all {} acknowledged puts delivered",
        canonical.len(),
        observation.logs.len(),
        observation.acknowledged.len()
    );
    result(Validity::Valid, summary, None)
}

fn order_problems(name: &str, start: i64, log: &[WatchEvent]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expected = start;
    for event in log {
        if event.revision != expected {
            let what = if event.revision < expected {
                "duplicate or reordered"
            } else {
                "gap"
            };
            problems.push(format!(
                "{name}: {what}: expected revision {expected}, got {} ({})",
                event.revision, event.key
            ));
        }
        expected = event.revision + 1;
    }
    problems
}

fn result(validity: Validity, summary: String, details: Option<String>) -> CheckerResult {
    CheckerResult {
        name: "watch: ordered, gap-free, duplicate-free, one canonical sequence".into(),
        validity,
        summary,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(revision: i64, value: &str) -> WatchEvent {
        WatchEvent {
            revision,
            key: "w/0".into(),
            value: value.into(),
            delete: false,
        }
    }

    fn observation(logs: Vec<Vec<WatchEvent>>) -> WatchObservation {
        WatchObservation {
            start_revision: 5,
            final_revision: 7,
            logs: logs
                .into_iter()
                .enumerate()
                .map(|(i, l)| (format!("m{i}"), l))
                .collect(),
            acknowledged: vec![("w/0".into(), "a".into()), ("w/0".into(), "c".into())],
        }
    }

    /// Complete identical logs and prefixes of them are valid.
    #[test]
    fn prefixes_of_one_sequence_are_valid() {
        let full = vec![event(5, "a"), event(6, "b"), event(7, "c")];
        let obs = observation(vec![full.clone(), full[..1].to_vec()]);
        assert_eq!(check(&obs).validity, Validity::Valid);
    }

    /// A gap, a duplicate, a divergent event and a lost put are each invalid.
    #[test]
    fn violations_are_invalid() {
        let full = vec![event(5, "a"), event(6, "b"), event(7, "c")];
        let gap = vec![event(5, "a"), event(7, "c")];
        let dup = vec![event(5, "a"), event(5, "a"), event(6, "b")];
        let diverge = vec![event(5, "a"), event(6, "x")];
        for bad in [gap, dup, diverge] {
            let obs = observation(vec![full.clone(), bad.clone()]);
            assert_eq!(check(&obs).validity, Validity::Invalid, "{bad:?}");
        }
        let mut obs = observation(vec![full.clone()]);
        obs.acknowledged.push(("w/0".into(), "zz".into()));
        let lost = check(&obs);
        assert_eq!(lost.validity, Validity::Invalid);
        assert!(lost.details.expect("names it").contains("w/0=zz"));
    }

    /// Watchers that never reach the final revision leave the check undecided.
    #[test]
    fn incomplete_watchers_are_unknown() {
        let obs = observation(vec![vec![event(5, "a")]]);
        assert_eq!(check(&obs).validity, Validity::Unknown);
    }
}
