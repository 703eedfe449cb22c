//! The result of a run and its two renderings: a text summary in the spirit of etcd's
//! benchmark (totals, percentiles, a bucket histogram with bars) and one JSON object for
//! scripts (`ops_per_sec`, `errors`, `latency_ms` {`p50`, `p90`, `p99`, `p999`, `max`}, …).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::stats::{Bucket, Latency, Summary};

/// Buckets in the printed histogram.
pub const HISTOGRAM_BUCKETS: usize = 12;
/// Width of the longest bar in the text histogram, in characters.
const BAR_WIDTH: u64 = 40;

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The workload's name (`put`, `range`, …).
    pub workload: String,
    /// Requests that succeeded (for `watch-latency`: events received).
    pub requests: u64,
    /// Requests that failed (for `watch-latency`: failed puts plus events never received).
    pub errors: u64,
    /// Wall-clock time of the measured phase, in seconds.
    pub elapsed_secs: f64,
    /// `requests / elapsed_secs`.
    pub ops_per_sec: f64,
    /// Latency percentiles of successful requests (for `watch-latency`: put-to-event delay).
    pub latency_ms: Summary,
    /// Bucketed latency distribution.
    pub histogram: Vec<Bucket>,
    /// Distinct error messages and how often each occurred (capped; see `driver`).
    pub error_messages: BTreeMap<String, u64>,
    /// Extra figures of `watch-latency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchFigures>,
}

/// The writers' and watchers' side of `watch-latency`.
#[derive(Debug, Clone, Serialize)]
pub struct WatchFigures {
    /// Watchers that were created.
    pub watchers: usize,
    /// Puts that succeeded.
    pub puts: u64,
    /// Puts that failed.
    pub put_errors: u64,
    /// Events expected: successful puts times watchers.
    pub expected_events: u64,
    /// Puts per second the writers achieved.
    pub put_ops_per_sec: f64,
    /// Latency of the puts themselves.
    pub put_latency_ms: Summary,
}

impl Report {
    /// A report of `latency` (successful requests) and `errors` over `elapsed_secs`.
    pub fn new(
        workload: &str,
        latency: &Latency,
        errors: BTreeMap<String, u64>,
        elapsed_secs: f64,
    ) -> Report {
        let requests = latency.count();
        Report {
            workload: workload.to_string(),
            requests,
            errors: errors.values().sum(),
            elapsed_secs,
            ops_per_sec: rate(requests, elapsed_secs),
            latency_ms: latency.summary(),
            histogram: latency.buckets(HISTOGRAM_BUCKETS),
            error_messages: errors,
            watch: None,
        }
    }

    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serialises")
    }

    /// The human-readable summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let l = &self.latency_ms;
        let _ = writeln!(out, "Summary ({}):", self.workload);
        let _ = writeln!(out, "  Total:\t{:.4} secs.", self.elapsed_secs);
        let _ = writeln!(out, "  Requests:\t{}", self.requests);
        let _ = writeln!(out, "  Errors:\t{}", self.errors);
        let _ = writeln!(out, "  Requests/sec:\t{:.1}", self.ops_per_sec);
        let _ = writeln!(
            out,
            "  Latency (ms):\tmin {:.3}  mean {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.min, l.mean, l.p50, l.p90, l.p99, l.p999, l.max
        );
        if let Some(w) = &self.watch {
            let p = &w.put_latency_ms;
            let _ = writeln!(
                out,
                "  Watch:\t{} watchers, {} puts ({} failed) at {:.1}/s, {} of {} events received",
                w.watchers,
                w.puts,
                w.put_errors,
                w.put_ops_per_sec,
                self.requests,
                w.expected_events
            );
            let _ = writeln!(
                out,
                "  Put latency (ms):\tp50 {:.3}  p99 {:.3}  max {:.3}",
                p.p50, p.p99, p.max
            );
        }
        out.push_str(&histogram_text(&self.histogram));
        if !self.error_messages.is_empty() {
            let _ = writeln!(out, "\nError distribution:");
            for (msg, n) in &self.error_messages {
                let _ = writeln!(out, "  [{n}]\t{msg}");
            }
        }
        out
    }
}

/// The bucket histogram with bars scaled to the fullest bucket.
pub fn histogram_text(buckets: &[Bucket]) -> String {
    let mut out = String::from("\nResponse time histogram (ms, upper bound):\n");
    let top = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    for b in buckets {
        let bar = "∎".repeat((b.count * BAR_WIDTH).div_ceil(top) as usize);
        let _ = writeln!(out, "  {:>10.3} [{:>8}]\t|{bar}", b.le_ms, b.count);
    }
    out
}

/// `n / secs`, zero for an empty interval.
pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample() -> Report {
        let mut l = Latency::new();
        for ms in [1u64, 2, 2, 3, 50] {
            l.record(Duration::from_millis(ms));
        }
        let errors = BTreeMap::from([("request timed out".to_string(), 2)]);
        Report::new("put", &l, errors, 0.5)
    }

    // The JSON carries the fields scripts read, with the documented names.
    #[test]
    fn json_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(v["workload"], "put");
        assert_eq!(v["requests"], 5);
        assert_eq!(v["errors"], 2);
        assert_eq!(v["ops_per_sec"], 10.0);
        for k in ["min", "p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_ms"][k].as_f64().unwrap() > 0.0, "{k}");
        }
        assert!(v["histogram"].as_array().unwrap().len() > 1);
        assert!(v.get("watch").is_none());
    }

    // The text shows totals, the histogram with bars and the error messages.
    #[test]
    fn text_shows_everything() {
        let t = sample().to_text();
        assert!(t.contains("Requests/sec:\t10.0"), "{t}");
        assert!(t.contains("Response time histogram"), "{t}");
        assert!(t.contains("∎"), "{t}");
        assert!(t.contains("[2]\trequest timed out"), "{t}");
    }

    // The fullest bucket gets the full bar and an empty bucket gets none.
    #[test]
    fn bars_scale_to_the_fullest_bucket() {
        let b = [
            Bucket {
                le_ms: 1.0,
                count: 10,
            },
            Bucket {
                le_ms: 2.0,
                count: 0,
            },
        ];
        let t = histogram_text(&b);
        let lines: Vec<&str> = t.lines().skip(2).collect();
        assert_eq!(lines[0].matches('∎').count(), BAR_WIDTH as usize);
        assert_eq!(lines[1].matches('∎').count(), 0);
    }
}
