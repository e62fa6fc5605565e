//! A capped set of series: one value per label set, found on the hot path
//! without locking or allocating, and one overflow value that absorbs every
//! label set past the cap, so no traffic can grow memory or series without
//! bound.

use std::hash::Hash;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hashbrown::{Equivalent, HashMap};

type Map<K, V> = HashMap<K, Arc<V>, foldhash::fast::RandomState>;

/// Label sets `K` to values `V`.
#[derive(Debug)]
pub(crate) struct SeriesSet<K, V> {
    /// Read without locking; replaced (copy on write) when a new label set
    /// appears, which happens at most `max` times.
    map: ArcSwap<Map<K, V>>,
    insert: Mutex<()>,
    overflow: V,
    max: usize,
}

impl<K: Hash + Eq + Clone, V> SeriesSet<K, V> {
    pub(crate) fn new(max: usize, overflow: V) -> Self {
        Self {
            map: ArcSwap::from_pointee(Map::default()),
            insert: Mutex::new(()),
            overflow,
            max,
        }
    }

    /// Runs `f` on the value of `key`, created with `make` if new, or on the
    /// overflow value once the cap is reached.
    pub(crate) fn with<Q, R>(&self, key: &Q, make: impl FnOnce() -> V, f: impl FnOnce(&V) -> R) -> R
    where
        Q: Hash + Equivalent<K> + ToKey<K> + ?Sized,
    {
        if let Some(value) = self.map.load().get(key) {
            return f(value);
        }
        match self.insert(key, make) {
            Some(value) => f(&value),
            None => f(&self.overflow),
        }
    }

    fn insert<Q>(&self, key: &Q, make: impl FnOnce() -> V) -> Option<Arc<V>>
    where
        Q: Hash + Equivalent<K> + ToKey<K> + ?Sized,
    {
        if self.map.load().len() >= self.max {
            return None;
        }
        let _guard = self.insert.lock().unwrap_or_else(|e| e.into_inner());
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

    /// The value of the label sets past the cap.
    pub(crate) fn overflow(&self) -> &V {
        &self.overflow
    }
}

/// Turns a borrowed lookup key into the stored key (only for a new series).
pub(crate) trait ToKey<K> {
    fn to_key(&self) -> K;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    impl ToKey<String> for str {
        fn to_key(&self) -> String {
            self.to_owned()
        }
    }

    #[test]
    fn label_sets_past_the_cap_share_the_overflow_value() {
        let set: SeriesSet<String, AtomicU64> = SeriesSet::new(2, AtomicU64::new(0));
        for key in ["a", "b", "c", "d", "a"] {
            set.with(
                key,
                || AtomicU64::new(0),
                |n| n.fetch_add(1, Ordering::Relaxed),
            );
        }
        let mut entries: Vec<(String, u64)> = set
            .entries()
            .into_iter()
            .map(|(k, v)| (k, v.load(Ordering::Relaxed)))
            .collect();
        entries.sort();
        assert_eq!(entries, vec![("a".into(), 2), ("b".into(), 1)]);
        assert_eq!(set.overflow().load(Ordering::Relaxed), 2);
    }
}
