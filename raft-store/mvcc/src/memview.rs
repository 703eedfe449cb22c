//! An in-memory [`StateView`] of a current state only, for unit tests of the pure logic.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use etcd_client::proto::PbKeyValue;

use crate::error::StorageError;
use crate::view::{Entry, KeyRange, LoadedEntry, StateView, Step};

/// Keys and leases at one revision.
#[derive(Debug, Default)]
pub struct MemView {
    pub kvs: BTreeMap<Vec<u8>, PbKeyValue>,
    pub leases: BTreeMap<i64, i64>,
    pub revision: i64,
}

impl MemView {
    pub fn new() -> MemView {
        MemView {
            revision: 1,
            ..Default::default()
        }
    }

    pub fn insert(&mut self, key: &str, value: &str, create: i64, modr: i64, ver: i64, lease: i64) {
        let kv = PbKeyValue {
            key: key.as_bytes().to_vec(),
            create_revision: create,
            mod_revision: modr,
            version: ver,
            value: value.as_bytes().to_vec(),
            lease,
        };
        self.kvs.insert(kv.key.clone(), kv);
    }
}

impl StateView for MemView {
    fn revision(&self) -> i64 {
        self.revision
    }

    fn compact_revision(&self) -> i64 {
        -1
    }

    fn scan(
        &self,
        rev: i64,
        range: &KeyRange,
        visit: &mut dyn FnMut(&dyn Entry) -> Step,
    ) -> Result<(), StorageError> {
        assert_eq!(rev, self.revision, "MemView holds only the current state");
        for kv in self.kvs.values().filter(|kv| range.contains(&kv.key)) {
            if let ControlFlow::Break(()) = visit(&LoadedEntry(kv))? {
                break;
            }
        }
        Ok(())
    }

    fn lease_ttl(&self, id: i64) -> Result<Option<i64>, StorageError> {
        Ok(self.leases.get(&id).copied())
    }

    fn lease_keys(&self, id: i64) -> Result<Vec<Vec<u8>>, StorageError> {
        Ok(self
            .kvs
            .values()
            .filter(|kv| kv.lease == id)
            .map(|kv| kv.key.clone())
            .collect())
    }
}
