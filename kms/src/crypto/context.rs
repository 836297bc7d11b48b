//! The encryption context: a map of strings bound to a ciphertext as additional authenticated
//! data. Its canonical encoding is independent of the order the caller gave the pairs in.

use std::collections::BTreeMap;

use super::CryptoError;

/// Most pairs a context may hold.
pub const MAX_PAIRS: usize = 64;
/// Longest key or value, in bytes.
pub const MAX_FIELD_LEN: usize = 1024;
/// Largest encoded context, in bytes.
pub const MAX_ENCODED_LEN: usize = 8 * 1024;

/// An encryption context, sorted by key (byte order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// Checks the limits: at most 64 pairs, keys non-empty, fields at most 1 KiB, 8 KiB encoded.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Self, CryptoError> {
        let map: BTreeMap<String, String> = pairs.into_iter().collect();
        if map.len() > MAX_PAIRS {
            return Err(CryptoError::InvalidContext(format!(
                "{} pairs; at most {MAX_PAIRS} are allowed",
                map.len()
            )));
        }
        for (key, value) in &map {
            if key.is_empty() {
                return Err(CryptoError::InvalidContext("a key is empty".into()));
            }
            if key.len() > MAX_FIELD_LEN || value.len() > MAX_FIELD_LEN {
                return Err(CryptoError::InvalidContext(format!(
                    "a key or value is longer than {MAX_FIELD_LEN} bytes"
                )));
            }
        }
        let context = Self(map);
        if context.encode().len() > MAX_ENCODED_LEN {
            return Err(CryptoError::InvalidContext(format!(
                "larger than {MAX_ENCODED_LEN} bytes when encoded"
            )));
        }
        Ok(context)
    }

    /// The pairs, sorted by key.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Canonical bytes: `u16` count, then for each pair in key order `u16` key length, key,
    /// `u16` value length, value (big-endian lengths, UTF-8 text).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.0.len() * 16);
        out.extend_from_slice(&(self.0.len() as u16).to_be_bytes());
        for (key, value) in &self.0 {
            for field in [key, value] {
                out.extend_from_slice(&(field.len() as u16).to_be_bytes());
                out.extend_from_slice(field.as_bytes());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        EncryptionContext::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    #[test]
    fn order_does_not_matter() {
        assert_eq!(
            ctx(&[("a", "1"), ("b", "2")]).encode(),
            ctx(&[("b", "2"), ("a", "1")]).encode()
        );
    }

    #[test]
    fn encoding_is_unambiguous() {
        // Moving a byte between key and value must change the encoding.
        assert_ne!(ctx(&[("ab", "c")]).encode(), ctx(&[("a", "bc")]).encode());
        assert_eq!(ctx(&[]).encode(), vec![0, 0]);
        assert_eq!(
            ctx(&[("k", "v")]).encode(),
            vec![0, 1, 0, 1, b'k', 0, 1, b'v']
        );
    }

    #[test]
    fn limits_are_enforced() {
        assert!(EncryptionContext::new([(String::new(), "v".into())]).is_err());
        assert!(EncryptionContext::new([("k".into(), "v".repeat(MAX_FIELD_LEN + 1))]).is_err());
        let many = (0..=MAX_PAIRS).map(|i| (format!("k{i}"), String::new()));
        assert!(EncryptionContext::new(many).is_err());
    }
}
