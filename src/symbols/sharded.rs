//! A cache split in parts by key, each behind its own lock: the tracer's workers
//! look up the same per-pc caches at once, and one lock for all of them made them
//! wait for each other.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;

const PARTS: usize = 8;

pub struct ShardedCache<K, V> {
    parts: [Mutex<HashMap<K, V, foldhash::fast::RandomState>>; PARTS],
}

impl<K, V> Default for ShardedCache<K, V> {
    fn default() -> Self {
        ShardedCache { parts: Default::default() }
    }
}

impl<K: Hash + Eq, V: Clone> ShardedCache<K, V> {
    /// The value kept for `key`, or `make`'s (kept for next time). `make` runs
    /// without a lock held, so two workers may both make one; the first kept wins.
    pub fn get_or_make(&self, key: K, make: impl FnOnce() -> V) -> V {
        let part = &self.parts[foldhash::fast::FixedState::default().hash_one(&key) as usize % PARTS];
        if let Some(hit) = part.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return hit;
        }
        let made = make();
        match part.lock() {
            Ok(mut m) => m.entry(key).or_insert(made).clone(),
            Err(_) => made,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ShardedCache;

    /// A value is made once per key and kept; other keys are made on their own.
    #[test]
    fn a_value_is_made_once_per_key() {
        let cache: ShardedCache<u64, u64> = ShardedCache::default();
        let made = std::cell::Cell::new(0);
        let make = |v| {
            made.set(made.get() + 1);
            v
        };
        for k in 0..100u64 {
            assert_eq!(cache.get_or_make(k, || make(k * 2)), k * 2);
        }
        for k in 0..100u64 {
            assert_eq!(cache.get_or_make(k, || make(0)), k * 2, "kept, not made again");
        }
        assert_eq!(made.get(), 100);
    }
}
