//! One watcher's rules, free of I/O: which events it wants, how a batch of revisions becomes
//! its response events, and how an oversized response is fragmented.

use etcd_client::proto::PbEvent;
use prost::Message;
use skiff_mvcc::{KeyRange, EVENT_DELETE, EVENT_PUT};

use super::hub::Revision;

/// etcd's `WatchCreateRequest.FilterType`: drop put events.
pub const FILTER_NOPUT: i32 = 0;
/// etcd's `WatchCreateRequest.FilterType`: drop delete events.
pub const FILTER_NODELETE: i32 = 1;

/// What a client asked to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// The watched keys.
    pub range: KeyRange,
    /// Drop put events.
    pub no_put: bool,
    /// Drop delete events.
    pub no_delete: bool,
    /// Send each event's previous key-value.
    pub prev_kv: bool,
    /// Split responses larger than the request size limit.
    pub fragment: bool,
    /// Send periodic progress notifications while idle.
    pub progress_notify: bool,
}

/// Why a watch could not be created; the text is etcd's (`mvcc` package errors), which
/// clients show as the cancel reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// `range_end` is set and not greater than `key`.
    #[error("mvcc: watcher range is empty")]
    EmptyRange,
    /// The client chose a watch id that is in use on this stream.
    #[error("mvcc: duplicate watch ID provided on the WatchStream")]
    DuplicateId,
}

impl WatchSpec {
    /// The spec for a create request's fields, as etcd's server reads them: an empty key is
    /// `"\0"` (the smallest key), an empty `range_end` is the single key, `"\0"` is every key
    /// `>= key`.
    pub fn new(
        key: &[u8],
        range_end: &[u8],
        filters: &[i32],
        prev_kv: bool,
        fragment: bool,
        progress_notify: bool,
    ) -> Result<WatchSpec, CreateError> {
        let key: &[u8] = if key.is_empty() { &[0] } else { key };
        let range = KeyRange::from_request(key, range_end);
        if range.is_empty() {
            return Err(CreateError::EmptyRange);
        }
        Ok(WatchSpec {
            range,
            no_put: filters.contains(&FILTER_NOPUT),
            no_delete: filters.contains(&FILTER_NODELETE),
            prev_kv,
            fragment,
            progress_notify,
        })
    }

