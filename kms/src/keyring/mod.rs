//! The only place unwrapped key bytes live.
//!
//! A [`Keyring`] is sealed or unsealed. Sealed, it holds no key and can do nothing but be
//! unsealed: every operation goes through [`Keyring::unsealed`], which returns an
//! [`UnsealedKeyring`] handle or [`KeyringError::Sealed`]. The handle hands out operations
//! ("make a new version", "encrypt under this version"), never raw tenant keys.
//!
//! - [`cache`]: unwrapped version keys, bounded, zeroized on eviction and on seal.

pub mod cache;

use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use crate::crypto::ciphertext::{self, Header};
use crate::crypto::context::EncryptionContext;
use crate::crypto::wrap::{self, VersionIdentity};
use crate::crypto::{CryptoError, SecretKey, derive};
use crate::model::KeyVersion;
use cache::VersionCache;

/// Why the keyring refused an operation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    /// No root key is loaded.
    #[error("kagid is sealed; custodians must unseal it")]
    Sealed,
    /// Stored material does not unwrap for the identity it is used under.
    #[error(
        "stored key material for {key_id} version {version} does not unwrap: it was altered or moved"
    )]
    BadMaterial {
        /// Key id.
        key_id: String,
        /// Version.
        version: u32,
    },
    /// A cryptographic failure (authentication, malformed input, RNG).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Keys derived from the root key while unsealed.
struct RootKeys {
    wrapping: SecretKey,
}

/// The root of trust and the cache of unwrapped tenant key versions.
pub struct Keyring {
    root: RwLock<Option<Arc<RootKeys>>>,
    cache: VersionCache,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("sealed", &self.is_sealed())
            .finish()
    }
}

impl Keyring {
    /// A sealed keyring whose cache holds at most `cache_capacity` version keys.
    pub fn sealed(cache_capacity: usize) -> Self {
        Self {
            root: RwLock::new(None),
            cache: VersionCache::new(cache_capacity),
        }
    }

    /// Loads the root key. The root itself is dropped (zeroized) once its wrapping key is derived.
    pub fn unseal(&self, root: SecretKey) {
        let keys = RootKeys {
            wrapping: derive::wrapping_key(&root),
        };
        let mut root = self.root.write().unwrap_or_else(|p| p.into_inner());
        // Keys cached under an earlier root must never be served under this one.
        self.cache.clear();
        *root = Some(Arc::new(keys));
    }

    /// Drops the root-derived keys and every cached version key (all zeroize on drop).
    /// Requests already holding an [`UnsealedKeyring`] finish with the keys they hold.
    pub fn seal(&self) {
        *self.root.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.cache.clear();
    }

    /// Whether no root key is loaded.
    pub fn is_sealed(&self) -> bool {
        self.root
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// A handle for operations, or [`KeyringError::Sealed`].
    pub fn unsealed(&self) -> Result<UnsealedKeyring<'_>, KeyringError> {
        let root = self.root.read().unwrap_or_else(|p| p.into_inner());
        let keys = root.clone().ok_or(KeyringError::Sealed)?;
        Ok(UnsealedKeyring {
            keys,
            cache: &self.cache,
        })
    }
}

/// Operations with tenant keys, available only while unsealed.
pub struct UnsealedKeyring<'a> {
    keys: Arc<RootKeys>,
    cache: &'a VersionCache,
}

/// The tenant a key version belongs to, for binding checks.
#[derive(Debug, Clone, Copy)]
pub struct VersionOwner<'a> {
    /// Tenant id.
    pub tenant_id: &'a str,
    /// Key id (text UUID).
    pub key_id: &'a str,
}

impl UnsealedKeyring<'_> {
    /// Generates a fresh version key and returns it wrapped for storage.
    pub fn new_version(
        &self,
        owner: VersionOwner<'_>,
        version: u32,
    ) -> Result<Vec<u8>, CryptoError> {
        let key = SecretKey::generate()?;
        wrap::wrap(&self.keys.wrapping, identity(owner, version), &key)
    }

    /// Encrypts `plaintext` under a stored version.
    pub fn encrypt(
        &self,
        owner: VersionOwner<'_>,
        version: &KeyVersion,
        key_uuid: [u8; 16],
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        let key = self.version_key(owner, version)?;
        let header = Header::random(key_uuid, version.version)?;
        Ok(ciphertext::seal(&key, &header, context, plaintext))
    }

    /// Decrypts a parsed ciphertext under a stored version.
    pub fn decrypt(
        &self,
        owner: VersionOwner<'_>,
        version: &KeyVersion,
        header: &Header,
        body: &[u8],
        context: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        let key = self.version_key(owner, version)?;
        Ok(ciphertext::open(&key, header, body, context)?)
    }

    /// The unwrapped key of a version, from the cache or by unwrapping.
    fn version_key(
        &self,
        owner: VersionOwner<'_>,
        version: &KeyVersion,
    ) -> Result<Arc<SecretKey>, KeyringError> {
        if let Some(key) = self.cache.get(owner, version) {
            return Ok(key);
        }
        let key = wrap::unwrap(
            &self.keys.wrapping,
            identity(owner, version.version),
            &version.wrapped_material,
        )
        .map_err(|_| KeyringError::BadMaterial {
            key_id: owner.key_id.to_owned(),
            version: version.version,
        })?;
        Ok(self.cache.insert(owner, version, key))
    }
}

fn identity<'a>(owner: VersionOwner<'a>, version: u32) -> VersionIdentity<'a> {
    VersionIdentity {
        tenant_id: owner.tenant_id,
        key_id: owner.key_id,
        version,
    }
}
