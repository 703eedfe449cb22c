//! `range`: each request reads the same key, range or prefix, linearizably or
//! serializably, like etcd's `benchmark range`.

use etcd_client::proto::{PbRangeRequest, PbRangeResponse};

use crate::bench::driver::{Session, Workload};
use crate::bench::grpc::{GrpcMethod, UnaryConn};
use crate::bench::options::{Consistency, RangeOptions};
use crate::bench::BenchError;

/// The `range` workload.
pub struct Range {
    req: PbRangeRequest,
}

impl Range {
    /// Builds the request every client sends.
    pub fn new(o: &RangeOptions) -> Range {
        let key = o.key.as_bytes().to_vec();
        let (key, range_end) = match (o.prefix, &o.end) {
            // etcd's WithPrefix on "" reads every key: from "\0" to the end.
            (true, _) if key.is_empty() => (vec![0], vec![0]),
            (true, _) => {
                let end = prefix_end(&key);
                (key, end)
            }
            (false, Some(end)) => (key, end.as_bytes().to_vec()),
            (false, None) => (key, Vec::new()),
        };
        Range {
            req: PbRangeRequest {
                key,
                range_end,
                limit: o.limit.max(0),
                serializable: o.consistency == Consistency::S,
                count_only: o.count_only,
                keys_only: o.keys_only,
                ..Default::default()
            },
        }
    }
}

/// The end of the range holding every key with prefix `key`, as etcd's clients compute it:
/// the prefix with its last byte below 0xff incremented (the bytes after it dropped);
/// `"\0"` (to the end of the key space) for a prefix of only 0xff bytes.
fn prefix_end(key: &[u8]) -> Vec<u8> {
    match key.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            let mut end = key[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

/// One `range` client.
pub struct RangeSession {
    conn: UnaryConn,
    method: GrpcMethod,
    req: PbRangeRequest,
}

impl Workload for Range {
    type Conn = UnaryConn;
    type Session = RangeSession;

    async fn open(&self, conn: UnaryConn, _index: usize) -> Result<RangeSession, BenchError> {
        Ok(RangeSession {
            method: conn.method("/etcdserverpb.KV/Range")?,
            conn,
            req: self.req.clone(),
        })
    }
}

impl Session for RangeSession {
    async fn call(&mut self, _seq: u64) -> Result<(), etcd_client::Error> {
        self.conn
            .round_trip::<_, PbRangeResponse>(&self.method, &self.req)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Prefix ends follow etcd's clientv3.GetPrefixRangeEnd.
    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }
}
