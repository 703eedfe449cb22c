//! The watch workload: writers `Put` single keys under `w/` while one watcher per member
//! watches the prefix from the run's start revision, resuming after every broken stream from
//! the revision after the last event it got. After the heal, the watchers run until they
//! reach the cluster's final revision; [`crate::checks::watch`] then checks that every
//! watcher saw a gap-free, duplicate-free prefix of one canonical sequence holding every
//! acknowledged put.

use super::Context;
use crate::checks::watch::{WatchEvent, WatchObservation};
use crate::client::{self, Outcome};
use crate::history::{Completion, OpKind, Recorder};
use etcd_client::{EventType, GetOptions, WatchOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The watched prefix; the workload writes nothing else.
pub const PREFIX: &str = "w/";
/// Distinct keys written.
const KEYS: u32 = 8;
/// How long the final phase waits for watchers to reach the final revision.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(20);

type Log = Arc<Mutex<Vec<WatchEvent>>>;

/// A running watch workload.
pub struct Handle {
    start_revision: i64,
    writers: Vec<JoinHandle<()>>,
    watchers: Vec<(String, Log, JoinHandle<()>)>,
    /// The revision watchers must reach before they stop; -1 stops them at once.
    target: watch::Sender<i64>,
}

/// Starts writers and watchers. Fails if the start revision cannot be read.
pub async fn start(ctx: Context) -> Result<Handle, String> {
    let mut client = client::connect(&ctx.urls)
        .await
        .map_err(|e| e.to_string())?;
    let start_revision =
        match client::run(client.get(PREFIX, Some(GetOptions::new().with_prefix()))).await {
            Outcome::Ok(response) => response.header().map_or(0, |h| h.revision()) + 1,
            Outcome::Fail(e) | Outcome::Unknown(e) => {
                return Err(format!("failed to read the start revision: {e}"))
            }
        };
    let (target, target_rx) = watch::channel(0i64);
    let watchers = ctx
        .urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let log: Log = Arc::default();
            let task = tokio::spawn(watcher(
                url.clone(),
                start_revision,
                log.clone(),
                target_rx.clone(),
            ));
            (format!("watcher on m{i}"), log, task)
        })
        .collect();
    let writers = (0..ctx.concurrency)
        .map(|w| tokio::spawn(writer(w, ctx.clone())))
        .collect();
    Ok(Handle {
        start_revision,
        writers,
        watchers,
        target,
    })
}

async fn writer(w: usize, mut ctx: Context) {
    let url = ctx.urls[w % ctx.urls.len()].clone();
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ (w as u64 + 1).wrapping_mul(0xA24B_AED4));
    let Ok(mut client) = client::connect(std::slice::from_ref(&url)).await else {
        return;
    };
    let mut process = ctx.recorder.new_process();
    let mut seq = 0u64;
    while !*ctx.stop.borrow() {
        let key = format!("{PREFIX}{}", rng.gen_range(0..KEYS));
        let value = format!("{w}-{seq}");
        seq += 1;
        ctx.recorder
            .invoke(process, "put", Some(&key), json!(value))
            .expect("each writer owns its process");
        let (completion, result) =
            match client::run(client.put(key.as_str(), value.as_str(), None)).await {
                Outcome::Ok(r) => (
                    Completion::Ok,
                    json!({"revision": r.header().map_or(0, |h| h.revision())}),
                ),
                Outcome::Fail(e) => (Completion::Fail, json!({ "error": e })),
                Outcome::Unknown(e) => (Completion::Info, json!({ "error": e })),
            };
        ctx.recorder
            .complete(process, completion, result)
            .expect("the invoke above is in flight");
        if completion == Completion::Info {
            process = ctx.recorder.new_process();
        }
        let pause = ctx.mean_delay().mul_f64(rng.gen_range(0.0..2.0));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = ctx.stop.changed() => {}
        }
    }
}

/// Watches from `next` on, reconnecting after every error, until `target` says to stop.
async fn watcher(url: String, mut next: i64, log: Log, mut target: watch::Receiver<i64>) {
    let done = |next: i64, target: i64| target < 0 || (target > 0 && next > target);
    while !done(next, *target.borrow()) {
        let options = WatchOptions::new().with_prefix().with_start_revision(next);
        let stream = match client::connect(std::slice::from_ref(&url)).await {
            Ok(mut c) => {
                tokio::time::timeout(client::OP_TIMEOUT, c.watch(PREFIX, Some(options))).await
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(Ok(mut stream)) = stream else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                changed = target.changed() => {
                    // A dropped sender means the run was abandoned: stop too.
                    if changed.is_err() || done(next, *target.borrow()) { return; }
                    continue;
                }
            };
            let Ok(Some(response)) = message else { break };
            if response.canceled() {
                tracing::warn!(%url, reason = response.cancel_reason(), "watch canceled; re-watching");
                break;
            }
            let mut events = log.lock().unwrap_or_else(PoisonError::into_inner);
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                events.push(WatchEvent {
                    revision: kv.mod_revision(),
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    value: String::from_utf8_lossy(kv.value()).into_owned(),
                    delete: event.event_type() == EventType::Delete,
                });
                next = next.max(kv.mod_revision() + 1);
            }
            drop(events);
            if done(next, *target.borrow()) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Handle {
    /// After the stop signal and the heal: waits for the writers, reads the final revision,
    /// lets the watchers catch up (at most [`CATCH_UP_TIMEOUT`]) and returns what they saw.
    pub async fn finish(self, urls: &[String], recorder: &Recorder) -> WatchObservation {
        for writer in self.writers {
            writer.await.expect("writers do not panic");
        }
        let final_revision = final_revision(urls).await;
        let _ = self.target.send(if final_revision > 0 {
            final_revision
        } else {
            -1
        });
        let mut logs = Vec::new();
        for (name, log, task) in self.watchers {
            if tokio::time::timeout(CATCH_UP_TIMEOUT, task).await.is_err() {
                tracing::warn!(%name, "watcher did not reach the final revision in time");
            }
            logs.push((
                name,
                log.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            ));
        }
        let _ = self.target.send(-1);
        let history = recorder.history();
        let acknowledged = crate::history::pair(&history)
            .map(|paired| {
                paired
                    .iter()
                    .filter(|op| {
                        op.invoke.f == "put" && op.completion.is_some_and(|c| c.kind == OpKind::Ok)
                    })
                    .filter_map(|op| {
                        Some((op.invoke.key.clone()?, op.invoke.value.as_str()?.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        WatchObservation {
            start_revision: self.start_revision,
            final_revision,
            logs,
            acknowledged,
        }
    }
}

async fn final_revision(urls: &[String]) -> i64 {
    for _ in 0..10 {
        if let Ok(mut c) = client::connect(urls).await {
            if let Outcome::Ok(r) = client::run(c.get(
                PREFIX,
                Some(GetOptions::new().with_prefix().with_count_only()),
            ))
            .await
            {
                return r.header().map_or(0, |h| h.revision());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    0
}
