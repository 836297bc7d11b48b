//! Wrapping tenant key versions under the root's wrapping key.
//!
//! A wrapped version is `0x01 ‖ nonce (12) ‖ AES-256-GCM(key, 32) ‖ tag (16)`, 61 bytes. The AAD
//! binds the tenant id, key id and version, so a stored row copied onto another key, version or
//! tenant fails to unwrap instead of silently serving the wrong key (catalogue K7).

use crate::aead::{self, NONCE_LEN};
use crate::{CryptoError, SecretKey, random};

/// Format byte of wrapped key material.
const WRAP_V1: u8 = 1;
/// Length of a wrapped version key.
pub const WRAPPED_LEN: usize = 1 + NONCE_LEN + 32 + aead::TAG_LEN;
/// Domain label at the start of the AAD.
const AAD_LABEL: &[u8] = b"kagi/v1/tenant-key-version";

/// Who a version key belongs to; bound into its wrapping.
#[derive(Debug, Clone, Copy)]
pub struct VersionIdentity<'a> {
    /// Tenant id (text form).
    pub tenant_id: &'a str,
    /// Key id (text form).
    pub key_id: &'a str,
    /// Version number.
    pub version: u32,
}

impl VersionIdentity<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = AAD_LABEL.to_vec();
        for field in [self.tenant_id.as_bytes(), self.key_id.as_bytes()] {
            aad.extend_from_slice(&(field.len() as u32).to_be_bytes());
            aad.extend_from_slice(field);
        }
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad
    }
}

/// Wraps `key` for storage.
pub fn wrap(
    wrapping_key: &SecretKey,
    identity: VersionIdentity<'_>,
    key: &SecretKey,
) -> Result<Vec<u8>, CryptoError> {
    let nonce: [u8; NONCE_LEN] = random::array()?;
    let sealed = aead::seal(wrapping_key, &nonce, &identity.aad(), key.expose());
    Ok([&[WRAP_V1][..], &nonce, &sealed].concat())
}

/// Unwraps stored material; fails if it was made for another identity or was modified.
pub fn unwrap(
    wrapping_key: &SecretKey,
    identity: VersionIdentity<'_>,
    wrapped: &[u8],
) -> Result<SecretKey, CryptoError> {
    if wrapped.len() != WRAPPED_LEN || wrapped[0] != WRAP_V1 {
        return Err(CryptoError::Malformed(
            "wrapped key material has the wrong length or format",
        ));
    }
    let nonce: [u8; NONCE_LEN] = wrapped[1..1 + NONCE_LEN].try_into().expect("12 bytes");
    let plain = zeroize::Zeroizing::new(aead::open(
        wrapping_key,
        &nonce,
        &identity.aad(),
        &wrapped[1 + NONCE_LEN..],
    )?);
    SecretKey::from_slice(&plain).ok_or(CryptoError::Malformed("wrapped key has the wrong length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: VersionIdentity<'static> = VersionIdentity {
        tenant_id: "t1",
        key_id: "k1",
        version: 1,
    };

    #[test]
    fn round_trip() {
        let kek = SecretKey::generate().unwrap();
        let key = SecretKey::generate().unwrap();
        let wrapped = wrap(&kek, ID, &key).unwrap();
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        assert_eq!(unwrap(&kek, ID, &wrapped).unwrap().expose(), key.expose());
    }

    #[test]
    fn moved_material_fails() {
        let kek = SecretKey::generate().unwrap();
        let wrapped = wrap(&kek, ID, &SecretKey::generate().unwrap()).unwrap();
        for other in [
            VersionIdentity {
                tenant_id: "t2",
                ..ID
            },
            VersionIdentity { key_id: "k2", ..ID },
            VersionIdentity { version: 2, ..ID },
        ] {
            assert_eq!(
                unwrap(&kek, other, &wrapped).unwrap_err(),
                CryptoError::Authentication
            );
        }
        let other_kek = SecretKey::generate().unwrap();
        assert!(unwrap(&other_kek, ID, &wrapped).is_err());
    }
}
