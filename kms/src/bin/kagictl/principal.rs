//! `kagictl principal create|list|revoke`: people and services, and their bearer tokens.

use clap::{Subcommand, ValueEnum};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;

use crate::output::{self, CliError, Format, Table};

/// Principal commands.
#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Create a principal and print its token. The token is shown this once only.
    Create {
        /// What the principal may do.
        #[arg(long, value_enum)]
        role: Role,
        /// Tenant (id or name) whose keys a tenant-service may use; only for tenant-service.
        #[arg(long, required_if_eq("role", "tenant-service"))]
        tenant: Option<String>,
        /// 1–64 letters, digits, '-', '_', '.' or '@'; unique among active principals.
        #[arg(long)]
        name: String,
    },
    /// List every principal, revoked ones included.
    List,
    /// Revoke a principal: its token stops working at once.
    Revoke {
        /// Principal id or name.
        principal: String,
    },
}

/// Role of a principal, as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Manages tenants, keys and principals; cannot use keys on data.
    Admin,
    /// Encrypts and decrypts with its own tenant's keys only.
    TenantService,
    /// Reads metadata; changes nothing.
    Auditor,
    /// Holds a root key share; made by `kagictl custodian enroll`, not by `principal create`.
    Custodian,
}

impl Role {
    /// The protobuf role.
    fn to_pb(self) -> pb::Role {
        match self {
            Self::Admin => pb::Role::Admin,
            Self::TenantService => pb::Role::TenantService,
            Self::Auditor => pb::Role::Auditor,
            Self::Custodian => pb::Role::Custodian,
        }
    }

    /// The role of a protobuf value; `None` for unspecified or unknown.
    fn from_pb(value: i32) -> Option<Self> {
        match pb::Role::try_from(value).ok()? {
            pb::Role::Admin => Some(Self::Admin),
            pb::Role::TenantService => Some(Self::TenantService),
            pb::Role::Auditor => Some(Self::Auditor),
            pb::Role::Custodian => Some(Self::Custodian),
            pb::Role::Unspecified => None,
        }
    }
}

/// A principal as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct PrincipalView {
    /// Principal id (UUID).
    id: String,
    /// Principal name.
    name: String,
    /// admin, tenant-service or auditor.
    role: String,
    /// The tenant of a tenant-service; null for other roles.
    tenant_id: Option<String>,
    /// Creation time, RFC 3339 UTC.
    created_at: String,
    /// Revocation time, RFC 3339 UTC; null while the principal is active.
    revoked_at: Option<String>,
}

impl From<&pb::Principal> for PrincipalView {
    fn from(p: &pb::Principal) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            role: output::word(Role::from_pb(p.role)),
            tenant_id: (!p.tenant_id.is_empty()).then(|| p.tenant_id.clone()),
            created_at: output::rfc3339(p.created_at),
            revoked_at: output::optional_time(p.revoked_at),
        }
    }
}

/// The JSON document of `principal create`: the principal and its only showing of the token.
/// Not `Debug`, so that no debug output can show the token.
#[derive(Serialize)]
struct CreatedView {
    /// The new principal.
    principal: PrincipalView,
    /// Its bearer token.
    token: String,
}

/// Runs a principal command.
pub async fn run(command: PrincipalCommand, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    match command {
        PrincipalCommand::Create { role, tenant, name } => {
            create(kagi, role, tenant, name, format).await
        }
        PrincipalCommand::List => list(kagi, format).await,
        PrincipalCommand::Revoke { principal } => revoke(kagi, principal, format).await,
    }
}

/// `principal create --role R [--tenant T] --name N`.
async fn create(
    kagi: &Kagi,
    role: Role,
    tenant: Option<String>,
    name: String,
    format: Format,
) -> Result<(), CliError> {
    // Checked here rather than left to kagid so that the mistake costs no round trip.
    if role != Role::TenantService && tenant.is_some() {
        return Err(CliError::Usage(
            "--tenant applies to --role tenant-service only".into(),
        ));
    }
    let response = kagi
        .principals()
        .create_principal(pb::CreatePrincipalRequest {
            name,
            role: role.to_pb() as i32,
            tenant: tenant.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let created = CreatedView {
        principal: PrincipalView::from(&response.principal.unwrap_or_default()),
        token: response.token,
    };
    match format {
        Format::Json => output::json(&created),
        Format::Human => output::print(&created_text(&created)),
    }
}

/// The human output of `principal create`. Every line but the export is a shell comment, so
/// the whole output can be pasted into (or `eval`ed by) a shell.
fn created_text(created: &CreatedView) -> String {
    let p = &created.principal;
    let tenant = match &p.tenant_id {
        Some(id) => format!(", tenant {id}"),
        None => String::new(),
    };
    format!(
        "# Created principal {} ({}), role {}{tenant}.\n\
         export KAGI_TOKEN={}\n\
         # This token is shown once: kagid keeps only its hash. Store it in a secret store now.\n",
        p.name, p.id, p.role, created.token
    )
}

/// `principal list`.
async fn list(kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let principals: Vec<PrincipalView> = kagi
        .principals()
        .list_principals(pb::ListPrincipalsRequest {})
        .await?
        .into_inner()
        .principals
        .iter()
        .map(PrincipalView::from)
        .collect();
    if format == Format::Json {
        return output::json_list("principals", &principals);
    }
    let mut table = Table::new(&["ID", "NAME", "ROLE", "TENANT", "CREATED", "REVOKED"]);
    for p in principals {
        let tenant = p.tenant_id.unwrap_or_else(|| "-".into());
        let revoked = p.revoked_at.unwrap_or_else(|| "-".into());
        table.row(vec![p.id, p.name, p.role, tenant, p.created_at, revoked]);
    }
    output::print(&table.render())
}

/// `principal revoke ID|NAME`.
async fn revoke(kagi: &Kagi, principal: String, format: Format) -> Result<(), CliError> {
    let response = kagi
        .principals()
        .revoke_principal(pb::RevokePrincipalRequest { principal })
        .await?
        .into_inner();
    let revoked = PrincipalView::from(&response.principal.unwrap_or_default());
    match format {
        Format::Json => output::json(&revoked),
        Format::Human => output::print(&format!(
            "Revoked principal {} ({}) at {}: its token no longer works.\n",
            revoked.name,
            revoked.id,
            revoked.revoked_at.as_deref().unwrap_or("-")
        )),
    }
}
