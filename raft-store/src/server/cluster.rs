//! etcd's `Cluster` service. Membership is Raft's (openraft's joint-consensus config);
//! names and client URLs come from what each member published after starting. Changes are
//! validated and executed on the leader by `membership`.

use std::sync::Arc;

use etcd_client::proto::{
    PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest, PbMemberListResponse,
    PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest, PbMemberRemoveResponse,
    PbMemberUpdateRequest, PbMemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use super::membership::{self, MemberOp};
use super::{track, Node};

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
    membership::current_members(node)
        .iter()
        .map(|m| m.to_pb())
        .collect()
}

#[tonic::async_trait]
impl etcd_client::proto::PbClusterService for ClusterService {
    async fn member_add(
        &self,
        req: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        let r = req.into_inner();
        let node = &self.node;
        track(node, "MemberAdd", async {
            let op = MemberOp::Add {
                peer_urls: r.peer_ur_ls,
                learner: r.is_learner,
            };
            let res = membership::change(node, op).await?;
            Ok(PbMemberAddResponse {
                header: node.header(node.mvcc.current_revision()),
                member: res.member.map(|m| m.to_pb()),
                members: res.members.iter().map(|m| m.to_pb()).collect(),
            })
        })
        .await
    }

    async fn member_remove(
        &self,
        req: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        let id = req.into_inner().id;
        let node = &self.node;
        track(node, "MemberRemove", async {
            let res = membership::change(node, MemberOp::Remove { id }).await?;
            Ok(PbMemberRemoveResponse {
                header: node.header(node.mvcc.current_revision()),
                members: res.members.iter().map(|m| m.to_pb()).collect(),
            })
        })
        .await
    }

    async fn member_update(
        &self,
        req: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        let r = req.into_inner();
        let node = &self.node;
        track(node, "MemberUpdate", async {
            let op = MemberOp::Update {
                id: r.id,
                peer_urls: r.peer_ur_ls,
            };
            let res = membership::change(node, op).await?;
            Ok(PbMemberUpdateResponse {
                header: node.header(node.mvcc.current_revision()),
                members: res.members.iter().map(|m| m.to_pb()).collect(),
            })
        })
        .await
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
        req: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        let id = req.into_inner().id;
        let node = &self.node;
        track(node, "MemberPromote", async {
            let res = membership::change(node, MemberOp::Promote { id }).await?;
            Ok(PbMemberPromoteResponse {
                header: node.header(node.mvcc.current_revision()),
                members: res.members.iter().map(|m| m.to_pb()).collect(),
            })
        })
        .await
    }
}
