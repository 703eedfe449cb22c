//! One client watch stream: its watchers, their positions, and the loop that answers create,
//! cancel and progress requests and delivers events.
//!
//! Every watcher has a cursor, `next_rev`: the first revision it has not been sent. Delivery
//! reads revisions `next_rev..` from the hub's ring, or from the MVCC history when the ring no
//! longer holds them (a new watcher with a past `start_revision`, or one that fell behind
//! because its client reads slowly), and advances the cursor past every revision it looked
//! at. That gives etcd's guarantees by construction:
//! - ordered, unique, reliable: the cursor only moves forward, one revision at a time, and
//!   every revision from `next_rev` on is read from one of the two complete sources;
//! - atomic: a response always holds whole revisions (unless fragmented on request);
//! - bookmarkable: a progress notification carries a revision below every cursor of the
//!   stream, so everything up to it has been sent.
//!
//! A slow client is handled by backpressure: the task waits on the bounded response channel
//! and meanwhile holds only its cursors; the ring moves on, and the watcher later catches up
//! from history (or is cancelled with `compact_revision` if that history was compacted).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::proto::{PbEvent, PbWatchRequest, PbWatchRequestUnion, PbWatchResponse};
use futures::StreamExt;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::hub::Lookup;
use super::watcher::{fragment, select_history, select_revisions, Batch, CreateError, WatchSpec};
use crate::server::{errors, Node};

/// Revisions taken from the ring per response.
const MAX_BATCH_REVS: usize = 1000;
/// Events read from the MVCC history per response (whole revisions; may exceed it).
const MAX_HISTORY_EVENTS: usize = 1000;
/// Event bytes per response before the batch is closed (whole revisions).
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// How often a stream that requires a leader checks for one.
const LEADER_CHECK_EVERY: Duration = Duration::from_millis(500);
/// A stream that requires a leader ends after this many election timeouts without one
/// (etcd's `monitorLeader` uses the same rule).
const NO_LEADER_ELECTION_TIMEOUTS: u32 = 3;
/// etcd's `clientv3.InvalidWatchID`: a response for the whole stream (progress request).
const STREAM_WATCH_ID: i64 = -1;

/// A watcher on this stream.
struct Watcher {
    spec: WatchSpec,
    /// The first revision not yet sent.
    next_rev: i64,
}

/// The state of one watch stream.
pub struct WatchStream {
    node: Arc<Node>,
    out: mpsc::Sender<Result<PbWatchResponse, Status>>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
    progress_requested: bool,
    require_leader: bool,
}

/// The stream ended (client gone, or the stream was closed with an error).
struct Closed;

impl WatchStream {
    /// A stream whose responses go to `out`; `require_leader` is the client's `hasleader`
    /// metadata (the stream ends with "no leader" when the member loses its leader).
    pub fn new(
        node: Arc<Node>,
        out: mpsc::Sender<Result<PbWatchResponse, Status>>,
        require_leader: bool,
    ) -> WatchStream {
        WatchStream {
            node,
            out,
            watchers: BTreeMap::new(),
            next_id: 0,
            progress_requested: false,
            require_leader,
        }
    }

    /// Serves the stream until the client closes it or goes away.
    pub async fn run(mut self, mut inbound: Streaming<PbWatchRequest>) {
        let node = self.node.clone();
        node.metrics.watch_streams.inc();
        let _ = self.serve(&mut inbound).await;
        node.metrics.watch_streams.dec();
        node.metrics.watchers.sub(self.watchers.len() as i64);
    }

    async fn serve(&mut self, inbound: &mut Streaming<PbWatchRequest>) -> Result<(), Closed> {
        let hub = self.node.watch_hub.clone();
        let mut latest = hub.subscribe();
        let mut progress = tokio::time::interval(self.node.cfg.watch_progress_notify_interval);
        progress.tick().await;
        let mut leader_check = tokio::time::interval(LEADER_CHECK_EVERY);
        let mut leaderless_since: Option<Instant> = None;
        loop {
            let target = *latest.borrow_and_update();
            let behind = self.deliver_round(target).await?;
            if self.progress_requested && !behind {
                self.progress_requested = false;
                self.send(self.response(STREAM_WATCH_ID, target)).await?;
            }
            tokio::select! {
                biased;
                msg = inbound.next() => match msg {
                    Some(Ok(req)) => self.handle(req).await?,
                    // Client closed its side, or the connection broke.
                    Some(Err(_)) | None => return Ok(()),
                },
                changed = latest.changed(), if !behind => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                _ = progress.tick() => self.notify_progress(target).await?,
                _ = leader_check.tick(), if self.require_leader => {
                    self.check_leader(&mut leaderless_since).await?;
                }
                // Some watcher still has revisions to catch up on: go round again.
                _ = std::future::ready(()), if behind => {}
            }
        }
    }

