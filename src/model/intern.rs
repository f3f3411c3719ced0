//! Shared copies of strings many live alerts repeat (a rule's category, a
//! Prometheus rule's `generatorURL`): equal strings share one allocation.
//!
//! Contract: [`Interner::get`] returns an `Arc<str>` equal to its input.
//! The table is bounded: it holds at most `cap` distinct strings; when it
//! is full, strings nobody else holds any more are dropped from it, and if
//! it is still full the string gets an allocation of its own (so a sender
//! of endless distinct values costs what it did before interning, never
//! more). No I/O, no locks: each owner (the engine's writer) has its own.

use std::collections::HashSet;
use std::sync::Arc;

/// A bounded set of shared strings.
#[derive(Debug)]
pub struct Interner {
    set: HashSet<Arc<str>, foldhash::fast::RandomState>,
    cap: usize,
    /// Misses since the last sweep: a full table is swept at most once
    /// per `cap` misses, so a flood of distinct values does not sweep on
    /// every string.
    misses: usize,
}

impl Default for Interner {
    fn default() -> Interner {
        Interner::with_capacity(4096)
    }
}

impl Interner {
    pub fn with_capacity(cap: usize) -> Interner {
        Interner {
            set: HashSet::default(),
            cap: cap.max(1),
            misses: 0,
        }
    }

    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.set.get(s) {
            return shared.clone();
        }
        let fresh: Arc<str> = Arc::from(s);
        if self.set.len() >= self.cap {
            self.misses += 1;
            if self.misses < self.cap {
                return fresh;
            }
            self.misses = 0;
            self.set.retain(|k| Arc::strong_count(k) > 1);
            if self.set.len() >= self.cap {
                return fresh;
            }
        }
        self.set.insert(fresh.clone());
        fresh
    }

    /// Distinct strings held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_allocation_up_to_the_cap() {
        let mut i = Interner::with_capacity(2);
        let a = i.get("http://prom/graph?g0.expr=up");
        let b = i.get("http://prom/graph?g0.expr=up");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, "http://prom/graph?g0.expr=up");
        let c = i.get("c");
        assert_eq!(i.len(), 2);
        // Full, and both held elsewhere: a third string is its own copy.
        let d1 = i.get("d");
        let d2 = i.get("d");
        assert_eq!((&*d1, &*d2), ("d", "d"));
        assert!(!Arc::ptr_eq(&d1, &d2));
        assert_eq!(i.len(), 2, "the table never grows past its cap");
        // Once nobody holds "c", a sweep (after `cap` misses) makes room.
        drop(c);
        let _ = i.get("e");
        let e1 = i.get("e");
        let e2 = i.get("e");
        assert!(Arc::ptr_eq(&e1, &e2), "the swept slot is reused");
        assert!(i.len() <= 2);
    }
}
