//! What an escrow bundle's encrypted payload holds: a tenant, its keys' metadata, and the
//! unwrapped material of every version.
//!
//! ```text
//! u32 big-endian length of the manifest ‖ manifest (JSON) ‖ 32-byte version keys, in manifest order
//! ```
//!
//! The manifest is JSON and holds no secret; the key bytes follow it raw so that they live only
//! in zeroizing buffers, never in a parsed string.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::bundle::EscrowError;
use crate::crypto::SecretKey;
use crate::model::{Key, KeyState, KeyVersion, Tenant, UnixSeconds, VersionState};

/// Length of one version key.
const KEY_LEN: usize = 32;

/// The non-secret part of a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The tenant, as the source stored it.
    pub tenant: TenantEntry,
    /// Its keys, each with its versions.
    pub keys: Vec<KeyEntry>,
}

/// A tenant's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantEntry {
    /// Id (kept on import, so wrapped material binds as before).
    pub id: String,
    /// Name.
    pub name: String,
    /// Creation time at the source.
    pub created_at: UnixSeconds,
}

/// A key's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// Id (kept on import: ciphertexts name it).
    pub id: String,
    /// Name within the tenant.
    pub name: String,
    /// `Purpose` text.
    pub purpose: String,
    /// `ImportanceClass` text.
    pub class: String,
    /// `Domain` text.
    pub domain: String,
    /// `Algorithm` text.
    pub algorithm: String,
    /// Days between rotations.
    pub rotation_period_days: u32,
    /// `KeyState` text at export.
    pub state: String,
    /// The version new ciphertexts use.
    pub primary_version: u32,
    /// Creation time.
    pub created_at: UnixSeconds,
    /// When the primary version was made.
    pub rotated_at: UnixSeconds,
    /// Versions, oldest first; their keys follow the manifest in this order.
    pub versions: Vec<VersionEntry>,
}

/// A version's record (its key is in the payload's key section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    /// Number.
    pub version: u32,
    /// `VersionState` text.
    pub state: String,
    /// Creation time.
    pub created_at: UnixSeconds,
}

/// A decoded payload: the manifest and each version's key, in manifest order.
pub struct Payload {
    /// What the keys are.
    pub manifest: Manifest,
    /// One key per version of the manifest, in order (zeroized on drop).
    pub version_keys: Vec<SecretKey>,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("manifest", &self.manifest)
            .field("version_keys", &self.version_keys.len())
            .finish()
    }
}

impl TenantEntry {
    /// The entry of `tenant`.
    pub fn new(tenant: &Tenant) -> Self {
        Self {
            id: tenant.id.clone(),
            name: tenant.name.clone(),
            created_at: tenant.created_at,
        }
    }
}

impl KeyEntry {
    /// The entry of `key` with `versions`.
    pub fn new(key: &Key, versions: &[KeyVersion]) -> Self {
        Self {
            id: key.id.clone(),
            name: key.name.clone(),
            purpose: key.purpose.as_str().into(),
            class: key.class.as_str().into(),
            domain: key.domain.as_str().into(),
            algorithm: key.algorithm.as_str().into(),
            rotation_period_days: key.rotation_period_days,
            state: key.state.as_str().into(),
            primary_version: key.primary_version,
            created_at: key.created_at,
            rotated_at: key.rotated_at,
            versions: versions
                .iter()
                .map(|v| VersionEntry {
                    version: v.version,
                    state: v.state.as_str().into(),
                    created_at: v.created_at,
                })
                .collect(),
        }
    }

    /// The key record to store on import, updated at `now`. A key that was pending destruction
    /// at the source arrives disabled: the destruction schedule is the source's decision, not
    /// material, and a recovered key must be looked at before it is used.
    pub fn to_key(&self, tenant_id: &str, now: UnixSeconds) -> Result<Key, EscrowError> {
        let state: KeyState = parse(&self.state, "key state")?;
        Ok(Key {
            id: self.id.clone(),
            tenant_id: tenant_id.to_owned(),
            name: self.name.clone(),
            purpose: parse(&self.purpose, "purpose")?,
            class: parse(&self.class, "importance class")?,
            domain: parse(&self.domain, "domain")?,
            algorithm: parse(&self.algorithm, "algorithm")?,
            rotation_period_days: self.rotation_period_days,
            state: match state {
                KeyState::PendingDestruction => KeyState::Disabled,
                other => other,
            },
            primary_version: self.primary_version,
            created_at: self.created_at,
            updated_at: now,
            rotated_at: self.rotated_at,
        })
    }
}

