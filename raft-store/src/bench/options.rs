//! The command line of `skiff-bench`, shaped like etcd's `tools/benchmark`:
//! `skiff-bench --endpoints A,B,C [--target-leader] --conns N --clients M <workload> [flags]`.
//!
//! Global flags choose where the load goes and how many connections and concurrent clients
//! carry it; each workload subcommand has its own flags plus the shared [`LoadOptions`]
//! (`--total` or `--duration`, `--rate`). [`LoadOptions::plan`] validates them.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::BenchError;

/// How long one request may take before it counts as an error (a stuck request must not hang
/// the run).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Requests per run when neither `--total` nor `--duration` is given.
pub const DEFAULT_TOTAL: u64 = 10_000;

/// `skiff-bench` flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "skiff-bench",
    version,
    about = "Load generator for etcd v3 endpoints (skiff-store or etcd)"
)]
pub struct Options {
    /// Comma-separated endpoints (`host:port` or `http://host:port`).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Send every request to the leader (found through Maintenance.Status).
    #[arg(long)]
    pub target_leader: bool,
    /// gRPC connections; connection i goes to endpoint i mod (number of endpoints).
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Concurrent clients (each has one request in flight), sharing the connections
    /// round-robin. For `watch-latency` these are the writers.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// A request slower than this counts as an error.
    #[arg(long, default_value_t = DEFAULT_REQUEST_TIMEOUT_MS)]
    pub request_timeout_ms: u64,
    /// Print one JSON object instead of the text summary.
    #[arg(long)]
    pub json: bool,
    /// The workload.
    #[command(subcommand)]
    pub workload: Workload,
}

/// The workloads.
#[derive(Subcommand, Debug, Clone)]
pub enum Workload {
    /// Puts of fixed-size keys and values.
    Put(PutOptions),
    /// Ranges (gets) of one key, a key range or a prefix.
    Range(RangeOptions),
    /// Txns that each put `--txn-ops` keys.
    TxnPut(TxnPutOptions),
    /// Writers put one key; N watchers on it report the delay from send to event.
    WatchLatency(WatchLatencyOptions),
    /// Each client keeps one lease alive through a KeepAlive stream, one request at a time.
    LeaseKeepalive(LeaseKeepaliveOptions),
}

impl Workload {
    /// The subcommand's name, as reports print it.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Put(_) => "put",
            Workload::Range(_) => "range",
            Workload::TxnPut(_) => "txn-put",
            Workload::WatchLatency(_) => "watch-latency",
            Workload::LeaseKeepalive(_) => "lease-keepalive",
        }
    }
}

/// How much load a workload sends and how fast.
#[derive(Args, Debug, Clone, Default)]
pub struct LoadOptions {
    /// Requests in total (default 10000 when --duration is not given).
    #[arg(long, conflicts_with = "duration")]
    pub total: Option<u64>,
    /// Run for this long instead of a fixed total (`30s`, `500ms`, `2m`, or seconds).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Requests per second over all clients; 0 means as fast as the clients go.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many requests have been started.
    Total(u64),
    /// When this much time has passed since the first request.
    After(Duration),
}

/// The validated load of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadPlan {
    /// When to stop.
    pub stop: Stop,
    /// Requests per second over all clients, if limited.
    pub rate: Option<u64>,
}

impl LoadOptions {
    /// Checks the flags and turns them into a plan.
    pub fn plan(&self) -> Result<LoadPlan, BenchError> {
        let stop = match (self.total, self.duration) {
            (Some(0), _) => return Err(invalid("--total must be at least 1")),
            (_, Some(d)) if d.is_zero() => return Err(invalid("--duration must be positive")),
            (Some(n), None) => Stop::Total(n),
            (None, Some(d)) => Stop::After(d),
            (None, None) => Stop::Total(DEFAULT_TOTAL),
            (Some(_), Some(_)) => return Err(invalid("give --total or --duration, not both")),
        };
        Ok(LoadPlan {
            stop,
            rate: (self.rate > 0).then_some(self.rate),
        })
    }
}

/// Key and value shape shared by `put` and `txn-put`.
#[derive(Args, Debug, Clone)]
pub struct KeyValueOptions {
    /// Key size in bytes (keys are zero-padded decimal numbers of the key space).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Distinct keys written. Unlike etcd's benchmark (default 1, which writes one key over
    /// and over), the default spreads writes over 100,000 keys.
    #[arg(long, default_value_t = 100_000)]
    pub key_space_size: u64,
    /// Write keys 0, 1, 2, … (wrapping at the key space) instead of random ones.
    #[arg(long)]
    pub sequential_keys: bool,
}

/// `put` flags.
#[derive(Args, Debug, Clone)]
pub struct PutOptions {
    #[command(flatten)]
    pub load: LoadOptions,
    #[command(flatten)]
    pub kv: KeyValueOptions,
}

/// Read consistency of `range`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable (the default): the member confirms it reads the latest data.
    L,
    /// Serializable: the member serves its local state.
    S,
}

