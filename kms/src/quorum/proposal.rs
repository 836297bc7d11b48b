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

use kagi_proto::v1 as pb;
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
    /// Schedule a key's destruction after a waiting period.
    ScheduleKeyDestruction {
        /// Key id.
        key_id: String,
        /// Days from execution to destruction (7 to 30).
        waiting_days: u32,
    },
    /// Schedule the destruction of every key of a tenant after a waiting period.
    ScheduleTenantDestruction {
        /// Tenant id.
        tenant_id: String,
        /// Days from execution to destruction (7 to 30).
        waiting_days: u32,
    },
    /// Mark a key version compromised: it decrypts only to re-encrypt, and if it is the
    /// primary the key is rotated at once.
    MarkCompromised {
        /// Key id.
        key_id: String,
        /// The suspected version.
        version: u32,
    },
    /// Export a tenant's key material into an escrow bundle split among escrow custodians.
    EscrowExport {
        /// Tenant id.
        tenant_id: String,
        /// Names of the enrolled custodians who each receive one share.
        custodians: Vec<String>,
        /// Shares needed to open the bundle.
        threshold: u8,
    },
    /// Let a staged escrow bundle be imported once its escrow custodians bring their shares.
    EscrowImport {
        /// The bundle's digest (hex).
        bundle_digest: String,
        /// The tenant it carries (id).
        tenant_id: String,
        /// The tenant's name in the bundle.
        tenant_name: String,
    },
}

impl Operation {
    /// Short kind name, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Lockdown { .. } => "lockdown",
            Operation::LiftLockdown { .. } => "lift-lockdown",
            Operation::SetRotationPeriod { .. } => "set-rotation-period",
            Operation::ScheduleKeyDestruction { .. } => "schedule-key-destruction",
            Operation::ScheduleTenantDestruction { .. } => "schedule-tenant-destruction",
            Operation::MarkCompromised { .. } => "mark-compromised",
            Operation::EscrowExport { .. } => "escrow-export",
            Operation::EscrowImport { .. } => "escrow-import",
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
            Operation::ScheduleKeyDestruction {
                key_id,
                waiting_days,
            } => format!(
                "DESTROY KEY {key_id}: refuse every use now, and destroy its material for good \
                 {waiting_days} days after approval (data under it becomes unreadable)"
            ),
            Operation::ScheduleTenantDestruction {
                tenant_id,
                waiting_days,
            } => format!(
                "DESTROY EVERY KEY OF TENANT {tenant_id}: refuse every use now, and destroy the \
                 material for good {waiting_days} days after approval (all its data becomes \
                 unreadable)"
            ),
            Operation::MarkCompromised { key_id, version } => format!(
                "MARK VERSION {version} OF KEY {key_id} COMPROMISED: it stops decrypting except \
                 to re-encrypt, every such use is flagged, and the key is rotated at once if it \
                 is the primary"
            ),
            Operation::EscrowExport {
                tenant_id,
                custodians,
                threshold,
            } => format!(
                "EXPORT every key of tenant {tenant_id} into an escrow bundle that any {threshold} \
                 of {} can open: {}",
                custodians.len(),
                custodians.join(", ")
            ),
            Operation::EscrowImport {
                bundle_digest,
                tenant_id,
                tenant_name,
            } => format!(
                "IMPORT the keys of tenant {tenant_name} ({tenant_id}) from escrow bundle \
                 {bundle_digest} into this instance, once its escrow custodians bring their shares"
            ),
        }
    }
}

impl Operation {
    /// The protobuf form. Tenants and keys appear as stored (by id); a request may name them
    /// instead, and kagid resolves names to ids before it records a proposal.
    pub fn to_pb(&self) -> pb::Operation {
        use pb::operation::Kind;
        let kind = match self {
            Operation::Lockdown { tenant, reason } => Kind::Lockdown(pb::Lockdown {
                tenant: tenant.clone().unwrap_or_default(),
                reason: reason.clone(),
            }),
            Operation::LiftLockdown { tenant } => Kind::LiftLockdown(pb::LiftLockdown {
                tenant: tenant.clone().unwrap_or_default(),
            }),
            Operation::SetRotationPeriod { key_id, days } => {
                Kind::SetRotationPeriod(pb::SetRotationPeriod {
                    key: key_id.clone(),
                    rotation_period_days: *days,
                })
            }
            Operation::ScheduleKeyDestruction {
                key_id,
                waiting_days,
            } => Kind::ScheduleKeyDestruction(pb::ScheduleKeyDestruction {
                key: key_id.clone(),
                waiting_days: *waiting_days,
            }),
            Operation::ScheduleTenantDestruction {
                tenant_id,
                waiting_days,
            } => Kind::ScheduleTenantDestruction(pb::ScheduleTenantDestruction {
                tenant: tenant_id.clone(),
                waiting_days: *waiting_days,
            }),
            Operation::MarkCompromised { key_id, version } => {
                Kind::MarkCompromised(pb::MarkCompromised {
                    key: key_id.clone(),
                    version: *version,
                })
            }
            Operation::EscrowExport {
                tenant_id,
                custodians,
                threshold,
            } => Kind::EscrowExport(pb::EscrowExport {
                tenant: tenant_id.clone(),
                custodians: custodians.clone(),
                threshold: u32::from(*threshold),
            }),
            Operation::EscrowImport {
                bundle_digest,
                tenant_id,
                tenant_name,
            } => Kind::EscrowImport(pb::EscrowImport {
                bundle_digest: bundle_digest.clone(),
                tenant_id: tenant_id.clone(),
                tenant_name: tenant_name.clone(),
            }),
        };
        pb::Operation { kind: Some(kind) }
    }

