//! `skiff-apiserver-bench`: the apiserver's performance figures (docs/benchmarks.md).
//!
//! ```text
//! skiff-apiserver-bench --servers http://127.0.0.1:6443 [--json] all
//!   create: --pods 10000 pods from --clients 50 concurrent clients
//!   list:   the namespace's pods in one page and in pages of --page-size 500 (--list-repeat)
//!   watch:  --watchers 1000 watches, --changes patches of one pod; delay to each watcher
//! ```

use std::time::Duration;

use clap::{Parser, ValueEnum};
use skiff_apiserver::bench::{self, Http, Report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    All,
    Create,
    List,
    Watch,
}

#[derive(Debug, Parser)]
#[command(
    name = "skiff-apiserver-bench",
    about = "Benchmarks a Kubernetes apiserver: pod creates, lists and watch delivery"
)]
struct Args {
    /// Apiserver URLs, comma-separated; requests rotate over them.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:6443")]
    servers: Vec<String>,
    /// Namespace the benchmark creates and fills.
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Pods to create.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent clients creating pods.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Page size of the paginated list.
    #[arg(long, default_value_t = 500)]
    page_size: usize,
    /// How many times each list is repeated.
    #[arg(long, default_value_t = 5)]
    list_repeat: usize,
    /// Concurrent watchers.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Changes each watcher must receive.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// Pause between changes, ms.
    #[arg(long, default_value_t = 200)]
    change_interval_ms: u64,
    /// Print one JSON array of the reports instead of text.
    #[arg(long)]
    json: bool,
    /// What to run.
    workload: Workload,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let http = Http::new(a.servers.clone(), a.clients.max(a.watchers));
    bench::ensure_namespace(&http, &a.namespace).await?;
    let mut reports: Vec<Report> = Vec::new();
    let show = |r: &Report, json: bool| {
        if !json {
            println!("{r}");
        }
    };
    if matches!(a.workload, Workload::All | Workload::Create) {
        let r = bench::create_pods(&http, &a.namespace, "bench", a.pods, a.clients).await;
        show(&r, a.json);
        reports.push(r);
    }
    if matches!(a.workload, Workload::All | Workload::List) {
        for page in [0, a.page_size] {
            let (r, seen) = bench::list_pods(&http, &a.namespace, page, a.list_repeat).await;
            show(&r, a.json);
            if !a.json {
                println!("  ({seen} pods per list)");
            }
            reports.push(r);
        }
    }
    if matches!(a.workload, Workload::All | Workload::Watch) {
        // The watched pod: the first benchmark pod, created if the create step did not run.
        let _ = bench::create_pods(&http, &a.namespace, "bench-watch", 1, 1).await;
        let interval = Duration::from_millis(a.change_interval_ms);
        let r = bench::watch_latency(
            &http,
            &a.namespace,
            "bench-watch-0",
            a.watchers,
            a.changes,
            interval,
        )
        .await?;
        show(&r, a.json);
        reports.push(r);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    if reports.iter().any(|r| r.errors > 0) {
        anyhow::bail!("some requests failed (see first_error above)");
    }
    Ok(())
}
