//! Fault-injection runs against real multi-process skiff-store clusters (one network namespace
//! per member; needs root). They prove both directions: a short run with every fault kind
//! passes every checker, and each deliberately broken store mode is caught.
//!
//! Without root or the network tools the tests skip with a message, except under `CI=true`,
//! where they fail.

use skiff_jepsen::cluster::netns::preflight;
use skiff_jepsen::cmd::run::{run, RunOptions, WorkloadKind};
use skiff_jepsen::nemesis::{Fault, NemesisKind, ScheduleOptions, Shape, Step, Target};
use skiff_jepsen::report::{RunReport, Validity};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Whether this machine can run the tests; skips (or fails under CI) otherwise.
fn can_run() -> bool {
    match preflight() {
        Ok(()) => true,
        Err(err) if std::env::var("CI").as_deref() == Ok("true") => panic!("{err}"),
        Err(err) => {
            eprintln!("SKIPPED: {err}");
            false
        }
    }
}

/// Builds this worktree's `skiff-store` once and returns its path (`target/<profile>/`).
fn server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let mut build = Command::new(env!("CARGO"));
            build.args(["build", "-p", "skiff-store", "--bin", "skiff-store"]);
            // The binary must land next to this test's profile directory (see below).
            if !cfg!(debug_assertions) {
                build.arg("--release");
            }
            let status = build
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build -p skiff-store failed");
            let exe = std::env::current_exe().expect("test executable path");
            // target/debug/deps/<test> -> target/debug/skiff-store
            let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
            profile_dir.join("skiff-store")
        })
        .clone()
}

fn options(name: &str, seed: u64, secs: u64, nemesis: Vec<NemesisKind>) -> RunOptions {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("jepsen")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    RunOptions {
        time_limit: Duration::from_secs(secs),
        nemesis,
        workload: WorkloadKind::Register,
        seed,
        members: 3,
        binary: server_binary(),
        server_args: Vec::new(),
        out,
        concurrency: 6,
        rate: 120.0,
        schedule: None,
        steps: None,
        check_timeout: Duration::from_secs(60),
        recovery_timeout: Duration::from_secs(30),
    }
}

fn execute(options: &RunOptions) -> RunReport {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let report = runtime
        .block_on(run(options))
        .unwrap_or_else(|err| panic!("run failed: {err}"));
    eprintln!(
        "{}report: {}",
        report.summary(),
        options.out.join("index.html").display()
    );
    report
}

/// Runs `options` until the run is invalid, at most `attempts` times (the next attempt with
/// the next seed), and returns the last report. For the runs that must catch a deliberately
/// broken store: whether a fault window catches a client reading stale data depends on the
/// timing of one machine at one moment (about one 37 s run in three caught nothing in its
/// four windows on this 2-core machine), and the property is that the harness catches the
/// broken store, not that one particular run does.
fn execute_until_invalid(options: &mut RunOptions, attempts: u64) -> RunReport {
    let mut report = execute(options);
    for _ in 1..attempts {
        if report.validity == Validity::Invalid {
            break;
        }
        eprintln!(
            "no violation found with seed {}; trying the next seed",
            options.seed
        );
        options.seed += 1;
        let _ = std::fs::remove_dir_all(&options.out);
        report = execute(options);
    }
    report
}

fn checker<'a>(report: &'a RunReport, name: &str) -> &'a skiff_jepsen::report::CheckerResult {
    report
        .checkers
        .iter()
        .find(|c| c.name.starts_with(name))
        .unwrap_or_else(|| panic!("no checker {name}: {}", report.summary()))
}

fn step(start: u64, duration: u64, fault: Fault) -> Step {
    Step {
        start: Duration::from_secs(start),
        duration: Duration::from_secs(duration),
        fault,
    }
}

