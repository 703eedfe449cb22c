//! `skiff-jepsen`: command-line entry point. Parses flags, reads files and maps results to
//! exit codes; everything else lives in the library (`skiff_jepsen::cmd`).
//!
//! Exit codes: 0 linearizable, 1 not linearizable, 2 unknown, 3 usage or input error.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use skiff_jepsen::checker::{CheckOptions, Verdict, DEFAULT_MAX_CACHE_BYTES, DEFAULT_MAX_STEPS};
use skiff_jepsen::cmd::check::{self, Format, ModelChoice};
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
