//! Independent registers: many keys, each read, written and compare-and-set concurrently;
//! checked per key against [`crate::model::VersionedRegister`] (as jepsen-io/etcd's register
//! workload).
//!
//! * read: a linearizable `Range` of the key → `{"value", "version"}`
//! * write: `Put` with `prev_kv` → the new version is `prev.version + 1`
//! * cas: `Txn If(Version(key) == v) Then(Put)` → swapped with version `v + 1`, or not
//!
//! Each key takes [`OPS_PER_KEY`] operations and is then retired for a fresh one, which keeps
//! every partition small for the linearizability search. Worker `w` is bound to member
//! `w % n`, so reads on a member cut off by a partition are served (or refused) there: a
//! member that answers reads from stale local state is caught.

use super::Context;
use crate::client::{self, Outcome};
use crate::history::{Completion, Op, Recorder};
use crate::report::{CheckerResult, Validity};
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Operations on one key before it is retired.
pub const OPS_PER_KEY: u64 = 150;
/// Keys in use at the same time.
pub const ACTIVE_KEYS: usize = 4;
/// Values written are drawn from `0..VALUES`, so reads are ambiguous and cas often matches.
const VALUES: i64 = 5;
/// Attempts of each final read before it is given up (recorded as failed).
const FINAL_READ_ATTEMPTS: usize = 5;

/// Key bookkeeping shared by the workers.
#[derive(Debug, Default)]
struct Keys {
    active: Vec<(String, u64)>,
    next: u64,
    /// Highest version seen per key, to aim cas at plausible versions.
    versions: BTreeMap<String, u64>,
}

impl Keys {
    fn pick(&mut self, rng: &mut StdRng) -> String {
        while self.active.len() < ACTIVE_KEYS {
            self.active.push((format!("r/{:05}", self.next), 0));
            self.next += 1;
        }
        let index = rng.gen_range(0..self.active.len());
        let (key, used) = &mut self.active[index];
        *used += 1;
        let key = key.clone();
        if *used >= OPS_PER_KEY {
            self.active.swap_remove(index);
        }
        self.versions.entry(key.clone()).or_insert(0);
        key
    }

    fn saw(&mut self, key: &str, version: u64) {
        let entry = self.versions.entry(key.to_owned()).or_insert(0);
        *entry = (*entry).max(version);
    }
}

/// Runs the workload until `ctx.stop`, then returns the keys it used (for the final reads).
pub async fn run(ctx: Context) -> Vec<String> {
    let keys = Arc::new(Mutex::new(Keys::default()));
    let mut workers = Vec::new();
    for w in 0..ctx.concurrency {
        let ctx = ctx.clone();
        let keys = keys.clone();
        workers.push(tokio::spawn(async move { worker(w, ctx, keys).await }));
    }
    for worker in workers {
        worker.await.expect("register workers do not panic");
    }
    let keys = keys.lock().unwrap_or_else(PoisonError::into_inner);
    keys.versions.keys().cloned().collect()
}

async fn worker(w: usize, mut ctx: Context, keys: Arc<Mutex<Keys>>) {
    let url = ctx.urls[w % ctx.urls.len()].clone();
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ (w as u64).wrapping_mul(0x9E37_79B9));
    let mut client = client::connect(std::slice::from_ref(&url)).await.ok();
    let mut process = ctx.recorder.new_process();
    let mean = ctx.mean_delay();
    while !*ctx.stop.borrow() {
        let key = keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pick(&mut rng);
        let op = choose(&mut rng, &keys, &key);
        let Some(c) = client.as_mut() else {
            client = client::connect(std::slice::from_ref(&url)).await.ok();
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let completion = execute(c, &ctx.recorder, process, &key, op, &keys).await;
        if completion == Completion::Info {
            process = ctx.recorder.new_process();
        }
        let pause = mean.mul_f64(rng.gen_range(0.0..2.0));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = ctx.stop.changed() => {}
        }
    }
}

/// One register operation.
#[derive(Debug, Clone, Copy)]
enum RegisterOp {
    Read,
    Write(i64),
    Cas { expected_version: u64, value: i64 },
}

