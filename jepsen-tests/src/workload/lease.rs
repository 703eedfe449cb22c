//! The lease workload, checked by [`crate::checks::lease`]:
//!
//! * an *expirer* grants a lease of [`EXPIRE_TTL_S`] about every second and puts a key
//!   `l/e/<n>` on it, never keeping it alive;
//! * *keepers* (one per member) each grant a lease of [`KEEP_TTL_S`], put `l/k/<n>` on it,
//!   send a keep-alive every [`KEEPALIVE_EVERY`] and read the key every [`READ_EVERY`]. A keeper
//!   whose key is gone starts over with a new lease and key;
//! * the final phase waits until every expiring lease must have expired and scans `l/e/`.
//!
//! Everything is recorded in the history (see the checker for the shapes), so the check and
//! the latency plot work from `history.jsonl` alone.

use super::Context;
use crate::client::{self, Outcome};
use crate::history::{Completion, Recorder};
use etcd_client::{Client, GetOptions, PutOptions};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// TTL of leases that are left to expire, in seconds (etcd's minimum is about 3 s).
pub const EXPIRE_TTL_S: i64 = 3;
/// TTL of kept-alive leases, in seconds.
pub const KEEP_TTL_S: i64 = 5;
/// Keep-alive period of the keepers.
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);
/// Read period of the keepers.
pub const READ_EVERY: Duration = Duration::from_millis(500);
/// Extra wait after the heal before the final scan, on top of [`EXPIRE_TTL_S`]: a leader
/// change extends remaining TTLs, and the leader needs time to propose the revokes.
pub const EXPIRY_SLACK: Duration = Duration::from_secs(8);
/// Prefix of expiring keys.
pub const EXPIRING_PREFIX: &str = "l/e/";

/// Runs until `ctx.stop`.
pub async fn run(ctx: Context) {
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = vec![tokio::spawn(expirer(ctx.clone(), counter.clone()))];
    for (i, url) in ctx.urls.iter().enumerate() {
        tasks.push(tokio::spawn(keeper(
            i,
            url.clone(),
            ctx.clone(),
            counter.clone(),
        )));
    }
    for task in tasks {
        task.await.expect("lease tasks do not panic");
    }
}

/// Records one operation around `action`; returns its completion.
async fn record<F>(
    recorder: &Recorder,
    process: &mut u64,
    f: &str,
    key: Option<&str>,
    arg: Value,
    action: F,
) -> Option<Value>
where
    F: std::future::Future<Output = Outcome<Value>>,
{
    recorder
        .invoke(*process, f, key, arg)
        .expect("each task owns its process");
    let (completion, value) = match action.await {
        Outcome::Ok(v) => (Completion::Ok, v),
        Outcome::Fail(e) => (Completion::Fail, json!({ "error": e })),
        // A failed read has no effect, whatever the reason.
        Outcome::Unknown(e) if f == "get" || f == "scan" => {
            (Completion::Fail, json!({ "error": e }))
        }
        Outcome::Unknown(e) => (Completion::Info, json!({ "error": e })),
    };
    recorder
        .complete(*process, completion, value.clone())
        .expect("in flight");
    match completion {
        Completion::Ok => Some(value),
        Completion::Info => {
            *process = recorder.new_process();
            None
        }
        Completion::Fail => None,
    }
}

async fn grant_put(client: &mut Client, key: &str, ttl: i64) -> Outcome<Value> {
    let grant = match client::run(client.lease_grant(ttl, None)).await {
        Outcome::Ok(g) => g,
        Outcome::Fail(e) => return Outcome::Fail(e),
        // An unknown grant without a put leaves no key: the put below never ran.
        Outcome::Unknown(e) => return Outcome::Fail(e),
    };
    let options = PutOptions::new().with_lease(grant.id());
    match client::run(client.put(key, "x", Some(options))).await {
        Outcome::Ok(_) => Outcome::Ok(json!({"lease": grant.id(), "ttl": grant.ttl()})),
        Outcome::Fail(e) => Outcome::Fail(e),
        Outcome::Unknown(e) => Outcome::Unknown(e),
    }
}

