//! The in-memory key index: key → [`KeyMeta`] (create revision, latest revision, version,
//! lease) of every live key, like etcd's `treeIndex` but for the latest version only.
//!
//! It lets the write path decide a put (new version number, create revision, lease to
//! detach) without a RocksDB read of the key's previous version. It is derived state, never
//! persisted: [`KeyIndex::build`] rebuilds it from the `k` table when a database is opened
//! or a snapshot installed, and the single writer updates it with the final state of every
//! committed write group ([`KeyIndex::update`]). Compaction only removes history, never a
//! live version, so it never changes the index.
//!
//! Memory: one entry per live key, about 90 bytes plus the key (about 100 MiB for a million
//! short keys; etcd's `treeIndex` holds more per key).

use std::collections::{BTreeMap, HashMap};

use etcd_client::proto::PbKeyValue;

use crate::engine::DbView;
use crate::error::StorageError;
use crate::layout;
use crate::record;
use crate::view::KeyMeta;

/// key → meta of its live version.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyIndex {
    keys: HashMap<Box<[u8]>, KeyMeta>,
}

impl KeyIndex {
    /// Reads every live key of the `k` table of `view` (the committed latest state).
    pub fn build(view: &DbView<'_>) -> Result<KeyIndex, StorageError> {
        let mut keys = HashMap::new();
        let mut it = view.iter(vec![layout::TABLE_KV], layout::table_end(layout::TABLE_KV));
        while let Some((k, v)) = it.item() {
            let key = &k[1..];
            let kv = record::decode_latest(key, v);
            keys.insert(key.into(), KeyMeta::of(&kv));
            it.next();
        }
        it.status()
            .map_err(StorageError::rocks("iterate keys for the key index"))?;
        Ok(KeyIndex { keys })
    }

    /// The meta of `key`'s live version.
    pub fn get(&self, key: &[u8]) -> Option<KeyMeta> {
        self.keys.get(key).copied()
    }

    /// Number of live keys.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Applies the final state of the keys a committed write changed (`None`: deleted).
    pub fn update(&mut self, latest: &BTreeMap<Vec<u8>, Option<PbKeyValue>>) {
        for (key, kv) in latest {
            match kv {
                Some(kv) => {
                    let meta = KeyMeta::of(kv);
                    match self.keys.get_mut(key.as_slice()) {
                        Some(slot) => *slot = meta,
                        None => {
                            self.keys.insert(key.as_slice().into(), meta);
                        }
                    }
                }
                None => {
                    self.keys.remove(key.as_slice());
                }
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