fn choose(rng: &mut StdRng, keys: &Mutex<Keys>, key: &str) -> RegisterOp {
    match rng.gen_range(0..10) {
        0..=3 => RegisterOp::Read,
        4..=6 => RegisterOp::Write(rng.gen_range(0..VALUES)),
        _ => {
            let seen = keys.lock().unwrap_or_else(PoisonError::into_inner).versions[key];
            RegisterOp::Cas {
                expected_version: seen.saturating_sub(rng.gen_range(0..2)),
                value: rng.gen_range(0..VALUES),
            }
        }
    }
}

/// Runs and records one operation; returns how it completed (`Info` retires the process).
async fn execute(
    client: &mut Client,
    recorder: &Recorder,
    process: u64,
    key: &str,
    op: RegisterOp,
    keys: &Mutex<Keys>,
) -> Completion {
    let (f, argument) = match op {
        RegisterOp::Read => ("read", Value::Null),
        RegisterOp::Write(v) => ("write", json!(v)),
        RegisterOp::Cas {
            expected_version,
            value,
        } => (
            "cas",
            json!({"expected_version": expected_version, "value": value}),
        ),
    };
    recorder
        .invoke(process, f, Some(key), argument)
        .expect("each worker owns its process");
    let outcome = match op {
        RegisterOp::Read => read(client, key).await,
        RegisterOp::Write(v) => write(client, key, v).await,
        RegisterOp::Cas {
            expected_version,
            value,
        } => cas(client, key, expected_version, value).await,
    };
    let (completion, value) = match outcome {
        // A failed read has no effect whatever the reason.
        Outcome::Fail(err) | Outcome::Unknown(err) if f == "read" => {
            (Completion::Fail, json!({ "error": err }))
        }
        Outcome::Ok(value) => {
            if let Some(version) = value.get("version").and_then(Value::as_u64) {
                keys.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .saw(key, version);
            }
            (Completion::Ok, value)
        }
        Outcome::Fail(err) => (Completion::Fail, json!({ "error": err })),
        Outcome::Unknown(err) => (Completion::Info, json!({ "error": err })),
    };
    recorder
        .complete(process, completion, value)
        .expect("the invoke above is in flight");
    completion
}

async fn read(client: &mut Client, key: &str) -> Outcome<Value> {
    match client::run(client.get(key, None::<GetOptions>)).await {
        Outcome::Ok(response) => match response.kvs().first() {
            None => Outcome::Ok(json!({"value": null, "version": 0})),
            Some(kv) => match parse_value(kv.value()) {
                Some(value) => Outcome::Ok(json!({"value": value, "version": kv.version()})),
                None => Outcome::Fail(format!("unparseable value {:?}", kv.value_str())),
            },
        },
        Outcome::Fail(err) => Outcome::Fail(err),
        Outcome::Unknown(err) => Outcome::Unknown(err),
    }
}

async fn write(client: &mut Client, key: &str, value: i64) -> Outcome<Value> {
    let options = PutOptions::new().with_prev_key();
    match client::run(client.put(key, value.to_string(), Some(options))).await {
        Outcome::Ok(response) => {
            let previous = response.prev_key().map_or(0, |kv| kv.version());
            Outcome::Ok(json!({"version": previous + 1}))
        }
        Outcome::Fail(err) => Outcome::Fail(err),
        Outcome::Unknown(err) => Outcome::Unknown(err),
    }
}

async fn cas(client: &mut Client, key: &str, expected_version: u64, value: i64) -> Outcome<Value> {
    let expected = i64::try_from(expected_version).unwrap_or(i64::MAX);
    let txn = Txn::new()
        .when([Compare::version(key, CompareOp::Equal, expected)])
        .and_then([TxnOp::put(key, value.to_string(), None)]);
    match client::run(client.txn(txn)).await {
        Outcome::Ok(response) if response.succeeded() => {
            Outcome::Ok(json!({"succeeded": true, "version": expected_version + 1}))
        }
        Outcome::Ok(_) => Outcome::Ok(json!({"succeeded": false})),
        Outcome::Fail(err) => Outcome::Fail(err),
        Outcome::Unknown(err) => Outcome::Unknown(err),
    }
}

