//! The closed-loop driver: M client tasks share N connections round-robin; each opens its
//! [`Session`] (before the clock starts), then loops "take the next sequence number → wait
//! for the pacer (`--rate`) → send one request and time it" until the run's [`Stop`] rule
//! says it is over. The tasks record into one shared histogram, a batch at a time
//! ([`Recorder`]).
//!
//! A workload only says how to open a session and how to make one request; everything about
//! concurrency, pacing, timeouts and counting lives here.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

// tokio's clock, which the pacer and `timeout` use.
use tokio::time::Instant;

use super::connect::Connection;
use super::options::{LoadPlan, Stop};
use super::pacer::Pacer;
use super::stats::{Latency, Recorder};
use super::BenchError;

/// Distinct error messages a run keeps; further kinds are counted under one line, so a run
/// that fails in many ways cannot grow the report without bound.
pub const MAX_DISTINCT_ERRORS: usize = 16;
/// The line under which error kinds past [`MAX_DISTINCT_ERRORS`] are counted.
pub const OTHER_ERRORS: &str = "(other errors)";

/// A workload: how one client opens its per-run state.
pub trait Workload: Send + Sync + 'static {
    /// The connection kind its clients share.
    type Conn: Connection;
    /// One client's state (its connection and whatever it set up on it).
    type Session: Session;
    /// Opens the state of client `index` on `conn`. Runs before the measured phase.
    fn open(
        &self,
        conn: Self::Conn,
        index: usize,
    ) -> impl Future<Output = Result<Self::Session, BenchError>> + Send;
}

/// One client of a workload.
pub trait Session: Send + 'static {
    /// Sends request number `seq` (unique within the run) and waits for its response.
    fn call(&mut self, seq: u64) -> impl Future<Output = Result<(), etcd_client::Error>> + Send;
    /// Releases what `open` created (a lease, say). Runs after the measured phase.
    fn close(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized,
    {
        async {}
    }
}

/// What the clients measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latencies of the successful requests.
    pub latency: Latency,
    /// Failed requests by message.
    pub errors: ErrorTally,
    /// From the first request to the last response.
    pub elapsed: Duration,
}

/// Failed requests counted by message, at most [`MAX_DISTINCT_ERRORS`] kinds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ErrorTally(BTreeMap<String, u64>);

impl ErrorTally {
    /// Counts one failure.
    pub fn add(&mut self, message: String) {
        self.add_n(message, 1);
    }

    /// Counts `n` failures with the same message.
    pub fn add_n(&mut self, message: String, n: u64) {
        if n == 0 {
            return;
        }
        let key = if self.0.contains_key(&message) || self.0.len() < MAX_DISTINCT_ERRORS {
            message
        } else {
            OTHER_ERRORS.to_string()
        };
        *self.0.entry(key).or_default() += n;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: ErrorTally) {
        for (m, n) in other.0 {
            self.add_n(m, n);
        }
    }

    /// Failures in total.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The counts by message.
    pub fn into_map(self) -> BTreeMap<String, u64> {
        self.0
    }
}

/// A short, stable message for a failed request: gRPC code and message without metadata.
pub fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    }
}

/// State shared by the client tasks of one run.
struct Shared {
    next: AtomicU64,
    stop: Stop,
    deadline: Instant,
    pacer: Option<Pacer>,
    timeout: Duration,
}

impl Shared {
    /// The next sequence number, or `None` when the run is over.
    fn take(&self) -> Option<u64> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        match self.stop {
            Stop::Total(n) => (seq < n).then_some(seq),
            Stop::After(_) => (!self.past_deadline()).then_some(seq),
        }
    }

    /// Whether a `--duration` run is over (never for a `--total` run: a sequence number
    /// that was taken is always sent, so exactly `--total` requests go out).
    fn past_deadline(&self) -> bool {
        matches!(self.stop, Stop::After(_)) && Instant::now() >= self.deadline
    }
}

/// Runs `clients` clients of `workload` over `conns` following `plan`; a request slower
/// than `timeout` counts as an error.
pub async fn drive<W: Workload>(
    workload: Arc<W>,
    conns: &[W::Conn],
    clients: usize,
    plan: LoadPlan,
    timeout: Duration,
) -> Result<Outcome, BenchError> {
    if clients == 0 || conns.is_empty() {
        return Err(BenchError::InvalidOptions(
            "--clients and --conns must be at least 1".into(),
        ));
    }
    let opening = (0..clients).map(|i| workload.open(conns[i % conns.len()].clone(), i));
    let sessions = futures::future::try_join_all(opening).await?;
    let start = Instant::now();
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        stop: plan.stop,
        deadline: match plan.stop {
            Stop::After(d) => start + d,
            Stop::Total(_) => start,
        },
        pacer: plan.rate.map(Pacer::new),
        timeout,
    });
    let latency = Arc::new(std::sync::Mutex::new(Latency::new()));
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            let recorder = Recorder::new(latency.clone());
            tokio::spawn(client_loop(s, shared.clone(), recorder))
        })
        .collect();
    let mut outcome = Outcome::default();
    let mut finished = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (session, errors) = t.await?;
        outcome.errors.merge(errors);
        finished.push(session);
    }
    outcome.elapsed = start.elapsed();
    outcome.latency = std::mem::take(&mut *latency.lock().unwrap_or_else(|p| p.into_inner()));
    futures::future::join_all(finished.into_iter().map(Session::close)).await;
    Ok(outcome)
}

