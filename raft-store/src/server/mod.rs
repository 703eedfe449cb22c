//! One skiff-store member: storage, Raft, the etcd v3 gRPC services and the peer service,
//! wired together and run until SIGINT/SIGTERM.
//!
//! ```text
//!  client port (2379): gRPC KV/Watch/Lease/Cluster/Maintenance + HTTP /health /metrics
//!        │ writes: Proposer (batch / forward) ──► Raft ──► StateMachine (MVCC)
//!        │ reads:  ReadBarrier (ReadIndex)      ──► MVCC
//!        │ watch:  applied events ──► WatchHub ──► watch streams (history from MVCC)
//!  peer port (2380):  Peer service (Raft RPCs, forwarded proposals, read index, lease calls)
//! ```

pub mod cluster;
pub mod compactor;
pub mod errors;
pub mod http;
pub mod identity;
pub mod kv;
pub mod lease;
pub mod lessor;
pub mod maintenance;
pub mod membership;
pub mod metrics;
pub mod peer;
pub mod proposer;
pub mod reads;
pub mod transfer;
pub mod unary;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use etcd_client::proto::{PbEvent, PbResponseHeader};
use openraft::{RaftLogReader, SnapshotPolicy};
use skiff_mvcc::{Mvcc, MvccOptions};
use skiff_wal::{SyncMode, WalOptions};

use crate::config::{ClusterState, Config};
use crate::raft::log_store::LogStore;
use crate::raft::network::Peers;
use crate::raft::state_machine::{ApplyObserver, StateMachine};
use crate::raft::{ApiError, Command, CommandResult, MemberNode, Raft};
use lessor::Lessor;
use proposer::Proposer;
use reads::ReadBarrier;
use watch::hub::{HubLimits, WatchHub};

/// The etcd version this member reports. Kubernetes enables watch progress requests only
/// for etcd >= 3.5.13, and skiff-store implements what that version offers clients.
pub const ETCD_VERSION: &str = "3.5.17";
/// How often the leader looks for expired leases.
const LEASE_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Lease revokes proposed per check (etcd revokes at most 1000 leases per second).
const MAX_REVOKES_PER_CHECK: usize = 250;
/// How long a follower waits to apply a write it forwarded before answering anyway.
const LOCAL_APPLY_WAIT: Duration = Duration::from_secs(5);

/// Everything a request handler needs, shared by all services.
pub struct Node {
    /// Validated flags.
    pub cfg: Config,
    /// The Raft instance.
    pub raft: Raft,
    /// The local state machine store.
    pub mvcc: Arc<Mvcc>,
    /// The Raft log.
    pub log: LogStore,
    /// Write path.
    pub proposer: Proposer,
    /// Linearizable read path.
    pub reads: ReadBarrier,
    /// Lease deadlines.
    pub lessor: Arc<Lessor>,
    /// Recent history shared by all watch streams.
    pub watch_hub: Arc<WatchHub>,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// Whether a NOSPACE alarm is raised (kept current by the state machine).
    pub nospace: Arc<std::sync::atomic::AtomicBool>,
    /// The backend size the quota check reads (cached for a few milliseconds).
    pub backend_size: maintenance::BackendSize,
}

impl Node {
    /// A response header for a reply at `revision`.
    pub fn header(&self, revision: i64) -> Option<PbResponseHeader> {
        Some(PbResponseHeader {
            cluster_id: self.cfg.cluster_id,
            member_id: self.cfg.member_id,
            revision,
            // The server metrics change only with the vote; the full metrics, which the Raft
            // thread rewrites several times per write, would contend for their lock.
            raft_term: self
                .raft
                .server_metrics()
                .borrow()
                .vote
                .leader_id()
                .get_term(),
        })
    }

    /// Proposes a command and returns the decoded response (without its header) and the
    /// revision.
    pub async fn write<M: prost::Message + Default>(
        &self,
        cmd: Command,
    ) -> Result<(M, i64), ApiError> {
        let kind = cmd.kind();
        let (body, revision) = self.write_raw(cmd).await?;
        let msg = M::decode(body.as_slice())
            .map_err(|e| errors::internal(format!("bad {kind} response: {e}")))?;
        Ok((msg, revision))
    }

