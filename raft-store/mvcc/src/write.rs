//! [`WriteTxn`]: the uncommitted changes of one write request, layered over the committed
//! state, with etcd's mvcc revision rules. Pure logic: it reads through a [`StateView`] and
//! produces [`Effects`], which `engine.rs` turns into one RocksDB write batch.
//!
//! Revision rules (etcd's `storeTxnWrite`): all changes of one request share main revision
//! `begin + 1` and get sub revisions 0, 1, ... in order; the store revision moves to
//! `begin + 1` only if at least one change was made. A put keeps the key's create revision and
//! increments its version, or starts a new life (create = mod = this revision, version 1) if
//! the key is absent; a delete writes a tombstone and detaches the key from its lease. Later
//! operations of the same request see earlier ones (the view's current revision becomes
//! `begin + 1` after the first change).

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};

use etcd_client::proto::{PbEvent, PbKeyValue};

use crate::error::StorageError;
use crate::record::Kind;
use crate::view::{Entry, KeyMeta, KeyRange, LoadedEntry, Rev, StateView, Step};

/// `mvccpb.Event.EventType.PUT`.
pub const EVENT_PUT: i32 = 0;
/// `mvccpb.Event.EventType.DELETE`.
pub const EVENT_DELETE: i32 = 1;

/// One change made by a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Main and sub revision of the change.
    pub rev: Rev,
    /// Put or tombstone.
    pub kind: Kind,
    /// The version written; for a tombstone only `key` and `mod_revision` are set (as in
    /// etcd's delete events).
    pub kv: PbKeyValue,
    /// For a tombstone, the deleted key at the revision before the request (etcd's watch
    /// `prev_kv`). For a put always `None`: the write path does not read the old value, so
    /// a watcher that wants it reads the key at `mod_revision - 1`
    /// ([`crate::Mvcc::fill_prev_kvs`]), as etcd's watch does.
    pub prev: Option<PbKeyValue>,
}

impl Change {
    /// The watch event of this change, with `prev_kv` as in [`Change::prev`].
    pub fn into_event(self) -> PbEvent {
        PbEvent {
            r#type: match self.kind {
                Kind::Put => EVENT_PUT,
                Kind::Tombstone => EVENT_DELETE,
            },
            kv: Some(self.kv),
            prev_kv: self.prev,
        }
    }
}

/// Everything a request changes, ready to be written in one batch.
#[derive(Debug, Default)]
pub struct Effects {
    /// The store revision before the request.
    pub begin_rev: i64,
    /// Key changes in sub-revision order.
    pub changes: Vec<Change>,
    /// The final state of every touched key (`None`: deleted).
    pub latest: BTreeMap<Vec<u8>, Option<PbKeyValue>>,
    /// Lease attachments set (`true`) or removed (`false`).
    pub attach: BTreeMap<(i64, Vec<u8>), bool>,
    /// Leases granted (`Some(ttl)`) or revoked (`None`).
    pub leases: BTreeMap<i64, Option<i64>>,
}

impl Effects {
    /// The store revision after the request.
    pub fn revision(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        }
    }
}

/// A write request in progress over the committed state `base`.
pub struct WriteTxn<'a> {
    base: &'a dyn StateView,
    fx: Effects,
}

impl<'a> WriteTxn<'a> {
    /// Starts a request on top of `base` (the committed state at `base.revision()`).
    pub fn new(base: &'a dyn StateView) -> WriteTxn<'a> {
        WriteTxn {
            base,
            fx: Effects {
                begin_rev: base.revision(),
                ..Default::default()
            },
        }
    }

    /// The changes made so far.
    pub fn into_effects(self) -> Effects {
        self.fx
    }

    /// Writes a new version of `key` (no checks: callers validate leases and flags first).
    /// Reads only the key's meta (the in-memory key index on the store), never its value.
    pub fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> Result<(), StorageError> {
        let rev = self.fx.begin_rev + 1;
        let current = self.key_meta(key)?;
        let (create_revision, version) = match &current {
            Some(cur) => (cur.create_revision, cur.version + 1),
            None => (rev, 1),
        };
        if let Some(cur) = &current {
            if cur.lease != 0 {
                self.fx.attach.insert((cur.lease, key.to_vec()), false);
            }
        }
        if lease != 0 {
            self.fx.attach.insert((lease, key.to_vec()), true);
        }
        let kv = PbKeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: rev,
            version,
            value,
            lease,
        };
        self.record(Kind::Put, kv, None);
        Ok(())
    }

    /// Deletes every key of `range` live in the current state of the request; returns the
    /// deleted versions in key order. Holds them all in memory (as etcd does).
    pub fn delete_range(&mut self, range: &KeyRange) -> Result<Vec<PbKeyValue>, StorageError> {
        let mut found = Vec::new();
        if !range.is_empty() {
            self.scan(self.revision(), range, &mut |entry| {
                found.push(entry.load()?);
                Ok(ControlFlow::Continue(()))
            })?;
        }
        for kv in &found {
            self.delete(kv)?;
        }
        Ok(found)
    }

