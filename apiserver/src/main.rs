//! `skiff-apiserver`: serves the Kubernetes API on `--bind-address:--port` over the store
//! members given by `--etcd-servers`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use skiff_apiserver::server::{self, Api};
use skiff_apiserver::store::Store;

/// Flags, named as kube-apiserver names them.
#[derive(Debug, Parser)]
#[command(
    name = "skiff-apiserver",
    version,
    about = "The Kubernetes API over skiff-store"
)]
struct Flags {
    /// Store client URLs, comma separated (`http://127.0.0.1:2379,...`).
    #[arg(
        long,
        env = "SKIFF_ETCD_SERVERS",
        default_value = "http://127.0.0.1:2379"
    )]
    etcd_servers: String,
    /// Address to listen on.
    #[arg(long, env = "SKIFF_BIND_ADDRESS", default_value = "0.0.0.0")]
    bind_address: String,
    /// Port to listen on (plain HTTP for now).
    #[arg(long, env = "SKIFF_PORT", default_value_t = 6443)]
    port: u16,
    /// Log filter (`info`, `debug`, or a tracing filter expression).
    #[arg(long, env = "SKIFF_LOG_LEVEL", default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&flags.log_level))
        .init();
    let endpoints: Vec<String> = flags
        .etcd_servers
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if endpoints.is_empty() {
        anyhow::bail!(
            "--etcd-servers is empty: give the store's client URLs, e.g. http://127.0.0.1:2379"
        );
    }
    let addr: SocketAddr = format!("{}:{}", flags.bind_address, flags.port)
        .parse()
        .with_context(|| {
            format!(
                "invalid --bind-address/--port {}:{}",
                flags.bind_address, flags.port
            )
        })?;
    let store = Store::connect(&endpoints)
        .await
        .with_context(|| format!("cannot reach the store at {}", endpoints.join(",")))?;
    let api = Arc::new(Api {
        store,
        address: addr.to_string(),
        metrics: Default::default(),
    });
    // The store may still be electing a leader: retry the bootstrap for a while.
    let mut attempt = 0;
    loop {
        match server::ensure_system_namespaces(&api).await {
            Ok(()) => break,
            Err(e) if attempt < 30 => {
                tracing::warn!(error = %e, "creating system namespaces failed; retrying");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => anyhow::bail!("cannot create the system namespaces: {e}"),
        }
    }
    tracing::info!(etcd_servers = %endpoints.join(","), "store reachable");
    server::serve(api, addr, shutdown_signal()).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