/// A short run of the register workload with kill, pause, partition, power-loss and
/// membership faults on a correct store is valid on every checker, and every fault kind
/// really happened.
#[test]
fn short_run_with_every_fault_kind_is_valid() {
    if !can_run() {
        return;
    }
    let mut options = options("all-faults", 11, 45, NemesisKind::ALL_DEFAULT.to_vec());
    options.schedule = Some(ScheduleOptions {
        time_limit: options.time_limit,
        gap: Duration::from_secs(2),
        min_fault: Duration::from_secs(2),
        max_fault: Duration::from_secs(4),
    });
    let report = execute(&options);
    assert_eq!(report.validity, Validity::Valid, "{}", report.summary());
    for kind in NemesisKind::ALL_DEFAULT {
        let applied = report
            .timeline
            .faults
            .iter()
            .any(|f| f.kind == kind && f.error.is_none());
        assert!(
            applied,
            "{kind:?} never applied cleanly: {}",
            report.timeline.to_text()
        );
    }
    assert!(report.ops.ok > 500, "too few operations: {:?}", report.ops);
    for file in [
        "report.json",
        "history.jsonl",
        "timeline.txt",
        "latency.svg",
        "index.html",
    ] {
        assert!(options.out.join(file).exists(), "{file} missing");
    }
}

/// A member that was removed, wiped and added back survives a power loss that hits while it
/// is still joining (it must join again, not bootstrap under its removed id) and one after it
/// joined (its new identity and log are durable): every member recovers, nothing is lost.
#[test]
fn rejoined_member_survives_power_loss() {
    if !can_run() {
        return;
    }
    let kinds = vec![NemesisKind::Member, NemesisKind::PowerLoss];
    let mut options = options("rejoin-power-loss", 14, 22, kinds);
    options.steps = Some(vec![
        // The power loss is due before the member fault's heal ends, so it starts right after
        // the re-added member was spawned, before it can have stored its new identity.
        step(3, 1, Fault::Member(2)),
        step(4, 2, Fault::PowerLoss),
        step(16, 2, Fault::PowerLoss),
    ]);
    let report = execute(&options);
    assert_eq!(report.validity, Validity::Valid, "{}", report.summary());
    let applied = |kind| {
        report
            .timeline
            .faults
            .iter()
            .filter(|f| f.kind == kind && f.error.is_none())
            .count()
    };
    assert_eq!(
        applied(NemesisKind::Member),
        1,
        "{}",
        report.timeline.to_text()
    );
    assert_eq!(
        applied(NemesisKind::PowerLoss),
        2,
        "{}",
        report.timeline.to_text()
    );
}

/// A store that serves linearizable reads from local state (`--unsafe-local-reads`) is
/// caught: while the leader or another member is cut off, its clients read stale values.
#[test]
fn unsafe_local_reads_are_not_linearizable() {
    if !can_run() {
        return;
    }
    // Four cut-off windows: on a loaded machine a window may pass without a client of the
    // cut-off member reading a key that the majority changed meanwhile (with faster
    // replication three windows were sometimes not enough).
    let mut options = options("local-reads", 12, 37, vec![NemesisKind::Partition]);
    options.server_args = vec!["--unsafe-local-reads".into()];
    options.steps = Some(vec![
        step(3, 5, Fault::Partition(Shape::IsolateLeader)),
        step(10, 5, Fault::Partition(Shape::IsolateOne(0))),
        step(18, 6, Fault::Partition(Shape::IsolateLeader)),
        step(27, 6, Fault::Partition(Shape::IsolateOne(1))),
    ]);
    let report = execute_until_invalid(&mut options, 3);
    let linearizable = checker(&report, "linearizable");
    assert_eq!(
        linearizable.validity,
        Validity::Invalid,
        "{}",
        report.summary()
    );
    assert_eq!(report.validity, Validity::Invalid);
}

