//! The Python `kubernetes` package (a real client from PyPI) against 3 skiff-store members
//! and 2 apiserver replicas: `tests/python/k8s_client.py`. `scripts/setup.sh` installs the
//! package into the project's virtualenv.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// The virtualenv's Python with `kubernetes` installed, or `None` (skip) outside CI.
fn python() -> Option<PathBuf> {
    let py = std::env::var_os("SKIFF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/skiff-py/bin/python")
        });
    let usable = Command::new(&py)
        .args(["-c", "import kubernetes"])
        .output()
        .is_ok_and(|o| o.status.success());
    if usable {
        return Some(py);
    }
    let msg = format!(
        "Python kubernetes client not found at {} (run scripts/setup.sh, or set SKIFF_PYTHON)",
        py.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

#[test]
fn python_kubernetes_client_works() {
    let Some(py) = python() else { return };
    let (_procs, urls) = common::start();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/k8s_client.py");
    let out = Command::new(py)
        .arg(&script)
        .args(&urls)
        .output()
        .expect("run the script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all kubernetes-client checks passed"),
        "kubernetes client script failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
}
