//! Test harness: real multi-process clusters of `skiff-store` (and, for comparison, of real
//! etcd 3.4 from Debian's `etcd-server` package) on loopback ports, plus an `etcdctl` runner.
//!
//! Each member writes its log to `<tempdir>/<name>.log`; when a cluster is dropped during a
//! panicking test, the tail of every log is printed so the failure can be read from CI output.
#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Which binary a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// This project's store.
    Skiff,
    /// Real etcd 3.4 (`/usr/bin/etcd`).
    Etcd,
}

/// One member's fixed identity and ports.
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
    /// For a member added to a running cluster: the `--initial-cluster` it starts with
    /// (`--initial-cluster-state existing`).
    pub join: Option<String>,
}

/// A running cluster.
pub struct Cluster {
    pub flavor: Flavor,
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
    initial_cluster: String,
    extra_args: Vec<String>,
}

#[path = "ports.rs"]
mod ports;
pub use ports::free_port;

fn binary(flavor: Flavor) -> PathBuf {
    match flavor {
        Flavor::Skiff => PathBuf::from(env!("CARGO_BIN_EXE_skiff-store")),
        Flavor::Etcd => PathBuf::from("/usr/bin/etcd"),
    }
}

/// Whether real etcd is installed (the compatibility tests need it; `.ci/run` installs it).
pub fn etcd_available() -> bool {
    Path::new("/usr/bin/etcd").exists() && Path::new("/usr/bin/etcdctl").exists()
}

/// Skips (or, under CI, fails) a test that needs etcd when it is missing.
pub fn require_etcd() -> bool {
    if etcd_available() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("etcd/etcdctl are not installed: run `apt-get install etcd-server etcd-client` (.ci/run does)");
    }
    eprintln!("SKIPPED: etcd-server/etcd-client not installed");
    false
}

impl Cluster {
    /// Starts `n` members and waits until every member serves linearizable reads.
    pub fn start(flavor: Flavor, n: usize) -> Cluster {
        Self::start_with(flavor, n, &[])
    }

    /// Like [`Cluster::start`], with extra flags for every member.
    pub fn start_with(flavor: Flavor, n: usize, extra: &[&str]) -> Cluster {
        let mut c = Self::prepare(flavor, n, extra);
        c.start_all();
        c
    }

