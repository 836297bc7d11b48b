//! Proposals: the exact operation, its canonical form, and the digest approvers sign.
//!
//! ```text
//! digest = SHA-256("kagi-proposal-v1" 0x00 ‖ canonical JSON of Signed)
//! ```
//! `Signed` holds the proposal id, the operation (kind and parameters), the proposer, a random
//! nonce, the creation and expiry times and the threshold, so a signature approves exactly one
//! proposal: another operation, another proposal or a later copy has another digest (C3).
//! kagictl recomputes the digest from the proposal's fields before it signs, so a server cannot
//! get a signature over something other than what the approver was shown.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const DIGEST_LABEL: &[u8] = b"kagi-proposal-v1";

/// A sensitive operation that needs a quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Operation {
    /// Refuse decrypts for a tenant (by id), or for all tenants (`None`).
    Lockdown {
        /// Tenant id, or `None` for every tenant.
        tenant: Option<String>,
        /// Why.
        reason: String,
    },
    /// Lift the lockdown of a tenant (by id), or the global one.
    LiftLockdown {
        /// Tenant id, or `None` for the global lockdown.
        tenant: Option<String>,
    },
    /// Change a key's rotation period.
    SetRotationPeriod {
        /// Key id.
        key_id: String,
        /// New period in days.
        days: u32,
    },
}

impl Operation {
    /// Short kind name, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Lockdown { .. } => "lockdown",
            Operation::LiftLockdown { .. } => "lift-lockdown",
            Operation::SetRotationPeriod { .. } => "set-rotation-period",
        }
    }

    /// The operation in plain words, for approvers.
    pub fn describe(&self) -> String {
        match self {
            Operation::Lockdown {
                tenant: None,
                reason,
            } => format!(
                "LOCK DOWN EVERY TENANT: refuse every decrypt and data key until lifted (reason: {reason})"
            ),
            Operation::Lockdown {
                tenant: Some(t),
                reason,
            } => format!(
                "lock down tenant {t}: refuse its decrypts and data keys until lifted (reason: {reason})"
            ),
            Operation::LiftLockdown { tenant: None } => "lift the global lockdown".into(),
            Operation::LiftLockdown { tenant: Some(t) } => {
                format!("lift the lockdown of tenant {t}")
            }
            Operation::SetRotationPeriod { key_id, days } => {
                format!("set the rotation period of key {key_id} to {days} days")
            }
        }
    }
}

/// Everything a signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// Proposal id (UUID).
    pub id: String,
    /// The operation.
    pub operation: Operation,
    /// Who proposed it (principal id).
    pub proposer_id: String,
    /// Random nonce, hex.
    pub nonce: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Approvals needed.
    pub threshold: u32,
}

impl Signed {
    /// The digest approvers sign.
    pub fn digest(&self) -> [u8; 32] {
        let json = serde_json::to_vec(self).expect("a proposal serializes");
        let mut h = Sha256::new();
        h.update(DIGEST_LABEL);
        h.update([0]);
        h.update(&json);
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed() -> Signed {
        Signed {
            id: "p1".into(),
            operation: Operation::Lockdown {
                tenant: None,
                reason: "incident 7".into(),
            },
            proposer_id: "admin".into(),
            nonce: "00".into(),
            created_at: 1,
            expires_at: 2,
            threshold: 2,
        }
    }

    #[test]
    fn every_field_is_in_the_digest() {
        let base = signed().digest();
        let mut other = signed();
        other.id = "p2".into();
        assert_ne!(other.digest(), base);
        let mut other = signed();
        other.operation = Operation::LiftLockdown { tenant: None };
        assert_ne!(other.digest(), base);
        let mut other = signed();
        other.nonce = "01".into();
        assert_ne!(other.digest(), base);
        let mut other = signed();
        other.expires_at = 3;
        assert_ne!(other.digest(), base);
        assert_eq!(signed().digest(), base);
    }
}
