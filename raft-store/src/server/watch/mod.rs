//! etcd's `Watch` service: bidirectional streams carrying many watchers each.
//!
//! ```text
//!  apply path ──publish(rev, events)──► hub (ring of recent revisions, newest-revision signal)
//!                                          │ lookup(next_rev)        ▲ older revisions:
//!  client ◄── responses ── stream task ◄───┘                         └ MVCC history
//! ```
//!
//! [`hub`] holds the shared recent history, [`stream`] runs one client stream (cursors,
//! delivery, progress, cancellation), [`watcher`] holds the pure per-watcher rules.

pub mod hub;
pub mod stream;
pub mod watcher;

use std::pin::Pin;
use std::sync::Arc;

use etcd_client::proto::{PbWatchRequest, PbWatchResponse, PbWatchService};
use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::{errors, Node};

/// Responses buffered per stream before the stream task waits for the client.
const STREAM_BUFFER: usize = 16;
/// gRPC metadata a client sets to require a leader (`clientv3.WithRequireLeader`).
const REQUIRE_LEADER_KEY: &str = "hasleader";

/// The `Watch` gRPC service.
pub struct WatchService {
    node: Arc<Node>,
}

impl WatchService {
    /// A service over the member's state.
    pub fn new(node: Arc<Node>) -> Self {
        WatchService { node }
    }
}

/// The response stream type of [`WatchService`].
pub type ResponseStream = Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = ResponseStream;

    async fn watch(
        &self,
        req: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let require_leader = req
            .metadata()
            .get(REQUIRE_LEADER_KEY)
            .is_some_and(|v| v.as_bytes() == b"true");
        if require_leader && self.node.raft.metrics().borrow().current_leader.is_none() {
            return Err(errors::no_leader().into());
        }
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stream = stream::WatchStream::new(self.node.clone(), tx, require_leader);
        tokio::spawn(stream.run(req.into_inner()));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
