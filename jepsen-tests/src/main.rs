//! `skiff-jepsen`: command-line entry point. Parses flags, reads files and maps results to
//! exit codes; everything else lives in the library (`skiff_jepsen::cmd`).
//!
//! Exit codes (`check` and `run`): 0 linearizable/valid, 1 not linearizable/invalid,
//! 2 unknown, 3 usage, input or setup error.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use skiff_jepsen::checker::{CheckOptions, Verdict, DEFAULT_MAX_CACHE_BYTES, DEFAULT_MAX_STEPS};
use skiff_jepsen::cmd::check::{self, Format, ModelChoice};
use skiff_jepsen::cmd::run::{self as run_cmd, RunOptions, WorkloadKind};
use skiff_jepsen::nemesis::NemesisKind;
use skiff_jepsen::report::Validity;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const EXIT_LINEARIZABLE: u8 = 0;
const EXIT_NOT_LINEARIZABLE: u8 = 1;
const EXIT_UNKNOWN: u8 = 2;
const EXIT_USAGE: u8 = 3;
/// `--help` and `--version` succeed.
const EXIT_HELP: u8 = 0;

#[derive(Debug, Parser)]
#[command(
    name = "skiff-jepsen",
    version,
    about = "Jepsen-style history checking for Skiff"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a history for linearizability. The last line of output is the verdict:
    /// `linearizable` (exit 0), `not linearizable` (exit 1) or `unknown` (exit 2).
    Check(CheckArgs),
    /// Start a cluster (one network namespace per member; needs root), run a workload under
    /// a seeded fault schedule, check the history and write a report directory. The last
    /// line of output is the verdict: `valid` (exit 0), `INVALID` (1) or `unknown` (2).
    Run(RunArgs),
    /// Remove namespaces, bridges and mounts left behind by runs that were killed.
    Cleanup,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// How long the workload and the faults run, in seconds.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Fault kinds, comma-separated: kill, pause, partition, power-loss, member; `all` means
    /// every kind; `none` runs without faults.
    #[arg(long, default_value = "all", value_parser = parse_nemesis)]
    nemesis: NemesisList,
    /// The workload.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Register)]
    workload: WorkloadKind,
    /// Seed of the fault schedule and the workload (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Server binary: skiff-store (default: next to this binary) or /usr/bin/etcd.
    #[arg(long, env = "SKIFF_STORE_BIN")]
    binary: Option<PathBuf>,
    /// Extra flag for every member, repeatable (e.g. --server-arg=--unsafe-local-reads).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Run directory (default: ./tmp/jepsen/<timestamp>-<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Concurrent client workers.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Target operations per second, all workers together.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Deadline of the history check, in seconds.
    #[arg(long, default_value_t = 120)]
    check_timeout: u64,
    /// Time the cluster gets to serve again after the final heal, in seconds.
    #[arg(long, default_value_t = 60)]
    recovery_timeout: u64,
}

#[derive(Debug, Clone)]
struct NemesisList(Vec<NemesisKind>);

fn parse_nemesis(text: &str) -> Result<NemesisList, String> {
    use clap::ValueEnum;
    let mut kinds = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "all" => kinds.extend(NemesisKind::ALL_DEFAULT),
            "none" => {}
            other => kinds.push(NemesisKind::from_str(other, true)?),
        }
    }
    kinds.sort();
    kinds.dedup();
    Ok(NemesisList(kinds))
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Format of the history file.
    #[arg(long, value_enum)]
    format: Format,
    /// The history file.
    file: PathBuf,
    /// Give up with `unknown` after this many milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Step budget per partition; bounds memory as well as time.
    #[arg(long, default_value_t = DEFAULT_MAX_STEPS)]
    max_steps: u64,
    /// Memory budget of each partition's search cache, in MiB.
    #[arg(long, default_value_t = DEFAULT_MAX_CACHE_BYTES >> 20)]
    max_cache_mb: u64,
    /// Model to check against (skiff format only; inferred when omitted).
    #[arg(long, value_enum)]
    model: Option<ModelChoice>,
    /// Worker threads (default: available parallelism).
    #[arg(long)]
    threads: Option<NonZeroUsize>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are not errors; everything else is a usage error.
            let code = if err.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_HELP
            };
            // Nothing useful can be done if printing the clap message fails.
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let result = match &cli.command {
        Command::Check(args) => run_check(args),
        Command::Run(args) => run_run(args),
        Command::Cleanup => run_cleanup(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run_check(args: &CheckArgs) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("failed to read {}", args.file.display()))?;
    let ops = check::load(args.format, &text)
        .with_context(|| format!("failed to load {}", args.file.display()))?;
    let model = check::choose_model(args.format, args.model, &ops)?;
    let options = CheckOptions {
        max_steps: args.max_steps,
        max_cache_bytes: args.max_cache_mb.saturating_mul(1 << 20),
        timeout: args.timeout_ms.map(Duration::from_millis),
        threads: args.threads,
    };
    let started = Instant::now();
    let report = check::check_history(&ops, model, &options)?;
    let elapsed = started.elapsed();
    println!(
        "history: {} ({} events, model {model})",
        args.file.display(),
        ops.len()
    );
    print!("{report}");
    println!("checked in {:.3} ms", elapsed.as_secs_f64() * 1e3);
    println!("{}", report.verdict);
    Ok(match report.verdict {
        Verdict::Linearizable => EXIT_LINEARIZABLE,
        Verdict::NotLinearizable(_) => EXIT_NOT_LINEARIZABLE,
        Verdict::Unknown(_) => EXIT_UNKNOWN,
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn default_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("failed to locate this executable")?;
    let dir = exe.parent().context("this executable has no directory")?;
    Ok(dir.join("skiff-store"))
}

fn run_run(args: &RunArgs) -> anyhow::Result<u8> {
    init_tracing();
    let seed = args.seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(0, |d| d.as_nanos() as u64 % 1_000_000_000)
    });
    let out = match &args.out {
        Some(out) => out.clone(),
        None => PathBuf::from("tmp/jepsen").join(format!("{}-{seed}", timestamp())),
    };
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => default_binary()?,
    };
    let options = RunOptions {
        time_limit: Duration::from_secs(args.time_limit),
        nemesis: args.nemesis.0.clone(),
        workload: args.workload,
        seed,
        members: args.members,
        binary,
        server_args: args.server_args.clone(),
        out: out.clone(),
        concurrency: args.concurrency,
        rate: args.rate,
        schedule: None,
        steps: None,
        check_timeout: Duration::from_secs(args.check_timeout),
        recovery_timeout: Duration::from_secs(args.recovery_timeout),
    };
    println!("run dir: {}", out.display());
    println!("reproduce: {}", options.command());
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    let report = runtime.block_on(run_cmd::run(&options))?;
    print!("{}", report.summary());
    println!("report: {}", out.join("index.html").display());
    println!("{}", report.validity);
    Ok(match report.validity {
        Validity::Valid => EXIT_LINEARIZABLE,
        Validity::Invalid => EXIT_NOT_LINEARIZABLE,
        Validity::Unknown => EXIT_UNKNOWN,
    })
}

fn run_cleanup() -> anyhow::Result<u8> {
    let removed =
        skiff_jepsen::cluster::netns::cleanup_leftovers(std::path::Path::new("tmp/jepsen"))?;
    for item in &removed {
        println!("removed {item}");
    }
    println!("{} leftovers removed", removed.len());
    Ok(0)
}

/// UTC `YYYYMMDDTHHMMSS` from the system clock (civil-from-days, no date crate needed).
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