    /// One batch for every watcher that is behind `target`. Returns whether any watcher is
    /// still behind afterwards.
    async fn deliver_round(&mut self, target: i64) -> Result<bool, Closed> {
        let ids: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.next_rev <= target)
            .map(|(id, _)| *id)
            .collect();
        let mut behind = false;
        for id in ids {
            if self.deliver_one(id).await? == Delivery::Progressed {
                behind |= self.watchers.get(&id).is_some_and(|w| w.next_rev <= target);
            }
        }
        Ok(behind)
    }

    /// Sends the watcher's next batch.
    async fn deliver_one(&mut self, id: i64) -> Result<Delivery, Closed> {
        let Some(from) = self.watchers.get(&id).map(|w| w.next_rev) else {
            return Ok(Delivery::Cancelled);
        };
        // Like etcd, a watcher that still needs revisions below the compact revision is
        // cancelled even if they are at hand: a client must not rely on compacted history.
        let compacted = self.node.mvcc.compact_revision();
        if from < compacted {
            self.cancel_behind(id, Behind::Compacted(compacted)).await?;
            return Ok(Delivery::Cancelled);
        }
        let found = match self.node.watch_hub.lookup(from, MAX_BATCH_REVS) {
            Lookup::UpToDate => return Ok(Delivery::Idle),
            Lookup::Ring(revs) => Found::Ring(revs),
            Lookup::History => match self.read_history(from).await {
                Ok(events) if events.is_empty() => return Ok(Delivery::Idle),
                Ok(events) => Found::History(events),
                Err(reason) => {
                    self.cancel_behind(id, reason).await?;
                    return Ok(Delivery::Cancelled);
                }
            },
        };
        let Some(w) = self.watchers.get_mut(&id) else {
            return Ok(Delivery::Cancelled);
        };
        let (mut batch, from_ring) = match found {
            Found::Ring(revs) => (select_revisions(&w.spec, &revs, MAX_BATCH_BYTES), true),
            Found::History(events) => (select_history(&w.spec, events), false),
        };
        w.next_rev = batch.last_rev + 1;
        let fragmented = w.spec.fragment;
        // Ring events of puts carry no prev_kv (the apply path does not read old values);
        // history events already have it.
        if from_ring && w.spec.prev_kv {
            match self.fill_prev_kvs(std::mem::take(&mut batch.events)).await {
                Ok(events) => batch.events = events,
                Err(reason) => {
                    self.cancel_behind(id, reason).await?;
                    return Ok(Delivery::Cancelled);
                }
            }
        }
        self.send_events(id, fragmented, batch).await?;
        Ok(Delivery::Progressed)
    }

    /// Fills the missing `prev_kv` of put events from the MVCC history (etcd's watch reads
    /// the key at `mod_revision - 1` the same way), on a blocking thread.
    async fn fill_prev_kvs(&self, events: Vec<PbEvent>) -> Result<Vec<PbEvent>, Behind> {
        if events.iter().all(|e| e.prev_kv.is_some()) {
            return Ok(events);
        }
        let mvcc = self.node.mvcc.clone();
        tokio::task::spawn_blocking(move || {
            let mut events = events;
            mvcc.fill_prev_kvs(&mut events).map(|()| events)
        })
        .await
        .map_err(|e| Behind::Failed(format!("prev_kv read task failed: {e}")))?
        .map_err(|e| Behind::Failed(format!("reading prev_kv failed: {e}")))
    }

    /// Reads the history from revision `from` on (whole revisions, unfiltered). Empty: no
    /// revision at or above `from` exists yet.
    async fn read_history(&self, from: i64) -> Result<Vec<PbEvent>, Behind> {
        let mvcc = self.node.mvcc.clone();
        self.node.metrics.watch_history_reads.inc();
        let events = tokio::task::spawn_blocking(move || {
            mvcc.events_bounded(from, MAX_HISTORY_EVENTS, MAX_BATCH_BYTES, true)
        })
        .await
        .map_err(|e| Behind::Failed(format!("history read task failed: {e}")))?;
        match events {
            Ok(events) => Ok(events),
            Err(skiff_mvcc::ReadError::Etcd(skiff_mvcc::EtcdError::Compacted)) => {
                Err(Behind::Compacted(self.node.mvcc.compact_revision()))
            }
            Err(e) => Err(Behind::Failed(format!("reading watch history failed: {e}"))),
        }
    }

    /// Cancels a watcher that cannot continue: with `compact_revision` set when its next
    /// revision was compacted away (clients then report `ErrCompacted`), else with a reason.
    async fn cancel_behind(&mut self, id: i64, why: Behind) -> Result<(), Closed> {
        self.remove(id);
        let mut resp = self.response(id, self.node.watch_hub.latest());
        resp.canceled = true;
        match why {
            Behind::Compacted(rev) => {
                tracing::debug!(
                    watch_id = id,
                    compact_revision = rev,
                    "watch cancelled: its revision was compacted"
                );
                resp.compact_revision = rev;
            }
            Behind::Failed(reason) => {
                tracing::warn!(watch_id = id, %reason, "watch cancelled");
                resp.cancel_reason = reason;
            }
        }
        self.send(resp).await
    }

    async fn send_events(&mut self, id: i64, fragmented: bool, batch: Batch) -> Result<(), Closed> {
        let Batch { events, last_rev } = batch;
        if events.is_empty() {
            return Ok(());
        }
        self.node.metrics.watch_events.inc_by(events.len() as u64);
        let parts = if fragmented {
            fragment(events, self.node.cfg.max_request_bytes as usize)
        } else {
            vec![events]
        };
        let n = parts.len();
        for (i, events) in parts.into_iter().enumerate() {
            let mut resp = self.response(id, last_rev);
            resp.events = events;
            resp.fragment = i + 1 < n;
            self.send(resp).await?;
        }
        Ok(())
    }

    async fn handle(&mut self, req: PbWatchRequest) -> Result<(), Closed> {
        match req.request_union {
            Some(PbWatchRequestUnion::CreateRequest(c)) => {
                let start = c.start_revision;
                let created = WatchSpec::new(
                    &c.key,
                    &c.range_end,
                    &c.filters,
                    c.prev_kv,
                    c.fragment,
                    c.progress_notify,
                )
                .and_then(|spec| self.create(c.watch_id, spec, start));
                let current = self.node.watch_hub.latest();
                let mut resp = match &created {
                    Ok(id) => self.response(*id, current),
                    Err(_) => self.response(STREAM_WATCH_ID, current),
                };
                resp.created = true;
                if let Err(e) = created {
                    resp.canceled = true;
                    resp.cancel_reason = e.to_string();
                }
                self.send(resp).await
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) => {
                if self.remove(c.watch_id) {
                    let mut resp = self.response(c.watch_id, self.node.watch_hub.latest());
                    resp.canceled = true;
                    self.send(resp).await?;
                }
                Ok(())
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                self.progress_requested = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Adds a watcher; `requested_id` 0 means "choose one" (etcd's `AutoWatchID`).
    fn create(
        &mut self,
        requested_id: i64,
        spec: WatchSpec,
        start_revision: i64,
    ) -> Result<i64, CreateError> {
        let id = if requested_id != 0 {
            if self.watchers.contains_key(&requested_id) {
                return Err(CreateError::DuplicateId);
            }
            requested_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        };
        let next_rev = if start_revision > 0 {
            start_revision
        } else {
            self.node.watch_hub.latest() + 1
        };
        self.watchers.insert(id, Watcher { spec, next_rev });
        self.node.metrics.watchers.inc();
        Ok(id)
    }

    fn remove(&mut self, id: i64) -> bool {
        let removed = self.watchers.remove(&id).is_some();
        if removed {
            self.node.metrics.watchers.dec();
        }
        removed
    }

    /// Periodic progress for idle, caught-up watchers that asked for it.
    async fn notify_progress(&mut self, target: i64) -> Result<(), Closed> {
        let ids: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.spec.progress_notify && w.next_rev > target)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.send(self.response(id, target)).await?;
        }
        Ok(())
    }

    async fn check_leader(&mut self, since: &mut Option<Instant>) -> Result<(), Closed> {
        if self.node.raft.metrics().borrow().current_leader.is_some() {
            *since = None;
            return Ok(());
        }
        let since = *since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.node.cfg.election_timeout * NO_LEADER_ELECTION_TIMEOUTS {
            tracing::info!("closing a watch stream that requires a leader: no leader");
            let _ = self.out.send(Err(errors::no_leader().into())).await;
            return Err(Closed);
        }
        Ok(())
    }

    fn response(&self, watch_id: i64, revision: i64) -> PbWatchResponse {
        PbWatchResponse {
            header: self.node.header(revision),
            watch_id,
            ..Default::default()
        }
    }

    async fn send(&self, resp: PbWatchResponse) -> Result<(), Closed> {
        self.out.send(Ok(resp)).await.map_err(|_| Closed)
    }
}

/// Where a watcher's next revisions were found.
enum Found {
    Ring(Vec<std::sync::Arc<super::hub::Revision>>),
    History(Vec<PbEvent>),
}

/// What one delivery step did.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    /// The cursor moved forward.
    Progressed,
    /// Nothing to send yet.
    Idle,
    /// The watcher is gone.
    Cancelled,
}

/// Why a watcher cannot continue.
enum Behind {
    /// Its next revision is at or below this compact revision.
    Compacted(i64),
    /// Reading the history failed.
    Failed(String),
}
