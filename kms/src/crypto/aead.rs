//! AES-256-GCM with explicit nonce and additional authenticated data.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use super::{CryptoError, SecretKey};

/// Nonce length of AES-GCM in bytes.
pub const NONCE_LEN: usize = 12;
/// Authentication tag length in bytes.
pub const TAG_LEN: usize = 16;

/// Encrypts `plaintext` and returns ciphertext followed by the 16-byte tag.
pub fn seal(key: &SecretKey, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = cipher(key);
    cipher
        .encrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // AES-GCM encryption fails only past 2^36 bytes, far beyond any Kagi limit.
        .expect("AES-256-GCM encryption of a bounded input cannot fail")
}

/// Decrypts ciphertext-and-tag; fails on any change to key, nonce, AAD or bytes.
pub fn open(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    cipher(key)
        .decrypt(&Nonce::from(*nonce), Payload { msg: sealed, aad })
        .map_err(|_| CryptoError::Authentication)
}

fn cipher(key: &SecretKey) -> Aes256Gcm {
    // The key is always 32 bytes, so this cannot fail.
    Aes256Gcm::new_from_slice(key.expose()).expect("a 256-bit key fits AES-256-GCM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = SecretKey::from_bytes([7; 32]);
        let nonce = [1; NONCE_LEN];
        let sealed = seal(&key, &nonce, b"aad", b"hello");
        assert_eq!(open(&key, &nonce, b"aad", &sealed).unwrap(), b"hello");
        assert_eq!(
            open(&key, &nonce, b"aaD", &sealed),
            Err(CryptoError::Authentication)
        );
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert_eq!(
            open(&key, &nonce, b"aad", &flipped),
            Err(CryptoError::Authentication)
        );
    }

    /// NIST SP 800-38D / McGrew–Viega test case 14: AES-256, zero key, zero IV, one zero block.
    #[test]
    fn known_answer() {
        let key = SecretKey::from_bytes([0; 32]);
        let sealed = seal(&key, &[0; NONCE_LEN], b"", &[0; 16]);
        assert_eq!(
            hex::encode(sealed),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
    }
}
