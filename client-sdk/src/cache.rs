//! The data-key cache (opt-in per [`Envelope`](crate::Envelope)).
//!
//! Encrypting: a data key from the KMS is reused for at most `max_age`, `max_messages` and
//! `max_bytes`, separately for each key and encryption context, so many small records cost one
//! KMS call per cache period instead of one each. Each message still gets its own key, derived
//! from the data key and a random 256-bit message id, so reuse never repeats an AEAD key.
//! Decrypting: unwrapped data keys are kept by the digest of their wrapped form and context, for
//! `decrypt_ttl`. Evicted entries are dropped, which zeroizes the key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kagi_crypto::SecretKey;
use sha2::{Digest, Sha256};

/// Most messages one cached data key may serve: the message-id birthday bound stays below
/// 2^-190 at this count.
pub const MAX_MESSAGES_LIMIT: u64 = 1 << 32;
/// Most bytes one cached data key may protect.
pub const MAX_BYTES_LIMIT: u64 = 1 << 50;

/// How long and how much a cached data key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Age after which an encryption data key is fetched anew.
    pub max_age: Duration,
    /// Messages one encryption data key may protect (at most [`MAX_MESSAGES_LIMIT`]).
    pub max_messages: u64,
    /// Plaintext bytes one encryption data key may protect (at most [`MAX_BYTES_LIMIT`]).
    pub max_bytes: u64,
    /// How long an unwrapped data key is kept for decryption.
    pub decrypt_ttl: Duration,
    /// Most entries on each side (encrypt, decrypt).
    pub max_entries: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_messages: 10_000,
            max_bytes: 1 << 30,
            decrypt_ttl: Duration::from_secs(300),
            max_entries: 1000,
        }
    }
}

impl CacheLimits {
    /// The limits, bounded by the suite's safe limits.
    pub fn bounded(self) -> Self {
        Self {
            max_messages: self.max_messages.clamp(1, MAX_MESSAGES_LIMIT),
            max_bytes: self.max_bytes.min(MAX_BYTES_LIMIT),
            ..self
        }
    }
}

/// Hit and miss counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Encryptions served by a cached data key.
    pub encrypt_hits: u64,
    /// Encryptions that fetched a data key from the KMS.
    pub encrypt_misses: u64,
    /// Decryptions served by a cached unwrapped key.
    pub decrypt_hits: u64,
    /// Decryptions that asked the KMS to unwrap.
    pub decrypt_misses: u64,
    /// Entries dropped for age, use or space.
    pub evictions: u64,
}

/// A source of time for the cache; tests move it by hand.
pub trait CacheClock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemCacheClock;

impl CacheClock for SystemCacheClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A data key for encrypting, as handed out by the KMS or the cache.
#[derive(Clone)]
pub struct DataKeyLease {
    /// The plaintext data key.
    pub key: Arc<SecretKey>,
    /// Its wrapped form (a KMS ciphertext).
    pub wrapped: Vec<u8>,
    /// The owning tenant.
    pub tenant_id: String,
    /// The tenant key (binary UUID).
    pub key_id: [u8; 16],
}

struct EncryptEntry {
    lease: DataKeyLease,
    created: Instant,
    messages: u64,
    bytes: u64,
}

struct DecryptEntry {
    key: Arc<SecretKey>,
    created: Instant,
}

/// The cache behind an [`Envelope`](crate::Envelope).
pub struct DataKeyCache {
    limits: CacheLimits,
    clock: Arc<dyn CacheClock>,
    encrypt: Mutex<HashMap<(String, Vec<u8>), EncryptEntry>>,
    decrypt: Mutex<HashMap<[u8; 32], DecryptEntry>>,
    encrypt_hits: AtomicU64,
    encrypt_misses: AtomicU64,
    decrypt_hits: AtomicU64,
    decrypt_misses: AtomicU64,
    evictions: AtomicU64,
}

impl DataKeyCache {
    /// An empty cache.
    pub fn new(limits: CacheLimits, clock: Arc<dyn CacheClock>) -> Self {
        Self {
            limits: limits.bounded(),
            clock,
            encrypt: Mutex::default(),
            decrypt: Mutex::default(),
            encrypt_hits: AtomicU64::new(0),
            encrypt_misses: AtomicU64::new(0),
            decrypt_hits: AtomicU64::new(0),
            decrypt_misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            encrypt_hits: self.encrypt_hits.load(Ordering::Relaxed),
            encrypt_misses: self.encrypt_misses.load(Ordering::Relaxed),
            decrypt_hits: self.decrypt_hits.load(Ordering::Relaxed),
            decrypt_misses: self.decrypt_misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// A cached data key for one more message of `len` bytes, if one is within every limit.
    /// An entry past a limit is evicted.
    pub fn lease(&self, key_ref: &str, context: &[u8], len: u64) -> Option<DataKeyLease> {
        let now = self.clock.now();
        let mut entries = lock(&self.encrypt);
        let slot = (key_ref.to_owned(), context.to_vec());
        let usable = entries.get(&slot).is_some_and(|e| {
            now.duration_since(e.created) < self.limits.max_age
                && e.messages < self.limits.max_messages
                && e.bytes.saturating_add(len) <= self.limits.max_bytes
        });
        if !usable {
            if entries.remove(&slot).is_some() {
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
            self.encrypt_misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let entry = entries.get_mut(&slot).expect("checked above");
        entry.messages += 1;
        entry.bytes += len;
        self.encrypt_hits.fetch_add(1, Ordering::Relaxed);
        Some(entry.lease.clone())
    }

    /// Caches a fresh data key that has just protected one message of `len` bytes.
    pub fn insert_lease(&self, key_ref: &str, context: &[u8], lease: DataKeyLease, len: u64) {
        if len > self.limits.max_bytes || self.limits.max_entries == 0 {
            return;
        }
        let mut entries = lock(&self.encrypt);
        if entries.len() >= self.limits.max_entries {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.created)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        let entry = EncryptEntry {
            lease,
            created: self.clock.now(),
            messages: 1,
            bytes: len,
        };
        entries.insert((key_ref.to_owned(), context.to_vec()), entry);
    }

    /// The unwrapped key of `wrapped` under `context`, if cached and fresh.
    pub fn unwrapped(&self, wrapped: &[u8], context: &[u8]) -> Option<Arc<SecretKey>> {
        let now = self.clock.now();
        let digest = digest(wrapped, context);
        let mut entries = lock(&self.decrypt);
        match entries.get(&digest) {
            Some(e) if now.duration_since(e.created) < self.limits.decrypt_ttl => {
                self.decrypt_hits.fetch_add(1, Ordering::Relaxed);
                Some(e.key.clone())
            }
            stale => {
                if stale.is_some() {
                    entries.remove(&digest);
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
                self.decrypt_misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Caches an unwrapped key.
    pub fn insert_unwrapped(&self, wrapped: &[u8], context: &[u8], key: Arc<SecretKey>) {
        if self.limits.max_entries == 0 {
            return;
        }
        let mut entries = lock(&self.decrypt);
        if entries.len() >= self.limits.max_entries {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.created)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        entries.insert(
            digest(wrapped, context),
            DecryptEntry {
                key,
                created: self.clock.now(),
            },
        );
    }
}

fn digest(wrapped: &[u8], context: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update((wrapped.len() as u64).to_be_bytes());
    hash.update(wrapped);
    hash.update(context);
    hash.finalize().into()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
