//! `range`: each request reads the same key, range or prefix, linearizably or
//! serializably, like etcd's `benchmark range`.

use etcd_client::{Client, GetOptions, KvClient};

use crate::bench::driver::{Session, Workload};
use crate::bench::options::{Consistency, RangeOptions};
use crate::bench::BenchError;

/// The `range` workload.
pub struct Range {
    key: Vec<u8>,
    opts: GetOptions,
}

impl Range {
    /// Builds the request every client sends.
    pub fn new(o: &RangeOptions) -> Range {
        let mut opts = GetOptions::new();
        if let Some(end) = &o.end {
            opts = opts.with_range(end.as_bytes());
        }
        if o.prefix {
            opts = opts.with_prefix();
        }
        if o.limit > 0 {
            opts = opts.with_limit(o.limit);
        }
        if o.consistency == Consistency::S {
            opts = opts.with_serializable();
        }
        if o.count_only {
            opts = opts.with_count_only();
        }
        if o.keys_only {
            opts = opts.with_keys_only();
        }
        Range {
            key: o.key.as_bytes().to_vec(),
            opts,
        }
    }
}

/// One `range` client.
pub struct RangeSession {
    kv: KvClient,
    key: Vec<u8>,
    opts: GetOptions,
}

impl Workload for Range {
    type Session = RangeSession;

    async fn open(&self, conn: Client, _index: usize) -> Result<RangeSession, BenchError> {
        Ok(RangeSession {
            kv: conn.kv_client(),
            key: self.key.clone(),
            opts: self.opts.clone(),
        })
    }
}

impl Session for RangeSession {
    async fn call(&mut self, _seq: u64) -> Result<(), etcd_client::Error> {
        let key = self.key.clone();
        self.kv.get(key, Some(self.opts.clone())).await.map(drop)
    }
}