    fn delete(&mut self, current: &PbKeyValue) -> Result<(), StorageError> {
        if current.lease != 0 {
            self.fx
                .attach
                .insert((current.lease, current.key.clone()), false);
        }
        let tombstone = PbKeyValue {
            key: current.key.clone(),
            mod_revision: self.fx.begin_rev + 1,
            ..Default::default()
        };
        // etcd's watch prev_kv is the key at the revision before the request.
        let prev = if self.fx.latest.contains_key(&current.key) {
            self.base.get(&current.key)?
        } else {
            Some(current.clone())
        };
        self.record(Kind::Tombstone, tombstone, prev);
        Ok(())
    }

    /// Grants lease `id` (no checks).
    pub fn grant_lease(&mut self, id: i64, ttl: i64) {
        self.fx.leases.insert(id, Some(ttl));
    }

    /// Deletes every key attached to lease `id` in ascending key order (as etcd's lessor does,
    /// so all members produce the same sub revisions), then the lease itself.
    pub fn revoke_lease(&mut self, id: i64) -> Result<(), StorageError> {
        for key in self.lease_keys(id)? {
            if let Some(current) = self.get(&key)? {
                self.delete(&current)?;
            }
        }
        self.fx.leases.insert(id, None);
        Ok(())
    }

    /// Appends a change; `prev` is the change's watch `prev_kv` (see [`Change::prev`]).
    fn record(&mut self, kind: Kind, kv: PbKeyValue, prev: Option<PbKeyValue>) {
        let rev = Rev {
            main: self.fx.begin_rev + 1,
            sub: self.fx.changes.len() as i64,
        };
        let latest = (kind == Kind::Put).then(|| kv.clone());
        self.fx.latest.insert(kv.key.clone(), latest);
        self.fx.changes.push(Change {
            rev,
            kind,
            kv,
            prev,
        });
    }
}

