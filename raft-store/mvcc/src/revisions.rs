//! The in-memory revision index: for every key with history, the revisions of its changes
//! (puts and tombstones) that compaction has not removed, like etcd's `treeIndex`. It answers
//! "which version of this key is live at revision R" for every read (the latest state
//! included), watch `prev_kv`, HashKV and compaction; the record itself is in the history
//! table.
//!
//! Layout 1 kept this in RocksDB, as a `k` table (key → latest version) and an `i` table
//! ((key, revision) → kind): two more memtable inserts per change, at random positions of
//! the skiplist, about 40% of a follower's CPU at 1,000 clients. Like the key index
//! (`index.rs`), this is derived state, never persisted: `Engine::rebuild_indexes` reads the
//! history table when a database opens.
//!
//! Concurrency (see `engine.rs`): the single writer appends each commit's changes under the
//! index's write lock *before* the commit's revision is published, so a reader at revision R
//! finds every change up to R; it ignores the newer ones. Removal after a compaction is
//! deferred until no RocksDB snapshot older than the compaction is alive, so a reader never
//! loses an entry it could need (see `Engine::prune_when_safe`).
//!
//! Memory: about 120 bytes per key with one change (map node share, the boxed key, the
//! change list), 24 more per further change kept; with 1M keys a member's RSS grew by ~105
//! MiB against layout 1, whose memtables held the `k` and `i` rows instead.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::record::Kind;
use crate::view::{KeyRange, Rev};

/// One change of a key: its revision and whether it put or deleted the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The revision of the change.
    pub rev: Rev,
    /// Put or tombstone.
    pub kind: Kind,
}

/// A committed change as the writer hands it to the index: (key, revision, kind).
pub type KeyChange = (Vec<u8>, Rev, Kind);

/// Changes removed by compaction: (key, revision).
pub type Compacted = Vec<(Vec<u8>, Rev)>;

/// key → its changes in ascending revision order (never empty).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RevisionIndex {
    keys: BTreeMap<Box<[u8]>, Vec<Change>>,
}

/// What one call of [`RevisionIndex::live_at`] found.
pub struct LiveChunk {
    /// Keys live at the revision, in key order, with the revision of their live version.
    pub live: Vec<(Vec<u8>, Rev)>,
    /// The last key examined if the range may hold more keys: resume after it.
    pub resume_after: Option<Vec<u8>>,
}

impl RevisionIndex {
    /// Records a change of `key`. Changes of one key arrive in ascending revision order (the
    /// writer commits in order; the history table is read in order).
    pub fn push(&mut self, key: &[u8], rev: Rev, kind: Kind) {
        let change = Change { rev, kind };
        match self.keys.get_mut(key) {
            Some(changes) => {
                let last = changes.last().expect("a key's change list is never empty");
                assert!(
                    last.rev < rev,
                    "change {rev:?} of {key:?} after {:?}",
                    last.rev
                );
                changes.push(change);
            }
            None => {
                // Most keys change once before a compaction: no spare capacity.
                self.keys.insert(key.into(), vec![change]);
            }
        }
    }

    /// The newest change of `key` at or before revision `at`.
    pub fn version_at(&self, key: &[u8], at: i64) -> Option<Change> {
        newest_at(self.keys.get(key)?, at)
    }