    /// Proposes a command and returns its encoded response body (without the header field,
    /// see [`CommandResult::Ok`]) and the revision, once this member has applied it.
    pub async fn write_raw(&self, cmd: Command) -> Result<(Vec<u8>, i64), ApiError> {
        match self.proposer.propose(cmd).await? {
            CommandResult::Ok { revision, body } => {
                self.applied_locally(revision).await;
                Ok((body, revision))
            }
            CommandResult::Err(e) => Err(e),
        }
    }

    /// Waits until this member has applied revision `rev`. etcd answers a write only once
    /// the member that received it has applied it, so the client's next serializable read
    /// or new watch on that member sees the write (clients such as etcd-client spread
    /// requests over the members). The leader has applied it already (one read of the watch
    /// hub's latest revision); a follower that forwarded the write learns of the commit from
    /// the leader's next AppendEntries, which openraft sends right after committing.
    async fn applied_locally(&self, rev: i64) {
        if self.watch_hub.latest() >= rev {
            return;
        }
        let mut rx = self.watch_hub.subscribe();
        let caught_up = rx.wait_for(|applied| *applied >= rev);
        if tokio::time::timeout(LOCAL_APPLY_WAIT, caught_up)
            .await
            .is_err()
        {
            tracing::warn!(
                revision = rev,
                applied = self.watch_hub.latest(),
                "answering a forwarded write before applying it here: this member lags behind the leader"
            );
        }
    }
}

/// Hears about applied changes: keeps the lessor's lease set current and feeds watchers.
struct Observer {
    lessor: Arc<Lessor>,
    mvcc: Arc<Mvcc>,
    hub: Arc<WatchHub>,
    /// This member's id and the signal that it was removed from the cluster.
    member_id: u64,
    removed: Arc<tokio::sync::Notify>,
}

impl ApplyObserver for Observer {
    fn lease_granted(&self, id: i64, ttl: i64) {
        self.lessor.granted(id, ttl, Instant::now());
    }
    fn lease_revoked(&self, id: i64) {
        self.lessor.revoked(id);
    }
    fn events(&self, revision: i64, events: Vec<PbEvent>) {
        self.hub.publish(revision, events);
    }
    fn snapshot_installed(&self) {
        self.hub.reset(self.mvcc.current_revision());
        match self.mvcc.leases() {
            Ok(l) => self.lessor.reset(l, Instant::now()),
            Err(e) => tracing::error!(error = %e, "failed to read leases after a snapshot install"),
        }
    }
    fn member_removed(&self, id: u64) {
        if id == self.member_id {
            self.removed.notify_one();
        }
    }
}

fn raft_config(cfg: &Config) -> anyhow::Result<openraft::Config> {
    let hb = cfg.heartbeat.as_millis() as u64;
    let et = cfg.election_timeout.as_millis() as u64;
    let c = openraft::Config {
        cluster_name: "skiff".into(),
        heartbeat_interval: hb,
        // etcd randomises the election timeout in [timeout, 2*timeout).
        election_timeout_min: et,
        election_timeout_max: et * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_count),
        // etcd keeps 5000 catch-up entries so a briefly lagging member needs no snapshot.
        max_in_snapshot_log_to_keep: cfg.snapshot_catchup_entries,
        install_snapshot_timeout: 10_000,
        max_payload_entries: 64,
        ..Default::default()
    };
    Ok(c.validate()?)
}

