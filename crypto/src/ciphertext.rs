//! The KMS ciphertext, format v1: self-describing, so Decrypt needs no key id from the caller.
//!
//! ```text
//! offset len  field
//!   0     2   magic "KG"
//!   2     1   format version (1)
//!   3     1   algorithm (1 = AES-256-GCM, per-message key by HKDF-SHA-256)
//!   4    16   key id (UUID, binary)
//!  20     4   key version (u32, big-endian)
//!  24    32   salt (random, per message)
//!  56    12   nonce (random, per message)
//!  68     n   AES-256-GCM ciphertext
//! 68+n   16   tag
//! ```
//!
//! The message key is HKDF-SHA-256(salt, version key, "kagi/v1/message-key" ‖ bytes 0..24), and
//! the AAD is bytes 0..68 ‖ encoded context, so every header byte and the context are
//! authenticated. `docs/ciphertext-format.md` has the same layout and a test vector.

use zeroize::Zeroizing;

use crate::aead::{self, NONCE_LEN, TAG_LEN};
use crate::context::EncryptionContext;
use crate::{CryptoError, SecretKey, derive, random};

/// First two bytes of every Kagi KMS ciphertext.
pub const MAGIC: [u8; 2] = *b"KG";
/// The format version this code writes and reads.
pub const FORMAT_V1: u8 = 1;
/// Algorithm byte of AES-256-GCM with an HKDF-SHA-256 per-message key.
pub const ALG_AES_256_GCM_HKDF_SHA256: u8 = 1;
/// Salt length in bytes.
pub const SALT_LEN: usize = 32;
/// Length of the header: every byte before the AES-GCM ciphertext.
pub const HEADER_LEN: usize = 68;
/// Bytes of the header that name the key (magic, format, algorithm, key id, key version).
const IDENTITY_LEN: usize = 24;
/// The shortest possible ciphertext: a header and a tag (empty plaintext).
pub const MIN_LEN: usize = HEADER_LEN + TAG_LEN;

/// The parsed header of a ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Binary UUID of the tenant key.
    pub key_id: [u8; 16],
    /// Version of the tenant key that protects the message.
    pub key_version: u32,
    /// Per-message HKDF salt.
    pub salt: [u8; SALT_LEN],
    /// AES-GCM nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    /// A header with a fresh random salt and nonce.
    pub fn random(key_id: [u8; 16], key_version: u32) -> Result<Self, CryptoError> {
        Ok(Self {
            key_id,
            key_version,
            salt: random::array()?,
            nonce: random::array()?,
        })
    }

    /// The header's bytes, as laid out in the module documentation.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = FORMAT_V1;
        out[3] = ALG_AES_256_GCM_HKDF_SHA256;
        out[4..20].copy_from_slice(&self.key_id);
        out[20..24].copy_from_slice(&self.key_version.to_be_bytes());
        out[24..56].copy_from_slice(&self.salt);
        out[56..68].copy_from_slice(&self.nonce);
        out
    }

    /// Reads a header from the start of `bytes`, returning it and the sealed body after it.
    pub fn parse(bytes: &[u8]) -> Result<(Self, &[u8]), CryptoError> {
        if bytes.len() < 4 || bytes[0..2] != MAGIC {
            return Err(CryptoError::Malformed(
                "not a Kagi ciphertext (bad magic bytes)",
            ));
        }
        if bytes[2] != FORMAT_V1 {
            return Err(CryptoError::Malformed("unknown ciphertext format version"));
        }
        if bytes[3] != ALG_AES_256_GCM_HKDF_SHA256 {
            return Err(CryptoError::Malformed("unknown algorithm"));
        }
        if bytes.len() < MIN_LEN {
            return Err(CryptoError::Malformed(
                "truncated: shorter than header and tag",
            ));
        }
        let header = Self {
            key_id: bytes[4..20].try_into().expect("16 bytes"),
            key_version: u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes")),
            salt: bytes[24..56].try_into().expect("32 bytes"),
            nonce: bytes[56..68].try_into().expect("12 bytes"),
        };
        Ok((header, &bytes[HEADER_LEN..]))
    }
}

