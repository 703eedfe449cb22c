//! etcd's `Maintenance` service: Status, Alarm, HashKV/Hash, Snapshot, Defragment,
//! MoveLeader.
//!
//! Alarms are replicated state (`Command::Alarm`), as in etcd: [`quota_watch`] raises
//! NOSPACE for this member once the backend exceeds `--quota-backend-bytes`; from then on
//! every member's state machine refuses writes that add data until an operator disarms it
//! (after compaction and defragmentation brought the size down).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use etcd_client::proto::{
    PbAlarmMember, PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse,
    PbDowngradeRequest, PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest,
    PbHashResponse, PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest,
    PbSnapshotResponse, PbStatusRequest, PbStatusResponse,
};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::{errors, mvcc_error, track, Node, ETCD_VERSION};
use crate::raft::state_machine::{self, ALARM_NOSPACE};
use crate::raft::Command;

/// Bytes per message of the Snapshot stream (etcd sends 32 KiB chunks).
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;
/// How often each member compares its backend size with the quota.
const QUOTA_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// etcd's `AlarmRequest_GET`, `ACTIVATE`, `DEACTIVATE`.
const ALARM_GET: i32 = 0;
const ALARM_ACTIVATE: i32 = 1;
const ALARM_DEACTIVATE: i32 = 2;

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

/// The active alarms of the cluster (replicated state).
fn alarms(node: &Node) -> Vec<PbAlarmMember> {
    state_machine::alarms(&node.mvcc)
        .into_iter()
        .map(|(member_id, alarm)| PbAlarmMember { member_id, alarm })
        .collect()
}

fn alarm_name(alarm: i32) -> &'static str {
    match alarm {
        1 => "NOSPACE",
        2 => "CORRUPT",
        _ => "NONE",
    }
}

/// The backend size as the per-write quota check sees it: re-read from RocksDB at most every
/// [`BACKEND_SIZE_MAX_AGE`]. Reading RocksDB's size properties costs microseconds (property
/// name lookups, a mutex, allocations): 3.5% of the leader's CPU when every put paid it.
/// etcd's check reads a size its backend refreshes on each batch commit (every 100 ms), so a
/// write may overshoot the quota by what arrives in that window there too.
pub struct BackendSize {
    max_age: std::time::Duration,
    epoch: std::time::Instant,
    bytes: AtomicU64,
    /// When `bytes` was read: microseconds since `epoch` plus one; 0: never.
    read_at_us: AtomicU64,
}

/// How stale [`BackendSize`] may be.
pub const BACKEND_SIZE_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(100);

impl BackendSize {
    /// A cache re-read when older than `max_age`.
    pub fn new(max_age: std::time::Duration) -> Self {
        BackendSize {
            max_age,
            epoch: std::time::Instant::now(),
            bytes: AtomicU64::new(0),
            read_at_us: AtomicU64::new(0),
        }
    }

    /// The backend size of `mvcc`, at most `max_age` old.
    pub fn get(&self, mvcc: &skiff_mvcc::Mvcc) -> u64 {
        let now = self.epoch.elapsed().as_micros() as u64 + 1;
        let at = self.read_at_us.load(Ordering::Acquire);
        if at != 0 && now.saturating_sub(at) < self.max_age.as_micros() as u64 {
            return self.bytes.load(Ordering::Acquire);
        }
        // Concurrent callers may both re-read; either result is current enough.
        let bytes = mvcc.db_size_bytes().unwrap_or(0);
        self.bytes.store(bytes, Ordering::Release);
        self.read_at_us.store(now, Ordering::Release);
        bytes
    }
}

