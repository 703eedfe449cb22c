//! The writer's in-memory key index: key → [`KeyMeta`] (create revision, latest revision,
//! version, lease) of every live key. The revision index (`revisions.rs`) knows which
//! revisions each key has; this one keeps the latest version's numbers at hand, in a hash map,
//! for the single writer only.
//!
//! It lets the write path decide a put (new version number, create revision, lease to
//! detach) without a RocksDB read of the key's previous version. It is derived state, never
//! persisted: `Engine::rebuild_indexes` rebuilds it from the history when a database is opened
//! or a snapshot installed, and the single writer updates it with the final state of every
//! committed write group ([`KeyIndex::update`]). Compaction only removes history, never a
//! live version, so it never changes the index.
//!
//! Memory: one entry per live key, about 90 bytes plus the key (about 100 MiB for a million
//! short keys; etcd's `treeIndex` holds more per key).

use std::collections::{BTreeMap, HashMap};

use etcd_client::proto::PbKeyValue;

use crate::view::KeyMeta;

/// key → meta of its live version.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyIndex {
    keys: HashMap<Box<[u8]>, KeyMeta>,
}

impl KeyIndex {
    /// The meta of `key`'s live version.
    pub fn get(&self, key: &[u8]) -> Option<KeyMeta> {
        self.keys.get(key).copied()
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Applies the final state of the keys a committed write changed (`None`: deleted).
    pub fn update(&mut self, latest: &BTreeMap<Vec<u8>, Option<PbKeyValue>>) {
        for (key, kv) in latest {
            self.set(key, kv.as_ref().map(KeyMeta::of));
        }
    }

    /// Sets the meta of `key`'s live version (`None`: the key is not live).
    pub fn set(&mut self, key: &[u8], meta: Option<KeyMeta>) {
        match (meta, self.keys.get_mut(key)) {
            (Some(meta), Some(slot)) => *slot = meta,
            (Some(meta), None) => {
                self.keys.insert(key.into(), meta);
            }
            (None, _) => {
                self.keys.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, create: i64, modr: i64, version: i64, lease: i64) -> PbKeyValue {
        PbKeyValue {
            key: key.into(),
            create_revision: create,
            mod_revision: modr,
            version,
            value: b"v".to_vec(),
            lease,
        }
    }

    // An update inserts new keys, overwrites changed ones and removes deleted ones.
    #[test]
    fn update_inserts_overwrites_and_removes() {
        let mut idx = KeyIndex::default();
        let mut latest = BTreeMap::new();
        latest.insert(b"a".to_vec(), Some(kv("a", 2, 2, 1, 0)));
        latest.insert(b"b".to_vec(), Some(kv("b", 2, 2, 1, 7)));
        idx.update(&latest);
        assert_eq!(idx.len(), 2);
        let mut latest = BTreeMap::new();
        latest.insert(b"a".to_vec(), Some(kv("a", 2, 3, 2, 0)));
        latest.insert(b"b".to_vec(), None);
        idx.update(&latest);
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.get(b"a"), Some(KeyMeta::of(&kv("a", 2, 3, 2, 0))));
        assert_eq!(idx.get(b"b"), None);
    }
}
