//! The history as a doubly-linked list of call and return entries, in time order.
//!
//! The search "lifts" an operation (unlinks its call and its return) when it linearizes it and
//! "unlifts" it (relinks both) when it backtracks. Lifts and unlifts happen in stack order, and
//! an unlinked node keeps its own `prev`/`next`, so relinking in reverse order restores the list
//! exactly (Knuth's dancing links) without allocating.

use crate::model::Operation;

/// One node of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The invocation of operation `op`; `ret` is the node of its return.
    Call { op: usize, ret: usize },
    /// The return of operation `op`.
    Return { op: usize },
}

/// The linked list. Nodes `[0, 2n)` are entries; `head` and `tail` are sentinels.
#[derive(Debug, Clone)]
pub(crate) struct EventList {
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
    tail: usize,
}

impl EventList {
    /// Builds the list for `ops`, whose indices become the entries' `op`.
    ///
    /// Events are ordered by history position; operations with no return get returns after
    /// everything, in operation order. At equal positions calls come first, so operations that
    /// share a timestamp count as concurrent.
    pub(crate) fn new<I, O>(ops: &[&Operation<I, O>]) -> Self {
        let mut events = Vec::with_capacity(2 * ops.len());
        for (index, op) in ops.iter().enumerate() {
            let ret = op.ret.unwrap_or(usize::MAX);
            assert!(
                ret >= op.call,
                "operation invoked at {} returns earlier, at {ret}",
                op.call
            );
            events.push((op.call, false, index));
            events.push((ret, true, index));
        }
        events.sort_unstable();
        let mut return_node = vec![0; ops.len()];
        for (node, &(_, is_return, op)) in events.iter().enumerate() {
            if is_return {
                return_node[op] = node;
            }
        }
        let entries = events
            .iter()
            .map(|&(_, is_return, op)| match is_return {
                true => Entry::Return { op },
                false => Entry::Call {
                    op,
                    ret: return_node[op],
                },
            })
            .collect();
        Self::link(entries)
    }

    fn link(entries: Vec<Entry>) -> Self {
        let count = entries.len();
        let (head, tail) = (count, count + 1);
        // The sentinels point at themselves at the ends, so only real links need care.
        let mut next: Vec<usize> = (0..count + 2).collect();
        let mut prev = next.clone();
        let order: Vec<usize> = std::iter::once(head)
            .chain(0..count)
            .chain([tail])
            .collect();
        for pair in order.windows(2) {
            next[pair[0]] = pair[1];
            prev[pair[1]] = pair[0];
        }
        EventList {
            entries,
            next,
            prev,
            head,
            tail,
        }
    }

    /// Whether every operation has been lifted. The search stops earlier (see `search`), so
    /// only tests need this.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.next[self.head] == self.tail
    }

    /// The first node; only meaningful when the list is not empty.
    pub(crate) fn first(&self) -> usize {
        self.next[self.head]
    }

    /// The node after `node`. Never the tail when called from a call entry, because the
    /// call's own return is still linked after it.
    pub(crate) fn next(&self, node: usize) -> usize {
        let next = self.next[node];
        assert_ne!(
            next, self.tail,
            "walked past the last entry; a call lost its return"
        );
        next
    }

    /// The entry at `node`.
    pub(crate) fn entry(&self, node: usize) -> Entry {
        self.entries[node]
    }

    /// Unlinks the call at `call` and its return.
    pub(crate) fn lift(&mut self, call: usize) {
        let Entry::Call { ret, .. } = self.entries[call] else {
            panic!("lift() of node {call}, which is not a call entry");
        };
        self.unlink(call);
        self.unlink(ret);
    }

    /// Relinks what [`EventList::lift`] of `call` unlinked; must undo the latest lift.
    pub(crate) fn unlift(&mut self, call: usize) {
        let Entry::Call { ret, .. } = self.entries[call] else {
            panic!("unlift() of node {call}, which is not a call entry");
        };
        self.relink(ret);
        self.relink(call);
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::op;

    fn walk(list: &EventList) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut node = list.next[list.head];
        while node != list.tail {
            out.push(list.entry(node));
            node = list.next[node];
        }
        out
    }

    /// Entries follow history positions, pending returns go last, and lifts undo exactly.
    #[test]
    fn order_and_lift_unlift() {
        let a = op(0, Some(3), (), ());
        let b = op(1, None, (), ());
        let c = op(2, Some(4), (), ());
        let mut list = EventList::new(&[&a, &b, &c]);
        let before = walk(&list);
        let ops: Vec<_> = before
            .iter()
            .map(|e| matches!(e, Entry::Return { .. }))
            .collect();
        assert_eq!(ops, vec![false, false, false, true, true, true]);
        assert_eq!(before[5], Entry::Return { op: 1 });
        list.lift(0);
        list.lift(2);
        assert_eq!(
            walk(&list),
            vec![Entry::Call { op: 1, ret: 5 }, Entry::Return { op: 1 }]
        );
        list.unlift(2);
        list.unlift(0);
        assert_eq!(walk(&list), before);
        list.lift(1);
        list.lift(0);
        list.lift(2);
        assert!(list.is_empty());
    }

    /// An empty partition gives an empty list.
    #[test]
    fn empty_list() {
        let list = EventList::new::<(), ()>(&[]);
        assert!(list.is_empty());
    }
}
