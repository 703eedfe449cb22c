//! List-append transactions (Elle's strongest workload), checked for strict serializability
//! by [`crate::checks::append`].
//!
//! Each key holds a comma-separated list of integers. A transaction is 1–4 micro-operations
//! on a few active keys: append a unique value, or read the list. It runs as:
//!
//! 1. one `Txn` of `Range`s over every key it touches (a plain `Range` for a single key, so
//!    the store's read path is tested too): an atomic snapshot with each key's `mod_revision`
//!    (a failure here is `fail`: nothing was written);
//! 2. read-only: done, the reads are the snapshot. Otherwise one guarded `Txn`:
//!    `If(mod_revision(k) == seen for every touched key) Then(Put new lists)`. A failed guard
//!    is `fail` (no effect); an error is classified (`fail` or `info`).
//!
//! The guard makes the snapshot still current at commit, so the transaction takes effect
//! atomically at its commit point, inside its real-time interval. Reads after an append in the
//! same transaction see that append. Keys retire after [`APPENDS_PER_KEY`] appends.

use super::Context;
use crate::checks::append::{render_txn, Micro};
use crate::client::{self, Outcome};
use crate::history::{Completion, Recorder};
use etcd_client::{Client, Compare, CompareOp, KeyValue, Txn, TxnOp, TxnOpResponse};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Keys in use at once (Jepsen's etcd append test uses 3).
pub const ACTIVE_KEYS: usize = 3;
/// Appends a key takes before it is retired, which bounds list sizes.
pub const APPENDS_PER_KEY: u64 = 100;
/// Most micro-operations per transaction.
const MAX_MICROS: usize = 4;

#[derive(Debug, Default)]
struct Keys {
    active: Vec<(String, u64)>,
    next_key: u64,
    next_value: i64,
    used: Vec<String>,
}

impl Keys {
    fn micro(&mut self, rng: &mut StdRng) -> Micro {
        while self.active.len() < ACTIVE_KEYS {
            let key = format!("a/{:05}", self.next_key);
            self.next_key += 1;
            self.used.push(key.clone());
            self.active.push((key, 0));
        }
        let index = rng.gen_range(0..self.active.len());
        let key = self.active[index].0.clone();
        if rng.gen_bool(0.5) {
            return Micro::Read(key, None);
        }
        self.next_value += 1;
        self.active[index].1 += 1;
        if self.active[index].1 >= APPENDS_PER_KEY {
            self.active.swap_remove(index);
        }
        Micro::Append(key, self.next_value)
    }
}

/// Runs until `ctx.stop`; returns every key used (for the final reads).
pub async fn run(ctx: Context) -> Vec<String> {
    let keys = Arc::new(Mutex::new(Keys::default()));
    let workers: Vec<_> = (0..ctx.concurrency)
        .map(|w| tokio::spawn(worker(w, ctx.clone(), keys.clone())))
        .collect();
    for worker in workers {
        worker.await.expect("append workers do not panic");
    }
    let keys = keys.lock().unwrap_or_else(PoisonError::into_inner);
    keys.used.clone()
}

async fn worker(w: usize, mut ctx: Context, keys: Arc<Mutex<Keys>>) {
    let url = ctx.urls[w % ctx.urls.len()].clone();
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ (w as u64 + 7).wrapping_mul(0x5851_F42D));
    let Ok(mut client) = client::connect(std::slice::from_ref(&url)).await else {
        return;
    };
    let mut process = ctx.recorder.new_process();
    while !*ctx.stop.borrow() {
        let count = rng.gen_range(1..=MAX_MICROS);
        let micros: Vec<Micro> = {
            let mut keys = keys.lock().unwrap_or_else(PoisonError::into_inner);
            (0..count).map(|_| keys.micro(&mut rng)).collect()
        };
        if execute(&mut client, &ctx.recorder, process, micros).await == Completion::Info {
            process = ctx.recorder.new_process();
        }
        let pause = ctx.mean_delay().mul_f64(rng.gen_range(0.0..2.0));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = ctx.stop.changed() => {}
        }
    }
}

/// Runs and records one transaction.
async fn execute(
    client: &mut Client,
    recorder: &Recorder,
    process: u64,
    micros: Vec<Micro>,
) -> Completion {
    recorder
        .invoke(process, "txn", None, render_txn(&micros))
        .expect("each worker owns its process");
    let (completion, value) = match transact(client, micros).await {
        Outcome::Ok(done) => (Completion::Ok, render_txn(&done)),
        Outcome::Fail(e) => (Completion::Fail, json!({ "error": e })),
        Outcome::Unknown(e) => (Completion::Info, json!({ "error": e })),
    };
    recorder
        .complete(process, completion, value)
        .expect("the invoke above is in flight");
    completion
}

/// `(list, mod_revision)` per key; absent keys have an empty list and revision 0.
type Snapshot = BTreeMap<String, (Vec<i64>, i64)>;