/// One client's loop; returns its session (to close) and its errors. Latencies go to
/// `latency` (flushed when the loop ends).
async fn client_loop<S: Session>(
    mut session: S,
    shared: Arc<Shared>,
    mut latency: Recorder,
) -> (S, ErrorTally) {
    let mut errors = ErrorTally::default();
    while let Some(seq) = shared.take() {
        if let Some(p) = &shared.pacer {
            p.wait().await;
            if shared.past_deadline() {
                break;
            }
        }
        let sent = Instant::now();
        match tokio::time::timeout(shared.timeout, session.call(seq)).await {
            Ok(Ok(())) => latency.record(sent.elapsed()),
            Ok(Err(e)) => errors.add(describe(&e)),
            Err(_) => errors.add(format!("request timed out after {:?}", shared.timeout)),
        }
    }
    latency.flush();
    (session, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::Client;

    // The tally keeps at most MAX_DISTINCT_ERRORS kinds and loses no count.
    #[test]
    fn error_tally_is_capped() {
        let mut t = ErrorTally::default();
        for i in 0..(MAX_DISTINCT_ERRORS + 5) {
            t.add(format!("error {i}"));
        }
        t.add("error 0".into());
        assert_eq!(t.total(), MAX_DISTINCT_ERRORS as u64 + 6);
        let m = t.into_map();
        assert_eq!(m.len(), MAX_DISTINCT_ERRORS + 1);
        assert_eq!(m[OTHER_ERRORS], 5);
        assert_eq!(m["error 0"], 2);
    }

    // gRPC errors are described by code and message only.
    #[test]
    fn grpc_errors_are_short() {
        let e = etcd_client::Error::GRpcStatus(tonic::Status::unavailable("leader lost"));
        assert_eq!(describe(&e), "Unavailable: leader lost");
    }

    /// A workload that needs no server: request `seq` takes `seq % 3` ms, every 10th fails
    /// and request 5 hangs past the timeout. (Real time: the tests assert counts, which a
    /// slow machine cannot change, and lower bounds on time.)
    struct Fake;
    struct FakeSession;

    impl Workload for Fake {
        type Conn = Client;
        type Session = FakeSession;
        async fn open(&self, _conn: Client, _index: usize) -> Result<FakeSession, BenchError> {
            Ok(FakeSession)
        }
    }

    impl Session for FakeSession {
        async fn call(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
            let ms = if seq == 5 { 60_000 } else { seq % 3 };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if seq % 10 == 9 {
                return Err(etcd_client::Error::InvalidArgs("boom".into()));
            }
            Ok(())
        }
    }

    async fn fake_conns() -> Vec<Client> {
        // The client connects lazily: nothing listens there and nothing is sent.
        vec![Client::connect(["http://127.0.0.1:9"], None).await.unwrap()]
    }

    fn plan(stop: Stop, rate: Option<u64>) -> LoadPlan {
        LoadPlan { stop, rate }
    }

    // --total sends exactly that many requests; failures and timeouts are counted apart.
    #[tokio::test]
    async fn total_counts_every_request() {
        let conns = fake_conns().await;
        let timeout = Duration::from_millis(200);
        let o = drive(
            Arc::new(Fake),
            &conns,
            4,
            plan(Stop::Total(100), None),
            timeout,
        )
        .await
        .unwrap();
        assert_eq!(o.latency.count() + o.errors.total(), 100);
        let errors = o.errors.into_map();
        assert_eq!(errors["invalid arguments: boom"], 10);
        assert_eq!(errors["request timed out after 200ms"], 1);
    }

    // --duration stops the clients at the deadline; --rate bounds how many requests went.
    #[tokio::test]
    async fn duration_and_rate_bound_the_run() {
        let conns = fake_conns().await;
        let timeout = Duration::from_millis(100);
        let stop = Stop::After(Duration::from_millis(500));
        let o = drive(Arc::new(Fake), &conns, 8, plan(stop, Some(100)), timeout)
            .await
            .unwrap();
        let sent = o.latency.count() + o.errors.total();
        assert!(
            (1..=50).contains(&sent),
            "{sent} requests in 0.5 s at 100/s"
        );
        assert!(o.elapsed >= Duration::from_millis(500), "{:?}", o.elapsed);
    }
}