fn parse_value(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Reads every key once through every member (after the cluster was healed), so the history
/// ends with reads that must reflect every acknowledged write. Each read retries on failure.
pub async fn final_reads(urls: &[String], recorder: &Recorder, keys: &[String]) {
    let reads = urls.iter().map(|url| async move {
        let Ok(mut client) = client::connect(std::slice::from_ref(url)).await else {
            return;
        };
        let scratch = Mutex::default();
        for key in keys {
            for _ in 0..FINAL_READ_ATTEMPTS {
                let process = recorder.new_process();
                let completion = execute(
                    &mut client,
                    recorder,
                    process,
                    key,
                    RegisterOp::Read,
                    &scratch,
                )
                .await;
                if completion == Completion::Ok {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    futures::future::join_all(reads).await;
}

/// "No acknowledged write lost": every final read (invoked at or after `final_from_ns`, when
/// no other operation was running) must see at least the highest version an acknowledged
/// write or successful cas produced on its key. Pure; the linearizability check implies it,
/// but this one names the lost writes plainly and needs no search.
pub fn check_no_lost_writes(history: &[Op], final_from_ns: u64) -> CheckerResult {
    let paired = match crate::history::pair(history) {
        Ok(paired) => paired,
        Err(err) => return lost_writes_result(Validity::Unknown, err.to_string(), None),
    };
    let mut acked: BTreeMap<&str, u64> = BTreeMap::new();
    let mut finals: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for op in &paired {
        let (Some(key), Some(done)) = (op.invoke.key.as_deref(), op.completion) else {
            continue;
        };
        let version = done.value.get("version").and_then(Value::as_u64);
        let is_final = op.invoke.time_ns.is_some_and(|t| t >= final_from_ns);
        match (op.invoke.f.as_str(), version) {
            ("read", Some(version)) if is_final => finals.entry(key).or_default().push(version),
            ("write" | "cas", Some(version)) => {
                let max = acked.entry(key).or_insert(0);
                *max = (*max).max(version);
            }
            _ => {}
        }
    }
    let mut lost = Vec::new();
    let mut unread = Vec::new();
    for (key, &version) in &acked {
        match finals.get(key).and_then(|seen| seen.iter().min()) {
            None => unread.push(*key),
            Some(&seen) if seen < version => lost.push(format!(
                "key {key}: acknowledged up to version {version}, final read saw version {seen}"
            )),
            Some(_) => {}
        }
    }
    if !lost.is_empty() {
        let summary = format!("{} keys lost acknowledged writes", lost.len());
        return lost_writes_result(Validity::Invalid, summary, Some(lost.join("\n")));
    }
    if !unread.is_empty() {
        let summary = format!(
            "{} keys could not be read back after the heal",
            unread.len()
        );
        return lost_writes_result(Validity::Unknown, summary, Some(unread.join("\n")));
    }
    let summary = format!("every acknowledged write on {} keys survived", acked.len());
    lost_writes_result(Validity::Valid, summary, None)
}

fn lost_writes_result(
    validity: Validity,
    summary: String,
    details: Option<String>,
) -> CheckerResult {
    CheckerResult {
        name: "no acknowledged write lost".into(),
        validity,
        summary,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpKind;

    fn op(process: u64, kind: OpKind, f: &str, value: Value, time: u64) -> Op {
        let mut op = Op::new(process, kind, f, Some("k"), value);
        op.time_ns = Some(time);
        op
    }

    /// A final read older than an acknowledged write is a lost write; a newer one is fine.
    #[test]
    fn final_reads_must_cover_acknowledged_versions() {
        let history = |seen: u64| {
            vec![
                op(0, OpKind::Invoke, "write", json!(3), 1),
                op(0, OpKind::Ok, "write", json!({"version": 2}), 2),
                op(1, OpKind::Invoke, "read", Value::Null, 10),
                op(
                    1,
                    OpKind::Ok,
                    "read",
                    json!({"value": 3, "version": seen}),
                    11,
                ),
            ]
        };
        assert_eq!(
            check_no_lost_writes(&history(2), 5).validity,
            Validity::Valid
        );
        let lost = check_no_lost_writes(&history(1), 5);
        assert_eq!(lost.validity, Validity::Invalid);
        assert!(lost.details.expect("names the key").contains("key k"));
        // Reads before the final phase do not count, so the key is unread.
        assert_eq!(
            check_no_lost_writes(&history(1), 20).validity,
            Validity::Unknown
        );
    }
}