/// Encrypts `plaintext` under `version_key` with the given header.
pub fn seal(
    version_key: &SecretKey,
    header: &Header,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Vec<u8> {
    let head = header.encode();
    let key = derive::message_key(version_key, &header.salt, &head[..IDENTITY_LEN]);
    let aad = [&head[..], &context.encode()].concat();
    let body = aead::seal(&key, &header.nonce, &aad, plaintext);
    [&head[..], &body].concat()
}

/// Decrypts a whole ciphertext whose header was already parsed into `header`.
pub fn open(
    version_key: &SecretKey,
    header: &Header,
    body: &[u8],
    context: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let head = header.encode();
    let key = derive::message_key(version_key, &header.salt, &head[..IDENTITY_LEN]);
    let aad = [&head[..], &context.encode()].concat();
    aead::open(&key, &header.nonce, &aad, body).map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
        EncryptionContext::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    fn sample() -> (SecretKey, Header, EncryptionContext, Vec<u8>) {
        let key = SecretKey::generate().unwrap();
        let header = Header::random([9; 16], 3).unwrap();
        let ctx = context(&[("tenant", "school-1"), ("purpose", "grades")]);
        let ct = seal(&key, &header, &ctx, b"pupil grades");
        (key, header, ctx, ct)
    }

    fn decrypt(
        key: &SecretKey,
        ct: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, CryptoError> {
        let (header, body) = Header::parse(ct)?;
        open(key, &header, body, ctx).map(|p| p.to_vec())
    }

    #[test]
    fn round_trip() {
        let (key, header, ctx, ct) = sample();
        assert_eq!(ct.len(), HEADER_LEN + 12 + TAG_LEN);
        assert_eq!(Header::parse(&ct).unwrap().0, header);
        assert_eq!(decrypt(&key, &ct, &ctx).unwrap(), b"pupil grades");
    }

    #[test]
    fn every_bit_flip_fails() {
        let (key, _, ctx, ct) = sample();
        for i in 0..ct.len() * 8 {
            let mut bad = ct.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                decrypt(&key, &bad, &ctx).is_err(),
                "bit {i} flipped still decrypts"
            );
        }
    }

    #[test]
    fn every_truncation_fails() {
        let (key, _, ctx, ct) = sample();
        for len in 0..ct.len() {
            assert!(
                decrypt(&key, &ct[..len], &ctx).is_err(),
                "truncated to {len} decrypts"
            );
        }
    }

    #[test]
    fn other_context_fails() {
        let (key, _, _, ct) = sample();
        let other = context(&[("tenant", "school-2"), ("purpose", "grades")]);
        assert_eq!(decrypt(&key, &ct, &other), Err(CryptoError::Authentication));
        assert_eq!(
            decrypt(&key, &ct, &context(&[])),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn unknown_version_and_algorithm_are_named() {
        let (key, _, ctx, mut ct) = sample();
        ct[2] = 2;
        assert_eq!(
            decrypt(&key, &ct, &ctx),
            Err(CryptoError::Malformed("unknown ciphertext format version"))
        );
        ct[2] = 1;
        ct[3] = 9;
        assert_eq!(
            decrypt(&key, &ct, &ctx),
            Err(CryptoError::Malformed("unknown algorithm"))
        );
    }

    /// The vector in docs/ciphertext-format.md: fixed key, salt and nonce give fixed bytes.
    #[test]
    fn documented_test_vector() {
        let key = SecretKey::from_bytes(core::array::from_fn(|i| i as u8));
        let header = Header {
            key_id: hex::decode("0123456789abcdef0123456789abcdef")
                .unwrap()
                .try_into()
                .unwrap(),
            key_version: 2,
            salt: [0x11; SALT_LEN],
            nonce: [0x22; NONCE_LEN],
        };
        let ctx = context(&[("school", "tokyo-01"), ("record", "grades")]);
        let ct = seal(&key, &header, &ctx, b"Kagi test vector");
        assert_eq!(
            hex::encode(&ct),
            include_str!("../../docs/vectors/ciphertext-v1.hex").trim()
        );
        assert_eq!(decrypt(&key, &ct, &ctx).unwrap(), b"Kagi test vector");
    }
}
