//! The encryption context: a map of strings bound to a ciphertext as additional authenticated
//! data. Its canonical encoding is independent of the order the caller gave the pairs in.

use std::collections::BTreeMap;

use crate::CryptoError;

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

impl EncryptionContext {
    /// Reads the canonical encoding back. Refuses anything [`encode`](Self::encode) would not
    /// have written (unsorted or repeated keys, bad UTF-8, trailing bytes), so that a decoded
    /// context always re-encodes to the same bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bad = |why: &str| CryptoError::InvalidContext(format!("malformed encoding: {why}"));
        let mut rest = bytes;
        let mut take = |n: usize| -> Result<&[u8], CryptoError> {
            if rest.len() < n {
                return Err(bad("truncated"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let count = u16::from_be_bytes(take(2)?.try_into().expect("2 bytes")) as usize;
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(count.min(MAX_PAIRS));
        for _ in 0..count {
            let mut field = || -> Result<String, CryptoError> {
                let len = u16::from_be_bytes(take(2)?.try_into().expect("2 bytes")) as usize;
                String::from_utf8(take(len)?.to_vec()).map_err(|_| bad("not UTF-8"))
            };
            let key = field()?;
            let value = field()?;
            if pairs
                .last()
                .is_some_and(|(last, _)| last.as_str() >= key.as_str())
            {
                return Err(bad("keys not in strictly ascending order"));
            }
            pairs.push((key, value));
        }
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Self::new(pairs)
    }

    /// Whether every pair of `expected` is in this context with the same value.
    pub fn contains_all(&self, expected: &EncryptionContext) -> bool {
        expected.0.iter().all(|(k, v)| self.0.get(k) == Some(v))
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
    fn decode_inverts_encode_and_refuses_non_canonical_bytes() {
        let c = ctx(&[("b", "2"), ("a", "1"), ("ü", "")]);
        assert_eq!(EncryptionContext::decode(&c.encode()).unwrap(), c);
        let swapped = [0, 2, 0, 1, b'b', 0, 0, 0, 1, b'a', 0, 0];
        assert!(EncryptionContext::decode(&swapped).is_err());
        let repeated = [0, 2, 0, 1, b'a', 0, 0, 0, 1, b'a', 0, 0];
        assert!(EncryptionContext::decode(&repeated).is_err());
        let mut trailing = c.encode();
        trailing.push(0);
        assert!(EncryptionContext::decode(&trailing).is_err());
        assert!(EncryptionContext::decode(&c.encode()[..3]).is_err());
    }

    #[test]
    fn subset_check() {
        let bound = ctx(&[("a", "1"), ("b", "2")]);
        assert!(bound.contains_all(&ctx(&[("a", "1")])));
        assert!(bound.contains_all(&ctx(&[])));
        assert!(!bound.contains_all(&ctx(&[("a", "2")])));
        assert!(!bound.contains_all(&ctx(&[("c", "3")])));
    }

    #[test]
    fn limits_are_enforced() {
        assert!(EncryptionContext::new([(String::new(), "v".into())]).is_err());
        assert!(EncryptionContext::new([("k".into(), "v".repeat(MAX_FIELD_LEN + 1))]).is_err());
        let many = (0..=MAX_PAIRS).map(|i| (format!("k{i}"), String::new()));
        assert!(EncryptionContext::new(many).is_err());
    }
}