/// Opens storage, starts Raft and all listeners, and serves until a shutdown signal.
pub async fn run(mut cfg: Config) -> anyhow::Result<()> {
    let ident = identity::resolve(&cfg).await?;
    cfg.member_id = ident.member_id;
    cfg.cluster_id = ident.cluster_id;
    let member_dir = cfg.data_dir.join("member");
    // Each created level's directory entry is fsynced: a state machine directory lost in a
    // power cut would be recreated empty behind a Raft log that says it was applied.
    let kv_dir = member_dir.join("kv");
    skiff_wal::durable::create_dir_all(&kv_dir)
        .with_context(|| format!("failed to create {}", kv_dir.display()))?;
    let mvcc = Arc::new(
        Mvcc::open(&kv_dir, MvccOptions::default()).context("failed to open the MVCC store")?,
    );
    let sync = if cfg.unsafe_no_fsync {
        SyncMode::NoSync
    } else {
        SyncMode::Fsync
    };
    let log = LogStore::open(
        &member_dir.join("wal"),
        WalOptions {
            sync,
            ..Default::default()
        },
    )
    .context("failed to open the write-ahead log")?;
    let metrics = metrics::Metrics::new();
    let log = log
        .with_append_timer(metrics.pipeline.wal_append.clone())
        .with_member_id(cfg.member_id);
    let lessor = Arc::new(Lessor::default());
    lessor.reset(
        mvcc.leases().context("failed to read leases")?,
        Instant::now(),
    );
    if crate::raft::state_machine::removed_members(&mvcc).contains(&cfg.member_id) {
        anyhow::bail!(
            "the member has been permanently removed from the cluster (member {:x}); \
             remove its data dir and add it again with `etcdctl member add`",
            cfg.member_id
        );
    }
    let removed = Arc::new(tokio::sync::Notify::new());
    let watch_hub = Arc::new(WatchHub::new(mvcc.current_revision(), HubLimits::default()));
    let observer = Arc::new(Observer {
        lessor: lessor.clone(),
        mvcc: mvcc.clone(),
        hub: watch_hub.clone(),
        member_id: cfg.member_id,
        removed: removed.clone(),
    });
    let sm = StateMachine::new(mvcc.clone(), observer)
        .with_member_id(cfg.member_id)
        .with_apply_timers(
            metrics.pipeline.apply.clone(),
            metrics.pipeline.apply_commands.clone(),
        );
    let nospace = sm.nospace_flag();
    let peers = Peers::default();
    let raft_rt = RaftRuntime::start()?;
    let raft = {
        let (id, config, peers, log) = (
            cfg.member_id,
            Arc::new(raft_config(&cfg)?),
            peers.clone(),
            log.clone(),
        );
        raft_rt
            .handle()
            .spawn(async move { Raft::new(id, config, peers, log, sm).await })
            .await
            .context("the raft runtime stopped")?
            .context("failed to start raft")?
    };
    let proposer = Proposer::start(
        raft.clone(),
        peers.clone(),
        cfg.member_id,
        cfg.election_timeout,
        metrics.pipeline.clone(),
    );
    let reads = ReadBarrier::start(
        raft.clone(),
        proposer.clone(),
        cfg.election_timeout * 5,
        cfg.unsafe_local_reads,
    );
    let node = Arc::new(Node {
        metrics,
        cfg,
        raft,
        mvcc,
        log,
        proposer,
        reads,
        lessor,
        watch_hub,
        nospace,
        backend_size: maintenance::BackendSize::new(maintenance::BACKEND_SIZE_MAX_AGE),
    });
    raft_rt
        .handle()
        .spawn(peer::serve(node.clone()))
        .await
        .context("the raft runtime stopped")??;
    bootstrap(&node, ident.bootstrap.as_deref()).await?;
    http::serve_clients(node.clone()).await?;
    tokio::spawn(publish_member(node.clone()));
    tokio::spawn(lease_expiry(node.clone()));
    tokio::spawn(leadership_watch(node.clone()));
    tokio::spawn(maintenance::quota_watch(node.clone()));
    if let Some(mode) = node.cfg.auto_compaction {
        tokio::spawn(compactor::run(node.clone(), mode));
    }
    tracing::info!(
        name = %node.cfg.name,
        member_id = format!("{:x}", node.cfg.member_id),
        cluster_id = format!("{:x}", node.cfg.cluster_id),
        client_urls = ?node.cfg.advertise_client_urls,
        "skiff-store member started"
    );
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        _ = removed.notified() => {
            tracing::warn!(
                member_id = format!("{:x}", node.cfg.member_id),
                "the member has been permanently removed from the cluster; shutting down"
            );
            // Requests in flight get their answers first: the `member remove` that removed
            // this member may have come through it (forwarded to the leader), and its
            // client waits for the reply that is on its way back over a peer connection.
            // etcd stops a removed member the same way, ten heartbeat intervals later.
            tokio::time::sleep(node.cfg.heartbeat * 10).await;
        }
    }
    let _ = node.raft.shutdown().await;
    node.mvcc
        .flush()
        .context("failed to flush the state machine")?;
    Ok(())
}

