//! Cluster control: start members, kill/pause/restart them, and cut the network between them.
//!
//! [`Cluster`] is the contract the nemesis and the run driver use; [`netns::NetnsCluster`] is
//! the local backend (one network namespace per member on a private bridge, iptables for
//! partitions, optional loop-mounted ext4 data dirs for power loss). A docker-compose backend
//! can implement the same trait (`docker kill`, `docker pause`, iptables in the containers).
//!
//! ```text
//!  root namespace: harness ──10.a.b.1── bridge ──veth── [netns m0: skiff-store 10.a.b.10]
//!                                              ├─veth── [netns m1: skiff-store 10.a.b.11]
//!                                              └─veth── [netns m2: skiff-store 10.a.b.12]
//!  partitions: iptables -A INPUT -s <peer> -j DROP inside the member namespaces
//! ```

mod disk;
pub mod netns;
mod sys;

pub use netns::{NetnsCluster, NetnsOptions};

use crate::nemesis::grudge::Grudge;
use std::path::PathBuf;

/// Errors from controlling a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The machine cannot host a namespaced cluster (not root, tools missing).
    #[error("failed to prepare the cluster host: {0}")]
    Preflight(String),
    /// A system command failed.
    #[error("failed to run `{command}`: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr or the spawn error.
        detail: String,
    },
    /// A member process could not be started or signalled.
    #[error("failed to {action} member m{member}: {detail}")]
    Member {
        /// What was attempted.
        action: &'static str,
        /// The member index.
        member: usize,
        /// What went wrong.
        detail: String,
    },
    /// The fault needs something this cluster was not set up with.
    #[error("unsupported fault: {0}")]
    Unsupported(String),
    /// Plain I/O on the run directory.
    #[error("failed to access {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// How a member is started: from scratch with the initial cluster, or as a member that was
/// just added with `MemberAdd` to a running cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartMode {
    /// `--initial-cluster-state new` with the initial member list (also used for restarts,
    /// where the data dir decides).
    Initial,
    /// `--initial-cluster-state existing` with this `--initial-cluster` value.
    Join(String),
}

/// Control over a running cluster. All methods are blocking and may be called from any thread;
/// implementations serialise internally. Every fault is reversible by [`Cluster::heal_all`],
/// which the run driver always calls before checking, and implementations also heal and tear
/// down on drop (also while a panic unwinds).
pub trait Cluster: Send + Sync {
    /// Number of members.
    fn size(&self) -> usize;
    /// Client URL of member `i` (`http://ip:port`), reachable from the harness.
    fn client_url(&self, i: usize) -> String;
    /// Peer URL of member `i`, for MemberAdd.
    fn peer_url(&self, i: usize) -> String;
    /// The `--name` of member `i`.
    fn name(&self, i: usize) -> String {
        format!("m{i}")
    }
    /// Starts member `i` if it is not running. A member whose data was wiped (see
    /// [`Cluster::wipe`]) only starts with [`StartMode::Join`]; `Initial` is refused. A member
    /// started with `Join` whose join is not confirmed yet ([`Cluster::confirm_joined`])
    /// starts with the same `Join` flags again when asked for `Initial`: its data dir may
    /// still be empty, and the initial flags would bootstrap it under its removed identity.
    fn start(&self, i: usize, mode: StartMode) -> Result<(), ClusterError>;
    /// Records that member `i`, started with [`StartMode::Join`], has joined (it served a
    /// read, so its identity is on disk): later restarts use the initial flags again, which
    /// a member with data ignores. No-op for a member that is not joining.
    fn confirm_joined(&self, i: usize);
    /// SIGKILLs member `i` and waits for it to exit. No-op if it is not running.
    fn kill(&self, i: usize) -> Result<(), ClusterError>;
    /// SIGSTOPs member `i`.
    fn pause(&self, i: usize) -> Result<(), ClusterError>;
    /// SIGCONTs member `i`.
    fn resume(&self, i: usize) -> Result<(), ClusterError>;
    /// Whether member `i` has a live process.
    fn is_running(&self, i: usize) -> bool;
    /// Replaces all partition rules by `grudge`.
    fn partition(&self, grudge: &Grudge) -> Result<(), ClusterError>;
    /// Removes all partition rules.
    fn heal_network(&self) -> Result<(), ClusterError>;
    /// Kills every member and discards every write not yet fsynced, as a power cut would.
    /// Members stay down; [`Cluster::start`] them afterwards.
    fn power_loss(&self) -> Result<(), ClusterError>;
    /// Writes every member's dirty pages to its disk (`syncfs`), as the kernel's periodic
    /// writeback would within 30 s. Called once the cluster is up, so a later power loss
    /// takes back only what the run wrote, not the cluster's bootstrap. No-op without disks.
    fn flush_disks(&self) -> Result<(), ClusterError>;
    /// Deletes member `i`'s data (it must be stopped), for a member that rejoins from scratch.
    fn wipe(&self, i: usize) -> Result<(), ClusterError>;
    /// The log file of member `i`.
    fn log_path(&self, i: usize) -> PathBuf;

    /// Heals everything: network rules flushed, paused members resumed, stopped members
    /// started. Returns the first error but attempts every step.
    fn heal_all(&self) -> Result<(), ClusterError> {
        let mut first = self.heal_network().err();
        for i in 0..self.size() {
            let result = self.resume(i).and_then(|()| {
                if self.is_running(i) {
                    Ok(())
                } else {
                    self.start(i, StartMode::Initial)
                }
            });
            if let Err(err) = result {
                first.get_or_insert(err);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Client URLs of every member, in member order.
    fn client_urls(&self) -> Vec<String> {
        (0..self.size()).map(|i| self.client_url(i)).collect()
    }
}
