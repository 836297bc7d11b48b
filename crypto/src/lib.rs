//! kagi-crypto: Kagi's cryptographic primitives, with no I/O and no async: pure functions over
//! bytes, shared by kagid and kagi-sdk so that both speak exactly one format.
//!
//! - [`secret`]: [`SecretKey`], a 256-bit key that zeroizes on drop and never prints.
//! - [`random`]: every random byte Kagi uses, from the operating system's CSPRNG.
//! - [`derive`]: HKDF-SHA-256 derivations (the root's wrapping key, per-message keys).
//! - [`aead`]: AES-256-GCM sealing and opening.
//! - [`context`]: canonical encoding of an encryption context.
//! - [`ciphertext`]: the self-describing KMS ciphertext (format v1).
//! - [`sharing`]: Feldman verifiable secret sharing of the root key among custodians.
//! - [`wrap`]: wrapping tenant key versions under the root, bound to their identity.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aead;
pub mod ciphertext;
pub mod context;
pub mod derive;
pub mod random;
pub mod secret;
pub mod sharing;
pub mod wrap;

pub use secret::SecretKey;

/// Why a cryptographic operation failed. Messages never contain key bytes or plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// Authentication failed: wrong key, wrong context, or modified bytes.
    #[error(
        "authentication failed: the ciphertext was modified, or the key or encryption context differs"
    )]
    Authentication,
    /// The ciphertext is not a well-formed Kagi ciphertext.
    #[error("malformed ciphertext: {0}")]
    Malformed(&'static str),
    /// The encryption context breaks a limit.
    #[error("invalid encryption context: {0}")]
    InvalidContext(String),
}
