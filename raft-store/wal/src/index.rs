//! The log's index bookkeeping: which indexes `[first, next)` the log holds, how each operation
//! moves them, and which requests the caller may make. Pure code, no I/O.
//!
//! The same transitions run in three places, which is what makes recovery faithful:
//!
//! ```text
//!   Wal::append/truncate/purge ──validate_*──> apply_* on the in-memory log  (caller thread)
//!                │ queued request
//!                v
//!   writer thread ─── record on disk ──────> apply_* on the writer's state   (segment headers)
//!   Wal::open ─────── replay records ──────> apply_* on the recovered log
//! ```
//!
//! `validate_*` is strict (it rejects caller bugs); `apply_*` is total and lenient, because
//! recovery may start after purged segments were deleted and therefore know fewer old entries
//! than the live log did (see [`IndexState::apply_entry`]). The only thing `apply_*` rejects is
//! a forward gap, which no accepted request can produce.

use std::fmt;

/// The range of indexes `[first, next)` a log holds. Empty when `first == next`; `first` then
/// says where the log resumes (after a purge, or where the first segment started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexState {
    first: u64,
    next: u64,
}

/// A forward gap between the log's end and an entry: impossible for accepted requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    /// The index the entry should have had.
    pub expected: u64,
    /// The index it had.
    pub found: u64,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {} follows entry {}: indexes must be consecutive",
            self.found,
            self.expected - 1
        )
    }
}

impl IndexState {
    /// An empty log that resumes at `first`.
    pub(crate) fn empty_at(first: u64) -> IndexState {
        IndexState { first, next: first }
    }

    /// The first index held, if any.
    pub(crate) fn first_index(&self) -> Option<u64> {
        (!self.is_empty()).then_some(self.first)
    }

    /// The last index held, if any.
    pub(crate) fn last_index(&self) -> Option<u64> {
        (!self.is_empty()).then(|| self.next - 1)
    }

    /// Lowest index still held, or where an empty log resumes.
    pub(crate) fn first(&self) -> u64 {
        self.first
    }

    /// One past the last index held.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Number of entries held.
    pub(crate) fn len(&self) -> u64 {
        self.next - self.first
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first == self.next
    }

    /// Checks an append of `count` consecutive entries starting at `start` against the
    /// contract: a non-empty log accepts `first <= start <= next` (below `next` replaces the
    /// tail); an empty log accepts any `start >= first` (after a snapshot the log resumes
    /// wherever the caller says). Indexes stop at `u64::MAX - 1` so `next` never overflows.
    pub(crate) fn validate_append(&self, start: u64, count: u64) -> Result<(), String> {
        let last = start
            .checked_add(count.saturating_sub(1))
            .filter(|last| *last < u64::MAX)
            .ok_or_else(|| format!("entries {start}+{count} overflow the index space"))?;
        debug_assert!(last >= start);
        if start < self.first {
            return Err(format!(
                "entry {start} is below the first index {} (purged or never held)",
                self.first
            ));
        }
        if !self.is_empty() && start > self.next {
            return Err(format!(
                "entry {start} would leave a gap after the last index {}",
                self.next - 1
            ));
        }
        Ok(())
    }

    /// Checks `truncate(from)`: removing purged entries is a caller bug.
    pub(crate) fn validate_truncate(&self, from: u64) -> Result<(), String> {
        if from < self.first {
            return Err(format!(
                "cannot truncate from {from}: entries below {} were purged",
                self.first
            ));
        }
        Ok(())
    }

    /// Checks `purge(upto)`: anything below `u64::MAX` is acceptable, including beyond the
    /// last index (installing a snapshot newer than the whole log).
    pub(crate) fn validate_purge(&self, upto: u64) -> Result<(), String> {
        if upto == u64::MAX {
            return Err("cannot purge up to u64::MAX: the log could not resume".to_string());
        }
        Ok(())
    }