    /// The operation as kagid stored it, from the protobuf form of a proposal; `None` when no
    /// kind is set or this build does not know it (a newer kagid).
    pub fn from_pb(operation: Option<&pb::Operation>) -> Option<Self> {
        use pb::operation::Kind;
        // An empty tenant means every tenant (or the global lockdown).
        let tenant = |id: &str| (!id.is_empty()).then(|| id.to_owned());
        Some(match operation?.kind.as_ref()? {
            Kind::Lockdown(l) => Operation::Lockdown {
                tenant: tenant(&l.tenant),
                reason: l.reason.clone(),
            },
            Kind::LiftLockdown(l) => Operation::LiftLockdown {
                tenant: tenant(&l.tenant),
            },
            Kind::SetRotationPeriod(s) => Operation::SetRotationPeriod {
                key_id: s.key.clone(),
                days: s.rotation_period_days,
            },
            Kind::ScheduleKeyDestruction(d) => Operation::ScheduleKeyDestruction {
                key_id: d.key.clone(),
                waiting_days: d.waiting_days,
            },
            Kind::ScheduleTenantDestruction(d) => Operation::ScheduleTenantDestruction {
                tenant_id: d.tenant.clone(),
                waiting_days: d.waiting_days,
            },
            Kind::MarkCompromised(m) => Operation::MarkCompromised {
                key_id: m.key.clone(),
                version: m.version,
            },
            Kind::EscrowExport(e) => Operation::EscrowExport {
                tenant_id: e.tenant.clone(),
                custodians: e.custodians.clone(),
                threshold: u8::try_from(e.threshold).ok()?,
            },
            Kind::EscrowImport(e) => Operation::EscrowImport {
                bundle_digest: e.bundle_digest.clone(),
                tenant_id: e.tenant_id.clone(),
                tenant_name: e.tenant_name.clone(),
            },
        })
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

    #[test]
    fn every_operation_survives_its_protobuf_form() {
        let all = [
            Operation::Lockdown {
                tenant: Some("t".into()),
                reason: "r".into(),
            },
            Operation::Lockdown {
                tenant: None,
                reason: "r".into(),
            },
            Operation::LiftLockdown { tenant: None },
            Operation::SetRotationPeriod {
                key_id: "k".into(),
                days: 90,
            },
            Operation::ScheduleKeyDestruction {
                key_id: "k".into(),
                waiting_days: 7,
            },
            Operation::EscrowExport {
                tenant_id: "t".into(),
                custodians: vec!["a".into(), "b".into()],
                threshold: 2,
            },
            Operation::MarkCompromised {
                key_id: "k".into(),
                version: 3,
            },
            Operation::EscrowImport {
                bundle_digest: "ab".into(),
                tenant_id: "t".into(),
                tenant_name: "n".into(),
            },
            Operation::ScheduleTenantDestruction {
                tenant_id: "t".into(),
                waiting_days: 30,
            },
        ];
        for op in all {
            assert_eq!(Operation::from_pb(Some(&op.to_pb())), Some(op.clone()));
        }
        // An empty tenant is every tenant (or the global lockdown).
        let global = pb::Operation {
            kind: Some(pb::operation::Kind::LiftLockdown(pb::LiftLockdown {
                tenant: String::new(),
            })),
        };
        assert_eq!(
            Operation::from_pb(Some(&global)),
            Some(Operation::LiftLockdown { tenant: None })
        );
        assert_eq!(Operation::from_pb(None), None);
        assert_eq!(
            Operation::from_pb(Some(&pb::Operation { kind: None })),
            None
        );
    }
}
