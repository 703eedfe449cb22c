//! Workloads: client processes that drive a cluster during a run and record what they saw,
//! plus the checker each workload's history is judged by.
//!
//! | workload | operations | checked by |
//! |---|---|---|
//! | [`register`] | read / write / cas (Txn on `version`) on many independent keys | linearizability, [`crate::model::VersionedRegister`] per key; no acknowledged write lost |
//! | [`append`] | list-append transactions (snapshot Txn + guarded Txn) | strict serializability, [`crate::checks::append`] |
//! | [`lease`] | expiring leases, kept-alive leases with reads | [`crate::checks::lease`] |
//! | [`watch`] | puts under one prefix, one watcher per member | [`crate::checks::watch`] |
//!
//! Every workload runs until its stop signal turns true, then (after the driver healed the
//! cluster) runs a final phase, e.g. reading back every key, so that lost writes show up in
//! the history that is checked.

pub mod append;
pub mod lease;
pub mod register;
pub mod watch;

use crate::history::Recorder;
use std::sync::Arc;

/// What every workload gets from the run driver.
#[derive(Clone)]
pub struct Context {
    /// Client URL of each member; worker `w` talks to member `w % urls.len()`.
    pub urls: Vec<String>,
    /// Where operations are recorded.
    pub recorder: Arc<Recorder>,
    /// Turns true when the workload must stop issuing operations.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// Seed for the workload's random choices.
    pub seed: u64,
    /// Number of concurrent client workers.
    pub concurrency: usize,
    /// Target total operation rate, per second.
    pub rate: f64,
}

impl Context {
    /// The mean pause between two operations of one worker for the target rate.
    pub fn mean_delay(&self) -> std::time::Duration {
        let per_worker = self.rate / self.concurrency.max(1) as f64;
        std::time::Duration::from_secs_f64(1.0 / per_worker.max(0.001))
    }
}
