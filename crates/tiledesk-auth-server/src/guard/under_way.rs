//! Things under way counted per key with a cap each: the accept loop's connections per address and network, the
//! session bridge's calls per address.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// How many are under way per key.
#[derive(Debug)]
pub(crate) struct UnderWay<K>(Mutex<HashMap<K, usize>>);

impl<K> Default for UnderWay<K> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

/// One counted on its keys; uncounted when dropped.
#[derive(Debug)]
pub(crate) struct Counted<K: Eq + Hash> {
    table: Arc<UnderWay<K>>,
    keys: Vec<K>,
}

impl<K: Eq + Hash + Clone> UnderWay<K> {
    /// Counts one more on every key of `caps`, unless a key is at its cap: then nothing is counted.
    pub(crate) fn admit(self: &Arc<Self>, caps: Vec<(K, usize)>) -> Option<Counted<K>> {
        let mut table = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if caps
            .iter()
            .any(|(key, cap)| table.get(key).copied().unwrap_or(0) >= *cap)
        {
            return None;
        }
        for (key, _) in &caps {
            *table.entry(key.clone()).or_default() += 1;
        }
        Some(Counted {
            table: Arc::clone(self),
            keys: caps.into_iter().map(|(key, _)| key).collect(),
        })
    }
}

impl<K: Eq + Hash> Drop for Counted<K> {
    fn drop(&mut self) {
        let mut table = self
            .table
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in &self.keys {
            if let Some(open) = table.get_mut(key) {
                *open -= 1;
                if *open == 0 {
                    table.remove(key);
                }
            }
        }
    }
}
