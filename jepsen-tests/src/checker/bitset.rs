//! A fixed-size bitset of `u64` words: the set of operations linearized so far.
//!
//! It is half of every cache key, so it is kept compact (one bit per operation, no length
//! field) and hashes and compares as a plain word slice.

/// A set of operation indices below a capacity fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Bitset {
    words: Box<[u64]>,
}

impl Bitset {
    /// An empty set able to hold indices `[0, capacity)`.
    pub(crate) fn new(capacity: usize) -> Self {
        Bitset {
            words: vec![0; capacity.div_ceil(64)].into_boxed_slice(),
        }
    }

    /// Adds `index`.
    pub(crate) fn insert(&mut self, index: usize) {
        self.words[index / 64] |= 1 << (index % 64);
    }

    /// Removes `index`.
    pub(crate) fn remove(&mut self, index: usize) {
        self.words[index / 64] &= !(1 << (index % 64));
    }

    /// The members of `self` that are not in `mask`. Both must have the same capacity.
    pub(crate) fn difference(&self, mask: &Bitset) -> Bitset {
        let words = self
            .words
            .iter()
            .zip(mask.words.iter())
            .map(|(a, m)| a & !m)
            .collect();
        Bitset { words }
    }

    /// The members of `self` that are also in `mask`. Both must have the same capacity.
    pub(crate) fn intersection(&self, mask: &Bitset) -> Bitset {
        let words = self
            .words
            .iter()
            .zip(mask.words.iter())
            .map(|(a, m)| a & m)
            .collect();
        Bitset { words }
    }

    /// Whether every member of `self` is in `other`. Both must have the same capacity.
    pub(crate) fn is_subset(&self, other: &Bitset) -> bool {
        self.words
            .iter()
            .zip(other.words.iter())
            .all(|(a, b)| a & !b == 0)
    }

    /// Bytes the set owns on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.words)
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.words.iter().all(|&word| word == 0)
    }

    /// Whether `index` is in the set.
    pub(crate) fn contains(&self, index: usize) -> bool {
        self.words[index / 64] & (1 << (index % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::Bitset;

    /// Bits in different words are independent, and equal sets compare equal.
    #[test]
    fn insert_remove_contains() {
        let mut a = Bitset::new(130);
        a.insert(0);
        a.insert(64);
        a.insert(129);
        assert!(a.contains(64) && a.contains(129) && !a.contains(63));
        a.remove(64);
        assert!(!a.contains(64));
        let mut b = Bitset::new(130);
        b.insert(129);
        b.insert(0);
        assert_eq!(a, b);
    }

    /// Set algebra works word by word across the whole capacity.
    #[test]
    fn difference_intersection_subset() {
        let mut set = Bitset::new(100);
        let mut mask = Bitset::new(100);
        for i in [1, 70, 99] {
            set.insert(i);
        }
        for i in [70, 80] {
            mask.insert(i);
        }
        let outside = set.difference(&mask);
        let inside = set.intersection(&mask);
        assert!(outside.contains(1) && outside.contains(99) && !outside.contains(70));
        assert!(inside.contains(70) && !inside.contains(1));
        assert!(inside.is_subset(&mask) && inside.is_subset(&set) && !set.is_subset(&mask));
        assert!(Bitset::new(100).is_empty() && !inside.is_empty());
    }
}
