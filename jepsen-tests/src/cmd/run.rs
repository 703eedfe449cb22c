//! `skiff-jepsen run`: one fault-injection run, from cluster start to report.
//!
//! ```text
//!  start cluster ─▶ wait healthy ─▶ workload ║ nemesis (schedule from seed) ─▶ time limit
//!       ─▶ stop nemesis, heal everything ─▶ wait healthy ─▶ workload final phase
//!       ─▶ check history ─▶ report (run dir) ─▶ tear cluster down
//! ```

use crate::checker::{CheckOptions, Verdict};
use crate::client;
use crate::cluster::{Cluster, ClusterError, NetnsCluster, NetnsOptions};
use crate::cmd::check::{self, ModelChoice};
use crate::history::{MonotonicClock, Recorder};
use crate::nemesis::executor::NemesisError;
use crate::nemesis::{self, Executor, NemesisKind, ScheduleOptions};
use crate::report::{self, CheckerResult, OpCounts, RunReport, Validity};
use crate::workload::{self, Context};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Time the cluster gets to become healthy at start.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest final phase (read-back after the heal); operations still running are left
/// pending, which the checkers treat as unknown outcomes.
pub const FINAL_PHASE_TIMEOUT: Duration = Duration::from_secs(30);

/// The workloads `--workload` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadKind {
    /// Independent versioned registers (read/write/cas), checked for linearizability and
    /// for lost acknowledged writes.
    Register,
    /// List-append transactions over a few keys, checked for strict serializability.
    Append,
    /// Puts under one prefix with a watcher per member, checked for the watch guarantees.
    Watch,
    /// Leases left to expire and leases kept alive, checked for lease safety.
    Lease,
}

impl WorkloadKind {
    fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::Append => "append",
            WorkloadKind::Watch => "watch",
            WorkloadKind::Lease => "lease",
        }
    }
}

/// A workload while it runs.
enum Running {
    Register(tokio::task::JoinHandle<Vec<String>>),
    Append(tokio::task::JoinHandle<Vec<String>>),
    Watch(workload::watch::Handle),
    Lease(tokio::task::JoinHandle<()>),
}

/// What a workload leaves for its checker after the final phase.
enum Finished {
    Register,
    Append,
    Watch(crate::checks::watch::WatchObservation),
    Lease,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long the workload and the nemesis run.
    pub time_limit: Duration,
    /// Enabled fault kinds (empty: no faults).
    pub nemesis: Vec<NemesisKind>,
    /// The workload.
    pub workload: WorkloadKind,
    /// Seed of the schedule and the workload.
    pub seed: u64,
    /// Cluster size.
    pub members: usize,
    /// Server binary (`skiff-store` or `etcd`).
    pub binary: PathBuf,
    /// Extra server flags, e.g. `--unsafe-local-reads`.
    pub server_args: Vec<String>,
    /// The run directory (created).
    pub out: PathBuf,
    /// Concurrent client workers.
    pub concurrency: usize,
    /// Target operations per second, all workers together.
    pub rate: f64,
    /// Fault timing; `None` derives it from the time limit.
    pub schedule: Option<ScheduleOptions>,
    /// A fixed fault schedule instead of a generated one (tests that need a specific fault).
    pub steps: Option<Vec<nemesis::Step>>,
    /// Deadline of the linearizability search.
    pub check_timeout: Duration,
    /// Time the cluster gets to serve again after the final heal.
    pub recovery_timeout: Duration,
}

impl RunOptions {
    /// The `skiff-jepsen run` command line that repeats this run.
    pub fn command(&self) -> String {
        let kinds: Vec<String> = self.nemesis.iter().map(|k| kind_name(*k)).collect();
        let mut command =
            format!(
            "skiff-jepsen run --workload {} --nemesis {} --time-limit {} --seed {} --members {} \
             --concurrency {} --rate {}",
            self.workload.name(),
            if kinds.is_empty() { "none".into() } else { kinds.join(",") },
            self.time_limit.as_secs(),
            self.seed,
            self.members,
            self.concurrency,
            self.rate
        );
        for arg in &self.server_args {
            command.push_str(&format!(" --server-arg={arg}"));
        }
        command
    }
}

