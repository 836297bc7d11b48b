//! Encrypt, decrypt, data keys and re-encrypt under tenant keys.

use zeroize::Zeroizing;

use super::keys::owner;
use super::{Engine, EngineError};
use crate::clock::rfc3339;
use crate::crypto::ciphertext::Header;
use crate::crypto::context::EncryptionContext;
use crate::crypto::{CryptoError, SecretKey};
use crate::model::{Key, KeyState, KeyVersion, VersionState};

/// Most plaintext bytes per Encrypt call; larger data belongs in envelope encryption.
pub const MAX_PLAINTEXT: usize = 64 * 1024;

/// The longest ciphertext Encrypt can produce.
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + crate::crypto::ciphertext::MIN_LEN;

/// A ciphertext whose header was read, before the key is known to be usable by the caller.
#[derive(Debug)]
pub struct ParsedCiphertext<'a> {
    /// The header.
    pub header: Header,
    /// The key id in text form, to look the key up and authorise.
    pub key_id: String,
    body: &'a [u8],
}

/// Kinds of data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKeySpec {
    /// A 256-bit key for AES-256-GCM.
    Aes256,
    /// A 256-bit key for ChaCha20-Poly1305.
    ChaCha20Poly1305,
}

/// A new data key, in plaintext and wrapped under a tenant key.
pub struct DataKey {
    /// The key bytes, to use locally and then drop (zeroized).
    pub plaintext: SecretKey,
    /// A Kagi ciphertext of the key bytes, to store beside the data.
    pub wrapped: Vec<u8>,
    /// The tenant key version that wrapped it.
    pub version: u32,
}

