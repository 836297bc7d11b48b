//! Who is calling and what they may do.
//!
//! - [`token`]: bearer tokens (256 random bits), stored only as SHA-256 hashes.
//! - [`policy`]: the authorization table: which role may do which [`policy::Action`], on which
//!   tenant. Default deny.

pub mod policy;
pub mod token;

use subtle::ConstantTimeEq;

use crate::model::Principal;
use crate::store::{Store, StoreError};
use token::Token;

/// Why a caller was not authenticated. The messages say what to do, never what the token was.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `authorization: Bearer …` header.
    #[error("missing credentials: send an 'authorization: Bearer <token>' header")]
    Missing,
    /// A token that is malformed, unknown or revoked.
    #[error("invalid or revoked token")]
    Invalid,
    /// The store failed while checking the token.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Finds the active principal a presented token belongs to.
pub async fn authenticate(store: &Store, presented: Option<&str>) -> Result<Principal, AuthError> {
    let presented = presented.ok_or(AuthError::Missing)?;
    let token = Token::parse(presented).ok_or(AuthError::Invalid)?;
    let hash = token.hash();
    let (principal, stored_hash) = store
        .principal_by_token_hash(&hash)
        .await?
        .ok_or(AuthError::Invalid)?;
    // The lookup was by hash; comparing again in constant time guards against a database
    // collation or index that matches more loosely than byte equality.
    if !bool::from(stored_hash.as_slice().ct_eq(&hash[..])) || principal.revoked_at.is_some() {
        return Err(AuthError::Invalid);
    }
    Ok(principal)
}