fn kind_name(kind: NemesisKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The cluster could not be built or controlled.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The cluster never became healthy before the workload started.
    #[error("failed to start: members {members:?} not healthy after {HEALTH_TIMEOUT:?}; see the member logs in {dir}")]
    NotHealthy {
        /// Members that never answered.
        members: Vec<usize>,
        /// The run directory with the logs.
        dir: String,
    },
    /// The nemesis hit a fault it cannot apply on this server.
    #[error(transparent)]
    Nemesis(#[from] NemesisError),
    /// The recorded history is malformed (a harness bug).
    #[error("failed to check the history: {0}")]
    Check(#[from] check::CheckError),
    /// SIGINT or SIGTERM arrived; the cluster was torn down and no report was written.
    #[error("interrupted by {0}; the cluster was torn down, no report written")]
    Interrupted(&'static str),
    /// The workload could not start.
    #[error("failed to start the workload: {0}")]
    Workload(String),
    /// Writing the report failed.
    #[error("failed to write the report to {dir}: {source}")]
    Report {
        /// The run directory.
        dir: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs one test and writes its report; returns the report (also for invalid verdicts).
pub async fn run(options: &RunOptions) -> Result<RunReport, RunError> {
    let cluster = Arc::new(NetnsCluster::start(NetnsOptions {
        members: options.members,
        binary: options.binary.clone(),
        dir: options.out.clone(),
        extra_args: options.server_args.clone(),
        loop_disks: options.nemesis.contains(&NemesisKind::PowerLoss),
    })?);
    let result = tokio::select! {
        result = run_on(cluster.clone(), options) => result,
        signal = interrupted() => Err(RunError::Interrupted(signal)),
    };
    drop(cluster);
    tidy_run_dir(options);
    result
}

async fn run_on(cluster: Arc<NetnsCluster>, options: &RunOptions) -> Result<RunReport, RunError> {
    let urls = cluster.client_urls();
    let unhealthy = client::wait_healthy(&urls, HEALTH_TIMEOUT).await;
    if !unhealthy.is_empty() {
        return Err(RunError::NotHealthy {
            members: unhealthy,
            dir: options.out.display().to_string(),
        });
    }
    {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.flush_disks())
            .await
            .expect("flush does not panic")?;
    }
    let clock = MonotonicClock::new();
    let recorder = Arc::new(Recorder::with_clock(clock));
    let schedule_options = options
        .schedule
        .clone()
        .unwrap_or_else(|| ScheduleOptions::for_time_limit(options.time_limit));
    let steps = match &options.steps {
        Some(steps) => steps.clone(),
        None => nemesis::schedule(
            &options.nemesis,
            options.members,
            options.seed,
            &schedule_options,
        ),
    };
    tracing::info!(
        faults = steps.len(),
        seed = options.seed,
        "schedule generated"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Context {
        urls: urls.clone(),
        recorder: recorder.clone(),
        stop: stop_rx.clone(),
        seed: options.seed,
        concurrency: options.concurrency,
        rate: options.rate,
    };
    let running = start_workload(options.workload, ctx).await?;
    let executor = Executor::new(cluster.clone(), clock);
    let nemesis_run = executor.run(&steps, stop_rx);
    let timer = async {
        tokio::time::sleep(options.time_limit).await;
        let _ = stop_tx.send(true);
    };
    let (nemesis_result, ()) = tokio::join!(nemesis_run, timer);
    let _ = stop_tx.send(true);
    let heal = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.heal_all())
            .await
            .expect("heal does not panic")
    };
    executor.close_open_faults();
    nemesis_result?;
    let mut checkers = Vec::new();
    let unhealthy = client::wait_healthy(&urls, options.recovery_timeout).await;
    checkers.push(recovery_result(heal, unhealthy, options.recovery_timeout));
    let final_from_ns = crate::history::Clock::now_ns(&clock);
    let finished = final_phase(running, &urls, &recorder).await;
    let history = recorder.history();
    checkers.extend(check_workload(options, &history, final_from_ns, finished)?);
    let validity = checkers
        .iter()
        .fold(Validity::Valid, |v, c| v.merge(c.validity));
    let report = RunReport {
        validity,
        seed: options.seed,
        workload: options.workload.name().to_owned(),
        nemesis: options.nemesis.iter().map(|k| kind_name(*k)).collect(),
        time_limit_s: options.time_limit.as_secs_f64(),
        members: options.members,
        server: format!(
            "{} {}",
            options.binary.display(),
            options.server_args.join(" ")
        ),
        command: options.command(),
        checkers,
        ops: OpCounts::of(&history),
        timeline: executor.timeline(),
        duration_ns: crate::history::Clock::now_ns(&clock),
    };
    report::write_run_dir(&options.out, &report, &history).map_err(|source| RunError::Report {
        dir: options.out.display().to_string(),
        source,
    })?;
    Ok(report)
}

async fn start_workload(kind: WorkloadKind, ctx: Context) -> Result<Running, RunError> {
    Ok(match kind {
        WorkloadKind::Register => Running::Register(tokio::spawn(workload::register::run(ctx))),
        WorkloadKind::Append => Running::Append(tokio::spawn(workload::append::run(ctx))),
        WorkloadKind::Watch => Running::Watch(
            workload::watch::start(ctx)
                .await
                .map_err(RunError::Workload)?,
        ),
        WorkloadKind::Lease => Running::Lease(tokio::spawn(workload::lease::run(ctx))),
    })
}

/// After the heal: read everything back (bounded by [`FINAL_PHASE_TIMEOUT`]; operations cut
/// off stay pending, i.e. unknown) or let the watchers catch up.
async fn final_phase(running: Running, urls: &[String], recorder: &Recorder) -> Finished {
    match running {
        Running::Register(task) => {
            let keys = task.await.expect("workloads do not panic");
            bounded(workload::register::final_reads(urls, recorder, &keys)).await;
            Finished::Register
        }
        Running::Append(task) => {
            let keys = task.await.expect("workloads do not panic");
            bounded(workload::append::final_reads(urls, recorder, &keys)).await;
            Finished::Append
        }
        Running::Watch(handle) => Finished::Watch(handle.finish(urls, recorder).await),
        Running::Lease(task) => {
            task.await.expect("workloads do not panic");
            // The scan waits out the TTLs first, so it gets more than the usual bound.
            let limit = FINAL_PHASE_TIMEOUT + workload::lease::EXPIRY_SLACK;
            if tokio::time::timeout(limit, workload::lease::final_scan(urls, recorder))
                .await
                .is_err()
            {
                tracing::warn!("final lease scan cut off after {limit:?}");
            }
            Finished::Lease
        }
    }
}

/// Runs `phase` for at most [`FINAL_PHASE_TIMEOUT`].
async fn bounded(phase: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(FINAL_PHASE_TIMEOUT, phase)
        .await
        .is_err()
    {
        tracing::warn!("final phase cut off after {FINAL_PHASE_TIMEOUT:?}");
    }
}

/// The cluster must come back after every fault is healed: a liveness check.
fn recovery_result(
    heal: Result<(), ClusterError>,
    unhealthy: Vec<usize>,
    timeout: Duration,
) -> CheckerResult {
    let name = "recovers after heal".to_owned();
    match (heal, unhealthy.is_empty()) {
        (Ok(()), true) => CheckerResult {
            name,
            validity: Validity::Valid,
            summary: "every member serves linearizable reads after the final heal".into(),
            details: None,
        },
        (heal, _) => CheckerResult {
            name,
            validity: Validity::Invalid,
            summary: format!(
                "members {unhealthy:?} not healthy {timeout:?} after the final heal{}",
                heal.err()
                    .map(|e| format!(" (heal failed: {e})"))
                    .unwrap_or_default()
            ),
            details: None,
        },
    }
}

fn check_workload(
    options: &RunOptions,
    history: &[crate::history::Op],
    final_from_ns: u64,
    finished: Finished,
) -> Result<Vec<CheckerResult>, RunError> {
    match finished {
        Finished::Append => Ok(vec![crate::checks::append::check(history)]),
        Finished::Watch(observation) => Ok(vec![crate::checks::watch::check(&observation)]),
        Finished::Lease => Ok(vec![crate::checks::lease::check(history, final_from_ns)]),
        Finished::Register => {
            let check_options = CheckOptions {
                timeout: Some(options.check_timeout),
                ..CheckOptions::default()
            };
            let report =
                check::check_history(history, ModelChoice::VersionedRegister, &check_options)?;
            let keys = report.partitions.len();
            let (validity, summary) = match &report.verdict {
                Verdict::Linearizable => (Validity::Valid, format!("linearizable ({keys} keys)")),
                Verdict::NotLinearizable(cex) => (
                    Validity::Invalid,
                    format!(
                        "not linearizable (key {:?})",
                        cex.key.as_deref().unwrap_or("")
                    ),
                ),
                Verdict::Unknown(reason) => (Validity::Unknown, format!("unknown: {reason}")),
            };
            let details = (validity != Validity::Valid).then(|| report.to_string());
            let linearizable = CheckerResult {
                name: "linearizable (versioned register per key)".into(),
                validity,
                summary,
                details,
            };
            let lost = workload::register::check_no_lost_writes(history, final_from_ns);
            Ok(vec![linearizable, lost])
        }
    }
}

/// Removes bulky leftovers (data dirs, empty mount points) and keeps logs and the report.
fn tidy_run_dir(options: &RunOptions) {
    for i in 0..options.members {
        for suffix in ["data", "disk"] {
            let _ = std::fs::remove_dir_all(options.out.join(format!("m{i}.{suffix}")));
        }
    }
}

/// Resolves when SIGINT or SIGTERM arrives, naming it.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers a run can still finish; it just cannot clean up on ^C.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