async fn expirer(mut ctx: Context, counter: Arc<AtomicU64>) {
    let Ok(mut client) = client::connect(&ctx.urls).await else {
        return;
    };
    let mut process = ctx.recorder.new_process();
    while !*ctx.stop.borrow() {
        let key = format!(
            "{EXPIRING_PREFIX}{}",
            counter.fetch_add(1, Ordering::Relaxed)
        );
        let arg = json!({"ttl": EXPIRE_TTL_S, "keep": false});
        record(
            &ctx.recorder,
            &mut process,
            "grant-put",
            Some(&key),
            arg,
            grant_put(&mut client, &key, EXPIRE_TTL_S),
        )
        .await;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = ctx.stop.changed() => {}
        }
    }
}

async fn keeper(member: usize, url: String, mut ctx: Context, counter: Arc<AtomicU64>) {
    let Ok(mut client) = client::connect(std::slice::from_ref(&url)).await else {
        return;
    };
    let mut process = ctx.recorder.new_process();
    while !*ctx.stop.borrow() {
        let key = format!("l/k/{member}-{}", counter.fetch_add(1, Ordering::Relaxed));
        let arg = json!({"ttl": KEEP_TTL_S, "keep": true});
        let granted = record(
            &ctx.recorder,
            &mut process,
            "grant-put",
            Some(&key),
            arg,
            grant_put(&mut client, &key, KEEP_TTL_S),
        )
        .await;
        let Some(lease) = granted.and_then(|v| v["lease"].as_i64()) else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        keep(&mut ctx, &mut client, &mut process, &key, lease).await;
    }
}

/// Keeps `lease` alive and reads `key` until the key is gone or the run stops.
async fn keep(ctx: &mut Context, client: &mut Client, process: &mut u64, key: &str, lease: i64) {
    let mut next_keepalive = tokio::time::Instant::now() + KEEPALIVE_EVERY;
    while !*ctx.stop.borrow() {
        if tokio::time::Instant::now() >= next_keepalive {
            next_keepalive += KEEPALIVE_EVERY;
            let action = keepalive_once(client, lease);
            record(
                &ctx.recorder,
                process,
                "keepalive",
                Some(key),
                json!({"lease": lease}),
                action,
            )
            .await;
        }
        let read = async {
            match client::run(client.get(key, None::<GetOptions>)).await {
                Outcome::Ok(r) => Outcome::Ok(json!({"present": !r.kvs().is_empty()})),
                Outcome::Fail(e) => Outcome::Fail(e),
                Outcome::Unknown(e) => Outcome::Unknown(e),
            }
        };
        let seen = record(&ctx.recorder, process, "get", Some(key), Value::Null, read).await;
        if seen.is_some_and(|v| v["present"] == Value::Bool(false)) {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(READ_EVERY) => {}
            _ = ctx.stop.changed() => {}
        }
    }
}

async fn keepalive_once(client: &mut Client, lease: i64) -> Outcome<Value> {
    let exchange = async {
        let (mut keeper, mut stream) = client.lease_keep_alive(lease).await?;
        keeper.keep_alive().await?;
        stream.message().await
    };
    match client::run(exchange).await {
        Outcome::Ok(Some(response)) => Outcome::Ok(json!({"ttl": response.ttl()})),
        Outcome::Ok(None) => Outcome::Unknown("keep-alive stream closed without an answer".into()),
        Outcome::Fail(e) => Outcome::Fail(e),
        Outcome::Unknown(e) => Outcome::Unknown(e),
    }
}

/// After the heal: waits until every expiring lease must be gone, then scans their prefix.
pub async fn final_scan(urls: &[String], recorder: &Recorder) {
    tokio::time::sleep(Duration::from_secs(EXPIRE_TTL_S as u64) + EXPIRY_SLACK).await;
    let Ok(mut client) = client::connect(urls).await else {
        return;
    };
    let mut process = recorder.new_process();
    for _ in 0..5 {
        let scan = async {
            let options = GetOptions::new().with_prefix().with_keys_only();
            match client::run(client.get(EXPIRING_PREFIX, Some(options))).await {
                Outcome::Ok(r) => {
                    let keys: Vec<String> = r
                        .kvs()
                        .iter()
                        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
                        .collect();
                    Outcome::Ok(json!({ "keys": keys }))
                }
                Outcome::Fail(e) => Outcome::Fail(e),
                Outcome::Unknown(e) => Outcome::Unknown(e),
            }
        };
        let arg = json!({"prefix": EXPIRING_PREFIX});
        if record(recorder, &mut process, "scan", None, arg, scan)
            .await
            .is_some()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
