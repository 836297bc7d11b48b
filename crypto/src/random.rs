//! Randomness, only from the operating system's CSPRNG (`getrandom`, via rand's `SysRng`).

use rand::TryRng;
use rand::rngs::SysRng;

use crate::CryptoError;

/// Fills `buf` with random bytes from the OS.
pub fn fill(buf: &mut [u8]) -> Result<(), CryptoError> {
    SysRng.try_fill_bytes(buf).map_err(|_| CryptoError::Random)
}

/// An array of `N` random bytes from the OS.
pub fn array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}
