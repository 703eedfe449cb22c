//! Reading the revision history: watch replay ([`events`]) and etcd's `HashKV` ([`hash_kv`]).

use etcd_client::proto::PbEvent;

use crate::engine::DbView;
use crate::error::{EtcdError, ReadError, StorageError};
use crate::layout;
use crate::record::{self, Kind};
use crate::view::{KeyRange, Rev, StateView};
use crate::write::{EVENT_DELETE, EVENT_PUT};

/// The result of [`crate::Mvcc::hash_kv`]: etcd's `HashKVResponse` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKv {
    /// CRC-32C over the history up to `hash_revision`, bit-compatible with etcd 3.4's.
    pub hash: u32,
    /// The compact revision when hashing (`-1` if never compacted, as etcd reports).
    pub compact_revision: i64,
    /// The store's current revision (etcd puts it in the response header).
    pub revision: i64,
    /// The revision that was hashed.
    pub hash_revision: i64,
}

/// The history from `from_rev` on, in revision order, as watch events.
///
/// Returns whole revisions only: it stops at the first revision boundary once `max_events`
/// events or `max_bytes` of encoded events are collected, but always returns the complete first revision (so a caller always
/// makes progress; one revision can hold many events, e.g. a large DeleteRange). An empty
/// result means `from_rev` is above the current revision. `Compacted` if `from_rev` is at or
/// below the compact revision: a compacted revision may have lost its tombstones, and a watch
/// must not silently skip them.
pub fn events(
    view: &DbView<'_>,
    from_rev: i64,
    max_events: usize,
    max_bytes: usize,
    with_prev_kv: bool,
) -> Result<Vec<PbEvent>, ReadError> {
    let compact = view.compact_revision();
    if compact >= 0 && from_rev <= compact {
        return Err(EtcdError::Compacted.into());
    }
    if from_rev > view.revision() {
        return Ok(Vec::new());
    }
    let start = Rev {
        main: from_rev.max(1),
        sub: 0,
    };
    let end = Rev {
        main: view.revision() + 1,
        sub: 0,
    };
    let mut it = view.iter(layout::history_key(start), layout::history_key(end));
    let mut out = Vec::new();
    let mut last_main = None;
    let mut bytes = 0;
    while let Some((k, v)) = it.item() {
        let rev = layout::history_key_decode(k);
        if (out.len() >= max_events || bytes >= max_bytes) && last_main != Some(rev.main) {
            break;
        }
        last_main = Some(rev.main);
        let rec = record::decode_history(rev.main, v);
        let event = to_event(view, rev, rec, with_prev_kv)?;
        bytes += prost::Message::encoded_len(&event);
        out.push(event);
        it.next();
    }
    it.status()
        .map_err(StorageError::rocks("iterate the history"))?;
    Ok(out)
}

fn to_event(
    view: &DbView<'_>,
    rev: Rev,
    rec: record::HistoryRecord,
    with_prev_kv: bool,
) -> Result<PbEvent, StorageError> {
    let mut kv = rec.kv;
    let (kind, created_now) = match rec.kind {
        Kind::Put => (EVENT_PUT, kv.create_revision == kv.mod_revision),
        Kind::Tombstone => {
            kv.mod_revision = rev.main;
            (EVENT_DELETE, false)
        }
    };
    // etcd's watch: prev_kv is the key at `mod - 1`, unless the event created the key or that
    // revision is compacted.
    let before = rev.main - 1;
    let prev_kv = if with_prev_kv && !created_now && before >= view.compact_revision() {
        view.kv_at(&kv.key, before)?
    } else {
        None
    };
    Ok(PbEvent {
        r#type: kind,
        kv: Some(kv),
        prev_kv,
    })
}

