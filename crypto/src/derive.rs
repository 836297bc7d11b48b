//! Key derivation with HKDF-SHA-256 (RFC 5869). Every derived key has its own `info` label, so
//! one input key never serves two purposes.

use hkdf::Hkdf;
use sha2::Sha256;

use crate::SecretKey;
use crate::secret::KEY_LEN;

/// `info` label of the key that wraps tenant key versions, derived from the root key.
const WRAPPING_INFO: &[u8] = b"kagi/v1/tenant-key-wrapping";
/// `info` prefix of per-message keys; the ciphertext's key-identifying header follows it.
const MESSAGE_INFO: &[u8] = b"kagi/v1/message-key";

/// The key that wraps tenant key versions, derived from the root key. The root itself never
/// touches data, so later uses of the root (audit MACs, escrow) get keys of their own.
pub fn wrapping_key(root: &SecretKey) -> SecretKey {
    expand(None, root, &[WRAPPING_INFO])
}

/// A one-time message key: HKDF(salt, version key, label ‖ key identity). A fresh random salt
/// per message keeps each AES-GCM key far below its random-nonce usage limit.
pub fn message_key(version_key: &SecretKey, salt: &[u8], key_identity: &[u8]) -> SecretKey {
    expand(Some(salt), version_key, &[MESSAGE_INFO, key_identity])
}

/// HKDF-SHA-256 of `ikm` with `salt`, and `info` the concatenation of `info` parts, giving a
/// 256-bit key. Callers give each purpose its own label as the first part.
pub fn expand(salt: Option<&[u8]>, ikm: &SecretKey, info: &[&[u8]]) -> SecretKey {
    let hkdf = Hkdf::<Sha256>::new(salt, ikm.expose());
    let info: Vec<u8> = info.concat();
    let mut okm = [0u8; KEY_LEN];
    hkdf.expand(&info, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    SecretKey::from_bytes(okm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_separate_keys() {
        let root = SecretKey::from_bytes([1; 32]);
        let wrap = wrapping_key(&root);
        let msg = message_key(&root, &[], b"");
        assert_ne!(wrap.expose(), msg.expose());
        assert_ne!(wrap.expose(), root.expose());
    }

    #[test]
    fn salt_and_identity_change_the_key() {
        let k = SecretKey::from_bytes([2; 32]);
        let a = message_key(&k, &[0; 32], b"id-1");
        let b = message_key(&k, &[1; 32], b"id-1");
        let c = message_key(&k, &[0; 32], b"id-2");
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.expose(), c.expose());
    }

    /// RFC 5869 test case 1 checks that the crate is HKDF-SHA-256 as specified.
    #[test]
    fn rfc5869_case_1() {
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let mut okm = [0u8; 42];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut okm)
            .unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }
}
