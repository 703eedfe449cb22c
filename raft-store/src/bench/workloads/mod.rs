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

use etcd_client::Client;

use super::connect::connect_all;
use super::driver;
use super::options::{LoadPlan, Options, Workload};
use super::report::Report;
use super::BenchError;

/// Connects and runs the workload `opts` names.
pub async fn run(opts: &Options) -> Result<Report, BenchError> {
    let conns = connect_all(&opts.endpoints, opts.conns, opts.target_leader).await?;
    let run = Run {
        conns,
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

/// The connections and client settings of one run.
pub struct Run {
    /// The open connections.
    pub conns: Vec<Client>,
    /// Concurrent clients.
    pub clients: usize,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Run {
    /// Drives `workload` and reports it under `name`.
    async fn drive<W: driver::Workload>(
        &self,
        name: &str,
        workload: W,
        plan: LoadPlan,
    ) -> Result<Report, BenchError> {
        let o = driver::drive(
            Arc::new(workload),
            &self.conns,
            self.clients,
            plan,
            self.timeout,
        )
        .await?;
        Ok(Report::new(
            name,
            &o.latency,
            o.errors.into_map(),
            o.elapsed.as_secs_f64(),
        ))
    }
}
