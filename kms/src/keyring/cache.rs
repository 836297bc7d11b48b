//! A bounded cache of unwrapped version keys.
//!
//! An entry is found only for the same tenant, key, version and the same wrapped bytes it was
//! unwrapped from, so a row altered in the store is never served from the cache. Evicted and
//! cleared entries are dropped, which zeroizes them once no request still uses them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::VersionOwner;
use crate::crypto::SecretKey;
use crate::model::KeyVersion;

struct Entry {
    tenant_id: String,
    wrapped: Vec<u8>,
    key: Arc<SecretKey>,
}

/// Unwrapped version keys by (key id, version).
pub struct VersionCache {
    capacity: usize,
    entries: Mutex<HashMap<(String, u32), Entry>>,
}

impl VersionCache {
    /// An empty cache holding at most `capacity` keys (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached key for exactly this owner and stored material.
    pub fn get(&self, owner: VersionOwner<'_>, version: &KeyVersion) -> Option<Arc<SecretKey>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(&(owner.key_id.to_owned(), version.version))?;
        (entry.tenant_id == owner.tenant_id && entry.wrapped == version.wrapped_material)
            .then(|| entry.key.clone())
    }

    /// Caches `key`, evicting an arbitrary entry when full, and returns it shared.
    pub fn insert(
        &self,
        owner: VersionOwner<'_>,
        version: &KeyVersion,
        key: SecretKey,
    ) -> Arc<SecretKey> {
        let key = Arc::new(key);
        if self.capacity == 0 {
            return key;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (owner.key_id.to_owned(), version.version);
        if entries.len() >= self.capacity
            && !entries.contains_key(&slot)
            && let Some(victim) = entries.keys().next().cloned()
        {
            entries.remove(&victim);
        }
        entries.insert(
            slot,
            Entry {
                tenant_id: owner.tenant_id.to_owned(),
                wrapped: version.wrapped_material.clone(),
                key: key.clone(),
            },
        );
        key
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
