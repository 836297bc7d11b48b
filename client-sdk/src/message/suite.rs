//! Algorithm suites: an AEAD, HKDF-SHA-256 derivation of a per-message key from the data key
//! and the message id, and a key commitment.
//!
//! The commitment is a second HKDF output over the same inputs, stored in the header and
//! checked (in constant time) before anything is decrypted. It binds the message to exactly
//! one data key, so no message can decrypt to two plaintexts under two keys (the "invisible
//! salamanders" property of plain GCM and Poly1305).

use kagi_crypto::aead::{Algorithm, Cipher};
use kagi_crypto::{SecretKey, derive};
use subtle::ConstantTimeEq;

use super::MessageError;

const KEY_LABEL: &[u8] = b"kagi/v1/envelope-key";
const COMMIT_LABEL: &[u8] = b"kagi/v1/envelope-commitment";

/// An algorithm suite of format v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Suite {
    /// AES-256-GCM, HKDF-SHA-256, key commitment. The default; CRYPTREC-recommended.
    #[default]
    Aes256GcmHkdfSha256Commit,
    /// ChaCha20-Poly1305, HKDF-SHA-256, key commitment. For CPUs without AES instructions.
    ChaCha20Poly1305HkdfSha256Commit,
}

impl Suite {
    /// The suite's byte in the header.
    pub fn id(self) -> u8 {
        match self {
            Suite::Aes256GcmHkdfSha256Commit => 0x01,
            Suite::ChaCha20Poly1305HkdfSha256Commit => 0x02,
        }
    }

    /// The suite a header byte names.
    pub fn from_id(id: u8) -> Result<Self, MessageError> {
        match id {
            0x01 => Ok(Suite::Aes256GcmHkdfSha256Commit),
            0x02 => Ok(Suite::ChaCha20Poly1305HkdfSha256Commit),
            other => Err(MessageError::Format(format!(
                "unknown algorithm suite 0x{other:02x}"
            ))),
        }
    }

    /// The suite's AEAD.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Suite::Aes256GcmHkdfSha256Commit => Algorithm::Aes256Gcm,
            Suite::ChaCha20Poly1305HkdfSha256Commit => Algorithm::ChaCha20Poly1305,
        }
    }
}

/// The keyed AEAD of one message and its commitment value.
pub struct MessageKeys {
    /// The AEAD keyed with the per-message key.
    pub cipher: Cipher,
    /// The commitment stored in (or checked against) the header.
    pub commitment: [u8; 32],
}

impl MessageKeys {
    /// Derives the message key and the commitment from a data key and a message id.
    pub fn derive(suite: Suite, data_key: &SecretKey, message_id: &[u8; 32]) -> Self {
        let suite_id = [suite.id()];
        let key = derive::expand(Some(message_id), data_key, &[KEY_LABEL, &suite_id]);
        let commitment = derive::expand(Some(message_id), data_key, &[COMMIT_LABEL, &suite_id]);
        Self {
            cipher: Cipher::new(suite.algorithm(), &key),
            commitment: *commitment.expose(),
        }
    }

    /// Derives the keys and checks them against a header's commitment, in constant time.
    pub fn derive_checked(
        suite: Suite,
        data_key: &SecretKey,
        message_id: &[u8; 32],
        commitment: &[u8; 32],
    ) -> Result<Self, MessageError> {
        let keys = Self::derive(suite, data_key, message_id);
        if bool::from(keys.commitment.ct_eq(commitment)) {
            Ok(keys)
        } else {
            Err(MessageError::Commitment)
        }
    }
}
