//! The records Kagi keeps: tenants, keys, key versions, principals, and their enums.
//!
//! Enums convert to and from the short text stored in the database (`as_str` / `FromStr`), so
//! the schema stays readable in `sqlite3` or `psql`.

use std::fmt;
use std::str::FromStr;

/// Unix time in seconds (UTC).
pub type UnixSeconds = i64;

/// A tenant: a school board or platform customer with its own keys and principals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// UUID, text form.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Creation time.
    pub created_at: UnixSeconds,
}

/// A tenant key's metadata (its versions' material lives in [`KeyVersion`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// UUID, text form.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Unique within the tenant.
    pub name: String,
    /// What the key protects.
    pub purpose: Purpose,
    /// Importance class of the protected information.
    pub class: ImportanceClass,
    /// Data domain.
    pub domain: Domain,
    /// Algorithm of every version.
    pub algorithm: Algorithm,
    /// Days between rotations (1–365).
    pub rotation_period_days: u32,
    /// Enabled or disabled.
    pub state: KeyState,
    /// The version new ciphertexts use.
    pub primary_version: u32,
    /// Creation time.
    pub created_at: UnixSeconds,
    /// Last change of metadata or versions.
    pub updated_at: UnixSeconds,
    /// When the primary version was created.
    pub rotated_at: UnixSeconds,
}

impl Key {
    /// When the primary version is due for rotation.
    pub fn next_rotation_at(&self) -> UnixSeconds {
        self.rotated_at + i64::from(self.rotation_period_days) * 86_400
    }
}

/// One version of a tenant key: its wrapped material and state.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyVersion {
    /// The key it belongs to.
    pub key_id: String,
    /// 1, 2, 3, … with no gaps.
    pub version: u32,
    /// Lifecycle state.
    pub state: VersionState,
    /// The version key wrapped under the root (never plaintext).
    pub wrapped_material: Vec<u8>,
    /// Creation time.
    pub created_at: UnixSeconds,
}

impl fmt::Debug for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVersion")
            .field("key_id", &self.key_id)
            .field("version", &self.version)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A person or service that calls Kagi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// UUID, text form.
    pub id: String,
    /// Unique among active principals.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The tenant a tenant-bound role belongs to.
    pub tenant_id: Option<String>,
    /// Creation time.
    pub created_at: UnixSeconds,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixSeconds>,
}

/// A key custodian: a principal with role `custodian`, the person behind it, their age
/// public key and their acknowledgement of custodian duties (catalogue K8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custodian {
    /// The custodian's principal.
    pub principal: Principal,
    /// Full name of the person.
    pub person_name: String,
    /// age X25519 recipient (`age1…`) that shares are encrypted to.
    pub public_key: String,
    /// SHA-256 of the signed acknowledgement document.
    pub acknowledgement_sha256: [u8; 32],
    /// When the acknowledgement was recorded.
    pub acknowledged_at: UnixSeconds,
    /// The share index held in the current generation, if any.
    pub share_index: Option<u8>,
    /// Ed25519 public key (hex) that verifies the custodian's approvals, if enrolled.
    pub signing_key: Option<String>,
}

/// The public half of the root key's sharing, stored once Init has run. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealConfig {
    /// Random id of the initialisation; salts the root key's derivation.
    pub init_id: [u8; 16],
    /// Custodian-set generation: 1 at Init, +1 per completed rekey.
    pub generation: u32,
    /// Shares needed (M).
    pub threshold: u8,
    /// Shares issued (N).
    pub share_count: u8,
    /// Encoded Feldman commitments of this generation's shares.
    pub commitments: Vec<u8>,
    /// Check value of the root key (HKDF of the root; reveals nothing about it).
    pub root_check: [u8; 32],
    /// When Init ran.
    pub initialised_at: UnixSeconds,
    /// When the generation last changed.
    pub changed_at: UnixSeconds,
    /// Share index → principal id of its holder, this generation.
    pub holders: Vec<(u8, String)>,
}

impl SealConfig {
    /// The principal holding share `index` in this generation.
    pub fn holder(&self, index: u8) -> Option<&str> {
        self.holders
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, p)| p.as_str())
    }
}

/// Declares a fieldless enum with its stored text form.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and displayed text form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A stored or given text that names no value of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    /// The enum's name.
    pub kind: &'static str,
    /// The text given.
    pub value: String,
}

text_enum!(
    /// What a key protects (catalogue T4).
    Purpose {
        /// Basic identifiers and attributes of pupils and staff.
        PersonalInformation => "personal-information",
        /// Activity records and learning histories.
        LearningRecord => "learning-record",
        /// School administration (校務) data such as grades.
        SchoolAdministration => "school-administration",
        /// Anything else.
        Other => "other",
    }
);

impl Purpose {
    /// Whether the key protects school data, for which rotation is at most yearly (catalogue K4).
    pub fn protects_school_data(self) -> bool {
        !matches!(self, Purpose::Other)
    }
}

text_enum!(
    /// Importance class I–IV (catalogue T2); I is the most important.
    ImportanceClass {
        /// Class I.
        I => "I",
        /// Class II.
        Ii => "II",
        /// Class III.
        Iii => "III",
        /// Class IV.
        Iv => "IV",
    }
);

text_enum!(
    /// Data domain (catalogue T3).
    Domain {
        /// 校務系: school administration; pupils never access.
        Komu => "komu",
        /// 学習系: learning; pupils access.
        Gakushu => "gakushu",
        /// 校務外部接続系.
        KomuExternal => "komu-external",
    }
);

text_enum!(
    /// Algorithm of a tenant key (catalogue C1).
    Algorithm {
        /// AES-256-GCM with a per-message HKDF-SHA-256 key.
        Aes256GcmHkdfSha256 => "aes-256-gcm-hkdf-sha256",
    }
);

text_enum!(
    /// Key state.
    KeyState {
        /// Usable.
        Enabled => "enabled",
        /// Every crypto operation refused until enabled again.
        Disabled => "disabled",
        /// Scheduled for destruction after a waiting period: every crypto operation refused
        /// until the destruction is cancelled (catalogue K9, D1).
        PendingDestruction => "pending-destruction",
        /// Its material is destroyed; only the metadata remains, as a tombstone (catalogue D1).
        Destroyed => "destroyed",
    }
);

text_enum!(
    /// Key version state.
    VersionState {
        /// The primary version.
        Active => "active",
        /// An older version: decrypt and re-encrypt only.
        Deactivated => "deactivated",
        /// Its material is destroyed.
        Destroyed => "destroyed",
        /// Suspected exposed: decrypts only to re-encrypt under another version, and every
        /// such use is recorded (catalogue K5).
        Compromised => "compromised",
        /// Compromised, then destroyed.
        DestroyedCompromised => "destroyed-compromised",
    }
);

text_enum!(
    /// A principal's role (catalogue A1, A2).
    Role {
        /// Tenants, keys and principals; never data.
        Admin => "admin",
        /// Crypto with its own tenant's keys.
        TenantService => "tenant-service",
        /// Read-only metadata.
        Auditor => "auditor",
        /// Holds one share of the root key; unseals and rekeys in quorum (catalogue K6, K8).
        Custodian => "custodian",
    }
);

impl Role {
    /// Whether principals of this role belong to one tenant.
    pub fn is_tenant_bound(self) -> bool {
        matches!(self, Role::TenantService)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for p in Purpose::ALL {
            assert_eq!(p.as_str().parse::<Purpose>().unwrap(), *p);
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