/// `range` flags.
#[derive(Args, Debug, Clone)]
pub struct RangeOptions {
    /// The key (or start of the range) to read.
    pub key: String,
    /// End of the range `[key, end)`; omit to read one key.
    pub end: Option<String>,
    #[command(flatten)]
    pub load: LoadOptions,
    /// `l` (linearizable) or `s` (serializable).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// At most this many keys per response; 0 means no limit.
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Read every key with `key` as prefix.
    #[arg(long, conflicts_with = "end")]
    pub prefix: bool,
    /// Return only the count of keys.
    #[arg(long)]
    pub count_only: bool,
    /// Return keys without values.
    #[arg(long)]
    pub keys_only: bool,
}

/// `txn-put` flags.
#[derive(Args, Debug, Clone)]
pub struct TxnPutOptions {
    #[command(flatten)]
    pub load: LoadOptions,
    #[command(flatten)]
    pub kv: KeyValueOptions,
    /// Puts per Txn (etcd allows 128 by default).
    #[arg(long, default_value_t = 1)]
    pub txn_ops: usize,
}

/// `watch-latency` flags.
#[derive(Args, Debug, Clone)]
pub struct WatchLatencyOptions {
    /// Puts in total (the writers are the global --clients).
    #[arg(long, default_value_t = 1_000)]
    pub put_total: u64,
    /// Puts per second over all writers; 0 means as fast as they go.
    #[arg(long, default_value_t = 100)]
    pub put_rate: u64,
    /// Watchers in total, all on the same key.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Watch streams the watchers are spread over (streams go round-robin over --conns).
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// The watched key.
    #[arg(long, default_value = "watch-latency-key")]
    pub key: String,
    /// Value size in bytes (at least 8: the value carries the put's sequence number).
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
    /// How long to wait, after the last put, for events still in flight.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub drain_timeout: Duration,
}

/// `lease-keepalive` flags.
#[derive(Args, Debug, Clone)]
pub struct LeaseKeepaliveOptions {
    #[command(flatten)]
    pub load: LoadOptions,
    /// TTL of each client's lease, in seconds.
    #[arg(long, default_value_t = 60)]
    pub ttl_secs: i64,
}

fn invalid(msg: &str) -> BenchError {
    BenchError::InvalidOptions(msg.to_string())
}

/// Parses `250ms`, `30s`, `2m` or a plain number of seconds (fractions allowed).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale_secs) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 500ms, 30s, 2m)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{text}` is not a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(value * scale_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Durations parse in the units the help text promises and reject garbage.
    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    // --total and --duration pick the stop rule; zero values and the default are handled.
    #[test]
    fn load_plans() {
        let plan = |total, duration, rate| {
            LoadOptions {
                total,
                duration,
                rate,
            }
            .plan()
        };
        assert_eq!(
            plan(None, None, 0).unwrap().stop,
            Stop::Total(DEFAULT_TOTAL)
        );
        assert_eq!(plan(Some(5), None, 0).unwrap().stop, Stop::Total(5));
        let d = Duration::from_secs(3);
        assert_eq!(plan(None, Some(d), 7).unwrap().stop, Stop::After(d));
        assert_eq!(plan(None, Some(d), 7).unwrap().rate, Some(7));
        assert_eq!(plan(None, None, 0).unwrap().rate, None);
        assert!(plan(Some(0), None, 0).is_err());
        assert!(plan(None, Some(Duration::ZERO), 0).is_err());
        assert!(plan(Some(1), Some(d), 0).is_err());
    }

    // The documented command lines parse (etcd benchmark's shape).
    #[test]
    fn command_lines_parse() {
        let o = Options::try_parse_from([
            "skiff-bench",
            "--endpoints",
            "a:1,b:2",
            "--target-leader",
            "--conns",
            "100",
            "--clients",
            "1000",
            "put",
            "--total",
            "100000",
            "--key-size",
            "8",
            "--val-size",
            "256",
            "--sequential-keys",
        ])
        .unwrap();
        assert_eq!(o.endpoints, vec!["a:1", "b:2"]);
        assert!(o.target_leader);
        match o.workload {
            Workload::Put(p) => {
                assert_eq!(p.load.total, Some(100_000));
                assert_eq!(p.kv.val_size, 256);
                assert!(p.kv.sequential_keys);
            }
            other => panic!("parsed as {other:?}"),
        }
        let o = Options::try_parse_from([
            "skiff-bench",
            "range",
            "foo",
            "--consistency",
            "s",
            "--duration",
            "5s",
        ])
        .unwrap();
        match o.workload {
            Workload::Range(r) => {
                assert_eq!(r.key, "foo");
                assert_eq!(r.consistency, Consistency::S);
                assert_eq!(r.load.duration, Some(Duration::from_secs(5)));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Options::try_parse_from([
            "skiff-bench",
            "put",
            "--total",
            "1",
            "--duration",
            "1s"
        ])
        .is_err());
    }
}
