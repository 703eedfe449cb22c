//! `watch-latency`: how long a put takes to reach every watcher (etcd's
//! `benchmark watch-latency`).
//!
//! ```text
//!  watchers: W watches on one key, spread over S streams (round-robin over the connections)
//!  writers:  --clients tasks put the key --put-total times at --put-rate (through the driver);
//!            the value starts with the put's sequence number, whose send time is noted
//!  readers:  one task per stream; for every event: delay = receipt time - send time of the
//!            put named in the value
//! ```
//!
//! The report's `requests` are events received, its latency the put-to-event delay, its
//! `errors` the failed puts plus the events still missing after `--drain-timeout`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, KvClient, WatchStream};
use tokio::sync::watch as signal;
use tokio::time::Instant;

use super::Run;
use crate::bench::driver::{self, describe, ErrorTally, Session, Workload};
use crate::bench::keys::value_of_size;
use crate::bench::options::{LoadPlan, Stop, WatchLatencyOptions};
use crate::bench::report::{rate, Report, WatchFigures};
use crate::bench::stats::Latency;
use crate::bench::BenchError;

/// How long the watchers may take to be created before the run fails.
pub const WATCH_SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the drain phase checks whether every event has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// Bytes of the value that carry the put's sequence number (big-endian u64).
const SEQ_BYTES: usize = 8;

/// Send time of every put, in nanoseconds since the run's base instant plus one (zero means
/// "not sent yet"). Written by the writers, read by the readers, without locks.
struct SendTimes {
    base: Instant,
    nanos: Vec<AtomicU64>,
}

