//! etcd's `Maintenance` service: Status, Alarm, HashKV/Hash, Snapshot, Defragment.

use std::pin::Pin;
use std::sync::Arc;

use etcd_client::proto::{
    PbAlarmMember, PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse,
    PbDowngradeRequest, PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest,
    PbHashResponse, PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest,
    PbSnapshotResponse, PbStatusRequest, PbStatusResponse,
};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::{mvcc_error, track, Node, ETCD_VERSION};

/// Bytes per message of the Snapshot stream (etcd sends 32 KiB chunks).
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;
/// etcd's `AlarmType_NOSPACE`.
const ALARM_NOSPACE: i32 = 1;

/// The Maintenance service.
pub struct MaintenanceService {
    node: Arc<Node>,
}

impl MaintenanceService {
    /// Serves maintenance requests for `node`.
    pub fn new(node: Arc<Node>) -> Self {
        MaintenanceService { node }
    }
}

/// Active alarms: NOSPACE while the backend is over its quota.
fn alarms(node: &Node) -> Vec<PbAlarmMember> {
    if node.check_quota().is_err() {
        vec![PbAlarmMember {
            member_id: node.cfg.member_id,
            alarm: ALARM_NOSPACE,
        }]
    } else {
        Vec::new()
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<PbSnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl etcd_client::proto::PbMaintenanceService for MaintenanceService {
    async fn alarm(
        &self,
        _req: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        let node = &self.node;
        track(node, "Alarm", async {
            // Alarms are derived from the quota, so ACTIVATE/DEACTIVATE change nothing: the
            // alarm clears once compaction and defragmentation bring the size down.
            Ok(PbAlarmResponse {
                header: node.header(node.mvcc.current_revision()),
                alarms: alarms(node),
            })
        })
        .await
    }

    async fn status(
        &self,
        _req: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        let node = &self.node;
        track(node, "Status", async {
            let m = node.raft.metrics().borrow().clone();
            let db = node.mvcc.db_size_bytes().unwrap_or(0) as i64;
            let is_learner = !m
                .membership_config
                .membership()
                .voter_ids()
                .any(|id| id == node.cfg.member_id);
            Ok(PbStatusResponse {
                header: node.header(node.mvcc.current_revision()),
                version: ETCD_VERSION.to_string(),
                db_size: db,
                leader: m.current_leader.unwrap_or(0),
                raft_index: m.last_log_index.unwrap_or(0),
                raft_term: m.current_term,
                raft_applied_index: m.last_applied.map_or(0, |l| l.index),
                errors: alarms(node).iter().map(|_| "NOSPACE".to_string()).collect(),
                db_size_in_use: db,
                is_learner,
                storage_version: String::new(),
                db_size_quota: node.cfg.quota_backend_bytes as i64,
                downgrade_info: None,
            })
        })
        .await
    }

    async fn defragment(
        &self,
        _req: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        let node = &self.node;
        track(node, "Defragment", async {
            node.mvcc.flush().map_err(super::storage_failure)?;
            Ok(PbDefragmentResponse {
                header: node.header(node.mvcc.current_revision()),
            })
        })
        .await
    }

    async fn hash(&self, _req: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        let node = &self.node;
        track(node, "Hash", async {
            let h = node.mvcc.hash_kv(0).map_err(mvcc_error)?;
            Ok(PbHashResponse {
                header: node.header(h.revision),
                hash: h.hash,
            })
        })
        .await
    }

    async fn hash_kv(
        &self,
        req: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        let r = req.into_inner();
        let node = &self.node;
        track(node, "HashKV", async {
            let h = node.mvcc.hash_kv(r.revision).map_err(mvcc_error)?;
            Ok(PbHashKvResponse {
                header: node.header(node.mvcc.current_revision()),
                hash: h.hash,
                compact_revision: h.compact_revision,
                hash_revision: h.hash_revision,
            })
        })
        .await
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _req: Request<PbSnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let mvcc = self.node.mvcc.clone();
        let data = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::new();
            mvcc.write_snapshot(&mut buf).map(|_| buf)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(format!("failed to write snapshot: {e}")))?;
        let header = self.node.header(self.node.mvcc.current_revision());
        let total = data.len();
        let chunks: Vec<Result<PbSnapshotResponse, Status>> = data
            .chunks(SNAPSHOT_CHUNK_BYTES)
            .enumerate()
            .map(|(i, c)| {
                let sent = (i * SNAPSHOT_CHUNK_BYTES + c.len()) as u64;
                Ok(PbSnapshotResponse {
                    header,
                    remaining_bytes: total as u64 - sent,
                    blob: c.to_vec(),
                    version: ETCD_VERSION.to_string(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn move_leader(
        &self,
        _r: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(Status::unimplemented(
            "skiff-store: MoveLeader is not implemented yet (see docs/compatibility.md)",
        ))
    }

    async fn downgrade(
        &self,
        _r: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "skiff-store: Downgrade is not supported",
        ))
    }
}
