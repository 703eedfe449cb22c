//! `txn-put`: each request is one Txn (no compares) whose success branch puts `--txn-ops`
//! keys, like etcd's `benchmark txn-put`. With `--sequential-keys` and a total of
//! key-space / txn-ops requests it writes every key of the key space exactly once, which is
//! how `scripts/bench-compare.sh` loads a million keys quickly.

use std::sync::Arc;

use etcd_client::{Client, KvClient, Txn, TxnOp};

use crate::bench::driver::{Session, Workload};
use crate::bench::keys::KeyGen;
use crate::bench::options::TxnPutOptions;
use crate::bench::BenchError;

/// The `txn-put` workload.
pub struct TxnPut {
    keys: Arc<KeyGen>,
    ops: u64,
}

impl TxnPut {
    /// Validates the shape.
    pub fn new(o: &TxnPutOptions) -> Result<TxnPut, BenchError> {
        if o.txn_ops == 0 {
            return Err(BenchError::InvalidOptions(
                "--txn-ops must be at least 1".into(),
            ));
        }
        let keys = KeyGen::new(&o.kv)?;
        if o.txn_ops as u64 > keys.space() {
            return Err(BenchError::InvalidOptions(format!(
                "--txn-ops {} exceeds --key-space-size {}: a Txn may not put one key twice",
                o.txn_ops,
                keys.space()
            )));
        }
        Ok(TxnPut {
            keys: Arc::new(keys),
            ops: o.txn_ops as u64,
        })
    }
}

/// One `txn-put` client.
pub struct TxnPutSession {
    kv: KvClient,
    keys: Arc<KeyGen>,
    ops: u64,
}

impl Workload for TxnPut {
    type Session = TxnPutSession;

    async fn open(&self, conn: Client, _index: usize) -> Result<TxnPutSession, BenchError> {
        Ok(TxnPutSession {
            kv: conn.kv_client(),
            keys: self.keys.clone(),
            ops: self.ops,
        })
    }
}

impl Session for TxnPutSession {
    async fn call(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
        let puts: Vec<TxnOp> = (0..self.ops)
            .map(|op| TxnOp::put(self.keys.key(seq, self.ops, op), self.keys.value(), None))
            .collect();
        self.kv.txn(Txn::new().and_then(puts)).await.map(drop)
    }
}
