//! One file per workload. Each turns its flags into a [`driver::Workload`] (how a client
//! opens its session and makes one request) and runs it through the shared driver, except
//! `watch_latency`, which adds watchers around a driven set of writers.

pub mod lease_keepalive;
pub mod put;
pub mod range;
pub mod txn_put;
pub mod watch_latency;

use std::sync::Arc;
use std::time::Duration;

use super::connect::{connect_all, Connection};
use super::driver;
use super::options::{LoadPlan, Options, Workload};
use super::report::Report;
use super::BenchError;

/// Connects and runs the workload `opts` names.
pub async fn run(opts: &Options) -> Result<Report, BenchError> {
    let run = Run {
        endpoints: opts.endpoints.clone(),
        conns: opts.conns,
        target_leader: opts.target_leader,
        clients: opts.clients,
        timeout: Duration::from_millis(opts.request_timeout_ms.max(1)),
    };
    let name = opts.workload.name();
    match &opts.workload {
        Workload::Put(o) => run.drive(name, put::Put::new(o)?, o.load.plan()?).await,
        Workload::Range(o) => run.drive(name, range::Range::new(o), o.load.plan()?).await,
        Workload::TxnPut(o) => {
            run.drive(name, txn_put::TxnPut::new(o)?, o.load.plan()?)
                .await
        }
        Workload::LeaseKeepalive(o) => {
            let w = lease_keepalive::LeaseKeepalive::new(o)?;
            run.drive(name, w, o.load.plan()?).await
        }
        Workload::WatchLatency(o) => watch_latency::run(o, &run).await,
    }
}

/// The connection and client settings of one run.
pub struct Run {
    /// The endpoints to connect to.
    pub endpoints: Vec<String>,
    /// Connections to open.
    pub conns: usize,
    /// Every connection goes to the leader.
    pub target_leader: bool,
    /// Concurrent clients.
    pub clients: usize,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Run {
    /// Opens the run's connections of kind `C` (before the clock starts).
    pub async fn connect<C: Connection>(&self) -> Result<Vec<C>, BenchError> {
        connect_all(&self.endpoints, self.conns, self.target_leader).await
    }

    /// Connects, drives `workload` and reports it under `name`.
    async fn drive<W: driver::Workload>(
        &self,
        name: &str,
        workload: W,
        plan: LoadPlan,
    ) -> Result<Report, BenchError> {
        let conns: Vec<W::Conn> = self.connect().await?;
        let o = driver::drive(Arc::new(workload), &conns, self.clients, plan, self.timeout).await?;
        Ok(Report::new(
            name,
            &o.latency,
            o.errors.into_map(),
            o.elapsed.as_secs_f64(),
        ))
    }
}