/// Scans the current state of `base` overlaid with `latest` (the final state of keys changed
/// on top of it; `None`: deleted), in key order, until the visitor breaks.
fn merge_scan(
    base: &dyn StateView,
    latest: &BTreeMap<Vec<u8>, Option<PbKeyValue>>,
    range: &KeyRange,
    visit: &mut dyn FnMut(&dyn Entry) -> Step,
) -> Result<(), StorageError> {
    let end = match &range.end {
        Some(end) => Bound::Excluded(end.as_slice()),
        None => Bound::Unbounded,
    };
    let bounds = (Bound::Included(range.start.as_slice()), end);
    let mut overlay = latest.range::<[u8], _>(bounds).peekable();
    let mut stopped = false;
    base.scan(base.revision(), range, &mut |entry| {
        while let Some((key, latest)) = overlay.next_if(|(k, _)| k.as_slice() < entry.key()) {
            if let Some(kv) = latest {
                debug_assert_eq!(key, &kv.key);
                if visit(&LoadedEntry(kv))?.is_break() {
                    stopped = true;
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        let flow = match overlay.next_if(|(k, _)| k.as_slice() == entry.key()) {
            Some((_, Some(kv))) => visit(&LoadedEntry(kv))?,
            Some((_, None)) => ControlFlow::Continue(()),
            None => visit(entry)?,
        };
        stopped = flow.is_break();
        Ok(flow)
    })?;
    if stopped {
        return Ok(());
    }
    for kv in overlay.filter_map(|(_, latest)| latest.as_ref()) {
        if visit(&LoadedEntry(kv))?.is_break() {
            break;
        }
    }
    Ok(())
}

/// The keys attached to lease `id` in `base`, with the attachment changes `attach` applied.
fn merge_lease_keys(
    base: &dyn StateView,
    attach: &BTreeMap<(i64, Vec<u8>), bool>,
    id: i64,
) -> Result<Vec<Vec<u8>>, StorageError> {
    let mut keys: BTreeMap<Vec<u8>, bool> = base
        .lease_keys(id)?
        .into_iter()
        .map(|k| (k, true))
        .collect();
    let lo = (id, Vec::new());
    for ((_, key), attached) in attach.range(lo..).take_while(|((l, _), _)| *l == id) {
        keys.insert(key.clone(), *attached);
    }
    Ok(keys
        .into_iter()
        .filter(|(_, a)| *a)
        .map(|(k, _)| k)
        .collect())
}

impl StateView for WriteTxn<'_> {
    fn revision(&self) -> i64 {
        self.fx.revision()
    }

    fn compact_revision(&self) -> i64 {
        self.base.compact_revision()
    }

    fn scan(
        &self,
        rev: i64,
        range: &KeyRange,
        visit: &mut dyn FnMut(&dyn Entry) -> Step,
    ) -> Result<(), StorageError> {
        if rev == self.revision() && !self.fx.changes.is_empty() {
            merge_scan(self.base, &self.fx.latest, range, visit)
        } else {
            self.base.scan(rev, range, visit)
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<PbKeyValue>, StorageError> {
        match self.fx.latest.get(key) {
            Some(latest) => Ok(latest.clone()),
            None => self.base.get(key),
        }
    }

    fn lease_ttl(&self, id: i64) -> Result<Option<i64>, StorageError> {
        match self.fx.leases.get(&id) {
            Some(ttl) => Ok(*ttl),
            None => self.base.lease_ttl(id),
        }
    }

    fn lease_keys(&self, id: i64) -> Result<Vec<Vec<u8>>, StorageError> {
        merge_lease_keys(self.base, &self.fx.attach, id)
    }

    fn key_meta(&self, key: &[u8]) -> Result<Option<KeyMeta>, StorageError> {
        match self.fx.latest.get(key) {
            Some(latest) => Ok(latest.as_ref().map(KeyMeta::of)),
            None => self.base.key_meta(key),
        }
    }
}

/// The changes of the requests of a write group that are decided but not yet committed
/// (see `group.rs`), accumulated in request order: later requests see them through
/// [`Layered`].
#[derive(Debug, Default)]
pub struct Overlay {
    /// The store revision after the accumulated requests.
    pub revision: i64,
    /// The final state of every key changed (`None`: deleted).
    pub latest: BTreeMap<Vec<u8>, Option<PbKeyValue>>,
    /// Lease attachments set (`true`) or removed (`false`).
    pub attach: BTreeMap<(i64, Vec<u8>), bool>,
    /// Leases granted (`Some(ttl)`) or revoked (`None`).
    pub leases: BTreeMap<i64, Option<i64>>,
}

impl Overlay {
    /// An empty overlay on a committed state at `revision`.
    pub fn new(revision: i64) -> Overlay {
        Overlay {
            revision,
            ..Default::default()
        }
    }

    /// Adds the changes of the next request (decided over [`Layered`] of this overlay) and
    /// returns its watch events.
    pub fn absorb(&mut self, fx: Effects) -> Vec<PbEvent> {
        assert_eq!(
            fx.begin_rev, self.revision,
            "request decided on a stale overlay"
        );
        self.revision = fx.revision();
        let Effects {
            changes,
            latest,
            attach,
            leases,
            ..
        } = fx;
        self.latest.extend(latest);
        self.attach.extend(attach);
        self.leases.extend(leases);
        changes.into_iter().map(Change::into_event).collect()
    }
}

/// A committed state with a write group's [`Overlay`] on top: the state the group's next
/// request is decided against.
///
/// Revisions the overlay added are readable only at its newest revision: a read at a
/// revision strictly between the committed one and the overlay's is a bug (the group
/// commits before a request that could make one, see `group::needs_commit_before`) and
/// panics.
pub struct Layered<'a> {
    base: &'a dyn StateView,
    ov: &'a Overlay,
}

impl<'a> Layered<'a> {
    /// `ov` on top of `base`; `ov` must have been started at `base.revision()`.
    pub fn new(base: &'a dyn StateView, ov: &'a Overlay) -> Layered<'a> {
        assert!(ov.revision >= base.revision(), "overlay behind its base");
        Layered { base, ov }
    }
}

impl StateView for Layered<'_> {
    fn revision(&self) -> i64 {
        self.ov.revision
    }

    fn compact_revision(&self) -> i64 {
        self.base.compact_revision()
    }

    fn scan(
        &self,
        rev: i64,
        range: &KeyRange,
        visit: &mut dyn FnMut(&dyn Entry) -> Step,
    ) -> Result<(), StorageError> {
        let committed = self.base.revision();
        if rev <= committed {
            return self.base.scan(rev, range, visit);
        }
        assert_eq!(
            rev, self.ov.revision,
            "read at revision {rev} inside an uncommitted write group (committed {committed})"
        );
        merge_scan(self.base, &self.ov.latest, range, visit)
    }

    fn get(&self, key: &[u8]) -> Result<Option<PbKeyValue>, StorageError> {
        match self.ov.latest.get(key) {
            Some(latest) => Ok(latest.clone()),
            None => self.base.get(key),
        }
    }

    fn lease_ttl(&self, id: i64) -> Result<Option<i64>, StorageError> {
        match self.ov.leases.get(&id) {
            Some(ttl) => Ok(*ttl),
            None => self.base.lease_ttl(id),
        }
    }

    fn lease_keys(&self, id: i64) -> Result<Vec<Vec<u8>>, StorageError> {
        merge_lease_keys(self.base, &self.ov.attach, id)
    }

    fn key_meta(&self, key: &[u8]) -> Result<Option<KeyMeta>, StorageError> {
        match self.ov.latest.get(key) {
            Some(latest) => Ok(latest.as_ref().map(KeyMeta::of)),
            None => self.base.key_meta(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memview::MemView;

    fn keys_at_current(view: &dyn StateView, range: &KeyRange) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        view.scan(view.revision(), range, &mut |e| {
            let kv = e.load()?;
            out.push((String::from_utf8(kv.key).unwrap(), kv.version));
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        out
    }

    fn base() -> MemView {
        let mut v = MemView::new();
        v.insert("a", "1", 2, 2, 1, 0);
        v.insert("c", "3", 3, 4, 2, 5);
        v.insert("e", "5", 5, 5, 1, 0);
        v.leases.insert(5, 60);
        v.revision = 5;
        v
    }

    // Puts in one request share the main revision with increasing sub revisions and see each
    // other (version counts up twice; the second put is still a "create" event).
    #[test]
    fn puts_share_revision_and_read_their_writes() {
        let b = base();
        let mut t = WriteTxn::new(&b);
        assert_eq!(t.revision(), 5);
        t.put(b"b", b"x".to_vec(), 0).unwrap();
        t.put(b"b", b"y".to_vec(), 0).unwrap();
        t.put(b"a", b"z".to_vec(), 0).unwrap();
        assert_eq!(t.revision(), 6);
        let all = KeyRange::from_request(b"", b"\0");
        assert_eq!(
            keys_at_current(&t, &all),
            [
                ("a".into(), 2),
                ("b".into(), 2),
                ("c".into(), 2),
                ("e".into(), 1)
            ]
        );
        // "b" was created by this request.
        assert_eq!(t.get(b"b").unwrap().unwrap().create_revision, 6);
        let fx = t.into_effects();
        let subs: Vec<_> = fx.changes.iter().map(|c| (c.rev.main, c.rev.sub)).collect();
        assert_eq!(subs, [(6, 0), (6, 1), (6, 2)]);
        assert_eq!(fx.changes[1].prev, None, "create == mod: no prev_kv");
        assert_eq!(
            fx.changes[2].prev, None,
            "a put leaves prev_kv to the watch"
        );
    }

    // Deleting a range writes tombstones in key order, detaches leases, and the merged view
    // hides the deleted keys.
    #[test]
    fn delete_range_hides_keys_and_detaches() {
        let b = base();
        let mut t = WriteTxn::new(&b);
        t.put(b"d", b"4".to_vec(), 5).unwrap();
        let deleted = t.delete_range(&KeyRange::from_request(b"b", b"e")).unwrap();
        let keys: Vec<_> = deleted.iter().map(|kv| kv.key.clone()).collect();
        assert_eq!(keys, [b"c".to_vec(), b"d".to_vec()]);
        let all = KeyRange::from_request(b"", b"\0");
        assert_eq!(
            keys_at_current(&t, &all),
            [("a".into(), 1), ("e".into(), 1)]
        );
        assert!(t.lease_keys(5).unwrap().is_empty());
        let fx = t.into_effects();
        assert_eq!(fx.changes[1].kind, Kind::Tombstone);
        assert_eq!(fx.changes[1].kv.mod_revision, 6);
        assert_eq!(fx.latest.get(&b"d"[..]), Some(&None));
    }

    // Revoking a lease deletes its keys in key order in one revision; an empty revoke makes no
    // change and does not bump the revision.
    #[test]
    fn revoke_lease_deletes_attached_keys() {
        let mut b = base();
        b.insert("b", "2", 5, 5, 1, 5);
        let mut t = WriteTxn::new(&b);
        t.revoke_lease(5).unwrap();
        let fx = t.into_effects();
        let keys: Vec<_> = fx.changes.iter().map(|c| c.kv.key.clone()).collect();
        assert_eq!(keys, [b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(fx.revision(), 6);
        assert_eq!(fx.leases.get(&5), Some(&None));

        let mut empty = MemView::new();
        empty.leases.insert(9, 10);
        let mut t = WriteTxn::new(&empty);
        t.revoke_lease(9).unwrap();
        assert_eq!(t.into_effects().revision(), 1);
    }

    // A scan that stops early inside the overlay does not call the visitor again.
    #[test]
    fn merged_scan_stops_when_asked() {
        let b = base();
        let mut t = WriteTxn::new(&b);
        t.put(b"b", b"x".to_vec(), 0).unwrap();
        t.put(b"z", b"x".to_vec(), 0).unwrap();
        let mut seen = 0;
        t.scan(6, &KeyRange::from_request(b"", b"\0"), &mut |_| {
            seen += 1;
            Ok(if seen == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
        assert_eq!(seen, 2);
    }
}
