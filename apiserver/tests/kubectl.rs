//! The real kubectl against 3 skiff-store members and 2 skiff-apiserver replicas; requests
//! alternate between the replicas, so they must behave as one API.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A binary of this workspace built next to the test executable.
fn workspace_bin(name: &str) -> PathBuf {
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

struct Procs {
    children: Vec<(String, Child)>,
    dir: tempfile::TempDir,
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
fn start() -> (Procs, Vec<String>) {
    let mut procs = Procs {
        children: Vec::new(),
        dir: tempfile::tempdir().unwrap(),
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
    let etcd = ports
        .iter()
        .map(|(c, _)| format!("http://127.0.0.1:{c}"))
        .collect::<Vec<_>>()
        .join(",");
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

struct Kubectl {
    urls: Vec<String>,
    next: std::cell::Cell<usize>,
    cache: tempfile::TempDir,
}

impl Kubectl {
    /// Runs kubectl against the next replica (round robin).
    fn run(&self, args: &[&str]) -> Output {
        let i = self.next.get();
        self.next.set(i + 1);
        self.cmd(&self.urls[i % self.urls.len()])
            .args(args)
            .output()
            .unwrap()
    }

    fn cmd(&self, url: &str) -> Command {
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
    fn ok(&self, args: &[&str]) -> String {
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
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {} should fail",
            args.join(" ")
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

const APP: &str = "apiVersion: v1
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
data:
  a: \"1\"
";

#[test]
fn kubectl_end_to_end() {
    let (procs, urls) = start();
    let k = Kubectl {
        urls: urls.clone(),
        next: std::cell::Cell::new(0),
        cache: tempfile::tempdir().unwrap(),
    };
    let dir = procs.dir.path();

    let ns = k.ok(&["get", "ns"]);
    for n in ["default", "kube-system", "kube-public"] {
        assert!(ns.contains(n), "{ns}");
    }
    let res = k.ok(&["api-resources"]);
    assert!(
        res.contains("deployments") && res.contains("deploy") && res.contains("apps/v1"),
        "{res}"
    );

    // apply -f of a multi-document file, then again after an edit (client-side 3-way patch).
    let file = dir.join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    let f = file.to_str().unwrap();
    let out = k.ok(&["apply", "-f", f, "--validate=false"]);
    for line in [
        "namespace/shop created",
        "deployment.apps/web created",
        "service/web created",
        "configmap/cfg created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    std::fs::write(
        &file,
        APP.replace("replicas: 2", "replicas: 3")
            .replace("nginx:1.25", "nginx:1.26"),
    )
    .unwrap();
    let out = k.ok(&["apply", "-f", f, "--validate=false"]);
    assert!(
        out.contains("deployment.apps/web configured") && out.contains("configmap/cfg unchanged"),
        "{out}"
    );
    assert_eq!(
        k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas} {.metadata.generation} {.spec.template.spec.containers[0].image}"]),
        "3 2 nginx:1.26"
    );

    // Output formats and selectors.
    assert_eq!(
        k.ok(&["get", "deploy", "-n", "shop", "-o", "name"]).trim(),
        "deployment.apps/web"
    );
    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "svc", "web", "-n", "shop", "-o", "json"])).unwrap();
    assert_eq!(
        json["spec"]["ports"][0]["targetPort"], 80,
        "defaulted targetPort"
    );
    assert_eq!(json["spec"]["type"], "ClusterIP");
    assert!(k
        .ok(&["get", "cm", "cfg", "-n", "shop", "-o", "yaml"])
        .contains("a: \"1\""));
    assert!(k
        .ok(&["get", "deploy", "-n", "shop", "-l", "app=web"])
        .contains("web"));
    assert!(k
        .ok(&["get", "deploy", "-n", "shop", "-l", "app=other"])
        .is_empty());
    assert!(k.ok(&["get", "cm", "-A"]).contains("shop"));

    // label, annotate, the three client patch types, scale.
    k.ok(&["label", "cm", "cfg", "-n", "shop", "tier=front"]);
    k.ok(&["annotate", "cm", "cfg", "-n", "shop", "note=hi"]);
    assert!(k
        .ok(&["get", "cm", "-n", "shop", "--show-labels"])
        .contains("tier=front"));
    k.ok(&[
        "patch",
        "cm",
        "cfg",
        "-n",
        "shop",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    k.ok(&[
        "patch",
        "cm",
        "cfg",
        "-n",
        "shop",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/c","value":"3"}]"#,
    ]);
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "shop",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#,
    ]);
    assert_eq!(
        k.ok(&["get", "cm", "cfg", "-n", "shop", "-o", "jsonpath={.data}"]),
        r#"{"a":"1","b":"2","c":"3"}"#
    );
    let ports = k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}"]);
    assert_eq!(
        ports, "nginx:1.27 80",
        "strategic merge kept the container's ports"
    );
    k.ok(&["scale", "deploy", "web", "-n", "shop", "--replicas=5"]);
    assert_eq!(
        k.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "5"
    );

    // edit with a scripted editor.
    let editor = dir.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/note: hi/note: edited/' \"$1\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", editor.to_str().unwrap()])
        .status()
        .unwrap();
    let out = k
        .cmd(&urls[0])
        .args(["edit", "cm", "cfg", "-n", "shop", "--validate=false"])
        .env("KUBE_EDITOR", editor.to_str().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "edit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "cfg",
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.annotations.note}"
        ]),
        "edited"
    );

    // get -w on one replica sees a change made through the other.
    let mut watch = k
        .cmd(&urls[0])
        .args([
            "get",
            "cm",
            "cfg",
            "-n",
            "shop",
            "-w",
            "-o",
            "jsonpath={.data.a}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    k.cmd(&urls[1])
        .args([
            "patch",
            "cm",
            "cfg",
            "-n",
            "shop",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"a":"changed"}}"#,
        ])
        .output()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(seen.lines().any(|l| l == "changed"), "watch saw: {seen:?}");

    // Errors come back as Kubernetes statuses.
    let e = k.fails(&["apply", "-f", f, "--validate=false", "--server-side"]);
    assert!(
        e.contains("UnsupportedMediaType") || e.contains("not supported"),
        "{e}"
    );
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\n  namespace: shop\nspec:\n  containers: []\n").unwrap();
    let e = k.fails(&["create", "-f", bad.to_str().unwrap(), "--validate=false"]);
    assert!(
        e.contains("is invalid") && e.contains("metadata.name"),
        "{e}"
    );
    let e = k.fails(&["create", "-f", f, "--validate=false"]);
    assert!(e.contains("AlreadyExists"), "{e}");
    let e = k.fails(&["get", "deploy", "nope", "-n", "shop"]);
    assert!(
        e.contains("NotFound") && e.contains("\"nope\" not found"),
        "{e}"
    );
    let e = k.fails(&["get", "cm", "-n", "missing-ns", "x"]);
    assert!(e.contains("NotFound"), "{e}");

    // delete waits until the object is gone; deleting the namespace takes its contents.
    assert!(k
        .ok(&["delete", "deploy", "web", "-n", "shop"])
        .contains("deleted"));
    assert!(k
        .fails(&["get", "deploy", "web", "-n", "shop"])
        .contains("NotFound"));
    k.ok(&["delete", "ns", "shop"]);
    assert!(k.ok(&["get", "cm", "-A"]).is_empty() || !k.ok(&["get", "cm", "-A"]).contains("shop"));
}
