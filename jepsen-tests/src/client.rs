//! etcd v3 client helpers shared by the workloads and the nemesis: connecting with bounded
//! timeouts, classifying errors into definite failures and unknown outcomes, and asking the
//! cluster who leads.

use etcd_client::{Client, ConnectOptions};
use std::future::Future;
use std::time::Duration;

/// Deadline of one client operation. Past it, the outcome of a write is unknown (`info`).
pub const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Deadline for establishing a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How an operation ended from the client's point of view.
#[derive(Debug)]
pub enum Outcome<T> {
    /// It completed with this response.
    Ok(T),
    /// It definitely did not take effect (the request was never sent or was rejected).
    Fail(String),
    /// It may or may not have taken effect (timeout, connection lost after sending).
    Unknown(String),
}

/// A client bound to the given endpoints. Connection is lazy in tonic, so this succeeds even
/// when every endpoint is down; operations then fail.
pub async fn connect(urls: &[String]) -> Result<Client, etcd_client::Error> {
    connect_with_timeout(urls, OP_TIMEOUT).await
}

/// Like [`connect`], with a per-request deadline of `timeout` (membership changes may wait
/// for a leader transfer, which takes a few election timeouts).
pub async fn connect_with_timeout(
    urls: &[String],
    timeout: Duration,
) -> Result<Client, etcd_client::Error> {
    let options = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(timeout)
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(1));
    Client::connect(urls, Some(options)).await
}

/// Runs `op` with [`OP_TIMEOUT`] and classifies the result.
pub async fn run<T>(op: impl Future<Output = Result<T, etcd_client::Error>>) -> Outcome<T> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Err(_) => Outcome::Unknown(format!("timed out after {OP_TIMEOUT:?}")),
        Ok(Ok(value)) => Outcome::Ok(value),
        Ok(Err(err)) => classify(&err),
    }
}

/// Errors that prove the request had no effect are failures; everything else is unknown.
/// A connection that could not be made means nothing was sent. The server's own rejections
/// (invalid argument, precondition, no space, unimplemented, leader-less cluster answering
/// before proposing) are definite too.
pub fn classify<T>(err: &etcd_client::Error) -> Outcome<T> {
    use tonic::Code;
    let text = err.to_string();
    let definite = match err {
        etcd_client::Error::GRpcStatus(status) => match status.code() {
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::ResourceExhausted
            | Code::Unimplemented
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::AlreadyExists
            | Code::NotFound => true,
            Code::Unavailable => never_sent(&text),
            _ => false,
        },
        etcd_client::Error::TransportError(_) => never_sent(&text),
        _ => false,
    };
    if definite {
        Outcome::Fail(text)
    } else {
        Outcome::Unknown(text)
    }
}

/// Whether an error text says the TCP connection was never established.
fn never_sent(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "connection refused",
        "tcp connect error",
        "error trying to connect",
        "no route to host",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The index of the member whose status says it leads, asking every member in `urls`.
pub async fn leader_index(urls: &[String]) -> Option<usize> {
    for (i, url) in urls.iter().enumerate() {
        let Ok(mut client) = connect(std::slice::from_ref(url)).await else {
            continue;
        };
        let status = tokio::time::timeout(Duration::from_secs(1), client.status()).await;
        if let Ok(Ok(status)) = status {
            let me = status.header().map(|h| h.member_id());
            if status.leader() != 0 && me == Some(status.leader()) {
                return Some(i);
            }
        }
    }
    None
}

/// Waits until every member answers a linearizable read, up to `limit`. Returns the members
/// that still do not answer.
pub async fn wait_healthy(urls: &[String], limit: Duration) -> Vec<usize> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pending: Vec<usize> = (0..urls.len()).collect();
    while !pending.is_empty() && tokio::time::Instant::now() < deadline {
        let mut still = Vec::new();
        for &i in &pending {
            let healthy = match connect(std::slice::from_ref(&urls[i])).await {
                Ok(mut client) => {
                    let read = client.get("skiff-jepsen-health", None);
                    matches!(
                        tokio::time::timeout(Duration::from_secs(2), read).await,
                        Ok(Ok(_))
                    )
                }
                Err(_) => false,
            };
            if !healthy {
                still.push(i);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    pending
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Server rejections are failures; timeouts and resets are unknown; refused connections
    /// are failures.
    #[test]
    fn classifies_errors() {
        let status =
            |code, msg: &str| etcd_client::Error::GRpcStatus(tonic::Status::new(code, msg));
        let is_fail = |err: etcd_client::Error| matches!(classify::<()>(&err), Outcome::Fail(_));
        assert!(is_fail(status(
            tonic::Code::FailedPrecondition,
            "no leader"
        )));
        assert!(!is_fail(status(
            tonic::Code::Unavailable,
            "connection reset"
        )));
        assert!(is_fail(status(
            tonic::Code::Unavailable,
            "tcp connect error: Connection refused"
        )));
        assert!(!is_fail(status(tonic::Code::DeadlineExceeded, "deadline")));
        assert!(!is_fail(status(tonic::Code::Unknown, "leader changed")));
    }
}