/// The list-append workload catches `--unsafe-local-reads` too: its single-key reads are
/// plain Ranges (the store proposes every Txn, so reads only through Txns never hit the
/// local-read shortcut), and a stale one closes a real-time cycle.
#[test]
fn unsafe_local_reads_are_not_strict_serializable() {
    if !can_run() {
        return;
    }
    let mut options = options("append-local-reads", 12, 37, vec![NemesisKind::Partition]);
    options.workload = WorkloadKind::Append;
    options.server_args = vec!["--unsafe-local-reads".into()];
    options.steps = Some(vec![
        step(3, 5, Fault::Partition(Shape::IsolateLeader)),
        step(10, 5, Fault::Partition(Shape::IsolateOne(0))),
        step(18, 6, Fault::Partition(Shape::IsolateLeader)),
        step(27, 6, Fault::Partition(Shape::IsolateOne(1))),
    ]);
    let report = execute_until_invalid(&mut options, 3);
    let append = checker(&report, "strict serializable");
    assert_eq!(append.validity, Validity::Invalid, "{}", report.summary());
    assert_eq!(report.validity, Validity::Invalid);
}

/// A store that acknowledges before fsync (`--unsafe-no-fsync`) loses acknowledged writes
/// when every member loses power at once.
#[test]
fn unsafe_no_fsync_loses_writes_on_power_loss() {
    if !can_run() {
        return;
    }
    let mut options = options("no-fsync", 13, 15, vec![NemesisKind::PowerLoss]);
    options.server_args = vec!["--unsafe-no-fsync".into()];
    options.steps = Some(vec![
        step(5, 2, Fault::PowerLoss),
        step(10, 2, Fault::PowerLoss),
    ]);
    let report = execute(&options);
    let lost = checker(&report, "no acknowledged write lost");
    assert_eq!(lost.validity, Validity::Invalid, "{}", report.summary());
    assert_eq!(report.validity, Validity::Invalid);
}

/// List-append transactions under kills, pauses and partitions are strictly serializable.
#[test]
fn append_under_faults_is_strict_serializable() {
    if !can_run() {
        return;
    }
    let kinds = vec![
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Partition,
    ];
    let mut options = options("append", 21, 15, kinds);
    options.workload = WorkloadKind::Append;
    options.steps = Some(vec![
        step(2, 3, Fault::Partition(Shape::IsolateLeader)),
        step(7, 2, Fault::Kill(Target::Leader)),
        step(11, 2, Fault::Pause(Target::One(1))),
    ]);
    let report = execute(&options);
    assert_eq!(report.validity, Validity::Valid, "{}", report.summary());
    let append = checker(&report, "strict serializable");
    assert!(
        append.summary.contains("transactions"),
        "{}",
        append.summary
    );
}

/// Leases under leader kills and partitions: expired keys are gone, kept-alive keys stay.
#[test]
fn leases_under_faults_are_safe() {
    if !can_run() {
        return;
    }
    let mut options = options(
        "lease",
        22,
        15,
        vec![NemesisKind::Kill, NemesisKind::Partition],
    );
    options.workload = WorkloadKind::Lease;
    options.steps = Some(vec![
        step(3, 3, Fault::Kill(Target::Leader)),
        step(9, 3, Fault::Partition(Shape::IsolateOne(2))),
    ]);
    let report = execute(&options);
    assert_eq!(report.validity, Validity::Valid, "{}", report.summary());
}

/// The harness against real etcd 3.4: the watch workload under partitions and kills is valid,
/// with every watcher complete (a self-check of the workload, the checker and the cluster
/// control on a reference implementation).
#[test]
fn watch_against_real_etcd_is_valid() {
    if !can_run() {
        return;
    }
    let etcd = PathBuf::from("/usr/bin/etcd");
    if !etcd.exists() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "etcd-server is not installed"
        );
        eprintln!("SKIPPED: /usr/bin/etcd is not installed (apt-get install etcd-server)");
        return;
    }
    let mut options = options(
        "watch-etcd",
        23,
        15,
        vec![NemesisKind::Kill, NemesisKind::Partition],
    );
    options.workload = WorkloadKind::Watch;
    options.binary = etcd;
    options.steps = Some(vec![
        step(2, 3, Fault::Partition(Shape::IsolateLeader)),
        step(8, 3, Fault::Kill(Target::One(0))),
    ]);
    let report = execute(&options);
    assert_eq!(report.validity, Validity::Valid, "{}", report.summary());
    let watch = checker(&report, "watch");
    assert!(
        watch.summary.contains("3/3 watchers complete"),
        "{}",
        watch.summary
    );
}