    /// Examines at most `max_examined` (≥ 1) keys of `range` after `after` (exclusive;
    /// `None`: from the start of the range) and returns those live at `at` (their newest change
    /// at or before `at` is a put).
    pub fn live_at(
        &self,
        at: i64,
        range: &KeyRange,
        after: Option<&[u8]>,
        max_examined: usize,
    ) -> LiveChunk {
        let mut chunk = LiveChunk {
            live: Vec::new(),
            resume_after: None,
        };
        let lo = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Included(range.start.as_slice()),
        };
        let start = after.unwrap_or(range.start.as_slice());
        if range.end.as_deref().is_some_and(|end| end <= start) {
            // Empty (BTreeMap::range panics on an inverted range).
            return chunk;
        }
        let hi = match &range.end {
            Some(end) => Bound::Excluded(end.as_slice()),
            None => Bound::Unbounded,
        };
        let mut keys = self.keys.range::<[u8], _>((lo, hi));
        let mut last = None;
        for (key, changes) in keys.by_ref().take(max_examined.max(1)) {
            if let Some(Change {
                rev,
                kind: Kind::Put,
            }) = newest_at(changes, at)
            {
                chunk.live.push((key.to_vec(), rev));
            }
            last = Some(key);
        }
        if keys.next().is_some() {
            chunk.resume_after = last.map(|key| key.to_vec());
        }
        chunk
    }

    /// Removes compacted changes; a key goes when it has no changes left. One pass over each
    /// key's list however many of its changes go (a key written a million times between two
    /// compactions loses them all at once). Panics if a change is not indexed: the caller
    /// found every one in this index.
    pub fn remove(&mut self, mut compacted: Compacted) {
        compacted.sort_unstable();
        for group in compacted.chunk_by(|a, b| a.0 == b.0) {
            let key = group[0].0.as_slice();
            let changes = self
                .keys
                .get_mut(key)
                .unwrap_or_else(|| panic!("compacted {key:?}@{:?} is not indexed", group[0].1));
            let before = changes.len();
            changes.retain(|c| group.binary_search_by(|(_, r)| r.cmp(&c.rev)).is_err());
            assert_eq!(
                before - changes.len(),
                group.len(),
                "compacted changes of {key:?} are not all indexed"
            );
            if changes.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// Number of keys with indexed changes.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The newest of `changes` (ascending) at or before revision `at`.
fn newest_at(changes: &[Change], at: i64) -> Option<Change> {
    let n = changes.partition_point(|c| c.rev.main <= at);
    n.checked_sub(1).map(|i| changes[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Rev {
        Rev { main, sub: 0 }
    }

    /// a: put@2, put@4, deleted@6; b: put@3; c: put@7.
    fn sample() -> RevisionIndex {
        let mut idx = RevisionIndex::default();
        idx.push(b"a", rev(2), Kind::Put);
        idx.push(b"b", rev(3), Kind::Put);
        idx.push(b"a", rev(4), Kind::Put);
        idx.push(b"a", rev(6), Kind::Tombstone);
        idx.push(b"c", rev(7), Kind::Put);
        idx
    }

    // The newest change at or before a revision, tombstones included.
    #[test]
    fn version_at_picks_the_newest_change_not_after_the_revision() {
        let idx = sample();
        assert_eq!(idx.version_at(b"a", 1), None);
        assert_eq!(idx.version_at(b"a", 3).map(|c| c.rev), Some(rev(2)));
        assert_eq!(idx.version_at(b"a", 5).map(|c| c.rev), Some(rev(4)));
        assert_eq!(
            idx.version_at(b"a", 6),
            Some(Change {
                rev: rev(6),
                kind: Kind::Tombstone
            })
        );
        assert_eq!(idx.version_at(b"zz", 9), None);
    }

    fn keys(chunk: &LiveChunk) -> Vec<(&[u8], i64)> {
        chunk
            .live
            .iter()
            .map(|(k, r)| (k.as_slice(), r.main))
            .collect()
    }

    // Live keys at a revision: not yet created and deleted keys are left out.
    #[test]
    fn live_at_lists_the_keys_live_at_the_revision() {
        let idx = sample();
        let all = KeyRange::from_request(b"", b"\0");
        let at5 = idx.live_at(5, &all, None, 100);
        assert_eq!(keys(&at5), vec![(&b"a"[..], 4), (&b"b"[..], 3)]);
        assert!(at5.resume_after.is_none());
        let at7 = idx.live_at(7, &all, None, 100);
        assert_eq!(keys(&at7), vec![(&b"b"[..], 3), (&b"c"[..], 7)]);
        let only_b = idx.live_at(7, &KeyRange::single(b"b"), None, 100);
        assert_eq!(keys(&only_b), vec![(&b"b"[..], 3)]);
        let empty = idx.live_at(7, &KeyRange::from_request(b"c", b"a"), None, 100);
        assert!(empty.live.is_empty() && empty.resume_after.is_none());
    }

    // A scan in chunks resumes after the last key examined, dead keys included.
    #[test]
    fn live_at_resumes_in_chunks() {
        let idx = sample();
        let all = KeyRange::from_request(b"", b"\0");
        let first = idx.live_at(7, &all, None, 1);
        assert!(first.live.is_empty(), "a is deleted at 7");
        assert_eq!(first.resume_after.as_deref(), Some(&b"a"[..]));
        let second = idx.live_at(7, &all, first.resume_after.as_deref(), 1);
        assert_eq!(keys(&second), vec![(&b"b"[..], 3)]);
        let third = idx.live_at(7, &all, second.resume_after.as_deref(), 1);
        assert_eq!(keys(&third), vec![(&b"c"[..], 7)]);
        assert!(third.resume_after.is_none(), "nothing after c");
        let bounded = KeyRange::from_request(b"a", b"c");
        let past_end = idx.live_at(7, &bounded, Some(b"b"), 1);
        assert!(past_end.live.is_empty() && past_end.resume_after.is_none());
    }

    // Removing compacted changes, in any order and several keys at once; a key with none
    // left disappears.
    #[test]
    fn remove_drops_changes_then_the_key() {
        let mut idx = sample();
        idx.remove(vec![(b"a".to_vec(), rev(4)), (b"a".to_vec(), rev(2))]);
        assert_eq!(idx.version_at(b"a", 5), None);
        assert_eq!(idx.version_at(b"a", 6).map(|c| c.rev), Some(rev(6)));
        assert_eq!(idx.len(), 3);
        idx.remove(vec![(b"c".to_vec(), rev(7)), (b"a".to_vec(), rev(6))]);
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.version_at(b"b", 9).map(|c| c.rev), Some(rev(3)));
    }

    #[test]
    #[should_panic(expected = "not all indexed")]
    fn removing_an_unindexed_change_panics() {
        let mut idx = sample();
        idx.remove(vec![(b"a".to_vec(), rev(3))]);
    }

    #[test]
    #[should_panic(expected = "after")]
    fn changes_must_arrive_in_order() {
        let mut idx = sample();
        idx.push(b"a", rev(5), Kind::Put);
    }
}
