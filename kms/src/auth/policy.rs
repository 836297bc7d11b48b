//! The authorization table (catalogue A1, A2): default deny, least privilege by role.
//!
//! | action                         | admin | auditor | tenant-service   |
//! |--------------------------------|-------|---------|------------------|
//! | create tenant                  | yes   |         |                  |
//! | list tenants                   | yes   | yes     |                  |
//! | create / rotate / enable / disable key | yes |  |                  |
//! | get / list keys                | yes   | yes     | own tenant only  |
//! | encrypt, decrypt, data keys, re-encrypt |  |     | own tenant only  |
//! | create / revoke principal      | yes   |         |                  |
//! | list principals                | yes   | yes     |                  |
//!
//! | ceremony action (catalogue K6, A2) | admin | auditor | custodian | tenant-service |
//! |------------------------------------|-------|---------|-----------|----------------|
//! | enrol custodian, init root         | yes   |         |           |                |
//! | list custodians, read rekey        | yes   | yes     | yes       |                |
//! | submit own share (unseal, rekey)   |       |         | yes       |                |
//! | seal, start or cancel a ceremony   | yes   |         | yes       |                |
//! | query, verify, export the audit    |       | yes     |           |                |
//! | propose, cancel own proposal       | yes   |         | yes       |                |
//! | approve a proposal (signed)        |       |         | yes       |                |
//! | read proposals                     | yes   | yes     | yes       |                |
//!
//! Admins manage keys but never use them on data; services use keys but never manage them.
//! Custodians hold shares and nothing else: they cannot read or manage keys.

use crate::model::{Principal, Role};

/// Something a principal asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create a tenant.
    CreateTenant,
    /// List tenants.
    ListTenants,
    /// Create a key.
    CreateKey,
    /// Read a key's metadata, or list keys.
    ReadKey,
    /// Rotate, enable or disable a key.
    ManageKey,
    /// Encrypt, decrypt, generate data keys, re-encrypt.
    UseKey,
    /// Create or revoke a principal.
    ManagePrincipal,
    /// List principals.
    ListPrincipals,
    /// Enrol a custodian.
    EnrollCustodian,
    /// List custodians, or read the rekey in progress.
    ListCustodians,
    /// Initialise the root key.
    InitRoot,
    /// Submit one's own share to an unseal or rekey session.
    SubmitShare,
    /// Seal, or start or cancel an unseal or rekey session.
    SealRoot,
    /// Query, verify or export the audit trail.
    ReadAudit,
    /// Propose a sensitive operation, or cancel one's own proposal.
    Propose,
    /// Approve another's proposal with one's signing key.
    Approve,
    /// Read proposals.
    ReadProposals,
    /// Fetch an exported escrow bundle or read an import's state.
    ReadEscrow,
    /// Stage an escrow bundle for import.
    StageEscrow,
    /// Submit one's own escrow share to an approved import.
    SubmitEscrowShare,
}

/// A refusal, with the reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Whether `principal` may do `action` on a resource of `tenant` (`None`: not tenant-scoped).
pub fn authorize(
    principal: &Principal,
    action: Action,
    tenant: Option<&str>,
) -> Result<(), Denied> {
    use Action::*;
    let allowed = match principal.role {
        // Admins are audited, not auditors (catalogue A2).
        Role::Admin => !matches!(
            action,
            UseKey | SubmitShare | ReadAudit | Approve | SubmitEscrowShare
        ),
        Role::Auditor => matches!(
            action,
            ListTenants | ReadKey | ListPrincipals | ListCustodians | ReadAudit | ReadProposals
        ),
        Role::Custodian => matches!(
            action,
            ListCustodians
                | SubmitShare
                | SealRoot
                | Propose
                | Approve
                | ReadProposals
                | ReadEscrow
                | SubmitEscrowShare
        ),
        Role::TenantService => {
            matches!(action, ReadKey | UseKey)
                && tenant.is_some()
                && tenant == principal.tenant_id.as_deref()
        }
    };
    if allowed {
        return Ok(());
    }
    let reason = match (principal.role, tenant) {
        (Role::TenantService, Some(t)) if principal.tenant_id.as_deref() != Some(t) => {
            "the resource belongs to another tenant".to_owned()
        }
        (role, _) => format!("role {role} may not {}", describe(action)),
    };
    Err(Denied(format!("principal {:?}: {reason}", principal.name)))
}