impl Engine {
    /// Encrypts at most 64 KiB under the key's primary version.
    pub async fn encrypt(
        &self,
        key: &Key,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, u32), EngineError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(EngineError::InvalidArgument(format!(
                "plaintext is {} bytes; Encrypt takes at most {MAX_PLAINTEXT} bytes per call: for larger data use GenerateDataKey and encrypt locally (kagi-sdk does this)",
                plaintext.len()
            )));
        }
        self.seal_under_primary(key, context, plaintext).await
    }

    /// Reads a ciphertext's header, naming the key that protects it.
    pub fn parse_ciphertext<'a>(
        &self,
        ciphertext: &'a [u8],
    ) -> Result<ParsedCiphertext<'a>, EngineError> {
        if ciphertext.len() > MAX_CIPHERTEXT {
            return Err(EngineError::InvalidArgument(format!(
                "ciphertext is {} bytes; no Kagi KMS ciphertext is longer than {MAX_CIPHERTEXT}",
                ciphertext.len()
            )));
        }
        let (header, body) = Header::parse(ciphertext)?;
        let key_id = uuid::Uuid::from_bytes(header.key_id).to_string();
        Ok(ParsedCiphertext {
            header,
            key_id,
            body,
        })
    }

    /// Decrypts a parsed ciphertext with `key`, the key its header names. A compromised
    /// version is refused: it decrypts only inside [`Engine::re_encrypt`].
    pub async fn decrypt(
        &self,
        key: &Key,
        parsed: &ParsedCiphertext<'_>,
        context: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>, EngineError> {
        let (plaintext, version) = self.open(key, parsed, context).await?;
        if version.state == VersionState::Compromised {
            return Err(EngineError::FailedPrecondition(format!(
                "version {} of key {} ({}) is compromised: it no longer decrypts for use; \
                 re-encrypt the data under the key's new version (ReEncrypt, kagictl rewrap)",
                version.version, key.id, key.name
            )));
        }
        Ok(plaintext)
    }

    /// Decrypts with whichever version the header names, counting the use.
    async fn open(
        &self,
        key: &Key,
        parsed: &ParsedCiphertext<'_>,
        context: &EncryptionContext,
    ) -> Result<(Zeroizing<Vec<u8>>, KeyVersion), EngineError> {
        debug_assert_eq!(key.id, parsed.key_id);
        self.check_usable(key).await?;
        let keyring = self.keyring.unsealed()?;
        let version = self.version(key, parsed.header.key_version).await?;
        let plaintext =
            keyring.decrypt(owner(key), &version, &parsed.header, parsed.body, context)?;
        self.version_counts
            .decrypted(&key.id, version.version, self.now());
        Ok((plaintext, version))
    }

    /// A fresh data key, wrapped under the key's primary version with `context`.
    pub async fn generate_data_key(
        &self,
        key: &Key,
        context: &EncryptionContext,
        _spec: DataKeySpec,
    ) -> Result<DataKey, EngineError> {
        // Both specs are 256-bit keys; the spec tells the caller which AEAD it is for.
        let plaintext = SecretKey::generate().map_err(EngineError::from)?;
        let (wrapped, version) = self
            .seal_under_primary(key, context, plaintext.expose())
            .await?;
        Ok(DataKey {
            plaintext,
            wrapped,
            version,
        })
    }

    /// Decrypts under the source key and encrypts under the destination key's primary version,
    /// without the plaintext leaving this process.
    pub async fn re_encrypt(
        &self,
        source: &Key,
        parsed: &ParsedCiphertext<'_>,
        source_context: &EncryptionContext,
        destination: &Key,
        destination_context: &EncryptionContext,
    ) -> Result<(Vec<u8>, u32), EngineError> {
        let (plaintext, version) = self.open(source, parsed, source_context).await?;
        let sealed = self
            .seal_under_primary(destination, destination_context, &plaintext)
            .await?;
        if version.state == VersionState::Compromised {
            // Every use of a compromised version is flagged in the trail (catalogue K5).
            let columns = crate::audit::record::Event {
                tenant: Some(source.tenant_id.clone()),
                key_id: Some(source.id.clone()),
                key_version: Some(version.version),
                ..Default::default()
            };
            let resource = format!(
                "compromised version {} of key {} re-encrypted to version {} of key {}",
                version.version, source.id, sealed.1, destination.id
            );
            self.audit_internal_event("CompromisedVersionUsed", resource, columns)
                .await;
        }
        Ok(sealed)
    }

    async fn seal_under_primary(
        &self,
        key: &Key,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, u32), EngineError> {
        self.check_usable(key).await?;
        let keyring = self.keyring.unsealed()?;
        let version = self.version(key, key.primary_version).await?;
        if version.state == VersionState::Compromised {
            return Err(EngineError::FailedPrecondition(format!(
                "the primary version {} of key {} ({}) is compromised and encrypts nothing: \
                 rotate the key (kagictl key rotate)",
                version.version, key.id, key.name
            )));
        }
        let uuid = uuid::Uuid::parse_str(&key.id).map_err(|_| {
            EngineError::Internal(format!("stored key id {:?} is not a UUID", key.id))
        })?;
        let ciphertext =
            keyring.encrypt(owner(key), &version, *uuid.as_bytes(), context, plaintext)?;
        self.version_counts
            .encrypted(&key.id, version.version, self.now());
        Ok((ciphertext, version.version))
    }

    async fn version(&self, key: &Key, version: u32) -> Result<KeyVersion, EngineError> {
        self.store
            .get_version(&key.id, version)
            .await?
            .ok_or_else(|| {
                EngineError::NotFound(format!("key {} has no version {version}", key.id))
            })
    }
}

/// Builds a context from request pairs, with a clear message when it breaks a limit.
pub fn context_from(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<EncryptionContext, EngineError> {
    EncryptionContext::new(pairs).map_err(|e: CryptoError| e.into())
}

impl Engine {
    /// Refuses crypto with a key that is not enabled, saying what to do about it.
    async fn check_usable(&self, key: &Key) -> Result<(), EngineError> {
        match key.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(EngineError::FailedPrecondition(format!(
                "key {} ({}) is disabled; an admin can enable it with EnableKey",
                key.id, key.name
            ))),
            KeyState::PendingDestruction => {
                let when = self.store.destruction(&key.id).await?.map_or_else(
                    || "soon".to_owned(),
                    |d| format!("on {}", rfc3339(d.destroy_at)),
                );
                Err(EngineError::FailedPrecondition(format!(
                    "key {} ({}) is pending destruction and refuses every use: it will be \
                     destroyed {when}; an admin can cancel with CancelKeyDestruction \
                     (kagictl key cancel-destruction) before then",
                    key.id, key.name
                )))
            }
            KeyState::Destroyed => {
                let when = self
                    .store
                    .destruction(&key.id)
                    .await?
                    .and_then(|d| d.destroyed_at)
                    .map_or_else(String::new, |at| format!(" on {}", rfc3339(at)));
                Err(EngineError::FailedPrecondition(format!(
                    "key {} ({}) was destroyed{when}: data encrypted under it can no longer be \
                     decrypted; its destruction record: kagictl destruction-record show {}",
                    key.id, key.name, key.id
                )))
            }
        }
    }
}
