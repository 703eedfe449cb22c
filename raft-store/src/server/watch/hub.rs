//! The watch hub: the member's recent history, shared by every watch stream.
//!
//! The state machine publishes each applied revision's events here (on the apply path, so
//! publishing only takes a short lock). The hub keeps the newest revisions in a ring bounded
//! by both a revision count and a byte budget; a watcher that needs an older revision reads
//! it from the MVCC history instead (see `super::stream`). Streams learn about new revisions
//! through a `tokio::sync::watch` channel carrying the newest revision, so a slow stream never
//! blocks the apply path or other streams, and the server's memory does not grow with the
//! number or slowness of watchers.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use etcd_client::proto::PbEvent;
use prost::Message;
use tokio::sync::watch;

/// All events of one store revision, in order; delete events carry `prev_kv`, put events
/// do not (a stream fills it for watchers that asked, see `super::stream`).
#[derive(Debug)]
pub struct Revision {
    /// The store revision.
    pub rev: i64,
    /// Its events.
    pub events: Vec<PbEvent>,
    /// Encoded size of the events (for the ring's byte budget and response sizing).
    pub bytes: usize,
}

/// Limits of the in-memory ring.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// At most this many revisions are kept.
    pub max_revisions: usize,
    /// At most this many bytes of events are kept (at least one revision always is).
    pub max_bytes: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            max_revisions: 16 * 1024,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

struct Ring {
    /// Revisions `first_rev .. first_rev + revs.len()`, contiguous.
    revs: VecDeque<Arc<Revision>>,
    /// The revision of `revs[0]` (or the next revision expected, when empty).
    first_rev: i64,
    bytes: usize,
}

/// Where a watcher's next revision can be read from.
#[derive(Debug)]
pub enum Lookup {
    /// These revisions, contiguous from the one asked for (possibly fewer than asked).
    Ring(Vec<Arc<Revision>>),
    /// The revision is older than the ring: read it from the MVCC history.
    History,
    /// Nothing newer than the asked revision exists yet.
    UpToDate,
}

/// Fan-out of applied revisions to watch streams.
pub struct WatchHub {
    ring: RwLock<Ring>,
    limits: HubLimits,
    latest: watch::Sender<i64>,
}

impl WatchHub {
    /// A hub whose history starts after `current_revision` (the store's revision at start).
    pub fn new(current_revision: i64, limits: HubLimits) -> WatchHub {
        let (latest, _) = watch::channel(current_revision);
        WatchHub {
            ring: RwLock::new(Ring {
                revs: VecDeque::new(),
                first_rev: current_revision + 1,
                bytes: 0,
            }),
            limits,
            latest,
        }
    }

    /// The newest revision published (every event up to it is readable).
    pub fn latest(&self) -> i64 {
        *self.latest.borrow()
    }

    /// A receiver that wakes whenever a newer revision is published.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }

    /// Publishes the events of revision `rev` (called in apply order).
    pub fn publish(&self, rev: i64, events: Vec<PbEvent>) {
        let bytes = events.iter().map(|e| e.encoded_len()).sum();
        let item = Arc::new(Revision { rev, events, bytes });
        {
            let mut ring = self.ring.write().expect("watch ring lock poisoned");
            let next = ring.first_rev + ring.revs.len() as i64;
            if rev != next {
                // Not contiguous (cannot happen in apply order; a snapshot install resets the
                // ring first). Start over: older revisions are read from history.
                tracing::warn!(
                    rev,
                    expected = next,
                    "watch ring saw a revision gap; restarting it"
                );
                ring.revs.clear();
                ring.bytes = 0;
                ring.first_rev = rev;
            }
            ring.bytes += item.bytes;
            ring.revs.push_back(item);
            while ring.revs.len() > 1
                && (ring.revs.len() > self.limits.max_revisions
                    || ring.bytes > self.limits.max_bytes)
            {
                let old = ring.revs.pop_front().expect("ring is not empty");
                ring.bytes -= old.bytes;
                ring.first_rev += 1;
            }
        }
        self.latest.send_replace(rev);
    }

