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

/// Keys derived from the root key while unsealed, each with its own HKDF label.
struct RootKeys {
    wrapping: SecretKey,
    /// MACs audit chain hashes.
    audit_mac: SecretKey,
    /// HMACs encryption-context values that audit records must not show.
    audit_context: SecretKey,
    /// Signs audit checkpoints (zeroized on drop by ed25519-dalek).
    audit_signing: ed25519_dalek::SigningKey,
    /// Signs escrow bundles made by this instance.
    escrow_signing: ed25519_dalek::SigningKey,
    /// Seals escrow shares while an import collects them in the store.
    escrow_staging: SecretKey,
}

impl RootKeys {
    fn derive(root: &SecretKey) -> Self {
        let seed = derive::expand(None, root, &[AUDIT_SIGNING_INFO]);
        let escrow_seed = derive::expand(None, root, &[ESCROW_SIGNING_INFO]);
        Self {
            escrow_signing: ed25519_dalek::SigningKey::from_bytes(escrow_seed.expose()),
            escrow_staging: derive::expand(None, root, &[ESCROW_STAGING_INFO]),
            wrapping: derive::wrapping_key(root),
            audit_mac: derive::expand(None, root, &[AUDIT_MAC_INFO]),
            audit_context: derive::expand(None, root, &[AUDIT_CONTEXT_INFO]),
            audit_signing: ed25519_dalek::SigningKey::from_bytes(seed.expose()),
        }
    }
}

/// HKDF label of the audit MAC key.
const AUDIT_MAC_INFO: &[u8] = b"kagi/v1/audit-mac";
/// HKDF label of the key that HMACs context values in audit records.
const AUDIT_CONTEXT_INFO: &[u8] = b"kagi/v1/audit-context-hmac";
/// HKDF label of the Ed25519 seed of the audit signing key.
const AUDIT_SIGNING_INFO: &[u8] = b"kagi/v1/audit-signing-key";
/// HKDF label of the Ed25519 seed of the escrow signing key.
const ESCROW_SIGNING_INFO: &[u8] = b"kagi/v1/escrow-signing-key";
/// HKDF label of the key that seals escrow shares held during an import.
const ESCROW_STAGING_INFO: &[u8] = b"kagi/v1/escrow-staging";
/// AAD label of a staged escrow share.
const STAGED_SHARE_LABEL: &[u8] = b"kagi/v1/staged-escrow-share\0";

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
        let keys = RootKeys::derive(&root);
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

    /// Drops (zeroizes) every cached version key, for example after a key was destroyed:
    /// the next use unwraps from the store, where a destroyed key has no material.
    pub fn forget_cached(&self) {
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

    /// HMAC-SHA-256 of an audit record's chain hash under the audit MAC key.
    pub fn audit_mac(&self, hash: &[u8; 32]) -> [u8; 32] {
        crate::audit::verify::record_mac(self.keys.audit_mac.expose(), hash)
    }

    /// A copy of the audit MAC key, for verifying the trail inside kagid.
    pub fn audit_mac_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(*self.keys.audit_mac.expose())
    }

    /// HMAC-SHA-256 of an encryption-context value, so audit records can correlate equal values
    /// without showing them.
    pub fn audit_context_hmac(&self, value: &[u8]) -> [u8; 32] {
        hmac_sha256(self.keys.audit_context.expose(), value)
    }

    /// Signs an audit checkpoint.
    pub fn sign_checkpoint(&self, bytes: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.keys.audit_signing.sign(bytes).to_bytes()
    }

    /// The audit signing key's public half.
    pub fn audit_public_key(&self) -> ed25519_dalek::VerifyingKey {
        self.keys.audit_signing.verifying_key()
    }

    /// Signs a destruction record with the instance's audit signing key (the key that signs
    /// checkpoints, so one trusted key verifies both).
    pub fn sign_destruction_record(
        &self,
        record: crate::destruction::record::Record,
    ) -> crate::destruction::record::Record {
        record.sign(&self.keys.audit_signing)
    }

    /// The key that signs this instance's escrow bundles. It is derived from the root, so
    /// every node of an instance signs with the same key, and it changes when the root does.
    pub fn escrow_signer(&self) -> &ed25519_dalek::SigningKey {
        &self.keys.escrow_signing
    }

    /// The unwrapped key of a stored version, for an escrow export only.
    pub fn export_version(
        &self,
        owner: VersionOwner<'_>,
        version: &KeyVersion,
    ) -> Result<Arc<SecretKey>, KeyringError> {
        self.version_key(owner, version)
    }

    /// Wraps a recovered version key for storage under this instance's root.
    pub fn import_version(
        &self,
        owner: VersionOwner<'_>,
        version: u32,
        key: &SecretKey,
    ) -> Result<Vec<u8>, CryptoError> {
        wrap::wrap(&self.keys.wrapping, identity(owner, version), key)
    }

    /// Whether a stored version holds exactly `key` (compared in constant time).
    pub fn holds(
        &self,
        owner: VersionOwner<'_>,
        version: &KeyVersion,
        key: &SecretKey,
    ) -> Result<bool, KeyringError> {
        use subtle::ConstantTimeEq;
        let stored = self.version_key(owner, version)?;
        Ok(stored.expose().ct_eq(key.expose()).into())
    }

    /// Seals an escrow share for the store while an import collects shares; `import` (the
    /// bundle digest) is bound as AAD so a sealed share cannot be moved to another import.
    pub fn seal_staged_share(&self, import: &[u8], share: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce: [u8; crate::crypto::aead::NONCE_LEN] = crate::crypto::random::array()?;
        let aad = [STAGED_SHARE_LABEL, import].concat();
        let sealed = crate::crypto::aead::seal(&self.keys.escrow_staging, &nonce, &aad, share);
        Ok([&nonce[..], &sealed].concat())
    }

    /// Opens a share sealed by [`UnsealedKeyring::seal_staged_share`].
    pub fn open_staged_share(
        &self,
        import: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        use crate::crypto::aead::NONCE_LEN;
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Malformed("a staged share is too short"));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("12 bytes");
        let aad = [STAGED_SHARE_LABEL, import].concat();
        crate::crypto::aead::open(&self.keys.escrow_staging, &nonce, &aad, body).map(Zeroizing::new)
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

/// HMAC-SHA-256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn identity<'a>(owner: VersionOwner<'a>, version: u32) -> VersionIdentity<'a> {
    VersionIdentity {
        tenant_id: owner.tenant_id,
        key_id: owner.key_id,
        version,
    }
}
