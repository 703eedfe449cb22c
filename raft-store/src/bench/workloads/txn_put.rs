//! `txn-put`: each request is one Txn (no compares) whose success branch puts `--txn-ops`
//! keys, like etcd's `benchmark txn-put`. With `--sequential-keys` and a total of
//! key-space / txn-ops requests it writes every key of the key space exactly once, which is
//! how `scripts/bench-compare.sh` loads a million keys quickly.

use std::sync::Arc;

use etcd_client::proto::{
    PbPutRequest, PbTxnOpRequest, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};

use crate::bench::driver::{Session, Workload};
use crate::bench::grpc::{GrpcMethod, UnaryConn};
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
    conn: UnaryConn,
    method: GrpcMethod,
    keys: Arc<KeyGen>,
    ops: u64,
}

impl Workload for TxnPut {
    type Conn = UnaryConn;
    type Session = TxnPutSession;

    async fn open(&self, conn: UnaryConn, _index: usize) -> Result<TxnPutSession, BenchError> {
        Ok(TxnPutSession {
            method: conn.method("/etcdserverpb.KV/Txn")?,
            conn,
            keys: self.keys.clone(),
            ops: self.ops,
        })
    }
}

impl Session for TxnPutSession {
    async fn call(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
        let success = (0..self.ops)
            .map(|op| PbTxnRequestOp {
                request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                    key: self.keys.key(seq, self.ops, op),
                    value: self.keys.value().to_vec(),
                    ..Default::default()
                })),
            })
            .collect();
        let req = PbTxnRequest {
            success,
            ..Default::default()
        };
        self.conn
            .round_trip::<_, PbTxnResponse>(&self.method, &req)
            .await
    }
}
