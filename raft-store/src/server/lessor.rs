//! Lease deadlines: which lease expires when. Pure bookkeeping with time passed in; the
//! server's expiry task and the gRPC handlers drive it.
//!
//! Leases themselves (id, granted TTL, attached keys) are replicated state in the MVCC
//! store. Deadlines are not: like etcd, only the leader keeps time. Every member tracks the
//! set of leases through apply hooks, and when a member becomes leader it gives every lease
//! a fresh full TTL (`promote`), so no lease expires because of an election. Only the
//! leader proposes revokes for expired leases.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an expired lease is left alone after its revoke was proposed, before the
/// revoke is proposed again (the first proposal may have been lost in a leader change).
const REVOKE_RETRY: Duration = Duration::from_secs(3);

/// The largest TTL etcd accepts, in seconds.
pub const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000;

#[derive(Debug, Clone, Copy)]
struct LeaseTime {
    ttl_secs: i64,
    deadline: Instant,
}

#[derive(Default)]
struct State {
    leases: HashMap<i64, LeaseTime>,
    primary: bool,
}

/// Lease deadlines of one member.
#[derive(Default)]
pub struct Lessor {
    state: Mutex<State>,
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

impl Lessor {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("lessor lock poisoned")
    }

    /// A lease was granted (applied from the log).
    pub fn granted(&self, id: i64, ttl_secs: i64, now: Instant) {
        self.lock().leases.insert(
            id,
            LeaseTime {
                ttl_secs,
                deadline: now + secs(ttl_secs),
            },
        );
    }

    /// A lease was revoked (applied from the log).
    pub fn revoked(&self, id: i64) {
        self.lock().leases.remove(&id);
    }

    /// Replaces the tracked set (at start-up and after a snapshot install).
    pub fn reset(&self, leases: impl IntoIterator<Item = (i64, i64)>, now: Instant) {
        let mut st = self.lock();
        st.leases = leases
            .into_iter()
            .map(|(id, ttl_secs)| {
                (
                    id,
                    LeaseTime {
                        ttl_secs,
                        deadline: now + secs(ttl_secs),
                    },
                )
            })
            .collect();
    }

    /// This member became leader: every lease gets its full TTL again.
    pub fn promote(&self, now: Instant) {
        let mut st = self.lock();
        st.primary = true;
        for l in st.leases.values_mut() {
            l.deadline = now + secs(l.ttl_secs);
        }
    }

    /// This member stopped leading.
    pub fn demote(&self) {
        self.lock().primary = false;
    }

    /// Whether this member currently keeps lease time.
    pub fn is_primary(&self) -> bool {
        self.lock().primary
    }

    /// Renews a lease; returns its TTL, or `None` if it does not exist.
    pub fn renew(&self, id: i64, now: Instant) -> Option<i64> {
        let mut st = self.lock();
        let l = st.leases.get_mut(&id)?;
        l.deadline = now + secs(l.ttl_secs);
        Some(l.ttl_secs)
    }

    /// Seconds left before the lease expires (rounded up), or `None` if unknown.
    pub fn remaining(&self, id: i64, now: Instant) -> Option<i64> {
        let st = self.lock();
        let l = st.leases.get(&id)?;
        let left = l.deadline.saturating_duration_since(now);
        Some(left.as_millis().div_ceil(1000) as i64)
    }

    /// Leases past their deadline, at most `max`; each is held back for `REVOKE_RETRY` so it
    /// is not proposed again while its revoke is in flight.
    pub fn take_expired(&self, now: Instant, max: usize) -> Vec<i64> {
        let mut st = self.lock();
        if !st.primary {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (id, l) in st.leases.iter_mut() {
            if out.len() >= max {
                break;
            }
            if l.deadline <= now {
                l.deadline = now + REVOKE_RETRY;
                out.push(*id);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Only a primary lessor reports expired leases, and each once per retry interval.
    #[test]
    fn expiry_only_on_primary_and_once() {
        let l = Lessor::default();
        let t0 = Instant::now();
        l.granted(7, 2, t0);
        assert!(
            l.take_expired(t0 + secs(3), 10).is_empty(),
            "followers never expire leases"
        );
        l.promote(t0);
        assert!(l.take_expired(t0 + secs(1), 10).is_empty());
        assert_eq!(l.take_expired(t0 + secs(3), 10), vec![7]);
        assert!(
            l.take_expired(t0 + secs(4), 10).is_empty(),
            "held back while the revoke is in flight"
        );
        assert_eq!(l.take_expired(t0 + secs(7), 10), vec![7]);
    }

    // A new leader gives every lease a full TTL, so an election never expires a lease.
    #[test]
    fn promote_extends_every_lease() {
        let l = Lessor::default();
        let t0 = Instant::now();
        l.granted(1, 10, t0);
        let later = t0 + secs(9);
        l.promote(later);
        assert_eq!(l.remaining(1, later), Some(10));
        assert!(l.take_expired(later + secs(5), 10).is_empty());
    }

    // Renewing resets the deadline; unknown leases are reported as such.
    #[test]
    fn renew_and_unknown() {
        let l = Lessor::default();
        let t0 = Instant::now();
        l.granted(1, 5, t0);
        l.promote(t0);
        assert_eq!(l.renew(1, t0 + secs(4)), Some(5));
        assert_eq!(l.remaining(1, t0 + secs(4)), Some(5));
        assert_eq!(l.renew(2, t0), None);
        l.revoked(1);
        assert_eq!(l.remaining(1, t0), None);
    }
}
