//! A capped set of series: one value per label set, found on the hot path
//! without locking or allocating. Past the cap a label set is refused, and
//! the caller adds it to an overflow series of its own, so no traffic can
//! grow memory or series without bound.

use std::hash::Hash;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::{Equivalent, HashMap};
use parking_lot::Mutex;

type Map<K, V> = HashMap<K, Arc<V>, foldhash::fast::RandomState>;

/// Label sets `K` to values `V`.
#[derive(Debug)]
pub(crate) struct SeriesSet<K, V> {
    /// Read without locking; replaced (copy on write) when a new label set
    /// appears, which happens at most `max` times.
    map: ArcSwap<Map<K, V>>,
    insert: Mutex<()>,
    max: usize,
}

impl<K: Hash + Eq + Clone, V> SeriesSet<K, V> {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            map: ArcSwap::from_pointee(Map::default()),
            insert: Mutex::new(()),
            max,
        }
    }

    /// Runs `f` on the value of `key`, created with `make` if new. Returns
    /// false, without running `f`, when `key` is new and the cap is reached.
    pub(crate) fn with<Q>(&self, key: &Q, make: impl FnOnce() -> V, f: impl FnOnce(&V)) -> bool
    where
        Q: Hash + Equivalent<K> + ToKey<K> + ?Sized,
    {
        if let Some(value) = self.map.load().get(key) {
            f(value);
            return true;
        }
        match self.insert(key, make) {
            Some(value) => {
                f(&value);
                true
            }
            None => false,
        }
    }

    fn insert<Q>(&self, key: &Q, make: impl FnOnce() -> V) -> Option<Arc<V>>
    where
        Q: Hash + Equivalent<K> + ToKey<K> + ?Sized,
    {
        if self.map.load().len() >= self.max {
            return None;
        }
        let _guard = self.insert.lock();
        let current = self.map.load_full();
        if let Some(value) = current.get(key) {
            return Some(Arc::clone(value));
        }
        if current.len() >= self.max {
            return None;
        }
        let value = Arc::new(make());
        let mut next = Map::clone(&current);
        next.insert(key.to_key(), Arc::clone(&value));
        self.map.store(Arc::new(next));
        Some(value)
    }

    /// Every label set with its value, in no particular order.
    pub(crate) fn entries(&self) -> Vec<(K, Arc<V>)> {
        self.map
            .load()
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }
}

/// Turns a borrowed lookup key into the stored key (only for a new series).
pub(crate) trait ToKey<K> {
    fn to_key(&self) -> K;
}

impl<K: Clone> ToKey<K> for K {
    fn to_key(&self) -> K {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn label_sets_past_the_cap_are_refused() {
        let set: SeriesSet<String, AtomicU64> = SeriesSet::new(2);
        let mut refused = 0;
        for key in ["a", "b", "c", "d", "a"] {
            let add = |n: &AtomicU64| {
                n.fetch_add(1, Ordering::Relaxed);
            };
            if !set.with(&key.to_owned(), || AtomicU64::new(0), add) {
                refused += 1;
            }
        }
        let mut entries: Vec<(String, u64)> = set
            .entries()
            .into_iter()
            .map(|(k, v)| (k, v.load(Ordering::Relaxed)))
            .collect();
        entries.sort();
        assert_eq!(entries, vec![("a".into(), 2), ("b".into(), 1)]);
        assert_eq!(refused, 2);
    }
}
