//! Call counts per operation, since start: what the metrics endpoint and tests read (e.g. to
//! check that the SDK's data-key cache saves KMS calls). And encrypts and decrypts per key
//! version, counted in memory, flushed to the store by the scheduler and summed over nodes
//! by `VersionUsage` (catalogue K5).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::model::{Key, KeyVersion, UnixSeconds};
use crate::store::usage::{UsageCounts, UsageDelta};

/// Counts of calls per operation, successes and failures alike.
#[derive(Debug, Default)]
pub struct CallCounts(Mutex<BTreeMap<&'static str, u64>>);

impl CallCounts {
    /// Counts one call of `operation`.
    pub fn count(&self, operation: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(operation)
            .or_default() += 1;
    }

    /// How many calls of `operation` were made.
    pub fn get(&self, operation: &str) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Every operation's count.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Encrypts and decrypts per key version on this node since its last flush to the store
/// (catalogue K5: which versions still protect data). The scheduler flushes them
/// ([`super::Engine::flush_version_usage`]); readers add the store's sums of every node to
/// what this node has not flushed yet ([`super::Engine::version_usage`]).
#[derive(Debug, Default)]
pub struct VersionCounts {
    pending: Mutex<HashMap<(String, u32), UsageCounts>>,
    /// Held while a flush moves counts from memory to the store, and while a reader adds the
    /// two, so that no reader sees a count twice or not at all.
    flushing: tokio::sync::Mutex<()>,
}

impl VersionCounts {
    /// Counts one encrypt under `version` of `key_id` at `now`.
    pub fn encrypted(&self, key_id: &str, version: u32, now: UnixSeconds) {
        self.bump(key_id, version, now, |c| c.encrypts += 1);
    }

    /// Counts one decrypt under `version` of `key_id` at `now`.
    pub fn decrypted(&self, key_id: &str, version: u32, now: UnixSeconds) {
        self.bump(key_id, version, now, |c| c.decrypts += 1);
    }

    fn bump(&self, key_id: &str, version: u32, now: UnixSeconds, f: impl FnOnce(&mut UsageCounts)) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let counts = pending.entry((key_id.to_owned(), version)).or_default();
        f(counts);
        counts.last_used_at = counts.last_used_at.max(now);
    }

    /// This node's unflushed counts for the versions of `key_id`.
    pub fn unflushed(&self, key_id: &str) -> BTreeMap<u32, UsageCounts> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((key, _), _)| key == key_id)
            .map(|((_, version), counts)| (*version, *counts))
            .collect()
    }

    /// Takes every unflushed count, leaving none.
    pub(crate) fn take(&self) -> Vec<UsageDelta> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let mut deltas: Vec<UsageDelta> = taken
            .into_iter()
            .map(|((key_id, version), counts)| UsageDelta {
                key_id,
                version,
                counts,
            })
            .collect();
        deltas.sort_by(|a, b| (&a.key_id, a.version).cmp(&(&b.key_id, b.version)));
        deltas
    }

    /// Puts back counts that could not be flushed, to try again next time.
    pub(crate) fn restore(&self, deltas: Vec<UsageDelta>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for delta in deltas {
            pending
                .entry((delta.key_id, delta.version))
                .or_default()
                .add(&delta.counts);
        }
    }

    /// The lock that keeps flushes and reads apart.
    pub(crate) async fn flush_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.flushing.lock().await
    }
}

impl super::Engine {
    /// Per-version usage counts on this node, for the scheduler to flush.
    pub fn version_counts(&self) -> &VersionCounts {
        &self.version_counts
    }

    /// Adds this node's counts since the last flush to the store. Counts that cannot be
    /// written stay in memory for the next flush.
    pub async fn flush_version_usage(&self) -> Result<usize, super::EngineError> {
        let _guard = self.version_counts.flush_guard().await;
        let deltas = self.version_counts.take();
        let n = deltas.len();
        if let Err(err) = self
            .store()
            .add_version_usage(self.audit().node(), &deltas)
            .await
        {
            self.version_counts.restore(deltas);
            return Err(err.into());
        }
        Ok(n)
    }

    /// Every version of `key` with its encrypts, decrypts and last use, summed over every
    /// node's flushed counts and this node's unflushed ones, oldest version first.
    pub async fn version_usage(
        &self,
        key: &Key,
    ) -> Result<Vec<(KeyVersion, UsageCounts)>, super::EngineError> {
        let versions = self.store().list_versions(&key.id).await?;
        let (stored, unflushed) = {
            let _guard = self.version_counts.flush_guard().await;
            let stored = self.store().version_usage(&key.id).await?;
            (stored, self.version_counts.unflushed(&key.id))
        };
        let mut totals: BTreeMap<u32, UsageCounts> = BTreeMap::new();
        for (version, counts) in stored.into_iter().chain(unflushed) {
            totals.entry(version).or_default().add(&counts);
        }
        Ok(versions
            .into_iter()
            .map(|v| {
                let counts = totals.get(&v.version).copied().unwrap_or_default();
                (v, counts)
            })
            .collect())
    }
}
