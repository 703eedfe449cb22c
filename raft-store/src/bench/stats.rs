//! Latency recording: an HDR histogram of microseconds (3 significant digits, 1 µs to 1 h).
//! Client tasks record through a [`Recorder`], which gathers values and adds them to the
//! run's one shared histogram a batch at a time: a histogram is ~360 KB of counters, and one
//! per client (1,000 at the largest runs) cost cache misses on every record, 360 MB of
//! zeroed memory and a long merge — a tenth of skiff-bench's CPU.
//!
//! [`Latency::summary`] gives the percentiles the report prints; [`Latency::buckets`] gives
//! the printed bucket histogram (geometrically spaced, so a long tail stays readable).

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Values a [`Recorder`] gathers before it takes the shared histogram's lock.
const RECORDER_BATCH: usize = 256;

/// Highest latency the histogram tells apart: one hour, in microseconds. Slower requests
/// are recorded as one hour (they are far past any request timeout anyway).
const HIGHEST_TRACKABLE_US: u64 = 3_600_000_000;
/// Significant decimal digits kept per recorded value (0.1% relative error).
const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

/// The percentiles a report prints, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Fastest request.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest request.
    pub max: f64,
}

/// One bucket of the printed histogram: requests with latency in `(previous le_ms, le_ms]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound of the bucket, in milliseconds.
    pub le_ms: f64,
    /// Requests in the bucket.
    pub count: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        Latency {
            hist: Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_US, SIGNIFICANT_DIGITS)
                .expect("static histogram bounds are valid"),
        }
    }

    /// Records one request's latency.
    pub fn record(&mut self, d: Duration) {
        self.record_us(d.as_micros() as u64);
    }

    /// Records one latency in microseconds.
    fn record_us(&mut self, us: u64) {
        self.hist
            .saturating_record(us.clamp(1, HIGHEST_TRACKABLE_US));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        self.hist
            .add(&other.hist)
            .expect("histograms with the same bounds always merge");
    }

    /// Requests recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The percentiles, all zero when nothing was recorded.
    pub fn summary(&self) -> Summary {
        if self.hist.is_empty() {
            return Summary {
                min: 0.0,
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        let q = |q: f64| ms(self.hist.value_at_quantile(q));
        Summary {
            min: ms(self.hist.min()),
            mean: self.hist.mean() / 1000.0,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: ms(self.hist.max()),
        }
    }

    /// Up to `n` buckets whose upper bounds grow geometrically from the fastest to the
    /// slowest request; empty when nothing was recorded.
    pub fn buckets(&self, n: usize) -> Vec<Bucket> {
        if self.hist.is_empty() || n == 0 {
            return Vec::new();
        }
        let bounds = geometric_bounds(self.hist.min(), self.hist.max(), n);
        let mut counts = vec![0u64; bounds.len()];
        for v in self.hist.iter_recorded() {
            let value = self.hist.lowest_equivalent(v.value_iterated_to());
            let i = bounds.partition_point(|&b| b < value).min(bounds.len() - 1);
            counts[i] += v.count_at_value();
        }
        bounds
            .iter()
            .zip(counts)
            .map(|(&b, count)| Bucket {
                le_ms: ms(b),
                count,
            })
            .collect()
    }
}

/// One client's way into a shared histogram: values are gathered locally and added
/// [`RECORDER_BATCH`] at a time, and the rest on [`Recorder::flush`] or drop.
pub struct Recorder {
    shared: Arc<Mutex<Latency>>,
    values: Vec<u64>,
}

impl Recorder {
    /// A recorder adding to `shared`.
    pub fn new(shared: Arc<Mutex<Latency>>) -> Recorder {
        Recorder {
            shared,
            values: Vec::with_capacity(RECORDER_BATCH),
        }
    }

    /// Records one request's latency.
    pub fn record(&mut self, d: Duration) {
        self.values.push(d.as_micros() as u64);
        if self.values.len() >= RECORDER_BATCH {
            self.flush();
        }
    }

    /// Adds the gathered values to the shared histogram.
    pub fn flush(&mut self) {
        if self.values.is_empty() {
            return;
        }
        // A client task that panicked while holding the lock poisons it; the counts
        // themselves are still whole (each add is one counter update).
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        for &us in &self.values {
            shared.record_us(us);
        }
        self.values.clear();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// `n` upper bounds (µs) from `lo` to `hi`, spaced by a constant factor; fewer when the
/// range is too narrow to split. The last bound is always `hi`.
pub fn geometric_bounds(lo: u64, hi: u64, n: usize) -> Vec<u64> {
    let lo = lo.max(1);
    if hi <= lo || n <= 1 {
        return vec![hi.max(lo)];
    }
    let factor = (hi as f64 / lo as f64).powf(1.0 / (n - 1) as f64);
    let mut bounds: Vec<u64> = (0..n - 1)
        .map(|i| (lo as f64 * factor.powi(i as i32)).round() as u64)
        .collect();
    bounds.push(hi);
    bounds.dedup();
    bounds
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    // Percentiles of a known distribution come out within the histogram's precision.
    #[test]
    fn percentiles() {
        let mut l = Latency::new();
        for us in 1..=10_000u64 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.002 + 0.001;
        assert!(close(s.min, 0.001), "{s:?}");
        assert!(close(s.p50, 5.0), "{s:?}");
        assert!(close(s.p90, 9.0), "{s:?}");
        assert!(close(s.p99, 9.9), "{s:?}");
        assert!(close(s.p999, 9.99), "{s:?}");
        assert!(close(s.max, 10.0), "{s:?}");
        assert!(close(s.mean, 5.0), "{s:?}");
    }

    // Merging per-task histograms counts every request once.
    #[test]
    fn merge_adds_counts() {
        let (mut a, mut b) = (Latency::new(), Latency::new());
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(3));
        b.record(Duration::from_millis(5));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert!((a.summary().max - 5.0).abs() < 0.01);
    }

    // Recorders sharing a histogram lose no value, whether they flush by batch or on drop.
    #[test]
    fn recorders_fill_one_histogram() {
        let shared = Arc::new(Mutex::new(Latency::new()));
        let mut a = Recorder::new(shared.clone());
        let mut b = Recorder::new(shared.clone());
        for i in 0..(RECORDER_BATCH as u64 + 10) {
            a.record(Duration::from_micros(100 + i));
        }
        b.record(Duration::from_millis(7));
        assert_eq!(shared.lock().unwrap().count(), RECORDER_BATCH as u64);
        a.flush();
        drop(b);
        let l = shared.lock().unwrap();
        assert_eq!(l.count(), RECORDER_BATCH as u64 + 11);
        assert!((l.summary().max - 7.0).abs() < 0.01);
    }

    // Buckets partition every request, end at the maximum, and grow geometrically.
    #[test]
    fn buckets_partition_requests() {
        let mut l = Latency::new();
        for us in [100u64, 150, 200, 1_000, 5_000, 100_000] {
            l.record(Duration::from_micros(us));
        }
        let b = l.buckets(10);
        assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), 6);
        assert!((b.last().unwrap().le_ms - 100.0).abs() < 0.1);
        assert!(b.windows(2).all(|w| w[0].le_ms < w[1].le_ms));
        assert_eq!(b[0].count, 1, "{b:?}");
        assert!(Latency::new().buckets(10).is_empty());
    }

    // Bounds degrade gracefully for narrow ranges.
    #[test]
    fn bounds_of_narrow_ranges() {
        assert_eq!(geometric_bounds(5, 5, 10), vec![5]);
        assert_eq!(geometric_bounds(1, 1000, 4), vec![1, 10, 100, 1000]);
        assert_eq!(geometric_bounds(10, 12, 10), vec![10, 11, 12]);
    }

    // An empty histogram reports zeros rather than garbage.
    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Latency::new().summary().max, 0.0);
        assert_eq!(Latency::new().count(), 0);
    }
}
