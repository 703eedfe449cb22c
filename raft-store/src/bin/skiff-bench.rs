//! `skiff-bench`: an etcd-benchmark-like load generator for any etcd v3 endpoint set.
//!
//! `skiff-bench --endpoints A,B,C --conns 10 --clients 100 put --total 20000 --val-size 256`
//! prints ops/s and latency percentiles (or one JSON object with `--json`). Works against
//! skiff-store and real etcd alike, so both are measured with the same tool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use etcd_client::{Client, GetOptions};

#[derive(Parser, Debug)]
#[command(name = "skiff-bench", about = "Load generator for etcd v3 endpoints")]
struct Args {
    /// Comma-separated endpoints (`host:port`).
    #[arg(long, default_value = "127.0.0.1:2379")]
    endpoints: String,
    /// gRPC connections shared by the clients.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Concurrent clients (each has one request in flight).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand, Debug)]
enum Workload {
    /// Puts of random or sequential keys.
    Put {
        /// Requests in total.
        #[arg(long, default_value_t = 10_000)]
        total: u64,
        /// Key size in bytes.
        #[arg(long, default_value_t = 8)]
        key_size: usize,
        /// Value size in bytes.
        #[arg(long, default_value_t = 256)]
        val_size: usize,
        /// Distinct keys.
        #[arg(long, default_value_t = 100_000)]
        key_space_size: u64,
    },
    /// Ranges of one key.
    Range {
        /// The key to read.
        key: String,
        /// Requests in total.
        #[arg(long, default_value_t = 10_000)]
        total: u64,
        /// `l` (linearizable) or `s` (serializable).
        #[arg(long, default_value = "l")]
        consistency: String,
    },
}

/// One request of a workload: takes a client and the request number, says whether it succeeded.
type Work = Arc<dyn Fn(Client, u64) -> futures::future::BoxFuture<'static, bool> + Send + Sync>;

struct Outcome {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
}

async fn connect(endpoints: &[String]) -> anyhow::Result<Client> {
    Ok(Client::connect(endpoints, None).await?)
}

fn key_for(i: u64, size: usize) -> Vec<u8> {
    let mut k = format!("{i:0size$}").into_bytes();
    k.truncate(size.max(1));
    k
}

async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let endpoints: Vec<String> = args.endpoints.split(',').map(String::from).collect();
    let mut conns = Vec::new();
    for _ in 0..args.conns.max(1) {
        conns.push(connect(&endpoints).await?);
    }
    let (total, work): (u64, Work) = match &args.workload {
        Workload::Put {
            total,
            key_size,
            val_size,
            key_space_size,
        } => {
            let (ks, space, val) = (*key_size, (*key_space_size).max(1), vec![b'v'; *val_size]);
            (
                *total,
                Arc::new(move |mut c: Client, i: u64| {
                    let key = key_for(i.wrapping_mul(2_654_435_761) % space, ks);
                    let val = val.clone();
                    Box::pin(async move { c.put(key, val, None).await.is_ok() })
                }),
            )
        }
        Workload::Range {
            key,
            total,
            consistency,
        } => {
            let (key, serializable) = (key.clone(), consistency == "s");
            (
                *total,
                Arc::new(move |mut c: Client, _i: u64| {
                    let key = key.clone();
                    let opts = if serializable {
                        Some(GetOptions::new().with_serializable())
                    } else {
                        None
                    };
                    Box::pin(async move { c.get(key, opts).await.is_ok() })
                }),
            )
        }
    };
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients.max(1) {
        let (client, next, errors, work) = (
            conns[c % conns.len()].clone(),
            next.clone(),
            errors.clone(),
            work.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return lat;
                }
                let t = Instant::now();
                if !work(client.clone(), i).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                lat.push(t.elapsed().as_micros() as u64);
            }
        }));
    }
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await?);
    }
    Ok(Outcome {
        latencies_us,
        errors: errors.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    })
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut out = run(&args).await?;
    out.latencies_us.sort_unstable();
    let l = &out.latencies_us;
    let ops = l.len() as f64 / out.elapsed.as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "ops_per_sec": ops, "errors": out.errors, "requests": l.len(),
                "latency_ms": {"min": pct(l, 0.0), "p50": pct(l, 0.5), "p90": pct(l, 0.9), "p99": pct(l, 0.99),
                               "p999": pct(l, 0.999), "max": pct(l, 1.0)}
            })
        );
    } else {
        println!(
            "requests {}  errors {}  elapsed {:.2}s  throughput {:.0} ops/s",
            l.len(),
            out.errors,
            out.elapsed.as_secs_f64(),
            ops
        );
        println!(
            "latency ms: min {:.2}  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            pct(l, 0.0),
            pct(l, 0.5),
            pct(l, 0.9),
            pct(l, 0.99),
            pct(l, 0.999),
            pct(l, 1.0)
        );
    }
    Ok(())
}
