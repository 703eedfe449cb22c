//! `skiff-store`: parses etcd's flags and runs one member until SIGINT/SIGTERM.

use clap::Parser;
use skiff_store::config::{Config, Flags};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},openraft=warn", flags.log_level))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let cfg = match Config::from_flags(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skiff-store: {e}");
            std::process::exit(2);
        }
    };
    skiff_store::server::run(cfg).await
}
