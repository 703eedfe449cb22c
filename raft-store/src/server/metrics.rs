//! Prometheus metrics, with etcd's metric names where an etcd dashboard would look for
//! them. Gauges that mirror Raft or storage state are refreshed at scrape time.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use super::Node;

/// The member's metrics.
pub struct Metrics {
    registry: Registry,
    /// `etcd_server_leader_changes_seen_total`
    pub leader_changes: IntCounter,
    /// gRPC requests by method and code.
    pub grpc_handled: IntCounterVec,
    /// gRPC request latency by method.
    pub grpc_latency: HistogramVec,
    /// Open watch streams.
    pub watch_streams: IntGauge,
    /// Watchers on all streams.
    pub watchers: IntGauge,
    /// Events sent to watchers.
    pub watch_events: IntCounter,
    /// Reads of the MVCC history by watchers behind the in-memory ring.
    pub watch_history_reads: IntCounter,
    /// Where a write's time goes between the gRPC handler and the reply.
    pub pipeline: PipelineTimers,
    watch_ring_revisions: IntGauge,
    watch_ring_bytes: IntGauge,
    has_leader: IntGauge,
    is_leader: IntGauge,
    term: IntGauge,
    committed: IntGauge,
    applied: IntGauge,
    db_size: IntGauge,
    revision: IntGauge,
    compact_revision: IntGauge,
    wal_fsyncs: IntGauge,
    wal_entries: IntGauge,
    wal_bytes: IntGauge,
}

