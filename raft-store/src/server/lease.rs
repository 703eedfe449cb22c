//! etcd's `Lease` service. Grants and revokes go through Raft; keep-alives and
//! time-to-live queries are answered by the leader, which alone keeps lease time
//! (followers forward them over the peer connection).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::proto::{
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse,
    PbLeaseLeasesRequest, PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse,
    PbLeaseStatus, PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
};
use futures::{Stream, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status, Streaming};

use super::lessor::MAX_LEASE_TTL_SECS;
use super::proposer::{LeaderRef, ProposeError};
use super::{errors, track, Node};
use crate::raft::network::PeerMethod;
use crate::raft::{ApiError, Command};

/// Keep-alive responses buffered per stream before the server stops reading requests.
const KEEPALIVE_BUFFER: usize = 16;
/// Upper bound on one forwarded lease call.
const LEASE_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A lease's time as the leader sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimeToLive {
    /// Seconds left; -1 if the lease does not exist (etcd's answer).
    pub ttl: i64,
    /// TTL the lease was granted with.
    pub granted_ttl: i64,
    /// Attached keys, if asked for.
    pub keys: Vec<Vec<u8>>,
}

/// Answers a time-to-live query from this member's state (call on the leader).
pub fn local_time_to_live(node: &Node, id: i64, with_keys: bool) -> TimeToLive {
    match node.mvcc.lease(id).ok().flatten() {
        None => TimeToLive {
            ttl: -1,
            granted_ttl: 0,
            keys: Vec::new(),
        },
        Some(info) => TimeToLive {
            ttl: node
                .lessor
                .remaining(id, Instant::now())
                .unwrap_or(info.ttl_granted),
            granted_ttl: info.ttl_granted,
            keys: if with_keys { info.keys } else { Vec::new() },
        },
    }
}

/// The Lease service.
pub struct LeaseService {
    node: Arc<Node>,
}

impl LeaseService {
    /// Serves lease requests for `node`.
    pub fn new(node: Arc<Node>) -> Self {
        LeaseService { node }
    }
}

/// Calls `local` on the leader, or forwards `arg` to the leader with `method`.
async fn on_leader<A, T>(
    node: &Node,
    method: PeerMethod,
    arg: A,
    local: impl Fn(&Node) -> T,
) -> Result<T, ApiError>
where
    A: Serialize,
    T: serde::de::DeserializeOwned,
{
    for _ in 0..3 {
        let res = match node.proposer.leader().await? {
            LeaderRef::Me if node.lessor.is_primary() => Ok(local(node)),
            LeaderRef::Me => Err(ProposeError::NotLeader),
            LeaderRef::Other(id, m) => {
                let conn = node
                    .proposer
                    .peers()
                    .get(id, &m)
                    .map_err(errors::internal)?;
                conn.call::<_, Result<T, ProposeError>>(method, &arg, LEASE_CALL_TIMEOUT)
                    .await
                    .map_err(|_| errors::timeout())?
            }
        };
        match res {
            Ok(v) => return Ok(v),
            Err(ProposeError::Api(e)) => return Err(e),
            Err(ProposeError::NotLeader) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Err(errors::leader_changed())
}

/// Renews a lease through the leader; 0 if it does not exist (etcd's keep-alive answer).
pub async fn keep_alive(node: &Node, id: i64) -> Result<i64, ApiError> {
    on_leader(node, PeerMethod::LeaseKeepAlive, id, |n| {
        n.lessor.renew(id, Instant::now()).unwrap_or(0)
    })
    .await
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<PbLeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl etcd_client::proto::PbLeaseService for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let r = req.into_inner();
        let node = &self.node;
        track(node, "LeaseGrant", async {
            if r.ttl > MAX_LEASE_TTL_SECS {
                return Err(errors::lease_ttl_too_large());
            }
            let ttl = r.ttl.max(node.cfg.min_lease_ttl_secs());
            let id = if r.id == 0 {
                rand::thread_rng().gen_range(1..i64::MAX)
            } else {
                r.id
            };
            let (_, rev): ((), i64) = node.write_unit(Command::LeaseGrant { id, ttl }).await?;
            Ok(PbLeaseGrantResponse {
                header: node.header(rev),
                id,
                ttl,
                error: String::new(),
            })
        })
        .await
    }

    async fn lease_revoke(
        &self,
        req: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let r = req.into_inner();
        let node = &self.node;
        track(node, "LeaseRevoke", async {
            let (_, rev) = node.write_unit(Command::LeaseRevoke { id: r.id }).await?;
            Ok(PbLeaseRevokeResponse {
                header: node.header(rev),
            })
        })
        .await
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let mut input = req.into_inner();
        let node = self.node.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(KEEPALIVE_BUFFER);
        tokio::spawn(async move {
            while let Some(Ok(r)) = input.next().await {
                let res = keep_alive(&node, r.id)
                    .await
                    .map(|ttl| PbLeaseKeepAliveResponse {
                        header: node.header(node.mvcc.current_revision()),
                        id: r.id,
                        ttl,
                    });
                let failed = res.is_err();
                if tx.send(res.map_err(Status::from)).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let r = req.into_inner();
        let node = &self.node;
        track(node, "LeaseTimeToLive", async {
            let t = on_leader(node, PeerMethod::LeaseTimeToLive, (r.id, r.keys), |n| {
                local_time_to_live(n, r.id, r.keys)
            })
            .await?;
            Ok(PbLeaseTimeToLiveResponse {
                header: node.header(node.mvcc.current_revision()),
                id: r.id,
                ttl: t.ttl,
                granted_ttl: t.granted_ttl,
                keys: t.keys,
            })
        })
        .await
    }

    async fn lease_leases(
        &self,
        _req: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        let node = &self.node;
        track(node, "LeaseLeases", async {
            node.reads.wait().await?;
            let leases = node
                .mvcc
                .leases()
                .map_err(super::storage_failure)?
                .into_iter()
                .map(|(id, _)| PbLeaseStatus { id })
                .collect();
            Ok(PbLeaseLeasesResponse {
                header: node.header(node.mvcc.current_revision()),
                leases,
            })
        })
        .await
    }
}
