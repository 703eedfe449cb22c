//! The in-memory copy of the unpurged log that serves every read, like etcd raft's
//! `MemoryStorage`. Pure code, no I/O.
//!
//! Its memory is bounded by the caller's purge policy, not by the WAL: every entry stays here
//! until `purge` covers it. That is the same contract openraft's log store has with its
//! snapshot policy, and it is what lets reads never touch the disk.

use std::collections::VecDeque;

use crate::index::{Gap, IndexState};
use crate::Payload;

/// Entries `[index.first(), index.next())`, `entries[k]` holding index `index.first() + k`.
#[derive(Debug)]
pub(crate) struct MemLog {
    index: IndexState,
    entries: VecDeque<Payload>,
}

impl MemLog {
    /// An empty log that resumes at `first`.
    pub(crate) fn empty_at(first: u64) -> MemLog {
        MemLog {
            index: IndexState::empty_at(first),
            entries: VecDeque::new(),
        }
    }

    /// The index bookkeeping, for validation and reporting.
    pub(crate) fn index(&self) -> &IndexState {
        &self.index
    }

    /// Applies one entry with the transition rules of [`IndexState::apply_entry`].
    pub(crate) fn apply_entry(&mut self, index: u64, payload: Payload) -> Result<(), Gap> {
        let before = self.index;
        self.index.apply_entry(index)?;
        if self.index.first() == before.first() {
            let keep = (index - before.first()) as usize;
            self.entries.truncate(keep);
        } else {
            self.entries.clear();
        }
        self.entries.push_back(payload);
        self.check();
        Ok(())
    }

    /// Applies [`IndexState::apply_truncate`].
    pub(crate) fn apply_truncate(&mut self, from: u64) {
        self.index.apply_truncate(from);
        self.entries.truncate(self.index.len() as usize);
        self.check();
    }

    /// Applies [`IndexState::apply_purge`].
    pub(crate) fn apply_purge(&mut self, upto: u64) {
        let before = self.index;
        self.index.apply_purge(upto);
        let dropped = (self.index.first() - before.first()).min(before.len()) as usize;
        self.entries.drain(..dropped);
        self.check();
    }

    /// Entries with index in `[lo, hi)` that the log holds, in index order.
    pub(crate) fn read(&self, lo: u64, hi: u64) -> Vec<(u64, Payload)> {
        let lo = lo.max(self.index.first());
        let hi = hi.min(self.index.next());
        if lo >= hi {
            return Vec::new();
        }
        let start = (lo - self.index.first()) as usize;
        let end = (hi - self.index.first()) as usize;
        self.entries
            .range(start..end)
            .zip(lo..)
            .map(|(payload, index)| (index, payload.clone()))
            .collect()
    }

    /// The index bookkeeping and the stored entries must always agree.
    fn check(&self) {
        assert_eq!(
            self.entries.len() as u64,
            self.index.len(),
            "in-memory log holds a different number of entries than its index range {:?}",
            self.index
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(index: u64) -> Payload {
        Payload::from(index.to_le_bytes().to_vec())
    }

    fn indexes(log: &MemLog) -> Vec<u64> {
        log.read(0, u64::MAX).into_iter().map(|(i, _)| i).collect()
    }

    // Replacing from a lower index drops the old tail and keeps the prefix with its payloads.
    #[test]
    fn replace_keeps_prefix() {
        let mut log = MemLog::empty_at(1);
        for i in 1..=5 {
            log.apply_entry(i, p(i)).unwrap();
        }
        log.apply_entry(3, p(30)).unwrap();
        assert_eq!(indexes(&log), vec![1, 2, 3]);
        assert_eq!(&*log.read(3, 4)[0].1, &30u64.to_le_bytes());
        assert_eq!(&*log.read(2, 3)[0].1, &2u64.to_le_bytes());
    }

    // Reads clamp to what is held; purge and truncate shrink both ends.
    #[test]
    fn read_purge_truncate() {
        let mut log = MemLog::empty_at(10);
        for i in 10..20 {
            log.apply_entry(i, p(i)).unwrap();
        }
        assert_eq!(indexes(&log), (10..20).collect::<Vec<_>>());
        assert_eq!(log.read(18, 100).len(), 2);
        assert!(log.read(30, 40).is_empty());
        log.apply_purge(12);
        log.apply_truncate(15);
        assert_eq!(indexes(&log), vec![13, 14]);
        log.apply_purge(100);
        assert!(indexes(&log).is_empty());
        assert_eq!(log.index().next(), 101);
    }
}
