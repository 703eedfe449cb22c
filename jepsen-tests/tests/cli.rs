//! End-to-end tests of the `skiff-jepsen` binary that need no external data: skiff-format
//! histories written to a scratch directory, usage errors and malformed input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff-jepsen"))
        .args(args)
        .output()
        .expect("failed to run skiff-jepsen")
}

fn last_line(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().last().unwrap_or_default().to_owned()
}

/// Writes `text` to a scratch file named `name` and returns its path.
fn scratch(name: &str, text: &str) -> String {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).expect("failed to write scratch file");
    path.to_str().expect("UTF-8 path").to_owned()
}

const STALE_READ: &str = r#"{"process":0,"type":"invoke","f":"write","key":"k","value":1}
{"process":0,"type":"ok","f":"write","key":"k","value":1}
{"process":1,"type":"invoke","f":"read","key":"k","value":null}
{"process":1,"type":"ok","f":"read","key":"k","value":null}
"#;

/// A skiff history with a stale read is reported as not linearizable, with exit code 1.
#[test]
fn skiff_stale_read_is_not_linearizable() {
    let path = scratch("stale-read.jsonl", STALE_READ);
    let output = run(&["check", "--format", "skiff", &path]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(last_line(&output), "not linearizable");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("key \"k\": no linearization"), "{stdout}");
}

/// The same history with the read seeing the write is linearizable, with exit code 0.
#[test]
fn skiff_fresh_read_is_linearizable() {
    let fresh = STALE_READ.replace(
        r#""type":"ok","f":"read","key":"k","value":null"#,
        r#""type":"ok","f":"read","key":"k","value":1"#,
    );
    assert_ne!(fresh, STALE_READ);
    let path = scratch("fresh-read.jsonl", &fresh);
    let output = run(&["check", "--format", "skiff", &path]);
    assert_eq!(
        (output.status.code(), last_line(&output).as_str()),
        (Some(0), "linearizable")
    );
}

/// Bad flags, missing files and malformed lines exit with 3 and say what is wrong.
#[test]
fn usage_and_input_errors_exit_3() {
    let output = run(&["check", "--format", "xml", "whatever"]);
    assert_eq!(output.status.code(), Some(3));
    let output = run(&["check", "--format", "skiff", "/nonexistent/history.jsonl"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("failed to read"));
    let path = scratch(
        "broken.log",
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\ngarbage\n",
    );
    let output = run(&["check", "--format", "porcupine-etcd", &path]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("garbage"),
        "{stderr}"
    );
    assert_eq!(run(&[]).status.code(), Some(3), "a subcommand is required");
}
