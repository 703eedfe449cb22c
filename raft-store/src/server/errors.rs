//! etcd's client-visible errors: gRPC code plus the exact message text, because etcd
//! clients (Go clientv3, etcdctl, python-etcd3) recognise errors by their message.

use tonic::Code;

use crate::raft::ApiError;

fn err(code: Code, msg: &str) -> ApiError {
    ApiError::new(code, msg)
}

/// `etcdserver: key is not provided`
pub fn empty_key() -> ApiError {
    err(Code::InvalidArgument, "etcdserver: key is not provided")
}
/// `etcdserver: too many operations in txn request`
pub fn too_many_ops() -> ApiError {
    err(
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    )
}
/// `etcdserver: duplicate key given in txn request`
pub fn duplicate_key() -> ApiError {
    err(
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    )
}
/// `etcdserver: request is too large`
pub fn request_too_large() -> ApiError {
    err(Code::InvalidArgument, "etcdserver: request is too large")
}
/// `etcdserver: no leader`
pub fn no_leader() -> ApiError {
    err(Code::Unavailable, "etcdserver: no leader")
}
/// `etcdserver: leader changed`
pub fn leader_changed() -> ApiError {
    err(Code::Unavailable, "etcdserver: leader changed")
}
/// `etcdserver: request timed out`
pub fn timeout() -> ApiError {
    err(Code::Unavailable, "etcdserver: request timed out")
}
/// `etcdserver: too large lease TTL`
pub fn lease_ttl_too_large() -> ApiError {
    err(Code::OutOfRange, "etcdserver: too large lease TTL")
}
/// `etcdserver: requested lease not found`
pub fn lease_not_found() -> ApiError {
    err(Code::NotFound, "etcdserver: requested lease not found")
}
/// `etcdserver: mvcc: database space exceeded`
pub fn no_space() -> ApiError {
    err(
        Code::ResourceExhausted,
        "etcdserver: mvcc: database space exceeded",
    )
}
/// An internal failure: the message says what failed.
pub fn internal(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::Internal, format!("etcdserver: {what}"))
}
/// `etcdserver: member ID already exist`
pub fn member_exist() -> ApiError {
    err(
        Code::FailedPrecondition,
        "etcdserver: member ID already exist",
    )
}
/// `etcdserver: Peer URLs already exists`
pub fn peer_url_exist() -> ApiError {
    err(
        Code::FailedPrecondition,
        "etcdserver: Peer URLs already exists",
    )
}
/// `etcdserver: re-configuration failed due to not enough started members`
pub fn not_enough_started() -> ApiError {
    err(
        Code::FailedPrecondition,
        "etcdserver: re-configuration failed due to not enough started members",
    )
}
/// `etcdserver: given member URLs are invalid`
pub fn bad_member_urls() -> ApiError {
    err(
        Code::InvalidArgument,
        "etcdserver: given member URLs are invalid",
    )
}
/// `etcdserver: member not found`
pub fn member_not_found() -> ApiError {
    err(Code::NotFound, "etcdserver: member not found")
}
/// `etcdserver: can only promote a learner member`
pub fn member_not_learner() -> ApiError {
    err(
        Code::FailedPrecondition,
        "etcdserver: can only promote a learner member",
    )
}
/// `etcdserver: can only promote a learner member which is in sync with leader`
pub fn learner_not_ready() -> ApiError {
    err(
        Code::FailedPrecondition,
        "etcdserver: can only promote a learner member which is in sync with leader",
    )
}
/// `etcdserver: too many learner members in cluster`
pub fn too_many_learners() -> ApiError {
    err(
        Code::FailedPrecondition,
        "etcdserver: too many learner members in cluster",
    )
}
/// `etcdserver: not leader`
pub fn not_leader() -> ApiError {
    err(Code::FailedPrecondition, "etcdserver: not leader")
}
/// `etcdserver: bad leader transferee`
pub fn bad_leader_transferee() -> ApiError {
    err(
        Code::FailedPrecondition,
        "etcdserver: bad leader transferee",
    )
}
/// `etcdserver: request timed out, leader transfer took too long`
pub fn leader_transfer_timeout() -> ApiError {
    err(
        Code::Unavailable,
        "etcdserver: request timed out, leader transfer took too long",
    )
}
/// `etcdserver: unhealthy cluster`
pub fn unhealthy() -> ApiError {
    err(Code::Unavailable, "etcdserver: unhealthy cluster")
}
