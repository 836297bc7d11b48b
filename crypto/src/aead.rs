//! The two AEADs Kagi allows (catalogue C1): AES-256-GCM, the default and the only one on the
//! CRYPTREC e-Government recommended list, and ChaCha20-Poly1305. Both take 256-bit keys,
//! 96-bit nonces and give 128-bit tags.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;

use crate::{CryptoError, SecretKey};

/// Nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// Authentication tag length in bytes.
pub const TAG_LEN: usize = 16;

/// Which AEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// AES-256-GCM (NIST SP 800-38D).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439).
    ChaCha20Poly1305,
}

/// An AEAD keyed once, for many seal and open calls (one per frame of a stream). Its key
/// schedule zeroizes on drop.
pub enum Cipher {
    /// AES-256-GCM.
    Aes(Box<Aes256Gcm>),
    /// ChaCha20-Poly1305.
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Cipher {
    /// Keys `algorithm` with `key`.
    pub fn new(algorithm: Algorithm, key: &SecretKey) -> Self {
        // Both take exactly 32-byte keys, and a SecretKey is always 32 bytes.
        match algorithm {
            Algorithm::Aes256Gcm => Cipher::Aes(Box::new(
                Aes256Gcm::new_from_slice(key.expose()).expect("a 256-bit key fits AES-256-GCM"),
            )),
            Algorithm::ChaCha20Poly1305 => Cipher::ChaCha(Box::new(
                ChaCha20Poly1305::new_from_slice(key.expose())
                    .expect("a 256-bit key fits ChaCha20-Poly1305"),
            )),
        }
    }

    /// Encrypts `plaintext`; returns ciphertext followed by the 16-byte tag.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        let sealed = match self {
            Cipher::Aes(c) => c.encrypt(&(*nonce).into(), payload),
            Cipher::ChaCha(c) => c.encrypt(&(*nonce).into(), payload),
        };
        // Encryption fails only for inputs far beyond any Kagi limit (2^36 bytes for GCM).
        sealed.expect("AEAD encryption of a bounded input cannot fail")
    }

    /// Decrypts ciphertext-and-tag; fails on any change to key, nonce, AAD or bytes.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let payload = Payload { msg: sealed, aad };
        let opened = match self {
            Cipher::Aes(c) => c.decrypt(&(*nonce).into(), payload),
            Cipher::ChaCha(c) => c.decrypt(&(*nonce).into(), payload),
        };
        opened.map_err(|_| CryptoError::Authentication)
    }
}

/// AES-256-GCM encryption in one call.
pub fn seal(key: &SecretKey, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    Cipher::new(Algorithm::Aes256Gcm, key).seal(nonce, aad, plaintext)
}

/// AES-256-GCM decryption in one call.
pub fn open(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    Cipher::new(Algorithm::Aes256Gcm, key).open(nonce, aad, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        for algorithm in [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305] {
            let cipher = Cipher::new(algorithm, &SecretKey::from_bytes([7; 32]));
            let nonce = [1; NONCE_LEN];
            let sealed = cipher.seal(&nonce, b"aad", b"hello");
            assert_eq!(cipher.open(&nonce, b"aad", &sealed).unwrap(), b"hello");
            assert_eq!(
                cipher.open(&nonce, b"aaD", &sealed),
                Err(CryptoError::Authentication)
            );
            let mut flipped = sealed.clone();
            flipped[0] ^= 1;
            assert_eq!(
                cipher.open(&nonce, b"aad", &flipped),
                Err(CryptoError::Authentication)
            );
        }
    }

    /// NIST SP 800-38D / McGrew–Viega test case 14: AES-256, zero key, zero IV, one zero block.
    #[test]
    fn aes_known_answer() {
        let key = SecretKey::from_bytes([0; 32]);
        let sealed = seal(&key, &[0; NONCE_LEN], b"", &[0; 16]);
        assert_eq!(
            hex::encode(sealed),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
    }

    /// RFC 8439 §2.8.2: the ChaCha20-Poly1305 AEAD example.
    #[test]
    fn chacha_known_answer() {
        let key: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
        let nonce: [u8; NONCE_LEN] = hex::decode("070000004041424344454647")
            .unwrap()
            .try_into()
            .unwrap();
        let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let sealed = Cipher::new(Algorithm::ChaCha20Poly1305, &SecretKey::from_bytes(key))
            .seal(&nonce, &aad, plaintext);
        assert_eq!(
            hex::encode(&sealed[sealed.len() - TAG_LEN..]),
            "1ae10b594f09e26a7e902ecbd0600691"
        );
        assert_eq!(
            hex::encode(&sealed[..16]),
            "d31a8d34648e60db7b86afbc53ef7ec2"
        );
    }
}
