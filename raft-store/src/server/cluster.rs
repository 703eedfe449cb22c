//! etcd's `Cluster` service. Membership is Raft's (openraft's joint-consensus config);
//! names and client URLs come from what each member published after starting.

use std::sync::Arc;

use etcd_client::proto::{
    PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest, PbMemberListResponse,
    PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest, PbMemberRemoveResponse,
    PbMemberUpdateRequest, PbMemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use super::{track, Node};
use crate::raft::state_machine::member_attrs;

/// The Cluster service.
pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    /// Serves cluster requests for `node`.
    pub fn new(node: Arc<Node>) -> Self {
        ClusterService { node }
    }
}

/// The members as etcd lists them, voters and learners, ordered by id.
pub fn members(node: &Node) -> Vec<PbMember> {
    let m = node.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let mut out: Vec<PbMember> = membership
        .nodes()
        .map(|(id, n)| {
            let attrs = member_attrs(&node.mvcc, *id).unwrap_or_default();
            PbMember {
                id: *id,
                name: if attrs.name.is_empty() {
                    n.name.clone()
                } else {
                    attrs.name
                },
                peer_ur_ls: n.peer_urls.clone(),
                client_ur_ls: attrs.client_urls,
                is_learner: !voters.contains(id),
            }
        })
        .collect();
    out.sort_by_key(|m| m.id);
    out
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!(
        "skiff-store: {what} is not implemented yet (see docs/compatibility.md)"
    ))
}

#[tonic::async_trait]
impl etcd_client::proto::PbClusterService for ClusterService {
    async fn member_add(
        &self,
        _r: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        Err(not_yet("MemberAdd"))
    }

    async fn member_remove(
        &self,
        _r: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        Err(not_yet("MemberRemove"))
    }

    async fn member_update(
        &self,
        _r: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(not_yet("MemberUpdate"))
    }

    async fn member_list(
        &self,
        req: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        let r = req.into_inner();
        let node = &self.node;
        track(node, "MemberList", async {
            if r.linearizable {
                node.reads.wait().await?;
            }
            Ok(PbMemberListResponse {
                header: node.header(node.mvcc.current_revision()),
                members: members(node),
            })
        })
        .await
    }

    async fn member_promote(
        &self,
        _r: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        Err(not_yet("MemberPromote"))
    }
}