    /// The whole state was replaced (snapshot install): forget the ring; watchers continue
    /// from the MVCC history, which the snapshot carried.
    pub fn reset(&self, current_revision: i64) {
        {
            let mut ring = self.ring.write().expect("watch ring lock poisoned");
            ring.revs.clear();
            ring.bytes = 0;
            ring.first_rev = current_revision + 1;
        }
        self.latest.send_replace(current_revision);
    }

    /// Up to `max_revs` revisions starting at `from`, or where to find them instead.
    pub fn lookup(&self, from: i64, max_revs: usize) -> Lookup {
        let ring = self.ring.read().expect("watch ring lock poisoned");
        let end = ring.first_rev + ring.revs.len() as i64;
        if from >= end {
            return Lookup::UpToDate;
        }
        if from < ring.first_rev {
            return Lookup::History;
        }
        let start = (from - ring.first_rev) as usize;
        Lookup::Ring(
            ring.revs
                .range(start..)
                .take(max_revs.max(1))
                .cloned()
                .collect(),
        )
    }

    /// Revisions and bytes currently held (for metrics).
    pub fn usage(&self) -> (usize, usize) {
        let ring = self.ring.read().expect("watch ring lock poisoned");
        (ring.revs.len(), ring.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::proto::PbKeyValue;

    fn put(key: &str, rev: i64) -> PbEvent {
        PbEvent {
            r#type: 0,
            kv: Some(PbKeyValue {
                key: key.as_bytes().to_vec(),
                mod_revision: rev,
                create_revision: rev,
                version: 1,
                value: vec![0; 100],
                lease: 0,
            }),
            prev_kv: None,
        }
    }

    fn revs(l: Lookup) -> Vec<i64> {
        match l {
            Lookup::Ring(v) => v.iter().map(|r| r.rev).collect(),
            other => panic!("expected ring revisions, got {other:?}"),
        }
    }

    #[test]
    fn lookup_serves_contiguous_revisions() {
        let hub = WatchHub::new(10, HubLimits::default());
        assert!(matches!(hub.lookup(11, 10), Lookup::UpToDate));
        assert!(matches!(hub.lookup(5, 10), Lookup::History));
        for r in 11..=15 {
            hub.publish(r, vec![put("a", r)]);
        }
        assert_eq!(hub.latest(), 15);
        assert_eq!(revs(hub.lookup(11, 10)), vec![11, 12, 13, 14, 15]);
        assert_eq!(revs(hub.lookup(13, 2)), vec![13, 14]);
        assert!(matches!(hub.lookup(16, 10), Lookup::UpToDate));
        assert!(matches!(hub.lookup(10, 10), Lookup::History));
    }

    #[test]
    fn ring_is_bounded_by_count_and_bytes() {
        let hub = WatchHub::new(
            0,
            HubLimits {
                max_revisions: 4,
                max_bytes: usize::MAX,
            },
        );
        for r in 1..=10 {
            hub.publish(r, vec![put("a", r)]);
        }
        assert_eq!(hub.usage().0, 4);
        assert!(matches!(hub.lookup(6, 10), Lookup::History));
        assert_eq!(revs(hub.lookup(7, 10)), vec![7, 8, 9, 10]);

        let one = put("a", 1).encoded_len();
        let hub = WatchHub::new(
            0,
            HubLimits {
                max_revisions: 1000,
                max_bytes: one * 3,
            },
        );
        for r in 1..=10 {
            hub.publish(r, vec![put("a", r)]);
        }
        let (n, bytes) = hub.usage();
        assert!(n <= 3 && bytes <= one * 3, "{n} revisions, {bytes} bytes");
        // A revision larger than the whole budget is still kept (the newest one always is).
        hub.publish(11, (0..10).map(|_| put("b", 11)).collect());
        assert_eq!(revs(hub.lookup(11, 10)), vec![11]);
    }

    #[test]
    fn reset_sends_watchers_to_history() {
        let hub = WatchHub::new(0, HubLimits::default());
        for r in 1..=3 {
            hub.publish(r, vec![put("a", r)]);
        }
        let mut rx = hub.subscribe();
        hub.reset(50);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 50);
        assert!(matches!(hub.lookup(4, 10), Lookup::History));
        assert!(matches!(hub.lookup(51, 10), Lookup::UpToDate));
        hub.publish(51, vec![put("a", 51)]);
        assert_eq!(revs(hub.lookup(51, 10)), vec![51]);
    }
}