    /// Whether the watcher wants `event`.
    pub fn wants(&self, event: &PbEvent) -> bool {
        let Some(kv) = &event.kv else { return false };
        if (event.r#type == EVENT_PUT && self.no_put)
            || (event.r#type == EVENT_DELETE && self.no_delete)
        {
            return false;
        }
        self.range.contains(&kv.key)
    }

    /// The event as this watcher receives it (`prev_kv` dropped unless asked for).
    pub fn shape(&self, event: &PbEvent) -> PbEvent {
        if self.prev_kv {
            event.clone()
        } else {
            PbEvent {
                r#type: event.r#type,
                kv: event.kv.clone(),
                prev_kv: None,
            }
        }
    }
}

/// A batch of revisions turned into one watcher's events.
#[derive(Debug, Default)]
pub struct Batch {
    /// The wanted events, in revision order.
    pub events: Vec<PbEvent>,
    /// The newest revision looked at (the watcher continues after it).
    pub last_rev: i64,
}

/// Selects the watcher's events from consecutive revisions, taking whole revisions only and
/// stopping once `max_bytes` of events are collected (at least one revision is always taken).
pub fn select_revisions(
    spec: &WatchSpec,
    revs: &[std::sync::Arc<Revision>],
    max_bytes: usize,
) -> Batch {
    let mut batch = Batch::default();
    let mut bytes = 0;
    for r in revs {
        if batch.last_rev != 0 && bytes >= max_bytes {
            break;
        }
        for e in r.events.iter().filter(|e| spec.wants(e)) {
            let e = spec.shape(e);
            bytes += e.encoded_len();
            batch.events.push(e);
        }
        batch.last_rev = r.rev;
    }
    batch
}

/// Selects the watcher's events from history events (whole revisions, in order) that start
/// at the watcher's next revision.
pub fn select_history(spec: &WatchSpec, events: Vec<PbEvent>) -> Batch {
    let last_rev = events
        .last()
        .and_then(|e| e.kv.as_ref())
        .map_or(0, |kv| kv.mod_revision);
    let events = events
        .into_iter()
        .filter(|e| spec.wants(e))
        .map(|mut e| {
            if !spec.prev_kv {
                e.prev_kv = None;
            }
            e
        })
        .collect();
    Batch { events, last_rev }
}

/// Splits `events` into pieces of at most `limit` encoded bytes (a piece holds at least one
/// event, however large). etcd fragments only when a whole response would exceed the limit.
pub fn fragment(events: Vec<PbEvent>, limit: usize) -> Vec<Vec<PbEvent>> {
    let total: usize = events.iter().map(|e| e.encoded_len()).sum();
    if total <= limit {
        return vec![events];
    }
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut cur_bytes = 0;
    for e in events {
        let n = e.encoded_len();
        if !cur.is_empty() && cur_bytes + n > limit {
            out.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
        cur_bytes += n;
        cur.push(e);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use etcd_client::proto::PbKeyValue;

    fn kv(key: &str, rev: i64, value: &str) -> PbKeyValue {
        PbKeyValue {
            key: key.as_bytes().to_vec(),
            create_revision: 1,
            mod_revision: rev,
            version: 1,
            value: value.as_bytes().to_vec(),
            lease: 0,
        }
    }

    fn ev(t: i32, key: &str, rev: i64) -> PbEvent {
        PbEvent {
            r#type: t,
            kv: Some(kv(key, rev, "v")),
            prev_kv: Some(kv(key, rev - 1, "old")),
        }
    }

    fn rev(r: i64, events: Vec<PbEvent>) -> Arc<Revision> {
        let bytes = events.iter().map(|e| e.encoded_len()).sum();
        Arc::new(Revision {
            rev: r,
            events,
            bytes,
        })
    }

    fn keys(b: &Batch) -> Vec<String> {
        b.events
            .iter()
            .map(|e| String::from_utf8(e.kv.as_ref().unwrap().key.clone()).unwrap())
            .collect()
    }

    #[test]
    fn spec_reads_key_and_range_end_like_etcd() {
        let single = WatchSpec::new(b"a", b"", &[], false, false, false).unwrap();
        assert!(single.range.contains(b"a") && !single.range.contains(b"ab"));
        let prefix = WatchSpec::new(b"a", b"b", &[], false, false, false).unwrap();
        assert!(prefix.range.contains(b"ab") && !prefix.range.contains(b"b"));
        let from = WatchSpec::new(b"m", b"\0", &[], false, false, false).unwrap();
        assert!(from.range.contains(b"zzz") && !from.range.contains(b"a"));
        let all = WatchSpec::new(b"", b"\0", &[], false, false, false).unwrap();
        assert!(all.range.contains(b"\0") && all.range.contains(b"a"));
        assert_eq!(
            WatchSpec::new(b"b", b"a", &[], false, false, false),
            Err(CreateError::EmptyRange)
        );
        assert_eq!(
            WatchSpec::new(b"b", b"b", &[], false, false, false),
            Err(CreateError::EmptyRange)
        );
    }

    #[test]
    fn filters_and_prev_kv() {
        let spec = WatchSpec::new(b"a", b"c", &[FILTER_NODELETE], false, false, false).unwrap();
        let revs = vec![
            rev(5, vec![ev(EVENT_PUT, "a", 5), ev(EVENT_PUT, "x", 5)]),
            rev(6, vec![ev(EVENT_DELETE, "a", 6)]),
            rev(7, vec![ev(EVENT_PUT, "b", 7)]),
        ];
        let b = select_revisions(&spec, &revs, usize::MAX);
        assert_eq!(keys(&b), vec!["a", "b"]);
        assert_eq!(b.last_rev, 7);
        assert!(b.events.iter().all(|e| e.prev_kv.is_none()));

        let spec = WatchSpec::new(b"a", b"", &[FILTER_NOPUT], true, false, false).unwrap();
        let b = select_revisions(&spec, &revs, usize::MAX);
        assert_eq!(keys(&b), vec!["a"]);
        assert_eq!(b.events[0].r#type, EVENT_DELETE);
        assert!(b.events[0].prev_kv.is_some());
    }

    #[test]
    fn batches_take_whole_revisions_up_to_the_byte_budget() {
        let spec = WatchSpec::new(b"", b"\0", &[], false, false, false).unwrap();
        let revs: Vec<_> = (1..=10)
            .map(|r| rev(r, vec![ev(EVENT_PUT, "a", r), ev(EVENT_PUT, "b", r)]))
            .collect();
        let one = spec.shape(&revs[0].events[0]).encoded_len();
        // The budget is reached inside revision 2: revision 2 is completed, 3 is not taken.
        let b = select_revisions(&spec, &revs, one * 3);
        assert_eq!(b.last_rev, 2);
        assert_eq!(b.events.len(), 4);
        // At least one revision even with a zero budget.
        let b = select_revisions(&spec, &revs, 0);
        assert_eq!((b.last_rev, b.events.len()), (1, 2));
        // Revisions without wanted events still advance the watcher.
        let none = WatchSpec::new(b"zzz", b"", &[], false, false, false).unwrap();
        let b = select_revisions(&none, &revs, usize::MAX);
        assert_eq!((b.last_rev, b.events.len()), (10, 0));
    }

    #[test]
    fn history_selection_tracks_the_last_revision() {
        let spec = WatchSpec::new(b"b", b"", &[], false, false, false).unwrap();
        let b = select_history(
            &spec,
            vec![
                ev(EVENT_PUT, "a", 3),
                ev(EVENT_PUT, "b", 4),
                ev(EVENT_PUT, "c", 9),
            ],
        );
        assert_eq!(keys(&b), vec!["b"]);
        assert_eq!(b.last_rev, 9);
        assert!(b.events[0].prev_kv.is_none());
        assert_eq!(select_history(&spec, vec![]).last_rev, 0);
    }

    #[test]
    fn fragments_respect_the_limit_and_keep_every_event() {
        let events: Vec<_> = (11..=20).map(|r| ev(EVENT_PUT, "k", r)).collect();
        let one = events[0].encoded_len();
        assert!(events.iter().all(|e| e.encoded_len() == one));
        assert_eq!(fragment(events.clone(), one * 10).len(), 1);
        let parts = fragment(events.clone(), one * 3);
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        assert_eq!(parts.concat(), events);
        // An event larger than the limit travels alone.
        let parts = fragment(events.clone(), 1);
        assert_eq!(parts.len(), 10);
    }
}