    /// Starts every prepared member and waits until all are healthy.
    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.spawn(i);
        }
        self.wait_healthy(Duration::from_secs(30));
    }

    /// Names, ports and data dirs of an `n`-member cluster, nothing started yet.
    pub fn prepare(flavor: Flavor, n: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let members: Vec<Member> = (0..n)
            .map(|i| {
                let name = format!("m{i}");
                Member {
                    data_dir: dir.path().join(format!("{name}.data")),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    client_port: free_port(),
                    peer_port: free_port(),
                    child: None,
                    join: None,
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        Cluster {
            flavor,
            dir,
            members,
            initial_cluster,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The `--initial-cluster` value of the prepared members.
    pub fn initial_cluster(&self) -> &str {
        &self.initial_cluster
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("open member log");
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut cmd = Command::new(binary(self.flavor));
        cmd.args(["--name", &m.name])
            .args(["--data-dir", m.data_dir.to_str().unwrap()])
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                m.join.as_deref().unwrap_or(&self.initial_cluster),
                "--initial-cluster-state",
                if m.join.is_some() { "existing" } else { "new" },
            ])
            .args(["--initial-cluster-token", "test-cluster"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if self.flavor == Flavor::Etcd {
            cmd.env("ETCD_UNSUPPORTED_ARCH", "amd64");
        }
        self.members[i].child = Some(cmd.spawn().expect("start a member process"));
    }

    /// Adds a (not yet started) member slot with fresh ports; returns its index.
    pub fn add_slot(&mut self, name: &str) -> usize {
        self.members.push(Member {
            name: name.to_string(),
            data_dir: self.dir.path().join(format!("{name}.data")),
            log: self.dir.path().join(format!("{name}.log")),
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
            join: None,
        });
        self.members.len() - 1
    }

    /// Peer URL of member `i`.
    pub fn peer_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].peer_port)
    }

    /// Starts member `i` as a new member of the running cluster, with `initial_cluster`
    /// (as printed by `etcdctl member add`).
    pub fn start_joining(&mut self, i: usize, initial_cluster: &str) {
        self.members[i].join = Some(initial_cluster.to_string());
        self.spawn(i);
    }

    /// Whether member `i`'s process has exited (reaping it if so).
    pub fn exited(&mut self, i: usize) -> bool {
        match self.members[i].child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(_))) => {
                self.members[i].child = None;
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// Endpoints of the running members only.
    pub fn running_endpoints(&self) -> String {
        (0..self.members.len())
            .filter(|i| self.members[*i].child.is_some())
            .map(|i| self.endpoint(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Comma-separated client endpoints (`127.0.0.1:port`).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Client endpoint of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// URLs for the `etcd-client` crate.
    pub fn urls(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// Waits until `etcdctl endpoint health` passes on every running member.
    pub fn wait_healthy(&self, limit: Duration) {
        let start = Instant::now();
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            loop {
                let out = etcdctl(
                    &self.endpoint(i),
                    &["endpoint", "health", "--command-timeout=2s"],
                );
                if out.status.success() {
                    break;
                }
                if start.elapsed() > limit {
                    self.dump_logs();
                    panic!(
                        "member {} not healthy after {limit:?}: {}",
                        m.name,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// SIGKILLs member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts a killed member with the same data dir.
    pub fn restart(&mut self, i: usize) {
        assert!(
            self.members[i].child.is_none(),
            "member {i} is still running"
        );
        self.spawn(i);
    }

    /// The index of the current leader, asked from member `from`.
    pub fn leader(&self) -> Option<usize> {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                continue;
            }
            let out = etcdctl(&self.endpoint(i), &["endpoint", "status", "-w", "json"]);
            if !out.status.success() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let st = &v[0]["Status"];
            let leader = st["leader"].as_u64()?;
            let me = st["header"]["member_id"].as_u64()?;
            if leader == me {
                return Some(i);
            }
        }
        None
    }

    /// Waits for some member to report itself leader.
    pub fn wait_leader(&self, limit: Duration) -> usize {
        let start = Instant::now();
        loop {
            if let Some(l) = self.leader() {
                return l;
            }
            if start.elapsed() > limit {
                self.dump_logs();
                panic!("no leader after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Prints the tail of every member's log.
    pub fn dump_logs(&self) {
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains("panicked at"))
            {
                eprintln!(
                    "----- {} PANIC: {}\n{}",
                    m.name,
                    l,
                    lines.get(i + 1).unwrap_or(&"")
                );
            }
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "----- {} ({:?}) last {} log lines -----\n{}",
                m.name,
                self.flavor,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A 2-worker tokio runtime for a test's async client code (the cluster runs in its own
/// processes).
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `f` every 100 ms until it returns `Some`, panicking with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `etcdctl` (v3 API) against `endpoints`.
pub fn etcdctl(endpoints: &str, args: &[&str]) -> Output {
    etcdctl_stdin(endpoints, args, None)
}

/// Runs `etcdctl` with `stdin` fed to it (for the interactive `txn`).
pub fn etcdctl_stdin(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().expect("wait for etcdctl")
}

/// stdout of a successful etcdctl call (panics with stderr otherwise).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "etcdctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a long-lived `etcdctl` command (e.g. `watch`) and returns its stdout once `done`
/// holds for the output so far, the process exits, or `limit` passes; the process is then
/// killed. stderr is appended after a `--- stderr ---` line when it is not empty.
pub fn etcdctl_until(
    endpoints: &str,
    args: &[&str],
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    use std::io::Read;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(chunk) => out.extend(chunk),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if done(&String::from_utf8_lossy(&out)) || Instant::now() >= deadline {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let err = err_reader.join().unwrap_or_default();
    // etcdctl prints a DELETE event's empty value as an empty line; whether the last one
    // arrived before `done` held and the process was killed is timing, not behaviour.
    let mut s = String::from_utf8_lossy(&out)
        .trim_end_matches('\n')
        .to_string();
    if !s.is_empty() {
        s.push('\n');
    }
    if !err.trim().is_empty() {
        s.push_str("--- stderr ---\n");
        s.push_str(&err);
    }
    s
}
