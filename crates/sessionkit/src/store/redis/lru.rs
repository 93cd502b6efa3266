//! A bounded least-recently-used map: the client cache's memory bound.
//!
//! A hash map from key to a slot in a vector, plus a doubly linked list
//! through the slots (indices, no pointers) in recency order. Every operation
//! is O(1); a full map evicts its least recently used entry on insert. No
//! `unsafe`, no dependency.

use std::collections::HashMap;

const NIL: usize = usize::MAX;

struct Node<V> {
    key: Box<str>,
    value: V,
    /// Towards the most recently used end.
    prev: usize,
    /// Towards the least recently used end.
    next: usize,
}

/// A map holding at most `capacity` entries, evicting the least recently
/// used (looked up with [`get_mut`](Self::get_mut) or inserted) first.
pub(super) struct Lru<V> {
    map: HashMap<Box<str>, usize>,
    nodes: Vec<Option<Node<V>>>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
    capacity: usize,
}

impl<V> Lru<V> {
    /// An empty map holding at most `capacity` (at least 1) entries.
    pub(super) fn new(capacity: usize) -> Self {
        Lru {
            map: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity: capacity.max(1),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// The value under `key`, marked most recently used.
    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let i = *self.map.get(key)?;
        self.unlink(i);
        self.push_front(i);
        self.nodes[i].as_mut().map(|n| &mut n.value)
    }

    /// Inserts or replaces `key`, marking it most recently used; evicts the
    /// least recently used entry when the map is full.
    pub(super) fn insert(&mut self, key: &str, value: V) {
        if let Some(&i) = self.map.get(key) {
            if let Some(n) = self.nodes[i].as_mut() {
                n.value = value;
            }
            self.unlink(i);
            self.push_front(i);
            return;
        }
        if self.map.len() >= self.capacity {
            let lru = self.tail;
            if let Some(n) = self.take(lru) {
                self.map.remove(&n.key);
            }
        }
        let key: Box<str> = key.into();
        let node = Node {
            key: key.clone(),
            value,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = Some(node);
                i
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.push_front(i);
        self.map.insert(key, i);
    }

    /// Removes `key`; returns its value.
    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        let i = self.map.remove(key)?;
        self.take(i).map(|n| n.value)
    }

    /// Removes everything (and frees the memory).
    pub(super) fn clear(&mut self) {
        self.map = HashMap::new();
        self.nodes = Vec::new();
        self.free = Vec::new();
        self.head = NIL;
        self.tail = NIL;
    }

    /// Unlinks slot `i` and frees it; the caller removes its map entry.
    fn take(&mut self, i: usize) -> Option<Node<V>> {
        if i == NIL || self.nodes.get(i).is_none_or(Option::is_none) {
            return None;
        }
        self.unlink(i);
        self.free.push(i);
        self.nodes[i].take()
    }

    fn unlink(&mut self, i: usize) {
        let Some((prev, next)) = self.nodes[i].as_ref().map(|n| (n.prev, n.next)) else {
            return;
        };
        match prev {
            NIL => self.head = next,
            p => self.set_next(p, next),
        }
        match next {
            NIL => self.tail = prev,
            n => self.set_prev(n, prev),
        }
        self.set_prev(i, NIL);
        self.set_next(i, NIL);
    }

    fn push_front(&mut self, i: usize) {
        let old = self.head;
        self.set_next(i, old);
        self.set_prev(i, NIL);
        if old != NIL {
            self.set_prev(old, i);
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    fn set_prev(&mut self, i: usize, to: usize) {
        if let Some(n) = self.nodes[i].as_mut() {
            n.prev = to;
        }
    }

    fn set_next(&mut self, i: usize, to: usize) {
        if let Some(n) = self.nodes[i].as_mut() {
            n.next = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut lru = Lru::new(3);
        for k in ["a", "b", "c"] {
            lru.insert(k, k.to_owned());
        }
        assert!(lru.get_mut("a").is_some()); // order now: a c b
        lru.insert("d", "d".to_owned()); // evicts b
        assert!(lru.get_mut("b").is_none());
        assert_eq!(lru.len(), 3);
        lru.insert("c", "C".to_owned()); // replace: order c d a
        lru.insert("e", "e".to_owned()); // evicts a
        assert!(lru.get_mut("a").is_none());
        assert_eq!(lru.get_mut("c").map(|v| v.clone()), Some("C".to_owned()));
        assert_eq!(lru.remove("d"), Some("d".to_owned()));
        assert_eq!(lru.len(), 2);
        lru.clear();
        assert_eq!(lru.len(), 0);
        lru.insert("x", String::new());
        assert_eq!(lru.len(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Get(u8),
        Insert(u8),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..12).prop_map(Op::Get),
            (0u8..12).prop_map(Op::Insert),
            (0u8..12).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Same answers as a naive model (a vector in recency order), and never over capacity.
        #[test]
        fn behaves_like_a_naive_lru(cap in 1usize..6, ops in proptest::collection::vec(op(), 0..200)) {
            let mut lru = Lru::new(cap);
            let mut model: Vec<(String, u32)> = Vec::new(); // most recent first
            for (n, op) in ops.into_iter().enumerate() {
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                match op {
                    Op::Get(k) => {
                        let k = k.to_string();
                        let got = lru.get_mut(&k).map(|v| *v);
                        let want = model.iter().position(|(mk, _)| *mk == k).map(|i| {
                            let e = model.remove(i);
                            let v = e.1;
                            model.insert(0, e);
                            v
                        });
                        prop_assert_eq!(got, want);
                    }
                    Op::Insert(k) => {
                        let k = k.to_string();
                        lru.insert(&k, n);
                        if let Some(i) = model.iter().position(|(mk, _)| *mk == k) {
                            model.remove(i);
                        } else if model.len() >= cap {
                            model.pop();
                        }
                        model.insert(0, (k, n));
                    }
                    Op::Remove(k) => {
                        let k = k.to_string();
                        let want = model.iter().position(|(mk, _)| *mk == k).map(|i| model.remove(i).1);
                        prop_assert_eq!(lru.remove(&k), want);
                    }
                }
                prop_assert!(lru.len() <= cap);
                prop_assert_eq!(lru.len(), model.len());
            }
        }
    }
}