impl SendTimes {
    fn new(puts: u64) -> SendTimes {
        SendTimes {
            base: Instant::now(),
            nanos: (0..puts).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn mark(&self, seq: u64) {
        let ns = self.base.elapsed().as_nanos() as u64 + 1;
        self.nanos[seq as usize].store(ns, Ordering::Release);
    }

    /// The delay from put `seq`'s send to `now`, if that put was sent by this run.
    fn delay(&self, seq: u64, now: Instant) -> Option<Duration> {
        let ns = self.nanos.get(seq as usize)?.load(Ordering::Acquire);
        let sent = self.base + Duration::from_nanos(ns.checked_sub(1)?);
        Some(now.saturating_duration_since(sent))
    }
}

/// Runs the workload.
pub async fn run(o: &WatchLatencyOptions, run: &Run) -> Result<Report, BenchError> {
    validate(o)?;
    let times = Arc::new(SendTimes::new(o.put_total));
    let conns: Vec<Client> = run.connect().await?;
    let streams = open_watchers(o, &conns).await?;
    let received = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = signal::channel(false);
    let readers: Vec<_> = streams
        .into_iter()
        .map(|s| {
            tokio::spawn(read_events(
                s,
                times.clone(),
                received.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();

    let start = Instant::now();
    let writer = Arc::new(Writer {
        key: o.key.as_bytes().into(),
        value: value_of_size(o.val_size).into(),
        times,
    });
    let plan = LoadPlan {
        stop: Stop::Total(o.put_total),
        rate: (o.put_rate > 0).then_some(o.put_rate),
    };
    let puts = driver::drive(writer, &conns, run.clients, plan, run.timeout).await?;
    let expected = puts.latency.count() * o.watchers as u64;
    let drain_deadline = Instant::now() + o.drain_timeout;
    while received.load(Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);

    let (mut events, mut errors) = (Latency::new(), ErrorTally::default());
    for r in readers {
        let (latency, reader_errors) = r.await?;
        events.merge(&latency);
        errors.merge(reader_errors);
    }
    let missing = expected.saturating_sub(events.count());
    errors.add_n(
        format!("event not received within {:?}", o.drain_timeout),
        missing,
    );
    let put_errors = puts.errors.total();
    errors.merge(puts.errors);
    let mut report = Report::new("watch-latency", &events, errors.into_map(), elapsed);
    report.watch = Some(WatchFigures {
        watchers: o.watchers,
        puts: puts.latency.count(),
        put_errors,
        expected_events: expected,
        put_ops_per_sec: rate(puts.latency.count(), puts.elapsed.as_secs_f64()),
        put_latency_ms: puts.latency.summary(),
    });
    Ok(report)
}

fn validate(o: &WatchLatencyOptions) -> Result<(), BenchError> {
    let bad = |m: &str| Err(BenchError::InvalidOptions(m.to_string()));
    if o.val_size < SEQ_BYTES {
        return bad("--val-size must be at least 8 (the value carries the put's number)");
    }
    if o.watchers == 0 || o.streams == 0 || o.put_total == 0 {
        return bad("--watchers, --streams and --put-total must be at least 1");
    }
    Ok(())
}

/// Opens `--streams` watch streams over the connections and `--watchers` watches on them,
/// and waits until the server has confirmed every watch.
async fn open_watchers(
    o: &WatchLatencyOptions,
    conns: &[Client],
) -> Result<Vec<WatchStream>, BenchError> {
    let streams = o.streams.min(o.watchers);
    let deadline = Instant::now() + WATCH_SETUP_TIMEOUT;
    let mut out = Vec::with_capacity(streams);
    let mut created = 0;
    for s in 0..streams {
        // Spread the watchers evenly: the first `watchers % streams` streams get one more.
        let n = o.watchers / streams + usize::from(s < o.watchers % streams);
        let setup = |source| BenchError::Setup {
            what: format!("watch stream {s}"),
            source,
        };
        let mut stream = conns[s % conns.len()]
            .watch_client()
            .watch(o.key.as_bytes(), None)
            .await
            .map_err(setup)?;
        for _ in 1..n {
            stream.watch(o.key.as_bytes(), None).await.map_err(setup)?;
        }
        let mut confirmed = 0;
        while confirmed < n {
            let next = tokio::time::timeout_at(deadline, stream.message()).await;
            match next {
                Ok(Ok(Some(r))) if r.created() => confirmed += 1,
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) | Err(_) => {
                    return Err(BenchError::WatchSetup {
                        wanted: o.watchers,
                        created: created + confirmed,
                        waited: WATCH_SETUP_TIMEOUT,
                    })
                }
                Ok(Err(e)) => return Err(setup(e)),
            }
        }
        created += confirmed;
        out.push(stream);
    }
    Ok(out)
}

/// Reads one stream until told to stop; returns the event delays and the stream's errors.
async fn read_events(
    mut stream: WatchStream,
    times: Arc<SendTimes>,
    received: Arc<AtomicU64>,
    mut stop: signal::Receiver<bool>,
) -> (Latency, ErrorTally) {
    let (mut latency, mut errors) = (Latency::new(), ErrorTally::default());
    loop {
        let message = tokio::select! {
            _ = stop.changed() => break,
            m = stream.message() => m,
        };
        let now = Instant::now();
        match message {
            Ok(Some(r)) if r.canceled() => errors.add(format!(
                "watch canceled by the server: {}",
                r.cancel_reason()
            )),
            Ok(Some(r)) => {
                for ev in r.events() {
                    let seq = ev.kv().and_then(|kv| kv.value().get(..SEQ_BYTES));
                    let seq = seq.map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
                    match seq.and_then(|seq| times.delay(seq, now)) {
                        Some(d) => {
                            latency.record(d);
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        None => errors.add("event for a put this run did not send".into()),
                    }
                }
            }
            Ok(None) => {
                errors.add("the server closed a watch stream".into());
                break;
            }
            Err(e) => {
                errors.add(describe(&e));
                break;
            }
        }
    }
    (latency, errors)
}

/// The writers: put the watched key with the sequence number in the value.
struct Writer {
    key: Arc<[u8]>,
    value: Arc<[u8]>,
    times: Arc<SendTimes>,
}

/// One writer.
struct WriterSession {
    kv: KvClient,
    key: Arc<[u8]>,
    value: Arc<[u8]>,
    times: Arc<SendTimes>,
}

impl Workload for Writer {
    type Conn = Client;
    type Session = WriterSession;

    async fn open(&self, conn: Client, _index: usize) -> Result<WriterSession, BenchError> {
        Ok(WriterSession {
            kv: conn.kv_client(),
            key: self.key.clone(),
            value: self.value.clone(),
            times: self.times.clone(),
        })
    }
}

impl Session for WriterSession {
    async fn call(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
        let mut value = self.value.to_vec();
        value[..SEQ_BYTES].copy_from_slice(&seq.to_be_bytes());
        self.times.mark(seq);
        self.kv.put(self.key.to_vec(), value, None).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A put's send time is found again from its number; unknown numbers are not.
    #[test]
    fn send_times_round_trip() {
        let t = SendTimes::new(3);
        assert_eq!(t.delay(1, Instant::now()), None);
        t.mark(1);
        let later = Instant::now() + Duration::from_millis(7);
        let d = t.delay(1, later).unwrap();
        assert!(
            d >= Duration::from_millis(7) && d < Duration::from_secs(5),
            "{d:?}"
        );
        assert_eq!(t.delay(99, Instant::now()), None);
    }
}
