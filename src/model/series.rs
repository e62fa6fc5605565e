//! A capped set of series: one value per label set, found on the hot path
//! without locking or allocating. Past the cap a label set is refused, and
//! the caller adds it to an overflow series of its own, so no traffic can
//! grow memory or series without bound.
//!
//! The map is `papaya`'s: lookups take no lock (a borrowed key, compared
//! through [`Equivalent`], so they allocate nothing), and a new label set
//! costs one insertion whatever the number of series, its table growing
//! incrementally rather than being copied.

use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::Equivalent;
use papaya::HashMap;

/// Label sets `K` to values `V`.
pub(crate) struct SeriesSet<K, V> {
    map: HashMap<K, V, foldhash::fast::RandomState>,
    /// Label sets inserted or being inserted: never above `max`.
    len: AtomicUsize,
    max: usize,
}

impl<K, V> std::fmt::Debug for SeriesSet<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesSet")
            .field("len", &self.len)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> SeriesSet<K, V> {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            map: HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .build(),
            len: AtomicUsize::new(0),
            max,
        }
    }

    /// Runs `f` on the value of `key`, created with `make` if new. Returns
    /// false, without running `f`, when `key` is new and the cap is reached.
    pub(crate) fn with<Q>(&self, key: &Q, make: impl FnOnce() -> V, f: impl FnOnce(&V)) -> bool
    where
        Q: Hash + Equivalent<K> + ToKey<K> + ?Sized,
    {
        let map = self.map.pin();
        if let Some(value) = map.get(key) {
            f(value);
            return true;
        }
        let reserved = self
            .len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !reserved {
            // Full; but another request may have just added this very key.
            return map.get(key).map(f).is_some();
        }
        match map.try_insert_with(key.to_key(), make) {
            Ok(value) => f(value),
            Err(existing) => {
                self.len.fetch_sub(1, Ordering::Relaxed);
                f(existing);
            }
        }
        true
    }

    /// `read` of the value of `key`, if it is in the set: a lookup only.
    #[cfg_attr(
        not(feature = "metrics"),
        allow(dead_code, reason = "used by the metrics facade")
    )]
    pub(crate) fn get<Q, T>(&self, key: &Q, read: impl FnOnce(&V) -> T) -> Option<T>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.map.pin().get(key).map(read)
    }

    /// Removes `key` when `remove` says so of its value, which frees its
    /// place under the cap; true if it was removed. A value that is still
    /// held elsewhere lives on there, out of the set.
    #[cfg_attr(
        not(feature = "metrics"),
        allow(dead_code, reason = "used by the metrics facade")
    )]
    pub(crate) fn remove_if<Q>(&self, key: &Q, mut remove: impl FnMut(&V) -> bool) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let removed = matches!(self.map.pin().remove_if(key, |_, v| remove(v)), Ok(Some(_)));
        if removed {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// `read` of every label set and its value, in no particular order.
    pub(crate) fn collect<T>(&self, mut read: impl FnMut(&K, &V) -> T) -> Vec<T> {
        self.map.pin().iter().map(|(k, v)| read(k, v)).collect()
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
    use std::sync::atomic::AtomicU64;

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
        let mut entries = set.collect(|k, v| (k.clone(), v.load(Ordering::Relaxed)));
        entries.sort();
        assert_eq!(entries, vec![("a".into(), 2), ("b".into(), 1)]);
        assert_eq!(refused, 2);
    }

    #[test]
    fn a_removed_label_set_frees_its_place_under_the_cap() {
        let set: SeriesSet<String, u32> = SeriesSet::new(2);
        assert!(set.with(&"a".to_owned(), || 1, |_| ()));
        assert!(set.with(&"b".to_owned(), || 2, |_| ()));
        assert!(!set.with(&"c".to_owned(), || 3, |_| ()));
        assert!(!set.remove_if("a", |v| *v == 2));
        assert!(!set.remove_if("z", |_| true));
        assert!(set.remove_if("a", |v| *v == 1));
        assert!(set.with(&"c".to_owned(), || 3, |_| ()));
        assert!(!set.with(&"d".to_owned(), || 4, |_| ()));
        let mut keys = set.collect(|k, _| k.clone());
        keys.sort();
        assert_eq!(keys, ["b", "c"]);
        assert_eq!(set.len.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn racing_inserts_never_pass_the_cap() {
        let set: SeriesSet<u32, AtomicU64> = SeriesSet::new(100);
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let set = &set;
                s.spawn(move || {
                    for key in 0..1000u32 {
                        set.with(
                            &((key * 7 + t) % 300),
                            || AtomicU64::new(0),
                            |n| {
                                n.fetch_add(1, Ordering::Relaxed);
                            },
                        );
                    }
                });
            }
        });
        assert_eq!(set.collect(|_, _| ()).len(), 100);
        assert_eq!(set.len.load(Ordering::Relaxed), 100);
    }
}