/// Whether the principal's role may do `action` on some tenant at all: checked before a named
/// resource is looked up, so that a caller without the role learns nothing about it.
pub fn authorize_role(principal: &Principal, action: Action) -> Result<(), Denied> {
    let scope = principal.tenant_id.as_deref().or(Some(""));
    match principal.role {
        Role::TenantService => authorize(principal, action, scope),
        _ => authorize(principal, action, None),
    }
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::CreateTenant => "create tenants",
        Action::ListTenants => "list tenants",
        Action::CreateKey => "create keys",
        Action::ReadKey => "read keys without a tenant scope",
        Action::ManageKey => "rotate, enable or disable keys",
        Action::UseKey => "encrypt or decrypt data",
        Action::ManagePrincipal => "create or revoke principals",
        Action::ListPrincipals => "list principals",
        Action::EnrollCustodian => "enrol custodians",
        Action::ListCustodians => "list custodians",
        Action::InitRoot => "initialise the root key",
        Action::SubmitShare => "submit root key shares (custodians only)",
        Action::SealRoot => "seal kagid or run a ceremony",
        Action::ReadAudit => "read the audit trail (auditors only)",
        Action::Propose => "propose sensitive operations",
        Action::Approve => "approve proposals (custodians only)",
        Action::ReadProposals => "read proposals",
        Action::ReadEscrow => "read escrow bundles and imports",
        Action::StageEscrow => "stage escrow bundles for import",
        Action::SubmitEscrowShare => "submit escrow shares (custodians only)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            id: "p".into(),
            name: "p".into(),
            role,
            tenant_id: tenant.map(str::to_owned),
            created_at: 0,
            revoked_at: None,
        }
    }

    #[test]
    fn tenant_service_is_confined_to_its_tenant() {
        let svc = principal(Role::TenantService, Some("a"));
        assert!(authorize(&svc, Action::UseKey, Some("a")).is_ok());
        let denied = authorize(&svc, Action::UseKey, Some("b")).unwrap_err();
        assert!(denied.0.contains("another tenant"), "{denied}");
        assert!(authorize(&svc, Action::ReadKey, None).is_err());
        assert!(authorize(&svc, Action::CreateKey, Some("a")).is_err());
    }

    #[test]
    fn admin_never_uses_keys_and_auditor_only_reads() {
        let admin = principal(Role::Admin, None);
        assert!(authorize(&admin, Action::UseKey, Some("a")).is_err());
        assert!(authorize(&admin, Action::ManageKey, Some("a")).is_ok());
        let auditor = principal(Role::Auditor, None);
        assert!(authorize(&auditor, Action::ReadKey, Some("a")).is_ok());
        assert!(authorize(&auditor, Action::ManageKey, Some("a")).is_err());
        assert!(authorize(&auditor, Action::UseKey, Some("a")).is_err());
    }

    #[test]
    fn custodians_hold_shares_and_nothing_else() {
        let custodian = principal(Role::Custodian, None);
        assert!(authorize(&custodian, Action::SubmitShare, None).is_ok());
        assert!(authorize(&custodian, Action::SealRoot, None).is_ok());
        for action in [
            Action::ReadKey,
            Action::UseKey,
            Action::InitRoot,
            Action::ManagePrincipal,
        ] {
            assert!(
                authorize(&custodian, action, Some("a")).is_err(),
                "{action:?}"
            );
        }
        let admin = principal(Role::Admin, None);
        assert!(authorize(&admin, Action::SubmitShare, None).is_err());
        assert!(authorize(&admin, Action::InitRoot, None).is_ok());
    }
}