impl VersionEntry {
    /// The version's state.
    pub fn state(&self) -> Result<VersionState, EscrowError> {
        parse(&self.state, "version state")
    }
}

/// Encodes a payload. `version_keys` must hold one key per manifest version, in order.
pub fn encode(
    manifest: &Manifest,
    version_keys: &[Arc<SecretKey>],
) -> Result<Zeroizing<Vec<u8>>, EscrowError> {
    let count: usize = manifest.keys.iter().map(|k| k.versions.len()).sum();
    if count != version_keys.len() {
        return Err(EscrowError::InvalidParameters(format!(
            "{count} versions listed but {} keys given",
            version_keys.len()
        )));
    }
    let json = serde_json::to_vec(manifest).expect("a manifest serializes");
    let len = u32::try_from(json.len())
        .map_err(|_| EscrowError::InvalidParameters("the manifest is too large".into()))?;
    let mut out = Zeroizing::new(Vec::with_capacity(4 + json.len() + count * KEY_LEN));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    for key in version_keys {
        out.extend_from_slice(key.expose());
    }
    Ok(out)
}

/// Decodes an opened payload.
pub fn decode(bytes: &[u8]) -> Result<Payload, EscrowError> {
    let malformed = |why: &str| EscrowError::Malformed(format!("payload: {why}"));
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| malformed("too short"))?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(malformed("the manifest is cut short"));
    }
    let (json, keys) = rest.split_at(len);
    let manifest: Manifest =
        serde_json::from_slice(json).map_err(|e| malformed(&format!("manifest: {e}")))?;
    let count: usize = manifest.keys.iter().map(|k| k.versions.len()).sum();
    if keys.len() != count * KEY_LEN {
        return Err(malformed("the key section does not match the manifest"));
    }
    let version_keys = keys
        .chunks_exact(KEY_LEN)
        .map(|k| SecretKey::from_slice(k).expect("32 bytes"))
        .collect();
    Ok(Payload {
        manifest,
        version_keys,
    })
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, EscrowError> {
    text.parse()
        .map_err(|_| EscrowError::Malformed(format!("payload: unknown {what} {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            tenant: TenantEntry {
                id: "t".into(),
                name: "board".into(),
                created_at: 1,
            },
            keys: vec![KeyEntry {
                id: "k".into(),
                name: "records".into(),
                purpose: "learning-record".into(),
                class: "II".into(),
                domain: "gakushu".into(),
                algorithm: "aes-256-gcm-hkdf-sha256".into(),
                rotation_period_days: 365,
                state: "enabled".into(),
                primary_version: 2,
                created_at: 1,
                rotated_at: 2,
                versions: vec![
                    VersionEntry {
                        version: 1,
                        state: "deactivated".into(),
                        created_at: 1,
                    },
                    VersionEntry {
                        version: 2,
                        state: "active".into(),
                        created_at: 2,
                    },
                ],
            }],
        }
    }

    #[test]
    fn a_payload_round_trips() {
        let keys = [
            Arc::new(SecretKey::generate().unwrap()),
            Arc::new(SecretKey::generate().unwrap()),
        ];
        let refs = keys.to_vec();
        let bytes = encode(&manifest(), &refs).unwrap();
        let payload = decode(&bytes).unwrap();
        assert_eq!(payload.manifest, manifest());
        for (a, b) in payload.version_keys.iter().zip(&keys) {
            assert_eq!(a.expose(), b.expose());
        }
    }

    #[test]
    fn a_cut_payload_is_refused() {
        let keys = [
            Arc::new(SecretKey::generate().unwrap()),
            Arc::new(SecretKey::generate().unwrap()),
        ];
        let refs = keys.to_vec();
        let bytes = encode(&manifest(), &refs).unwrap();
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&bytes[..3]).is_err());
        assert!(encode(&manifest(), &refs[..1]).is_err());
    }
}