/// etcd 3.4's `HashByRev`: CRC-32C (Castagnoli) of `"key"` followed by, for every history
/// entry up to `rev` in revision order, etcd's revision bytes (`main ‖ '_' ‖ sub`, plus `'t'`
/// for a tombstone) and its `KeyValue` protobuf. Entries at or below the compact revision are
/// included only if a compaction at `rev` would keep them (etcd's `kvindex.Keep(rev)`); when
/// that set is empty, etcd includes every surviving entry instead, and so does this.
///
/// Equal on every member that applied the same log, independent of how far the physical
/// compaction has progressed. `rev == 0` means the current revision.
pub fn hash_kv(view: &DbView<'_>, rev: i64) -> Result<HashKv, ReadError> {
    let (current, compact) = (view.revision(), view.compact_revision());
    if rev > 0 && rev <= compact {
        return Err(EtcdError::Compacted.into());
    }
    if rev > current {
        return Err(EtcdError::FutureRev.into());
    }
    let rev = if rev == 0 { current } else { rev };
    let mut hash = crc32c::crc32c(b"key");
    let mut keep_empty = None;
    // A negative revision hashes nothing but the prefix, as in etcd.
    let end = Rev {
        main: rev.max(0) + 1,
        sub: 0,
    };
    let start = Rev { main: 0, sub: 0 };
    let mut it = view.iter(layout::history_key(start), layout::history_key(end));
    while let Some((k, v)) = it.item() {
        let this = layout::history_key_decode(k);
        if this.main > compact || kept_in_hash(view, this, v, rev, compact, &mut keep_empty)? {
            let mut rev_bytes = etcd_rev_bytes(this).to_vec();
            if record::history_kind(this.main, v) == Kind::Tombstone {
                rev_bytes.push(b't');
            }
            hash = crc32c::crc32c_append(hash, &rev_bytes);
            hash = crc32c::crc32c_append(hash, record::HistoryRecord::body(v));
        }
        it.next();
    }
    it.status()
        .map_err(StorageError::rocks("iterate the history"))?;
    Ok(HashKv {
        hash,
        compact_revision: compact,
        revision: current,
        hash_revision: rev,
    })
}

/// Whether an entry at or below the compact revision is hashed (see [`hash_kv`]).
fn kept_in_hash(
    view: &DbView<'_>,
    this: Rev,
    raw: &[u8],
    rev: i64,
    compact: i64,
    keep_empty: &mut Option<bool>,
) -> Result<bool, StorageError> {
    let rec = record::decode_history(this.main, raw);
    if rec.kind == Kind::Tombstone {
        return Ok(false);
    }
    let keep_empty = match keep_empty {
        Some(empty) => *empty,
        None => *keep_empty.insert(!any_key_live(view, rev)?),
    };
    let at = if keep_empty { compact } else { rev };
    Ok(view.version_at(&rec.kv.key, at)? == Some((this, Kind::Put)))
}

fn any_key_live(view: &DbView<'_>, rev: i64) -> Result<bool, StorageError> {
    let mut any = false;
    view.scan(rev, &KeyRange::from_request(b"", b"\0"), &mut |_| {
        any = true;
        Ok(std::ops::ControlFlow::Break(()))
    })?;
    Ok(any)
}

/// etcd's `revToBytes`: BE main, `'_'`, BE sub.
fn etcd_rev_bytes(rev: Rev) -> [u8; 17] {
    let mut out = [0; 17];
    out[..8].copy_from_slice(&rev.main.to_be_bytes());
    out[8] = b'_';
    out[9..].copy_from_slice(&rev.sub.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The hash of an empty etcd is CRC-32C("key"); real etcd 3.4.23 reported 1084519789.
    #[test]
    fn empty_hash_matches_etcd() {
        assert_eq!(crc32c::crc32c(b"key"), 1_084_519_789);
    }

    #[test]
    fn rev_bytes_layout() {
        let b = etcd_rev_bytes(Rev { main: 2, sub: 1 });
        assert_eq!(b, *b"\0\0\0\0\0\0\0\x02_\0\0\0\0\0\0\0\x01");
    }
}
