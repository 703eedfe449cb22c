//! `skiff-store`: parses etcd's flags and runs one member until SIGINT/SIGTERM, or runs
//! `skiff-store snapshot restore FILE ...` (etcdctl's restore, for skiff snapshots).

use clap::Parser;
use skiff_store::config::{Config, Flags};
use skiff_store::restore::{restore, RestoreFlags};

/// mimalloc instead of glibc malloc for Rust allocations: the write path allocates and frees
/// many small buffers per request across threads (protobuf messages, batch entries), where
/// glibc's `_int_malloc`/`_int_free` took about a tenth of the leader's CPU. (RocksDB's own
/// allocations still use glibc.)
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("snapshot") {
        return snapshot_command(&args);
    }
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
    if let Err(e) = skiff_store::memory::disable_transparent_huge_pages() {
        tracing::warn!(error = %e, "could not turn transparent huge pages off; writes may cost more CPU");
    }
    let cfg = match Config::from_flags(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skiff-store: {e}");
            std::process::exit(2);
        }
    };
    skiff_store::server::run(cfg).await
}

/// `skiff-store snapshot restore ...`; the server's own flags stay the default command so
/// scripts written for etcd keep working.
fn snapshot_command(args: &[String]) -> anyhow::Result<()> {
    if args.get(2).map(String::as_str) != Some("restore") {
        eprintln!("usage: skiff-store snapshot restore FILE --data-dir DIR --name NAME --initial-cluster ... --initial-cluster-token TOKEN --initial-advertise-peer-urls URLS");
        std::process::exit(2);
    }
    let flags = RestoreFlags::parse_from(&args[2..]);
    match restore(&flags) {
        Ok(r) => {
            println!(
                "restored snapshot {} (revision {}) into {} as member {:x} of cluster {:x}",
                flags.file.display(),
                r.revision,
                r.data_dir.display(),
                r.member_id,
                r.cluster_id
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("skiff-store: snapshot restore failed: {e}");
            std::process::exit(1);
        }
    }
}