/// Latency histograms of the write pipeline (seconds), to split a put's time into its
/// stages:
///
/// ```text
///  handler ─► proposer queue ─(queue_wait)─► raft.client_write ────────(raft_write)──────► reply
///                                             ├─ WAL append + fdatasync (wal_append)
///                                             ├─ replication and commit (the rest)
///                                             └─ state machine apply (apply, per call)
/// ```
#[derive(Clone)]
pub struct PipelineTimers {
    /// A command's wait in the leader's proposer queue until its batch is proposed.
    pub queue_wait: Histogram,
    /// One batch's `client_write`: append, replication, commit and apply on the leader.
    pub raft_write: Histogram,
    /// One WAL append until its fdatasync completed.
    pub wal_append: Histogram,
    /// One state machine `apply` call (one or more entries, one write group).
    pub apply: Histogram,
    /// Commands applied per state machine `apply` call.
    pub apply_commands: Histogram,
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    r.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

impl PipelineTimers {
    fn register(r: &Registry) -> PipelineTimers {
        // 50 µs .. ~3.3 s.
        let secs = || prometheus::exponential_buckets(0.00005, 2.0, 17).expect("valid buckets");
        PipelineTimers {
            queue_wait: histogram(
                r,
                "skiff_proposal_queue_wait_seconds",
                "Time a command waits in the leader's proposer queue before its batch is proposed.",
                secs(),
            ),
            raft_write: histogram(
                r,
                "skiff_raft_write_seconds",
                "Time of one batch's Raft client_write (append, replicate, commit, apply).",
                secs(),
            ),
            wal_append: histogram(
                r,
                "skiff_wal_append_seconds",
                "Time of one WAL append until its fdatasync completed.",
                secs(),
            ),
            apply: histogram(
                r,
                "skiff_apply_seconds",
                "Time of one state machine apply call (one write group).",
                secs(),
            ),
            apply_commands: histogram(
                r,
                "skiff_apply_commands",
                "Commands applied per state machine apply call.",
                prometheus::exponential_buckets(1.0, 2.0, 14).expect("valid buckets"),
            ),
        }
    }
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric name");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let leader_changes = IntCounter::new(
            "etcd_server_leader_changes_seen_total",
            "Leader changes seen.",
        )
        .expect("valid metric");
        r.register(Box::new(leader_changes.clone()))
            .expect("metric registered once");
        let grpc_handled = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "gRPC requests completed, by method and status code.",
            ),
            &["grpc_method", "grpc_code"],
        )
        .expect("valid metric");
        r.register(Box::new(grpc_handled.clone()))
            .expect("metric registered once");
        let grpc_latency = HistogramVec::new(
            HistogramOpts::new("grpc_server_handling_seconds", "gRPC request latency.")
                .buckets(prometheus::exponential_buckets(0.0001, 2.0, 18).expect("valid buckets")),
            &["grpc_method"],
        )
        .expect("valid metric");
        r.register(Box::new(grpc_latency.clone()))
            .expect("metric registered once");
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric name");
            r.register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        Metrics {
            pipeline: PipelineTimers::register(&r),
            watch_streams: gauge(
                &r,
                "etcd_debugging_mvcc_watch_stream_total",
                "Open watch streams.",
            ),
            watchers: gauge(
                &r,
                "etcd_debugging_mvcc_watcher_total",
                "Watchers on all streams.",
            ),
            watch_events: counter(
                "etcd_debugging_mvcc_events_total",
                "Events sent to watchers.",
            ),
            watch_history_reads: counter(
                "skiff_watch_history_reads_total",
                "Watch deliveries read from the MVCC history (watchers behind the ring).",
            ),
            watch_ring_revisions: gauge(
                &r,
                "skiff_watch_ring_revisions",
                "Revisions held in the in-memory watch ring.",
            ),
            watch_ring_bytes: gauge(
                &r,
                "skiff_watch_ring_bytes",
                "Event bytes held in the in-memory watch ring.",
            ),
            has_leader: gauge(&r, "etcd_server_has_leader", "1 if a leader exists."),
            is_leader: gauge(
                &r,
                "etcd_server_is_leader",
                "1 if this member is the leader.",
            ),
            term: gauge(&r, "etcd_server_raft_term", "Current Raft term."),
            committed: gauge(
                &r,
                "etcd_server_proposals_committed_total",
                "Committed Raft index.",
            ),
            applied: gauge(
                &r,
                "etcd_server_proposals_applied_total",
                "Applied Raft index.",
            ),
            db_size: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_bytes",
                "State machine size on disk.",
            ),
            revision: gauge(
                &r,
                "etcd_debugging_mvcc_current_revision",
                "Current store revision.",
            ),
            compact_revision: gauge(
                &r,
                "etcd_debugging_mvcc_compact_revision",
                "Last compaction revision.",
            ),
            wal_fsyncs: gauge(
                &r,
                "skiff_wal_fsyncs_total",
                "fdatasync calls made by the WAL.",
            ),
            wal_entries: gauge(&r, "skiff_wal_entries_total", "Entries written to the WAL."),
            wal_bytes: gauge(&r, "skiff_wal_bytes_total", "Bytes written to the WAL."),
            leader_changes,
            grpc_handled,
            grpc_latency,
            registry: r,
        }
    }

    /// Refreshes the mirrored gauges and renders the text exposition format.
    pub fn render(&self, node: &Node) -> String {
        {
            let m = node.raft.metrics().borrow().clone();
            self.has_leader.set(m.current_leader.is_some() as i64);
            self.is_leader
                .set((m.current_leader == Some(node.cfg.member_id)) as i64);
            self.term.set(m.current_term as i64);
            self.committed.set(m.last_log_index.unwrap_or(0) as i64);
            self.applied
                .set(m.last_applied.map_or(0, |l| l.index) as i64);
        }
        self.db_size
            .set(node.mvcc.db_size_bytes().unwrap_or(0) as i64);
        self.revision.set(node.mvcc.current_revision());
        self.compact_revision.set(node.mvcc.compact_revision());
        let (revs, bytes) = node.watch_hub.usage();
        self.watch_ring_revisions.set(revs as i64);
        self.watch_ring_bytes.set(bytes as i64);
        let w = node.log.wal().stats();
        self.wal_fsyncs.set(w.fsyncs as i64);
        self.wal_entries.set(w.entries_written as i64);
        self.wal_bytes.set(w.bytes_written as i64);
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding to memory");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