/// Raises NOSPACE for this member whenever its backend is over the quota and the alarm is
/// not raised yet (after a disarm while still too large, it is raised again, as etcd does
/// on the next write).
pub async fn quota_watch(node: Arc<Node>) {
    let mut tick = tokio::time::interval(QUOTA_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        let size = node.mvcc.db_size_bytes().unwrap_or(0);
        if size <= node.cfg.quota_backend_bytes {
            continue;
        }
        let me = node.cfg.member_id;
        let raised = state_machine::alarms(&node.mvcc).contains(&(me, ALARM_NOSPACE));
        if raised {
            continue;
        }
        tracing::warn!(
            size,
            quota = node.cfg.quota_backend_bytes,
            "backend exceeds --quota-backend-bytes: raising the NOSPACE alarm"
        );
        let cmd = Command::Alarm {
            activate: true,
            member_id: me,
            alarm: ALARM_NOSPACE,
        };
        if let Err(e) = node.proposer.propose(cmd).await {
            tracing::warn!(error = %e, "raising the NOSPACE alarm failed; will retry");
        }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<PbSnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl etcd_client::proto::PbMaintenanceService for MaintenanceService {
    async fn alarm(
        &self,
        req: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        let r = req.into_inner();
        let node = &self.node;
        track(node, "Alarm", async {
            if r.action == ALARM_GET {
                return Ok(PbAlarmResponse {
                    header: node.header(node.mvcc.current_revision()),
                    alarms: alarms(node),
                });
            }
            let activate = match r.action {
                ALARM_ACTIVATE => true,
                ALARM_DEACTIVATE => false,
                other => {
                    return Err(crate::raft::ApiError::new(
                        tonic::Code::InvalidArgument,
                        format!("etcdserver: unknown alarm action {other}"),
                    ))
                }
            };
            // etcd answers with the alarm it changed, and nothing when there was nothing to
            // change (disarming an alarm that is not raised).
            let was = state_machine::alarms(&node.mvcc).contains(&(r.member_id, r.alarm));
            if r.alarm == 0 || was == activate {
                return Ok(PbAlarmResponse {
                    header: node.header(node.mvcc.current_revision()),
                    alarms: Vec::new(),
                });
            }
            let cmd = Command::Alarm {
                activate,
                member_id: r.member_id,
                alarm: r.alarm,
            };
            let ((), rev) = node.write_unit(cmd).await?;
            tracing::info!(
                member = format!("{:x}", r.member_id),
                alarm = alarm_name(r.alarm),
                activate,
                "alarm changed"
            );
            Ok(PbAlarmResponse {
                header: node.header(rev),
                alarms: vec![PbAlarmMember {
                    member_id: r.member_id,
                    alarm: r.alarm,
                }],
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
                errors: alarms(node)
                    .iter()
                    .map(|a| format!("memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm)))
                    .collect(),
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
            let mvcc = node.mvcc.clone();
            let before = mvcc.db_size_bytes().unwrap_or(0);
            tokio::task::spawn_blocking(move || mvcc.defragment())
                .await
                .map_err(errors::internal)?
                .map_err(super::storage_failure)?;
            tracing::info!(
                before,
                after = node.mvcc.db_size_bytes().unwrap_or(0),
                "defragmented the backend"
            );
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
        let data = crate::snapshot_file::wrap(data);
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
        req: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        let target = req.into_inner().target_id;
        let node = &self.node;
        track(node, "MoveLeader", async {
            super::transfer::move_leader(node, target).await?;
            Ok(PbMoveLeaderResponse {
                header: node.header(node.mvcc.current_revision()),
            })
        })
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn put(mvcc: &skiff_mvcc::Mvcc, key: &str, bytes: usize) {
        let req = etcd_client::proto::PbPutRequest {
            key: key.into(),
            value: vec![b'v'; bytes],
            ..Default::default()
        };
        mvcc.apply(skiff_mvcc::WriteOp::Put(&req), &[])
            .unwrap()
            .result
            .unwrap();
    }

    // The quota check's size is cached for its max age, then read again.
    #[test]
    fn backend_size_is_cached_for_its_max_age() {
        let dir = tempfile::tempdir().unwrap();
        let mvcc = skiff_mvcc::Mvcc::open(dir.path(), Default::default()).unwrap();
        let cached = BackendSize::new(std::time::Duration::from_secs(3600));
        let fresh = BackendSize::new(std::time::Duration::ZERO);
        let before = cached.get(&mvcc);
        assert_eq!(fresh.get(&mvcc), before);
        put(&mvcc, "big", 1 << 20);
        assert_eq!(
            cached.get(&mvcc),
            before,
            "within the max age: the cached size"
        );
        assert!(
            fresh.get(&mvcc) > before + (1 << 19),
            "past the max age: the size is read again"
        );
    }
}
