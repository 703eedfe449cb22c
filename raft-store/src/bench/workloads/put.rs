//! `put`: each request puts one key of the key space (random or sequential) with a
//! fixed-size value, like etcd's `benchmark put`.

use std::sync::Arc;

use etcd_client::proto::{PbPutRequest, PbPutResponse};

use crate::bench::driver::{Session, Workload};
use crate::bench::grpc::{GrpcMethod, UnaryConn};
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
    conn: UnaryConn,
    method: GrpcMethod,
    keys: Arc<KeyGen>,
}

impl Workload for Put {
    type Conn = UnaryConn;
    type Session = PutSession;

    async fn open(&self, conn: UnaryConn, _index: usize) -> Result<PutSession, BenchError> {
        Ok(PutSession {
            method: conn.method("/etcdserverpb.KV/Put")?,
            conn,
            keys: self.keys.clone(),
        })
    }
}

impl Session for PutSession {
    async fn call(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
        let req = PbPutRequest {
            key: self.keys.key(seq, 1, 0),
            value: self.keys.value().to_vec(),
            ..Default::default()
        };
        self.conn
            .round_trip::<_, PbPutResponse>(&self.method, &req)
            .await
    }
}
