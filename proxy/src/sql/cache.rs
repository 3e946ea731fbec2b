//! Classifications keyed by fingerprint, bounded by bytes rather than entries.
//!
//! Two generations: inserts go to the young one; when it has used half the budget the old
//! generation is dropped and the young one becomes old. A hit in the old generation is
//! promoted. This keeps recently used entries with O(1) bookkeeping and no per-entry
//! recency list, and the total never exceeds the budget by more than one entry.

use super::Classification;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Bytes an entry costs beyond its classification: key, Arc header, map slot.
const ENTRY_OVERHEAD: usize = 64;

struct Generations {
    young: HashMap<u64, Arc<Classification>>,
    young_bytes: usize,
    old: HashMap<u64, Arc<Classification>>,
}

/// A shared, byte-bounded classification cache.
pub struct Cache {
    max_bytes: usize,
    inner: RwLock<Generations>,
}

impl Cache {
    /// A cache holding at most about `max_bytes` of classifications (0 disables it).
    pub fn new(max_bytes: usize) -> Cache {
        Cache {
            max_bytes,
            inner: RwLock::new(Generations {
                young: HashMap::new(),
                young_bytes: 0,
                old: HashMap::new(),
            }),
        }
    }

    /// The cached classification for `key`, if any.
    pub fn get(&self, key: u64) -> Option<Arc<Classification>> {
        {
            let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = g.young.get(&key) {
                return Some(c.clone());
            }
            if !g.old.contains_key(&key) {
                return None;
            }
        }
        // Promote from the old generation so a hot entry survives the next rotation.
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let c = g.old.remove(&key)?;
        self.insert_locked(&mut g, key, c.clone());
        Some(c)
    }

    /// Remembers a classification.
    pub fn insert(&self, key: u64, c: Arc<Classification>) {
        if self.max_bytes == 0 {
            return;
        }
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        self.insert_locked(&mut g, key, c);
    }

    fn insert_locked(&self, g: &mut Generations, key: u64, c: Arc<Classification>) {
        let cost = c.heap_bytes() + ENTRY_OVERHEAD;
        if cost > self.max_bytes / 2 {
            return;
        }
        if g.young_bytes + cost > self.max_bytes / 2 {
            g.old = std::mem::take(&mut g.young);
            g.young_bytes = 0;
        }
        if g.young.insert(key, c).is_none() {
            g.young_bytes += cost;
        }
    }

    /// Entries held (both generations), for tests.
    pub fn len(&self) -> usize {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.young.len() + g.old.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
