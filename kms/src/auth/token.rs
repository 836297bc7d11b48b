//! Bearer tokens: `kagi_` followed by 43 characters of unpadded base64url (256 random bits).
//! The prefix lets secret scanners find leaked tokens.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::crypto::{CryptoError, random};

const PREFIX: &str = "kagi_";
const RANDOM_BYTES: usize = 32;
const ENCODED_LEN: usize = 43;

/// A bearer token. Zeroized on drop; `Debug` hides it.
pub struct Token(Zeroizing<String>);

impl Token {
    /// A fresh token with 256 bits from the OS CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(random::array::<RANDOM_BYTES>()?);
        Ok(Self(Zeroizing::new(format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD.encode(*bytes)
        ))))
    }

    /// Accepts a presented token if it has the token shape.
    pub fn parse(text: &str) -> Option<Self> {
        let body = text.strip_prefix(PREFIX)?;
        let well_formed = body.len() == ENCODED_LEN
            && URL_SAFE_NO_PAD
                .decode(body)
                .is_ok_and(|b| b.len() == RANDOM_BYTES);
        well_formed.then(|| Self(Zeroizing::new(text.to_owned())))
    }

    /// The SHA-256 hash that the store keeps. A plain hash suffices: the token has 256 bits
    /// of entropy, so there is nothing to brute-force.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The token text, to hand to its holder once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(Token::parse(a.expose()).unwrap().hash(), a.hash());
        assert!(!format!("{a:?}").contains(&a.expose()[5..]));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = Token::generate().unwrap();
        assert!(Token::parse(&good.expose()[1..]).is_none());
        assert!(Token::parse(&good.expose()[..good.expose().len() - 1]).is_none());
        assert!(Token::parse("kagi_!!!").is_none());
        assert!(Token::parse("").is_none());
    }
}
