//! The engine of `skiff-bench`, an etcd-benchmark-like load generator that drives any etcd v3
//! endpoint set (skiff-store or real etcd) so both are measured with the same client code.
//!
//! ```text
//!  options (clap) ──> connect: N gRPC connections, round-robin over the endpoints
//!                     │        (or all to the leader, found through Maintenance.Status)
//!                     v
//!  workloads::*  ──>  driver: M client tasks share the N connections round-robin; each
//!  (one Session       │       loops "take a sequence number → wait for the pacer → call"
//!   per client)       │       until --total requests or --duration is reached
//!                     v
//!                  stats: one HDR histogram per task, merged ──> report: text or JSON
//! ```
//!
//! `watch-latency` drives its writers through the same driver and measures, on N watchers
//! spread over S watch streams, the delay from a put's send to each watcher's event.
//!
//! Modules: [`options`] (the CLI), [`connect`], [`driver`], [`pacer`] (`--rate`), [`keys`]
//! (key and value generation), [`stats`] (latency histogram), [`report`] (output),
//! [`workloads`] (one file per workload).

pub mod connect;
pub mod driver;
pub mod grpc;
pub mod http2;
pub mod keys;
pub mod options;
pub mod pacer;
pub mod report;
pub mod stats;
pub mod workloads;

use std::time::Duration;

pub use options::Options;
pub use report::Report;

/// Why a benchmark could not run (request failures during a run are not fatal: they are
/// counted in the report's `errors`).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag combination that cannot work; the message names the flag.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A gRPC connection could not be made.
    #[error("failed to connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint as given.
        endpoint: String,
        /// The client's error.
        source: etcd_client::Error,
    },
    /// `--target-leader` was given but no endpoint reported itself leader.
    #[error(
        "failed to find the leader: no endpoint of {endpoints:?} reports itself leader ({detail})"
    )]
    NoLeader {
        /// The endpoints asked.
        endpoints: Vec<String>,
        /// What the endpoints answered (or why they did not).
        detail: String,
    },
    /// A client's per-run setup (a lease grant, a watch) failed.
    #[error("failed to set up {what}: {source}")]
    Setup {
        /// What was being set up.
        what: String,
        /// The client's error.
        source: etcd_client::Error,
    },
    /// Watchers were not all created in time.
    #[error("failed to create {wanted} watchers within {waited:?}: only {created} were created")]
    WatchSetup {
        /// Watchers requested.
        wanted: usize,
        /// Watchers the server confirmed.
        created: usize,
        /// How long the tool waited.
        waited: Duration,
    },
    /// A client task panicked or was cancelled (a bug in the tool).
    #[error("failed to join a client task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs the workload the options name and returns its report.
pub async fn run(opts: &Options) -> Result<Report, BenchError> {
    workloads::run(opts).await
}
