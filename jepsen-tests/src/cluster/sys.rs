//! Small wrappers over system commands (`ip`, `iptables`, `mount`) and signals.

use super::ClusterError;
use std::process::Command;

/// Runs `program args...` and fails with its stderr when it exits non-zero.
pub fn run(program: &str, args: &[&str]) -> Result<String, ClusterError> {
    let command_line = || format!("{program} {}", args.join(" "));
    let output =
        Command::new(program)
            .args(args)
            .output()
            .map_err(|err| ClusterError::Command {
                command: command_line(),
                detail: err.to_string(),
            })?;
    if !output.status.success() {
        return Err(ClusterError::Command {
            command: command_line(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a command inside network namespace `ns`.
pub fn run_in(ns: &str, program: &str, args: &[&str]) -> Result<String, ClusterError> {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: kill(2) has no memory-safety preconditions; it only reads its two integers.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether the current process runs as root (needed for namespaces, iptables and mounts).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
