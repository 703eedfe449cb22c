//! Small wrappers over system commands (`ip`, `iptables`, `mount`) and signals.

use super::ClusterError;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Runs `program args...` and fails with its stderr when it exits non-zero.
pub fn run(program: &str, args: &[&str]) -> Result<String, ClusterError> {
    let mut command = Command::new(program);
    command.args(args);
    output(&mut command, || format!("{program} {}", args.join(" ")))
}

/// Runs a command inside network namespace `ns` (see [`enter_netns`]).
pub fn run_in(ns: &str, program: &str, args: &[&str]) -> Result<String, ClusterError> {
    let command_line = || format!("[netns {ns}] {program} {}", args.join(" "));
    let mut command = Command::new(program);
    command.args(args);
    let _netns = enter_netns(&mut command, ns).map_err(|err| ClusterError::Command {
        command: command_line(),
        detail: err.to_string(),
    })?;
    output(&mut command, command_line)
}

/// Makes `command` enter network namespace `ns` (`setns` in the child, before exec), and
/// nothing else. Unlike `ip netns exec`, the child stays in the root mount namespace: a
/// private mount namespace copies every mount that exists when it is made, so a member of
/// one run would keep another run's loop-mounted disks alive after that run unmounted them
/// for a power cut, and the remount would get the shut-down file system back (every read
/// then fails with EIO). The returned file must stay open until the command is spawned.
pub fn enter_netns(command: &mut Command, ns: &str) -> std::io::Result<File> {
    let netns = File::open(Path::new(NETNS_DIR).join(ns))?;
    let fd = netns.as_raw_fd();
    let enter = move || {
        // SAFETY: setns(2) only reads the descriptor, which the caller keeps open until the
        // spawn is done; it is async-signal-safe, as code between fork and exec must be.
        if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: the closure calls only setns(2) and reads errno; it allocates nothing and takes
    // no locks, so it is safe to run in the forked child.
    unsafe { command.pre_exec(enter) };
    Ok(netns)
}

/// Where `ip netns add` puts the namespace handles.
const NETNS_DIR: &str = "/run/netns";

fn output(
    command: &mut Command,
    command_line: impl Fn() -> String,
) -> Result<String, ClusterError> {
    let output = command.output().map_err(|err| ClusterError::Command {
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
