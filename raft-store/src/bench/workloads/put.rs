//! `put`: each request puts one key of the key space (random or sequential) with a
//! fixed-size value, like etcd's `benchmark put`.

use std::sync::Arc;

use etcd_client::{Client, KvClient};

use crate::bench::driver::{Session, Workload};
use crate::bench::keys::KeyGen;
use crate::bench::options::PutOptions;
use crate::bench::BenchError;

/// The `put` workload.
pub struct Put {
    keys: Arc<KeyGen>,
}

impl Put {
    /// Validates the key/value shape.
    pub fn new(o: &PutOptions) -> Result<Put, BenchError> {
        Ok(Put {
            keys: Arc::new(KeyGen::new(&o.kv)?),
        })
    }
}

/// One `put` client.
pub struct PutSession {
    kv: KvClient,
    keys: Arc<KeyGen>,
}

impl Workload for Put {
    type Session = PutSession;

    async fn open(&self, conn: Client, _index: usize) -> Result<PutSession, BenchError> {
        Ok(PutSession {
            kv: conn.kv_client(),
            keys: self.keys.clone(),
        })
    }
}

impl Session for PutSession {
    async fn call(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
        let key = self.keys.key(seq, 1, 0);
        self.kv.put(key, self.keys.value(), None).await.map(drop)
    }
}
