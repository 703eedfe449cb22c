//! The client listeners: etcd's gRPC services and the HTTP endpoints `/health` and
//! `/metrics` share each `--listen-client-urls` port, as in etcd (HTTP/2 gRPC and HTTP/1.1
//! are told apart per connection).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer,
};

use super::Node;

/// Slack etcd adds to `--max-request-bytes` for gRPC framing; larger messages are refused
/// by the gRPC layer before a handler sees them.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// How long `/health` waits for a linearizable read before reporting unhealthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

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
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, %addr, "client listener stopped");
            }
        });
    }
    Ok(())
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
