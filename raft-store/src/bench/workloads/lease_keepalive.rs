//! `lease-keepalive`: each client grants one lease, opens a LeaseKeepAlive stream for it and
//! sends one keep-alive at a time, timing the round trip to its response (etcd's
//! `benchmark lease-keepalive`). The leases are revoked after the run.

use etcd_client::{Client, LeaseClient, LeaseKeepAliveStream, LeaseKeeper};

use crate::bench::driver::{Session, Workload};
use crate::bench::options::LeaseKeepaliveOptions;
use crate::bench::BenchError;

/// The `lease-keepalive` workload.
pub struct LeaseKeepalive {
    ttl_secs: i64,
}

impl LeaseKeepalive {
    /// Validates the TTL.
    pub fn new(o: &LeaseKeepaliveOptions) -> Result<LeaseKeepalive, BenchError> {
        if o.ttl_secs <= 0 {
            return Err(BenchError::InvalidOptions(
                "--ttl-secs must be positive".into(),
            ));
        }
        Ok(LeaseKeepalive {
            ttl_secs: o.ttl_secs,
        })
    }
}

/// One client's lease and its keep-alive stream.
pub struct LeaseSession {
    lease: LeaseClient,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

impl Workload for LeaseKeepalive {
    type Conn = Client;
    type Session = LeaseSession;

    async fn open(&self, conn: Client, index: usize) -> Result<LeaseSession, BenchError> {
        let setup = |source| BenchError::Setup {
            what: format!("the lease of client {index}"),
            source,
        };
        let mut lease = conn.lease_client();
        let id = lease.grant(self.ttl_secs, None).await.map_err(setup)?.id();
        let (keeper, stream) = lease.keep_alive(id).await.map_err(setup)?;
        Ok(LeaseSession {
            lease,
            keeper,
            stream,
        })
    }
}

impl Session for LeaseSession {
    async fn call(&mut self, _seq: u64) -> Result<(), etcd_client::Error> {
        self.keeper.keep_alive().await?;
        match self.stream.message().await? {
            Some(r) if r.ttl() > 0 => Ok(()),
            Some(_) => Err(etcd_client::Error::LeaseKeepAliveError(format!(
                "lease {:x} expired or was revoked",
                self.keeper.id()
            ))),
            None => Err(etcd_client::Error::LeaseKeepAliveError(
                "the server closed the keep-alive stream".into(),
            )),
        }
    }

    async fn close(mut self) {
        // Best effort: a lease that cannot be revoked expires after its TTL anyway.
        let _ = self.lease.revoke(self.keeper.id()).await;
    }
}
