//! The apiserver benchmark behind `skiff-apiserver-bench`: create pods with concurrent
//! clients, list them (one page, and paginated), and the delay from a change to its watch
//! event at many watchers. Plain HTTP/1.1 with keep-alive, one connection per client, as
//! client-go does per host; latencies are kept whole and sorted for the percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// An HTTP client bound to a set of apiserver URLs (requests rotate over them).
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    servers: Arc<Vec<String>>,
}

/// A failed request: transport error or an unexpected status.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(String);

impl Http {
    /// A client for `servers` (`http://host:port`), with up to `conns` idle connections
    /// kept per server.
    pub fn new(servers: Vec<String>, conns: usize) -> Http {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(conns)
            .build_http();
        Http {
            client,
            servers: Arc::new(servers),
        }
    }

    fn url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.servers[i % self.servers.len()])
    }

    /// Sends one request to server `i mod n` and reads the whole answer; fails unless the
    /// status is `want`.
    pub async fn call(
        &self,
        i: usize,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        want: StatusCode,
    ) -> Result<Bytes, BenchError> {
        let req = Request::builder()
            .method(method)
            .uri(self.url(i, path))
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| BenchError(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| BenchError(format!("{path}: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| BenchError(format!("{path}: reading the answer: {e}")))?
            .to_bytes();
        if status != want {
            return Err(BenchError(format!(
                "{path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )));
        }
        Ok(body)
    }
}

/// Latency percentiles and throughput of one workload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Workload name.
    pub workload: String,
    /// Successful operations.
    pub ops: usize,
    /// Failed operations.
    pub errors: usize,
    /// Wall time.
    pub elapsed_secs: f64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Latency percentiles, ms: p50, p90, p99, max.
    pub latency_ms: Percentiles,
    /// The first error message, if any.
    pub first_error: Option<String>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `samples` (sorted in place); zeros if empty.
    pub fn of(samples: &mut [Duration]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1e3
        };
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latency_ms;
        write!(
            f,
            "{:<14} {:>7} ops {:>4} errors {:>8.1}s {:>9.1} ops/s   latency ms p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            self.workload, self.ops, self.errors, self.elapsed_secs, self.ops_per_sec, l.p50, l.p90, l.p99, l.max
        )?;
        if let Some(e) = &self.first_error {
            write!(f, "\n  first error: {e}")?;
        }
        Ok(())
    }
}

fn report(
    workload: &str,
    mut samples: Vec<Duration>,
    errors: Vec<String>,
    elapsed: Duration,
) -> Report {
    Report {
        workload: workload.to_string(),
        ops: samples.len(),
        errors: errors.len(),
        elapsed_secs: elapsed.as_secs_f64(),
        ops_per_sec: samples.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_ms: Percentiles::of(&mut samples),
        first_error: errors.into_iter().next(),
    }
}

/// A small pod named `name`, as a scheduler-free benchmark object.
pub fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}
    })
}

/// Creates namespace `ns` (fine if it exists).
pub async fn ensure_namespace(http: &Http, ns: &str) -> Result<(), BenchError> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    match http
        .call(
            0,
            Method::POST,
            "/api/v1/namespaces",
            "application/json",
            body.to_string().into_bytes(),
            StatusCode::CREATED,
        )
        .await
    {
        Err(e) if !e.0.contains("409") => Err(e),
        _ => Ok(()),
    }
}

/// Creates `total` pods `<prefix>-<i>` in `ns` from `clients` concurrent clients.
pub async fn create_pods(
    http: &Http,
    ns: &str,
    prefix: &str,
    total: usize,
    clients: usize,
) -> Report {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, next, ns, prefix) = (
            http.clone(),
            next.clone(),
            ns.to_string(),
            prefix.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errs) = (Vec::new(), Vec::new());
            let path = format!("/api/v1/namespaces/{ns}/pods");
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let body = pod(&format!("{prefix}-{i}")).to_string().into_bytes();
                let t = Instant::now();
                match http
                    .call(
                        c,
                        Method::POST,
                        &path,
                        "application/json",
                        body,
                        StatusCode::CREATED,
                    )
                    .await
                {
                    Ok(_) => ok.push(t.elapsed()),
                    Err(e) => errs.push(e.0),
                }
            }
            (ok, errs)
        }));
    }
    let (mut samples, mut errors) = (Vec::new(), Vec::new());
    for t in tasks {
        let (ok, errs) = t.await.expect("client task");
        samples.extend(ok);
        errors.extend(errs);
    }
    report("create-pods", samples, errors, start.elapsed())
}

