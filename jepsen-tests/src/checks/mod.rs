//! Checkers other than the linearizability search, each a pure function from what the
//! workload observed to a [`crate::report::CheckerResult`].
//!
//! * [`watch`]: every watcher's events are a gap-free, duplicate-free prefix of one canonical
//!   sequence that holds every acknowledged write.
//! * [`append`]: list-append transactions are strictly serializable (an Elle-style cycle
//!   search over write-write, write-read, read-write and real-time dependencies).
//! * [`lease`]: keys on a lease that was left to expire are gone; keys on a lease that was
//!   kept alive never disappear.

pub mod append;
pub mod lease;
pub mod watch;
