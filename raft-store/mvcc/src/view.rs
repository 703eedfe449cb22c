//! The read interface the MVCC rules are written against.
//!
//! [`StateView`] is "the key space as of some revision": the RocksDB-backed view
//! (`engine::DbView`), the in-flight write transaction (`write::WriteTxn`, which layers its
//! uncommitted changes over a base view) and the in-memory test view all implement it. Range,
//! compare and write logic take a `&dyn StateView` and never touch RocksDB directly.

use std::ops::ControlFlow;

use etcd_client::proto::PbKeyValue;

use crate::error::StorageError;

/// A main/sub revision pair: `main` is the store revision of a write request, `sub` numbers
/// the changes inside it (0, 1, ... for the ops of one Txn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rev {
    /// The store revision.
    pub main: i64,
    /// The position of the change within its revision.
    pub sub: i64,
}

/// What the write path needs to know about a key's latest version, without its value:
/// the in-memory key index holds one per live key (see `index.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyMeta {
    /// Revision of the put that started the key's current life.
    pub create_revision: i64,
    /// Revision of the key's latest put.
    pub mod_revision: i64,
    /// Puts since the key was created (1 for a new key).
    pub version: i64,
    /// Attached lease, 0 for none.
    pub lease: i64,
}

impl KeyMeta {
    /// The meta of a version record.
    pub fn of(kv: &PbKeyValue) -> KeyMeta {
        KeyMeta {
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }

    /// A record with this meta and no value (enough for compares other than VALUE).
    pub fn to_kv(self, key: &[u8]) -> PbKeyValue {
        PbKeyValue {
            key: key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: Vec::new(),
            lease: self.lease,
        }
    }
}

/// A half-open key interval `[start, end)`; `end == None` means unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// Inclusive start.
    pub start: Vec<u8>,
    /// Exclusive end, or `None` for "every key >= start".
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// The interval etcd selects for a request's `key` and `range_end`:
    /// empty `range_end` is the single key, `"\0"` is every key `>= key`, anything else is
    /// `[key, range_end)` (empty when `range_end <= key`, as etcd 3.4 answers).
    pub fn from_request(key: &[u8], range_end: &[u8]) -> KeyRange {
        let end = match range_end {
            [] => Some(single_key_end(key)),
            [0] => None,
            end => Some(end.to_vec()),
        };
        KeyRange {
            start: key.to_vec(),
            end,
        }
    }

    /// The interval holding exactly `key`.
    pub fn single(key: &[u8]) -> KeyRange {
        KeyRange {
            start: key.to_vec(),
            end: Some(single_key_end(key)),
        }
    }

    /// Whether no key can lie in the interval.
    pub fn is_empty(&self) -> bool {
        matches!(&self.end, Some(end) if end.as_slice() <= self.start.as_slice())
    }

    /// Whether `key` lies in the interval.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

/// The smallest key greater than `key`: `key ++ [0]`.
fn single_key_end(key: &[u8]) -> Vec<u8> {
    let mut end = Vec::with_capacity(key.len() + 1);
    end.extend_from_slice(key);
    end.push(0);
    end
}

/// One live key met during a scan. The full record is loaded only on demand, so that counting
/// keys at a past revision does not read their values.
pub trait Entry {
    /// The user key.
    fn key(&self) -> &[u8];
    /// The key's version at the scanned revision (key, value, revisions, version, lease).
    fn load(&self) -> Result<PbKeyValue, StorageError>;
}

/// What a scan visitor returns: keep going or stop early.
pub type Step = Result<ControlFlow<()>, StorageError>;

/// Read access to the key space and the leases as seen by one reader or writer.
///
/// Contract: every call on one view observes the same state (a RocksDB snapshot for readers,
/// the writer's own changes for a write transaction); nothing a concurrent writer does becomes
/// visible half-way. A `StorageError` is fatal (see its docs).
pub trait StateView {
    /// The newest revision visible in this view.
    fn revision(&self) -> i64;

    /// The compact revision (`-1` if the store was never compacted). Revisions below it are
    /// gone; the compact revision itself is still readable.
    fn compact_revision(&self) -> i64;

    /// Visits, in ascending key order, every key of `range` that is live at `rev`, until the
    /// visitor breaks. `rev` must lie in `[compact_revision(), revision()]`: callers check it
    /// first (see `range::resolve_revision`), so a violation is a bug and panics.
    fn scan(
        &self,
        rev: i64,
        range: &KeyRange,
        visit: &mut dyn FnMut(&dyn Entry) -> Step,
    ) -> Result<(), StorageError>;

    /// The granted TTL of lease `id`, if it exists.
    fn lease_ttl(&self, id: i64) -> Result<Option<i64>, StorageError>;

    /// The keys attached to lease `id`, in ascending order (empty if none or no such lease).
    fn lease_keys(&self, id: i64) -> Result<Vec<Vec<u8>>, StorageError>;

    /// The current version of `key`, if it is live at [`StateView::revision`].
    fn get(&self, key: &[u8]) -> Result<Option<PbKeyValue>, StorageError> {
        let mut found = None;
        self.scan(self.revision(), &KeyRange::single(key), &mut |entry| {
            found = Some(entry.load()?);
            Ok(ControlFlow::Break(()))
        })?;
        Ok(found)
    }

    /// The meta of the current version of `key`, if it is live at [`StateView::revision`].
    /// Views with an in-memory key index answer without reading the value.
    fn key_meta(&self, key: &[u8]) -> Result<Option<KeyMeta>, StorageError> {
        Ok(self.get(key)?.as_ref().map(KeyMeta::of))
    }
}

/// An [`Entry`] whose record is already in memory.
pub(crate) struct LoadedEntry<'a>(pub &'a PbKeyValue);

impl Entry for LoadedEntry<'_> {
    fn key(&self) -> &[u8] {
        &self.0.key
    }

    fn load(&self) -> Result<PbKeyValue, StorageError> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // etcd's three range_end forms: empty = one key, "\0" = from key, else [key, end).
    #[test]
    fn range_end_forms() {
        let single = KeyRange::from_request(b"a", b"");
        assert!(single.contains(b"a") && !single.contains(b"a\0") && !single.contains(b""));
        let from = KeyRange::from_request(b"b", b"\0");
        assert!(from.contains(b"b") && from.contains(b"zzz") && !from.contains(b"a"));
        let all = KeyRange::from_request(b"\0", b"\0");
        assert!(all.contains(b"\0") && all.contains(b"a") && !all.contains(b""));
        let span = KeyRange::from_request(b"a", b"c");
        assert!(span.contains(b"b") && !span.contains(b"c"));
    }

    // A range_end at or before the key selects nothing (etcd 3.4.23: `etcdctl get b a` is empty).
    #[test]
    fn backwards_range_is_empty() {
        assert!(KeyRange::from_request(b"b", b"a").is_empty());
        assert!(KeyRange::from_request(b"b", b"b").is_empty());
        assert!(!KeyRange::from_request(b"b", b"").is_empty());
        assert!(!KeyRange::from_request(b"b", b"\0").is_empty());
    }
}
