//! The client listeners: etcd's gRPC services and the HTTP endpoints `/health` and
//! `/metrics` share each `--listen-client-urls` port, as in etcd (HTTP/2 gRPC and HTTP/1.1
//! are told apart per connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer,
};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

use super::Node;
use crate::batched_io::BatchedWrites;

/// Slack etcd adds to `--max-request-bytes` for gRPC framing; larger messages are refused
/// by the gRPC layer before a handler sees them.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// How long `/health` waits for a linearizable read before reporting unhealthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed `accept` (for example out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Binds every client listener and serves it in the background.
pub async fn serve_clients(node: Arc<Node>) -> anyhow::Result<()> {
    let mut addrs: Vec<(std::net::SocketAddr, bool)> =
        node.cfg.listen_client.iter().map(|a| (*a, true)).collect();
    addrs.extend(node.cfg.listen_metrics.iter().map(|a| (*a, false)));
    for (addr, with_grpc) in addrs {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("failed to listen for clients on {addr}: {e}"))?;
        let app = if with_grpc {
            grpc_router(&node).merge(http_router(node.clone()))
        } else {
            http_router(node.clone())
        };
        tokio::spawn(accept_loop(listener, app, addr));
    }
    Ok(())
}

/// Serves every connection `listener` accepts with `app` (gRPC over HTTP/2 and HTTP/1.1
/// on one port). Unlike `axum::serve` it turns Nagle off, as gRPC servers do, and batches
/// each connection's writes ([`BatchedWrites`]): the replies of one Raft batch leave in one
/// write instead of one each.
async fn accept_loop(listener: tokio::net::TcpListener, app: axum::Router, addr: SocketAddr) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, %addr, "accepting a client connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "could not set TCP_NODELAY");
        }
        let svc = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let io = TokioIo::new(BatchedWrites::new(stream));
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection_with_upgrades(io, svc).await {
                tracing::debug!(error = %e, %peer, "client connection ended with an error");
            }
        });
    }
}

fn grpc_router(node: &Arc<Node>) -> axum::Router {
    let limit = node.cfg.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    let routes = tonic::service::Routes::new(
        PbKvServer::new(super::kv::KvService::new(node.clone())).max_decoding_message_size(limit),
    )
    .add_service(
        PbWatchServer::new(super::watch::WatchService::new(node.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        PbLeaseServer::new(super::lease::LeaseService::new(node.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        PbClusterServer::new(super::cluster::ClusterService::new(node.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        PbMaintenanceServer::new(super::maintenance::MaintenanceService::new(node.clone()))
            .max_decoding_message_size(limit),
    );
    routes.into_axum_router()
}

fn http_router(node: Arc<Node>) -> axum::Router {
    axum::Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(node)
}

async fn health(State(node): State<Arc<Node>>) -> (StatusCode, String) {
    let reason = if node.raft.metrics().borrow().current_leader.is_none() {
        Some("RAFT NO LEADER")
    } else {
        match tokio::time::timeout(HEALTH_TIMEOUT, node.reads.wait()).await {
            Ok(Ok(())) => None,
            _ => Some("QGET ERROR"),
        }
    };
    match reason {
        None => (
            StatusCode::OK,
            r#"{"health":"true","reason":""}"#.to_string(),
        ),
        Some(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(r#"{{"health":"false","reason":"{r}"}}"#),
        ),
    }
}

async fn metrics(State(node): State<Arc<Node>>) -> String {
    node.metrics.render(&node)
}
