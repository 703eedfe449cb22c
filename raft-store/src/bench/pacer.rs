//! `--rate`: hands out evenly spaced send slots to all client tasks.
//!
//! The decision ([`Schedule::reserve`]) is a pure function of the current time: a slot is
//! the later of "now" and "one interval after the previous slot". A client that falls
//! behind therefore never earns a burst of catch-up requests (like a token bucket of depth
//! one, which is what etcd's benchmark uses), and the offered rate never exceeds `--rate`.

use std::sync::Mutex;
use std::time::Duration;

// tokio's clock, which `sleep_until` takes.
use tokio::time::Instant;

/// The slot bookkeeping, in nanoseconds since the pacer's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    interval_ns: u64,
    next_ns: u64,
}

impl Schedule {
    /// A schedule of `per_sec` slots per second (at least 1).
    pub fn new(per_sec: u64) -> Schedule {
        Schedule {
            interval_ns: 1_000_000_000 / per_sec.clamp(1, 1_000_000_000),
            next_ns: 0,
        }
    }

    /// Takes the next slot for a caller asking at `now_ns`; returns when it may send.
    pub fn reserve(&mut self, now_ns: u64) -> u64 {
        let slot = self.next_ns.max(now_ns);
        self.next_ns = slot + self.interval_ns;
        slot
    }
}

/// A [`Schedule`] shared by all client tasks of a run.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    schedule: Mutex<Schedule>,
}

impl Pacer {
    /// A pacer of `per_sec` requests per second starting now.
    pub fn new(per_sec: u64) -> Pacer {
        Pacer {
            start: Instant::now(),
            schedule: Mutex::new(Schedule::new(per_sec)),
        }
    }

    /// Waits until the caller's slot.
    pub async fn wait(&self) {
        let now_ns = self.start.elapsed().as_nanos() as u64;
        // The lock is held for two integer operations, never across an await.
        let slot = self
            .schedule
            .lock()
            .expect("pacer lock poisoned")
            .reserve(now_ns);
        if slot > now_ns {
            tokio::time::sleep_until(self.start + Duration::from_nanos(slot)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Callers arriving together get slots one interval apart.
    #[test]
    fn slots_are_spaced() {
        let mut s = Schedule::new(1000); // 1 ms apart
        assert_eq!(s.reserve(0), 0);
        assert_eq!(s.reserve(0), 1_000_000);
        assert_eq!(s.reserve(10), 2_000_000);
    }

    // A late caller goes at once, and the time it lost is not made up by a burst.
    #[test]
    fn late_callers_do_not_burst() {
        let mut s = Schedule::new(1000);
        s.reserve(0);
        assert_eq!(s.reserve(50_000_000), 50_000_000);
        assert_eq!(s.reserve(50_000_000), 51_000_000);
    }

    // Waiting callers are held to --rate (real time; only the lower bound is asserted, so a
    // slow machine cannot fail it).
    #[tokio::test]
    async fn pacer_holds_callers_back() {
        let p = Pacer::new(1000);
        let start = Instant::now();
        for _ in 0..51 {
            p.wait().await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(50), "{took:?}");
    }
}