/// A runtime of its own for Raft, on one thread named `raft`: openraft's core, replication
/// and state-machine tasks, and the peer service. Its hand-offs (client write → core →
/// replication → peer connection → core → apply) are then queue pushes on one thread
/// instead of thread wake-ups, which on a small machine cost tens of microseconds each and,
/// under load, a wait for a CPU. On the client runtime these tasks also queued behind every
/// runnable client request. Large applies leave the thread (`StateMachine::apply`), so
/// heartbeats and replication never wait for RocksDB.
struct RaftRuntime {
    handle: tokio::runtime::Handle,
    /// Dropped (closed) to stop the runtime's thread.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long stopping the Raft runtime waits for a blocking task (an apply, a snapshot copy).
const RAFT_STOP_WAIT: Duration = Duration::from_secs(10);

impl RaftRuntime {
    fn start() -> anyhow::Result<RaftRuntime> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("failed to start the raft runtime")?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("raft".into())
            .spawn(move || {
                let _ = rt.block_on(stopped);
                // Tasks still running (replication, peer connections) are dropped here, and
                // a running apply may finish, before the process exits: RocksDB must not be
                // in use while its static state is torn down.
                rt.shutdown_timeout(RAFT_STOP_WAIT);
            })
            .context("failed to start the raft thread")?;
        Ok(RaftRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for RaftRuntime {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// On first start of a new cluster, write the initial membership (every member does the
/// same, which openraft allows: identical initial configs agree). A data dir seeded by
/// `snapshot restore` carries its membership in `restored`, whatever the flags say.
async fn bootstrap(
    node: &Node,
    restored: Option<&[identity::BootstrapMember]>,
) -> anyhow::Result<()> {
    if node.cfg.cluster_state == ClusterState::Existing && restored.is_none() {
        return Ok(());
    }
    let mut log = node.log.clone();
    let pristine =
        log.try_get_log_entries(0..1).await?.is_empty() && node.log.wal().last_index().is_none();
    if !pristine {
        return Ok(());
    }
    let members: BTreeMap<u64, MemberNode> = match restored {
        Some(list) => list
            .iter()
            .map(|m| {
                let n = MemberNode {
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                };
                (m.id, n)
            })
            .collect(),
        None => node
            .cfg
            .initial_cluster
            .iter()
            .map(|m| {
                let n = MemberNode {
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                };
                (m.id, n)
            })
            .collect(),
    };
    match node.raft.initialize(members).await {
        Ok(()) => tracing::info!("bootstrapped a new cluster from --initial-cluster"),
        Err(e) => tracing::info!(error = %e, "cluster already initialized"),
    }
    Ok(())
}

/// Publishes this member's name and client URLs through Raft, retrying until it sticks.
async fn publish_member(node: Arc<Node>) {
    let cmd = Command::PublishMember {
        id: node.cfg.member_id,
        name: node.cfg.name.clone(),
        client_urls: node.cfg.advertise_client_urls.clone(),
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match node.proposer.propose(cmd.clone()).await {
            Ok(_) => {
                tracing::info!("published member attributes");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "publishing member attributes failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Keeps the lessor's primary flag in step with Raft leadership. It watches openraft's
/// server metrics (vote, role, leader, membership), which change only with leadership: the
/// full metrics change with every appended or applied entry, and a waiter on them was woken
/// (a thread wake-up on the client runtime) for every write.
async fn leadership_watch(node: Arc<Node>) {
    let mut rx = node.raft.server_metrics();
    let mut was_leader = false;
    loop {
        let is_leader = rx.borrow_and_update().current_leader == Some(node.cfg.member_id);
        if is_leader != was_leader {
            if is_leader {
                node.lessor.promote(Instant::now());
                node.metrics.leader_changes.inc();
                tracing::info!("became leader: lease deadlines refreshed");
            } else {
                node.lessor.demote();
            }
            was_leader = is_leader;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// On the leader, proposes revokes for expired leases.
async fn lease_expiry(node: Arc<Node>) {
    let mut tick = tokio::time::interval(LEASE_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        for id in node
            .lessor
            .take_expired(Instant::now(), MAX_REVOKES_PER_CHECK)
        {
            let node = node.clone();
            tokio::spawn(async move {
                match node
                    .proposer
                    .propose_local(Command::LeaseRevoke { id })
                    .await
                {
                    Ok(_) => tracing::debug!(lease = format!("{id:x}"), "expired lease revoked"),
                    Err(e) => {
                        tracing::debug!(lease = format!("{id:x}"), error = ?e, "revoking an expired lease failed")
                    }
                }
            });
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

/// Runs a handler body, records its latency and status in the metrics, and converts the
/// error to a gRPC status.
pub async fn track<T>(
    node: &Node,
    method: &'static str,
    body: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<tonic::Response<T>, tonic::Status> {
    let start = Instant::now();
    let res = body.await;
    record_handled(node, method, start, res.as_ref().err());
    res.map(tonic::Response::new).map_err(tonic::Status::from)
}

/// Counts one handled request of `method` that started at `start` and ended with `error`
/// (`None`: OK) in the gRPC metrics.
pub fn record_handled(node: &Node, method: &'static str, start: Instant, error: Option<&ApiError>) {
    let code = match error {
        None => "OK".to_string(),
        Some(e) => format!("{:?}", tonic::Code::from_i32(e.code)),
    };
    node.metrics
        .grpc_handled
        .with_label_values(&[method, &code])
        .inc();
    node.metrics
        .grpc_latency
        .with_label_values(&[method])
        .observe(start.elapsed().as_secs_f64());
}

/// Converts an MVCC read error into etcd's client-visible error.
pub fn mvcc_error(e: skiff_mvcc::ReadError) -> ApiError {
    match e {
        skiff_mvcc::ReadError::Etcd(e) => etcd_error(e),
        skiff_mvcc::ReadError::Storage(e) => storage_failure(e),
    }
}

/// An etcd error from the MVCC store as clients see it.
pub fn etcd_error(e: skiff_mvcc::EtcdError) -> ApiError {
    ApiError {
        code: e.grpc_code() as i32,
        message: e.etcd_message().to_string(),
    }
}

/// A storage failure while serving a request: logged loudly, reported as internal.
pub fn storage_failure(e: skiff_mvcc::StorageError) -> ApiError {
    tracing::error!(error = %e, "state machine storage failure");
    errors::internal(format!("storage failure: {e}"))
}

impl Node {
    /// Refuses writes that add data once the backend exceeds `--quota-backend-bytes`
    /// (deletes, compaction and reads keep working, as with etcd's NOSPACE alarm).
    /// The NOSPACE alarm, once raised, stays until `alarm disarm` (see
    /// `maintenance::quota_watch`, which raises it).
    pub fn check_quota(&self) -> Result<(), ApiError> {
        if self.backend_size.get(&self.mvcc) > self.cfg.quota_backend_bytes
            || self.nospace.load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(errors::no_space());
        }
        Ok(())
    }
}

impl Node {
    /// Proposes a command whose response has no body (lease grant/revoke).
    pub async fn write_unit(&self, cmd: Command) -> Result<((), i64), ApiError> {
        match self.proposer.propose(cmd).await? {
            CommandResult::Ok { revision, .. } => Ok(((), revision)),
            CommandResult::Err(e) => Err(e),
        }
    }
}
