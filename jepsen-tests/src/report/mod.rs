//! A run's report: per-checker verdicts, the fault timeline, counterexamples and the latency
//! plot, written into the run directory.
//!
//! ```text
//!  <run dir>/report.json   everything below, machine-readable
//!            history.jsonl the recorded operations (`skiff-jepsen check --format skiff`)
//!            timeline.txt  the fault log, one line per fault start/heal
//!            latency.svg   latency over time, faults shaded
//!            index.html    the page a person opens first
//!            m<i>.log      each member's log
//! ```

pub mod svg;

use crate::history::{Op, OpKind};
use crate::nemesis::Timeline;
use serde::Serialize;
use std::fmt;
use std::path::Path;

/// A checker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validity {
    /// The property holds on this history.
    Valid,
    /// The property is violated; see the counterexample.
    Invalid,
    /// The checker could not decide (budget exhausted, or too little data).
    Unknown,
}

impl Validity {
    /// Invalid beats unknown beats valid (as Jepsen's composed checker).
    pub fn merge(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            (Valid, Valid) => Valid,
        }
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Validity::Valid => "valid",
            Validity::Invalid => "INVALID",
            Validity::Unknown => "unknown",
        })
    }
}

/// One checker's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckerResult {
    /// The checker's name, e.g. `linearizable (versioned register)`.
    pub name: String,
    /// Its verdict.
    pub validity: Validity,
    /// One line for people, e.g. `not linearizable` with the key.
    pub summary: String,
    /// The counterexample or the undecided reason, when there is one.
    pub details: Option<String>,
}

/// Counts of operations by completion.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OpCounts {
    /// Operations invoked.
    pub invoked: usize,
    /// Completed ok.
    pub ok: usize,
    /// Definitely failed.
    pub fail: usize,
    /// Unknown outcome.
    pub info: usize,
}

impl OpCounts {
    /// Counts the events of `history`.
    pub fn of(history: &[Op]) -> OpCounts {
        let mut counts = OpCounts::default();
        for op in history {
            match op.kind {
                OpKind::Invoke => counts.invoked += 1,
                OpKind::Ok => counts.ok += 1,
                OpKind::Fail => counts.fail += 1,
                OpKind::Info => counts.info += 1,
            }
        }
        counts
    }
}

/// Everything about one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The overall verdict: the merge of every checker's.
    pub validity: Validity,
    /// The seed that reproduces the schedule and the workload's choices.
    pub seed: u64,
    /// The workload's name.
    pub workload: String,
    /// The nemesis kinds enabled.
    pub nemesis: Vec<String>,
    /// Requested run length, seconds.
    pub time_limit_s: f64,
    /// Cluster size.
    pub members: usize,
    /// The server binary and its extra flags.
    pub server: String,
    /// The exact command that reproduces this run.
    pub command: String,
    /// Per-checker results.
    pub checkers: Vec<CheckerResult>,
    /// Operation counts.
    pub ops: OpCounts,
    /// The faults as they happened.
    pub timeline: Timeline,
    /// Nanoseconds from the start of the run to the end of the final phase.
    pub duration_ns: u64,
}

impl RunReport {
    /// A short multi-line summary for the terminal.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "workload {} | nemesis {} | seed {} | {} ops ({} ok, {} fail, {} info) | {} faults\n",
            self.workload,
            self.nemesis.join(","),
            self.seed,
            self.ops.invoked,
            self.ops.ok,
            self.ops.fail,
            self.ops.info,
            self.timeline.faults.len()
        );
        for checker in &self.checkers {
            text.push_str(&format!(
                "  {}: {} ({})\n",
                checker.name, checker.validity, checker.summary
            ));
        }
        text.push_str(&format!("verdict: {}\n", self.validity));
        text
    }
}

/// Writes `report.json`, `history.jsonl`, `timeline.txt`, `latency.svg` and `index.html`.
pub fn write_run_dir(dir: &Path, report: &RunReport, history: &[Op]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).expect("the report holds only plain data");
    std::fs::write(dir.join("report.json"), json)?;
    let file = std::fs::File::create(dir.join("history.jsonl"))?;
    crate::history::write_jsonl(history, std::io::BufWriter::new(file)).map_err(
        |err| match err {
            crate::history::HistoryError::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        },
    )?;
    std::fs::write(dir.join("timeline.txt"), report.timeline.to_text())?;
    let points = svg::latency_points(history);
    let plot = svg::latency_svg(&points, &report.timeline.faults, report.duration_ns);
    std::fs::write(dir.join("latency.svg"), plot)?;
    std::fs::write(dir.join("index.html"), html(report))?;
    Ok(())
}

/// The HTML page: verdict table, the plot, the timeline and counterexamples.
pub fn html(report: &RunReport) -> String {
    let e = svg::escape;
    let color = |v: Validity| match v {
        Validity::Valid => "#2a7d2a",
        Validity::Invalid => "#d02020",
        Validity::Unknown => "#e08a00",
    };
    let mut rows = String::new();
    let mut details = String::new();
    for checker in &report.checkers {
        rows.push_str(&format!(
            "<tr><td>{}</td><td style=\"color:{}\"><b>{}</b></td><td>{}</td></tr>\n",
            e(&checker.name),
            color(checker.validity),
            checker.validity,
            e(&checker.summary)
        ));
        if let Some(text) = &checker.details {
            details.push_str(&format!(
                "<h3>{}</h3><pre>{}</pre>\n",
                e(&checker.name),
                e(text)
            ));
        }
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>skiff-jepsen {seed}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:left}}\
         pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style></head><body>\n\
         <h1 style=\"color:{vcolor}\">{validity}</h1>\n\
         <p>workload <b>{workload}</b>, nemesis <b>{nemesis}</b>, seed <b>{seed}</b>, {members} members, \
         {secs:.0} s; server <code>{server}</code></p>\n<p>reproduce: <code>{command}</code></p>\n\
         <table><tr><th>checker</th><th>verdict</th><th>summary</th></tr>\n{rows}</table>\n\
         <p>operations: {invoked} invoked, {ok} ok, {fail} fail, {info} info (unknown outcome)</p>\n\
         <h2>Latency</h2><p>One dot per operation at its invocation time; shaded bands are faults \
         (hover for details).</p><img src=\"latency.svg\" alt=\"latency plot\">\n\
         <h2>Faults</h2><pre>{timeline}</pre>\n{details}\
         <p>Files: <a href=\"report.json\">report.json</a>, <a href=\"history.jsonl\">history.jsonl</a>, \
         <a href=\"timeline.txt\">timeline.txt</a></p></body></html>\n",
        seed = report.seed,
        vcolor = color(report.validity),
        validity = report.validity,
        workload = e(&report.workload),
        nemesis = e(&report.nemesis.join(", ")),
        members = report.members,
        secs = report.time_limit_s,
        server = e(&report.server),
        command = e(&report.command),
        invoked = report.ops.invoked,
        ok = report.ops.ok,
        fail = report.ops.fail,
        info = report.ops.info,
        timeline = e(&report.timeline.to_text()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Invalid dominates, then unknown.
    #[test]
    fn validity_merges_like_jepsen() {
        use Validity::*;
        assert_eq!(Valid.merge(Unknown), Unknown);
        assert_eq!(Unknown.merge(Invalid), Invalid);
        assert_eq!(Valid.merge(Valid), Valid);
    }
}