    /// Applies one entry at `index`: below `next` it replaces the tail from `index`; an empty
    /// log restarts at `index`. Below `first` (only seen during recovery, when the entries it
    /// replaces sat in deleted segments and were all purged) the log restarts at `index` too.
    pub(crate) fn apply_entry(&mut self, index: u64) -> Result<(), Gap> {
        assert!(index < u64::MAX, "entry index u64::MAX passed validation");
        if !self.is_empty() && index > self.next {
            return Err(Gap {
                expected: self.next,
                found: index,
            });
        }
        if self.is_empty() || index < self.first {
            self.first = index;
        }
        self.next = index + 1;
        Ok(())
    }

    /// Drops every index `>= from`. Below `first` (recovery only, see
    /// [`IndexState::apply_entry`]) the log becomes empty and resumes at `from`.
    pub(crate) fn apply_truncate(&mut self, from: u64) {
        if from < self.first {
            *self = IndexState::empty_at(from);
        } else if from < self.next {
            self.next = from;
        }
    }

    /// Drops every index `<= upto`; beyond the last index the log becomes empty and resumes at
    /// `upto + 1`.
    pub(crate) fn apply_purge(&mut self, upto: u64) {
        assert!(upto < u64::MAX, "purge up to u64::MAX passed validation");
        let new_first = upto + 1;
        if new_first > self.first {
            self.first = new_first;
            self.next = self.next.max(new_first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(first: u64, next: u64) -> IndexState {
        IndexState { first, next }
    }

    // Appending at next extends, below next replaces the tail, beyond next is a gap.
    #[test]
    fn entries_extend_replace_or_gap() {
        let mut s = state(5, 10);
        s.apply_entry(10).unwrap();
        assert_eq!(s, state(5, 11));
        s.apply_entry(7).unwrap();
        assert_eq!(s, state(5, 8));
        assert_eq!(
            s.apply_entry(9),
            Err(Gap {
                expected: 8,
                found: 9
            })
        );
    }

    // An empty log accepts any first entry, and a fresh log starts wherever the caller does.
    #[test]
    fn empty_log_restarts_anywhere() {
        let mut s = IndexState::empty_at(0);
        s.apply_entry(1).unwrap();
        assert_eq!((s.first_index(), s.last_index()), (Some(1), Some(1)));
        let mut s = IndexState::empty_at(20);
        s.apply_entry(25).unwrap();
        assert_eq!(s, state(25, 26));
    }

    // Truncate cuts the tail; beyond the end it is a no-op; below first it empties (recovery).
    #[test]
    fn truncate_cases() {
        let mut s = state(5, 10);
        s.apply_truncate(12);
        assert_eq!(s, state(5, 10));
        s.apply_truncate(7);
        assert_eq!(s, state(5, 7));
        s.apply_truncate(2);
        assert_eq!(s, state(2, 2));
    }

    // Purge drops a prefix; beyond the end it empties the log and moves where it resumes.
    #[test]
    fn purge_cases() {
        let mut s = state(5, 10);
        s.apply_purge(3);
        assert_eq!(s, state(5, 10));
        s.apply_purge(7);
        assert_eq!(s, state(8, 10));
        s.apply_purge(20);
        assert_eq!(s, state(21, 21));
        assert!(s.is_empty());
    }

    // The strict checks reject caller bugs that the lenient transitions would absorb.
    #[test]
    fn validation_rejects_caller_bugs() {
        let s = state(5, 10);
        assert!(s.validate_append(10, 3).is_ok());
        assert!(s.validate_append(5, 1).is_ok());
        assert!(s.validate_append(4, 1).is_err(), "below first");
        assert!(s.validate_append(11, 1).is_err(), "gap");
        assert!(s.validate_append(u64::MAX - 1, 2).is_err(), "overflow");
        assert!(
            state(21, 21).validate_append(30, 1).is_ok(),
            "empty log resumes anywhere"
        );
        assert!(
            state(21, 21).validate_append(20, 1).is_err(),
            "but not below a purge"
        );
        assert!(s.validate_truncate(4).is_err());
        assert!(s.validate_truncate(5).is_ok());
        assert!(s.validate_purge(u64::MAX).is_err());
    }
}