async fn transact(client: &mut Client, micros: Vec<Micro>) -> Outcome<Vec<Micro>> {
    let keys: Vec<String> = micros
        .iter()
        .map(|m| match m {
            Micro::Append(k, _) | Micro::Read(k, _) => k.clone(),
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut snapshot = match read_snapshot(client, &keys).await {
        Outcome::Ok(s) => s,
        // Nothing was written yet, whatever happened.
        Outcome::Fail(e) | Outcome::Unknown(e) => return Outcome::Fail(e),
    };
    let guards: BTreeMap<String, i64> = snapshot
        .iter()
        .map(|(k, (_, rev))| (k.clone(), *rev))
        .collect();
    let mut done = Vec::with_capacity(micros.len());
    let mut written = std::collections::BTreeSet::new();
    for micro in micros {
        match micro {
            Micro::Read(k, _) => done.push(Micro::Read(k.clone(), Some(snapshot[&k].0.clone()))),
            Micro::Append(k, v) => {
                snapshot.get_mut(&k).expect("every key was read").0.push(v);
                written.insert(k.clone());
                done.push(Micro::Append(k, v));
            }
        }
    }
    if written.is_empty() {
        return Outcome::Ok(done);
    }
    let compares: Vec<Compare> = guards
        .iter()
        .map(|(k, rev)| match rev {
            0 => Compare::version(k.as_str(), CompareOp::Equal, 0),
            rev => Compare::mod_revision(k.as_str(), CompareOp::Equal, *rev),
        })
        .collect();
    let puts: Vec<TxnOp> = written
        .iter()
        .map(|k| TxnOp::put(k.as_str(), encode(&snapshot[k].0), None))
        .collect();
    match client::run(client.txn(Txn::new().when(compares).and_then(puts))).await {
        Outcome::Ok(r) if r.succeeded() => Outcome::Ok(done),
        Outcome::Ok(_) => Outcome::Fail("guard failed: a key changed since the snapshot".into()),
        Outcome::Fail(e) => Outcome::Fail(e),
        Outcome::Unknown(e) => Outcome::Unknown(e),
    }
}

async fn read_snapshot(client: &mut Client, keys: &[String]) -> Outcome<Snapshot> {
    let found = match keys {
        // One key: a plain Range, atomic by itself. It takes the store's read path (read
        // index); skiff-store proposes every Txn through Raft, even a read-only one, so a
        // workload that reads only through Txns never tests linearizable reads (and cannot
        // catch `--unsafe-local-reads`).
        [key] => match client::run(client.get(key.as_str(), None)).await {
            Outcome::Ok(r) => vec![r.kvs().first().cloned()],
            Outcome::Fail(e) => return Outcome::Fail(e),
            Outcome::Unknown(e) => return Outcome::Unknown(e),
        },
        _ => match read_txn(client, keys).await {
            Outcome::Ok(found) => found,
            Outcome::Fail(e) => return Outcome::Fail(e),
            Outcome::Unknown(e) => return Outcome::Unknown(e),
        },
    };
    let mut snapshot = Snapshot::new();
    for (key, kv) in keys.iter().zip(found) {
        let entry = match kv {
            None => (Vec::new(), 0),
            Some(kv) => match decode(kv.value()) {
                Some(list) => (list, kv.mod_revision()),
                None => return Outcome::Fail(format!("unparseable list in {key}")),
            },
        };
        snapshot.insert(key.clone(), entry);
    }
    Outcome::Ok(snapshot)
}

/// Reads `keys` atomically with one `Txn` of `Range`s: each key's pair, `None` if absent.
async fn read_txn(client: &mut Client, keys: &[String]) -> Outcome<Vec<Option<KeyValue>>> {
    let gets: Vec<TxnOp> = keys.iter().map(|k| TxnOp::get(k.as_str(), None)).collect();
    let response = match client::run(client.txn(Txn::new().and_then(gets))).await {
        Outcome::Ok(r) => r,
        Outcome::Fail(e) => return Outcome::Fail(e),
        Outcome::Unknown(e) => return Outcome::Unknown(e),
    };
    let mut found = Vec::with_capacity(keys.len());
    for op in response.op_responses() {
        let TxnOpResponse::Get(get) = op else {
            return Outcome::Fail("a Range in the snapshot txn answered with another type".into());
        };
        found.push(get.kvs().first().cloned());
    }
    Outcome::Ok(found)
}

fn encode(list: &[i64]) -> String {
    list.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn decode(bytes: &[u8]) -> Option<Vec<i64>> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|v| v.parse().ok()).collect()
}

/// Reads every used key through every member after the heal (read-only transactions, in the
/// history like any other), retrying each a few times.
pub async fn final_reads(urls: &[String], recorder: &Recorder, keys: &[String]) {
    let reads = urls.iter().map(|url| async move {
        let Ok(mut client) = client::connect(std::slice::from_ref(url)).await else {
            return;
        };
        for chunk in keys.chunks(8) {
            for _ in 0..5 {
                let micros = chunk.iter().map(|k| Micro::Read(k.clone(), None)).collect();
                let process = recorder.new_process();
                if execute(&mut client, recorder, process, micros).await == Completion::Ok {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    futures::future::join_all(reads).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists round-trip through their stored form, the empty list included.
    #[test]
    fn lists_round_trip() {
        for list in [vec![], vec![7], vec![1, 22, 333]] {
            assert_eq!(decode(encode(&list).as_bytes()), Some(list));
        }
        assert_eq!(decode(b"1,x"), None);
    }
}