/// Lists the pods of `ns` `repeat` times: whole (`page_size` 0) or in pages of
/// `page_size`; one sample per complete list. Also returns how many pods a list saw.
pub async fn list_pods(http: &Http, ns: &str, page_size: usize, repeat: usize) -> (Report, usize) {
    let name = if page_size == 0 {
        "list".to_string()
    } else {
        format!("list-by-{page_size}")
    };
    let (mut samples, mut errors, mut seen) = (Vec::new(), Vec::new(), 0);
    let start = Instant::now();
    for r in 0..repeat {
        let t = Instant::now();
        let mut token = String::new();
        let mut count = 0;
        let result: Result<(), BenchError> = async {
            loop {
                let mut path = format!("/api/v1/namespaces/{ns}/pods?limit={page_size}");
                if !token.is_empty() {
                    path.push_str(&format!("&continue={token}"));
                }
                let body = http
                    .call(
                        r,
                        Method::GET,
                        &path,
                        "application/json",
                        Vec::new(),
                        StatusCode::OK,
                    )
                    .await?;
                let list: Value =
                    serde_json::from_slice(&body).map_err(|e| BenchError(e.to_string()))?;
                count += list["items"].as_array().map_or(0, Vec::len);
                token = list["metadata"]["continue"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if token.is_empty() {
                    return Ok(());
                }
            }
        }
        .await;
        match result {
            Ok(()) => {
                samples.push(t.elapsed());
                seen = count;
            }
            Err(e) => errors.push(e.0),
        }
    }
    (report(&name, samples, errors, start.elapsed()), seen)
}

/// Opens `watchers` watches on the pods of `ns` (spread over the servers), then patches pod
/// `<ns>/<target>` `changes` times, `interval` apart; each event's delay is the time from
/// sending its patch to the event arriving at a watcher. Every watcher must see every change.
pub async fn watch_latency(
    http: &Http,
    ns: &str,
    target: &str,
    watchers: usize,
    changes: usize,
    interval: Duration,
) -> Result<Report, BenchError> {
    // The list's resourceVersion: watches start after it, so only the changes arrive.
    let list = http
        .call(
            0,
            Method::GET,
            &format!("/api/v1/namespaces/{ns}/pods?limit=1"),
            "application/json",
            Vec::new(),
            StatusCode::OK,
        )
        .await?;
    let list: Value = serde_json::from_slice(&list).map_err(|e| BenchError(e.to_string()))?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let sent: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; changes]));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<Vec<Duration>, String>>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for w in 0..watchers {
        let (http, sent, tx, ready_tx) = (http.clone(), sent.clone(), tx.clone(), ready_tx.clone());
        let path = format!(
            "/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={rv}&fieldSelector=metadata.name%3D{target}&timeoutSeconds=600"
        );
        tokio::spawn(async move {
            let r = watch_one(&http, w, &path, changes, &sent, ready_tx).await;
            let _ = tx.send(r);
        });
    }
    drop(tx);
    drop(ready_tx);
    for _ in 0..watchers {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    // Give the server a moment to register the last watchers' streams.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let path = format!("/api/v1/namespaces/{ns}/pods/{target}");
    for i in 0..changes {
        let patch =
            json!({"metadata": {"annotations": {"bench/change": i.to_string()}}}).to_string();
        sent.lock().unwrap()[i] = Some(Instant::now());
        http.call(
            i,
            Method::PATCH,
            &path,
            "application/merge-patch+json",
            patch.into_bytes(),
            StatusCode::OK,
        )
        .await?;
        tokio::time::sleep(interval).await;
    }
    let (mut samples, mut errors) = (Vec::new(), Vec::new());
    while let Some(r) = rx.recv().await {
        match r {
            Ok(d) => samples.extend(d),
            Err(e) => errors.push(e),
        }
    }
    Ok(report(
        &format!("watch-{watchers}"),
        samples,
        errors,
        start.elapsed(),
    ))
}

/// Reads one watch stream until it has seen `changes` modifications; returns their delays.
async fn watch_one(
    http: &Http,
    w: usize,
    path: &str,
    changes: usize,
    sent: &std::sync::Mutex<Vec<Option<Instant>>>,
    ready: tokio::sync::mpsc::UnboundedSender<()>,
) -> Result<Vec<Duration>, String> {
    let req = Request::builder()
        .uri(http.url(w, path))
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = http
        .client
        .request(req)
        .await
        .map_err(|e| format!("watch: {e}"))?;
    if resp.status() != StatusCode::OK {
        return Err(format!("watch: HTTP {}", resp.status()));
    }
    let _ = ready.send(());
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let mut delays = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while delays.len() < changes {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .map_err(|_| {
                format!(
                    "watcher {w}: saw {} of {changes} changes in 300 s",
                    delays.len()
                )
            })?;
        let Some(frame) = frame else {
            return Err(format!(
                "watcher {w}: the stream ended after {} changes",
                delays.len()
            ));
        };
        let frame = frame.map_err(|e| format!("watcher {w}: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let now = Instant::now();
        buf.extend_from_slice(&data);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let ev: Value =
                serde_json::from_slice(&line).map_err(|e| format!("watcher {w}: {e}"))?;
            if ev["type"] != "MODIFIED" {
                continue;
            }
            let change = ev["object"]["metadata"]["annotations"]["bench/change"]
                .as_str()
                .and_then(|s| s.parse::<usize>().ok());
            if let Some(at) = change.and_then(|i| sent.lock().unwrap().get(i).copied().flatten()) {
                delays.push(now.saturating_duration_since(at));
            }
        }
    }
    Ok(delays)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let mut s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut s);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&mut []).max, 0.0);
    }
}
