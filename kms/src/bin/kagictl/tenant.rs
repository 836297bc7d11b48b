//! `kagictl tenant create|list|offboard|offboard-status`.

use clap::Subcommand;
use kagi_sdk::{Kagi, pb};
use serde::Serialize;

use crate::output::{self, CliError, Format, Table};

/// Tenant commands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (a school or an organisation owning keys).
    Create {
        /// 1–64 letters, digits, '-', '_' or '.'.
        name: String,
    },
    /// List every tenant.
    List,
    /// Off-board a tenant: propose the escrow export for the customer and the destruction of
    /// every key (which suspends its crypto once approved), and revoke its services.
    Offboard(crate::offboard::OffboardArgs),
    /// Where a tenant's off-boarding stands, and the next step.
    OffboardStatus {
        /// Tenant id or name.
        tenant: String,
    },
}

/// A tenant as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct TenantView {
    /// Tenant id (UUID).
    id: String,
    /// Tenant name.
    name: String,
    /// Creation time, RFC 3339 UTC.
    created_at: String,
}

impl From<&pb::Tenant> for TenantView {
    fn from(t: &pb::Tenant) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at: output::rfc3339(t.created_at),
        }
    }
}

/// Runs a tenant command.
pub async fn run(command: TenantCommand, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    match command {
        TenantCommand::Create { name } => create(kagi, name, format).await,
        TenantCommand::List => list(kagi, format).await,
        TenantCommand::Offboard(args) => crate::offboard::offboard(kagi, args, format).await,
        TenantCommand::OffboardStatus { tenant } => {
            crate::offboard::status(kagi, &tenant, format).await
        }
    }
}

/// `tenant create NAME`.
async fn create(kagi: &Kagi, name: String, format: Format) -> Result<(), CliError> {
    let response = kagi
        .keys()
        .create_tenant(pb::CreateTenantRequest { name })
        .await?
        .into_inner();
    let tenant = TenantView::from(&response.tenant.unwrap_or_default());
    match format {
        Format::Json => output::json(&tenant),
        Format::Human => output::print(&output::fields(&[
            ("id", tenant.id),
            ("name", tenant.name),
            ("created", tenant.created_at),
        ])),
    }
}

/// `tenant list`.
async fn list(kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let tenants: Vec<TenantView> = kagi
        .keys()
        .list_tenants(pb::ListTenantsRequest {})
        .await?
        .into_inner()
        .tenants
        .iter()
        .map(TenantView::from)
        .collect();
    match format {
        Format::Json => output::json_list("tenants", &tenants),
        Format::Human => {
            let mut table = Table::new(&["ID", "NAME", "CREATED"]);
            for t in tenants {
                table.row(vec![t.id, t.name, t.created_at]);
            }
            output::print(&table.render())
        }
    }
}
