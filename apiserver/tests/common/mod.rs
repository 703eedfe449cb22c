//! The cluster the kubectl tests run against: 3 skiff-store members and 2 skiff-apiserver
//! replicas as child processes (killed on drop), and a kubectl wrapper that alternates
//! between the replicas. Shared by the kubectl test binaries.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../raft-store/tests/common/ports.rs"]
mod ports;
pub use ports::free_port;

/// A binary of this workspace built next to the test executable.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not found: build it with `cargo build -p {}` (the workspace test run builds it)",
        p.display(),
        if name == "skiff-store" {
            "skiff-store"
        } else {
            "skiff-apiserver"
        }
    );
    p
}

/// The child processes of one test cluster.
pub struct Procs {
    children: Vec<(String, Child)>,
    /// Logs and data of every process.
    pub dir: tempfile::TempDir,
    /// Client URLs of the store members `s0`, `s1`, `s2`.
    pub stores: Vec<String>,
}

impl Procs {
    /// SIGKILLs the process named `name` (`s0`..`s2`, `api0`, `api1`) and reaps it.
    pub fn kill(&mut self, name: &str) {
        let (_, child) = self
            .children
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process named {name}"));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The name (`s0`..`s2`) of the store member that is leader now, from etcdctl's
    /// `endpoint status`.
    pub fn store_leader(&self) -> String {
        // etcdctl 3.4 sends an endpoint given with a scheme as the HTTP/2 :authority of
        // `endpoint status`, which the store's HTTP/2 server refuses (docs/compatibility.md);
        // host:port endpoints work.
        let bare: Vec<&str> = self
            .stores
            .iter()
            .map(|u| u.trim_start_matches("http://"))
            .collect();
        let out = Command::new("etcdctl")
            .args([
                "--endpoints",
                &bare.join(","),
                "endpoint",
                "status",
                "-w",
                "json",
            ])
            .output()
            .unwrap();
        let status: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("etcdctl endpoint status: {e}: {out:?}"));
        for s in status.as_array().unwrap() {
            if s["Status"]["header"]["member_id"] == s["Status"]["leader"] {
                let endpoint = s["Endpoint"].as_str().unwrap();
                let i = bare.iter().position(|u| *u == endpoint).unwrap();
                return format!("s{i}");
            }
        }
        panic!("no store member reports itself leader: {status}");
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (name, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
            if std::thread::panicking() {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!("----- {name} -----");
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

fn spawn(procs: &mut Procs, name: &str, bin: &Path, args: &[String]) {
    let log = std::fs::File::create(procs.dir.path().join(format!("{name}.log"))).unwrap();
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    procs.children.push((name.to_string(), child));
}

/// Starts the store and two apiservers; returns their URLs.
pub fn start() -> (Procs, Vec<String>) {
    let mut procs = Procs {
        children: Vec::new(),
        dir: tempfile::tempdir().unwrap(),
        stores: Vec::new(),
    };
    let store = workspace_bin("skiff-store");
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let cluster = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("s{i}=http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    for (i, (c, p)) in ports.iter().enumerate() {
        let data = procs.dir.path().join(format!("s{i}"));
        let args: Vec<String> = [
            "--name",
            &format!("s{i}"),
            "--data-dir",
            data.to_str().unwrap(),
            "--listen-client-urls",
            &format!("http://127.0.0.1:{c}"),
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{c}"),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{p}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{p}"),
            "--initial-cluster",
            &cluster,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        spawn(&mut procs, &format!("s{i}"), &store, &args);
    }
    procs.stores = ports
        .iter()
        .map(|(c, _)| format!("http://127.0.0.1:{c}"))
        .collect();
    let etcd = procs.stores.join(",");
    let api = workspace_bin("skiff-apiserver");
    let mut urls = Vec::new();
    for i in 0..2 {
        let port = free_port();
        let args: Vec<String> = [
            "--etcd-servers",
            &etcd,
            "--bind-address",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        spawn(&mut procs, &format!("api{i}"), &api, &args);
        urls.push(format!("http://127.0.0.1:{port}"));
    }
    // Ready when both replicas answer /readyz and the system namespaces exist.
    let deadline = Instant::now() + Duration::from_secs(60);
    for u in &urls {
        loop {
            let out = Command::new("kubectl")
                .args(["--server", u, "get", "--raw", "/readyz"])
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "apiserver {u} not ready: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    (procs, urls)
}

/// Runs the real kubectl against the cluster.
pub struct Kubectl {
    urls: Vec<String>,
    next: std::cell::Cell<usize>,
    cache: tempfile::TempDir,
}

impl Kubectl {
    /// kubectl against `urls`, round robin, with its own discovery cache.
    pub fn new(urls: &[String]) -> Kubectl {
        Kubectl {
            urls: urls.to_vec(),
            next: std::cell::Cell::new(0),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs kubectl against the next replica (round robin).
    pub fn run(&self, args: &[&str]) -> Output {
        let i = self.next.get();
        self.next.set(i + 1);
        self.cmd(&self.urls[i % self.urls.len()])
            .args(args)
            .output()
            .unwrap()
    }

    /// A kubectl command against `url`, not yet run.
    pub fn cmd(&self, url: &str) -> Command {
        let mut c = Command::new("kubectl");
        c.args([
            "--server",
            url,
            "--cache-dir",
            self.cache.path().to_str().unwrap(),
        ]);
        c
    }

    /// stdout of a command that must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// stderr of a command that must fail.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {} should fail",
            args.join(" ")
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

/// The stdout of a long-running command (`kubectl get -w`), read line by line on a thread.
pub struct Lines {
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    /// Starts `cmd` with its stdout captured.
    pub fn spawn(mut cmd: Command) -> Lines {
        use std::io::BufRead;
        let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits until a line satisfies `pred` (panics after `limit`); returns every line so far.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> &[String] {
        let deadline = Instant::now() + limit;
        while !self.seen.iter().any(|l| pred(l)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line {what} within {limit:?}; saw {:?}", self.seen),
            }
        }
        &self.seen
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The manifests both kubectl tests apply: namespace `shop` with a Deployment, a Service,
/// a ConfigMap and a Pod.
pub const APP: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
  - port: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: shop
  labels: {app: web}
data:
  a: \"1\"
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: shop
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: nginx:1.25
";
