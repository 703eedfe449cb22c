//! `skiff-bench`: an etcd-benchmark-like load generator for any etcd v3 endpoint set.
//!
//! `skiff-bench --endpoints A,B,C [--target-leader] --conns 100 --clients 1000 put --total
//! 100000 --key-size 8 --val-size 256` prints ops/s, latency percentiles and a histogram (or
//! one JSON object with `--json`). It drives skiff-store and real etcd alike, so both are
//! measured with the same client code. The engine is `skiff_store::bench`.

use clap::Parser;
use skiff_store::bench::{self, Options};

/// mimalloc, as the store binary uses: each request allocates its message, headers and
/// stream state, and glibc's malloc/free took about a fifth of the tool's CPU at 1,000
/// clients, CPU the stores under test then do not get on a shared machine.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let opts = Options::parse();
    if let Err(e) = skiff_store::memory::disable_transparent_huge_pages() {
        eprintln!("skiff-bench: could not turn transparent huge pages off: {e}");
    }
    match bench::run(&opts).await {
        Ok(report) if opts.json => println!("{}", report.to_json()),
        Ok(report) => print!("{}", report.to_text()),
        Err(e) => {
            eprintln!("skiff-bench: {e}");
            std::process::exit(1);
        }
    }
}
