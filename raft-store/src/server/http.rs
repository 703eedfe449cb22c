//! The client listeners: etcd's gRPC services and the HTTP endpoints `/health` and
//! `/metrics` share each `--listen-client-urls` port, as in etcd (HTTP/2 gRPC and HTTP/1.1
//! are told apart per connection).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::http::{self, StatusCode};
use axum::routing::get;
use etcd_client::proto::{
    PbClusterServer, PbDeleteRequest, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbPutRequest,
    PbTxnRequest, PbWatchServer,
};

use futures::future::BoxFuture;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tower::Service;

use super::unary::{self, GrpcResponse};
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
        let app = ClientService {
            grpc: with_grpc.then(|| GrpcServices::new(&node)),
            http: http_router(node.clone()),
        };
        tokio::spawn(accept_loop(listener, app, addr));
    }
    Ok(())
}

/// Serves every connection `listener` accepts with `app` (gRPC over HTTP/2 and HTTP/1.1
/// on one port). Unlike `axum::serve` it turns Nagle off, as gRPC servers do, and batches
/// each connection's writes ([`BatchedWrites`]): the replies of one Raft batch leave in one
/// write instead of one each.
async fn accept_loop(listener: tokio::net::TcpListener, app: ClientService, addr: SocketAddr) {
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

/// What a client port serves: etcd's gRPC services (not on `--listen-metrics-urls`), then
/// the HTTP endpoints. gRPC calls are dispatched by the path's service name with one string
/// match per request (tonic's `Routes` builds an axum router, whose routing and extension
/// layers were a fifth of a put's request-task CPU); the KV write methods take the lean
/// unary path of `server::unary`. A gRPC call to an unknown service is
/// answered `Unimplemented`, as tonic's router does; anything else goes to the HTTP router.
#[derive(Clone)]
struct ClientService {
    grpc: Option<GrpcServices>,
    http: axum::Router,
}

/// etcd's gRPC services.
#[derive(Clone)]
struct GrpcServices {
    /// For the lean unary write path (`server::unary`).
    node: Arc<Node>,
    /// The largest request message accepted.
    limit: usize,
    kv: PbKvServer<super::kv::KvService>,
    watch: PbWatchServer<super::watch::WatchService>,
    lease: PbLeaseServer<super::lease::LeaseService>,
    cluster: PbClusterServer<super::cluster::ClusterService>,
    maintenance: PbMaintenanceServer<super::maintenance::MaintenanceService>,
}

impl GrpcServices {
    fn new(node: &Arc<Node>) -> GrpcServices {
        let limit = node.cfg.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
        GrpcServices {
            node: node.clone(),
            limit,
            kv: PbKvServer::new(super::kv::KvService::new(node.clone()))
                .max_decoding_message_size(limit),
            watch: PbWatchServer::new(super::watch::WatchService::new(node.clone()))
                .max_decoding_message_size(limit),
            lease: PbLeaseServer::new(super::lease::LeaseService::new(node.clone()))
                .max_decoding_message_size(limit),
            cluster: PbClusterServer::new(super::cluster::ClusterService::new(node.clone()))
                .max_decoding_message_size(limit),
            maintenance: PbMaintenanceServer::new(super::maintenance::MaintenanceService::new(
                node.clone(),
            ))
            .max_decoding_message_size(limit),
        }
    }
}

impl Service<http::Request<hyper::body::Incoming>> for ClientService {
    type Response = GrpcResponse;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<GrpcResponse, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Every inner service is always ready (tonic's servers and axum's router are).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let (service, method) = req
            .uri()
            .path()
            .strip_prefix("/etcdserverpb.")
            .and_then(|rest| rest.split_once('/'))
            .unzip();
        match (&mut self.grpc, service) {
            (Some(g), Some("KV")) => match method {
                Some("Put") => Box::pin(unary::serve::<PbPutRequest>(g.node.clone(), req, g.limit)),
                Some("Txn") => Box::pin(unary::serve::<PbTxnRequest>(g.node.clone(), req, g.limit)),
                Some("DeleteRange") => Box::pin(unary::serve::<PbDeleteRequest>(
                    g.node.clone(),
                    req,
                    g.limit,
                )),
                _ => g.kv.call(req),
            },
            (Some(g), Some("Watch")) => g.watch.call(req),
            (Some(g), Some("Lease")) => g.lease.call(req),
            (Some(g), Some("Cluster")) => g.cluster.call(req),
            (Some(g), Some("Maintenance")) => g.maintenance.call(req),
            (Some(_), _) if is_grpc(&req) => {
                let status = tonic::Status::unimplemented(format!(
                    "unknown gRPC service in {}",
                    req.uri().path()
                ));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
            _ => {
                let call = self.http.call(req);
                Box::pin(async move {
                    let resp = call.await?;
                    Ok(resp.map(tonic::body::Body::new))
                })
            }
        }
    }
}

fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
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
