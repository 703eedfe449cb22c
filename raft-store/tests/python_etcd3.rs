//! The Python `etcd3` package (a second real client, from PyPI) against a 3-member cluster:
//! put/get/delete, transactions, leases, watches, a lock and compaction, by
//! `tests/python/etcd3_client.py`. `scripts/setup.sh` installs it into a virtualenv.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Cluster, Flavor};

/// The virtualenv's Python with `etcd3` installed, or `None` (skip) outside CI.
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("SKIFF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/skiff-py/bin/python")
        });
    let usable = Command::new(&venv)
        .args(["-c", "import etcd3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if usable {
        return Some(venv);
    }
    let msg = format!(
        "Python etcd3 not found at {} (run scripts/setup.sh, or set SKIFF_PYTHON)",
        venv.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

#[test]
fn python_etcd3_client_works() {
    let Some(py) = python() else { return };
    let c = Cluster::start(Flavor::Skiff, 3);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/etcd3_client.py");
    let endpoints: Vec<String> = c.endpoints().split(',').map(String::from).collect();
    let out = Command::new(py)
        .arg(&script)
        .args(&endpoints)
        // etcd3 0.12's generated code predates protobuf 4's C++ runtime checks.
        .env("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
        .output()
        .expect("run the etcd3 script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all etcd3 checks passed"),
        "etcd3 script failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
}
