//! `kagictl tenant offboard|offboard-status`: ending a tenant (catalogue D3, D4).
//!
//! Off-boarding is the agreed sequence, each step under dual control where it destroys or
//! exports: an escrow export for return to the customer (or an explicit `--no-escrow`), the
//! scheduled crypto-shred of every key of the tenant (which suspends all its crypto at once),
//! the revocation of its service principals, and, after the waiting period, the destruction
//! and its signed records. `offboard` starts it; the quorum approves with `kagictl quorum
//! approve`; `offboard-status` says where it stands at every step.

use clap::Args;
use kagi_kms::quorum::proposal::Operation;
use kagi_sdk::{Kagi, pb};
use serde::Serialize;

use crate::output::{self, CliError, Format};

/// Keys per ListKeys call.
const PAGE_SIZE: u32 = 1000;

/// Options of `tenant offboard`.
#[derive(Debug, Args)]
pub struct OffboardArgs {
    /// Tenant id or name.
    tenant: String,
    /// Escrow custodians for the export returned to the customer (enrolled custodian names,
    /// comma-separated).
    #[arg(long, value_delimiter = ',', required_unless_present = "no_escrow")]
    escrow_custodians: Vec<String>,
    /// Escrow shares needed to open the bundle.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=255))]
    threshold: u32,
    /// Do not export: the tenant's keys are destroyed with no copy (say so in the contract).
    #[arg(long, conflicts_with = "escrow_custodians")]
    no_escrow: bool,
    /// Days between approval and destruction, 7–30 [default: 30, kagid's].
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(7..=30))]
    waiting_days: Option<u32>,
    /// Leave the tenant's service principals active (they are revoked by default: an
    /// off-boarded tenant's services have nothing left to do).
    #[arg(long)]
    keep_principals: bool,
}

/// Where an off-boarding stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Stage {
    /// No destruction of the tenant's keys is proposed.
    NotStarted,
    /// The destruction is proposed and waits for approvals.
    AwaitingApproval,
    /// Approved: the keys are pending destruction (all crypto refused).
    Suspended,
    /// Every key is destroyed.
    Destroyed,
}

impl Stage {
    /// The stage's name, as in JSON.
    fn as_str(&self) -> &'static str {
        match self {
            Stage::NotStarted => "not-started",
            Stage::AwaitingApproval => "awaiting-approval",
            Stage::Suspended => "suspended",
            Stage::Destroyed => "destroyed",
        }
    }
}

/// What `offboard-status` reports.
#[derive(Debug, Serialize)]
struct Status {
    tenant_id: String,
    tenant_name: String,
    stage: Stage,
    /// State of each escrow-export proposal of the tenant, newest first.
    escrow_exports: Vec<ProposalLine>,
    /// State of each tenant-destruction proposal, newest first.
    destructions: Vec<ProposalLine>,
    keys: usize,
    keys_pending_destruction: usize,
    keys_destroyed: usize,
    active_principals: usize,
    next: String,
}

/// One proposal in a status.
#[derive(Debug, Serialize)]
struct ProposalLine {
    id: String,
    state: String,
}

/// Runs `tenant offboard`.
pub async fn offboard(kagi: &Kagi, args: OffboardArgs, format: Format) -> Result<(), CliError> {
    let tenant = find_tenant(kagi, &args.tenant).await?;
    let mut proposed = Vec::new();
    if !args.no_escrow {
        let export = Operation::EscrowExport {
            tenant_id: tenant.id.clone(),
            custodians: args.escrow_custodians.clone(),
            threshold: u8::try_from(args.threshold).unwrap_or(u8::MAX),
        };
        proposed.push(propose(kagi, export).await?);
    }
    let destroy = Operation::ScheduleTenantDestruction {
        tenant_id: tenant.id.clone(),
        waiting_days: args.waiting_days.unwrap_or(0),
    };
    match propose(kagi, destroy).await {
        Ok(proposal) => proposed.push(proposal),
        Err(err) => {
            // Half an off-boarding is worse than none: withdraw the export proposed above.
            for p in &proposed {
                let request = pb::CancelProposalRequest {
                    proposal_id: p.id.clone(),
                };
                let _ = kagi.quorum().cancel_proposal(request).await;
            }
            return Err(err);
        }
    }
    let revoked = if args.keep_principals {
        Vec::new()
    } else {
        revoke_principals(kagi, &tenant.id).await?
    };
    let view = serde_json::json!({
        "tenant_id": tenant.id,
        "tenant_name": tenant.name,
        "proposals": proposed.iter().map(|p| serde_json::json!({
            "id": p.id, "description": p.description,
        })).collect::<Vec<_>>(),
        "revoked_principals": revoked,
    });
    match format {
        Format::Json => output::json(&view),
        Format::Human => {
            let mut text = format!("off-boarding tenant {} ({})\n", tenant.name, tenant.id);
            for p in &proposed {
                text.push_str(&format!("proposed {}: {}\n", p.id, p.description));
            }
            text.push_str(&format!("revoked principals: {}\n", revoked.len()));
            text.push_str(
                "next: custodians approve each proposal (kagictl quorum approve ID); fetch the \
                 bundle once the export ran (kagictl escrow fetch --proposal ID); follow with \
                 kagictl tenant offboard-status",
            );
            output::print(&text)
        }
    }
}

/// Runs `tenant offboard-status`.
pub async fn status(kagi: &Kagi, tenant: &str, format: Format) -> Result<(), CliError> {
    let tenant = find_tenant(kagi, tenant).await?;
    let keys = tenant_keys(kagi, &tenant.id).await?;
    let proposals = kagi
        .quorum()
        .list_proposals(pb::ListProposalsRequest {
            pending_only: false,
        })
        .await?
        .into_inner()
        .proposals;
    let lines = |want: fn(&Operation, &str) -> bool| -> Vec<ProposalLine> {
        proposals
            .iter()
            .filter(|p| {
                Operation::from_pb(p.operation.as_ref()).is_some_and(|o| want(&o, &tenant.id))
            })
            .map(|p| ProposalLine {
                id: p.id.clone(),
                state: proposal_state(p.state).into(),
            })
            .collect()
    };
    let escrow_exports =
        lines(|o, t| matches!(o, Operation::EscrowExport { tenant_id, .. } if tenant_id == t));
    let destructions = lines(
        |o, t| matches!(o, Operation::ScheduleTenantDestruction { tenant_id, .. } if tenant_id == t),
    );
    let count = |state: pb::KeyState| keys.iter().filter(|k| k.state == state as i32).count();
    let principals = kagi
        .principals()
        .list_principals(pb::ListPrincipalsRequest {})
        .await?
        .into_inner()
        .principals;
    let mut status = Status {
        tenant_id: tenant.id.clone(),
        tenant_name: tenant.name.clone(),
        stage: Stage::NotStarted,
        escrow_exports,
        destructions,
        keys: keys.len(),
        keys_pending_destruction: count(pb::KeyState::PendingDestruction),
        keys_destroyed: count(pb::KeyState::Destroyed),
        active_principals: principals
            .iter()
            .filter(|p| p.tenant_id == tenant.id && p.revoked_at == 0)
            .count(),
        next: String::new(),
    };
    status.stage = stage(&status);
    status.next = next_step(&status);
    match format {
        Format::Json => output::json(&status),
        Format::Human => output::print(&render(&status)),
    }
}

/// The stage the facts show.
fn stage(s: &Status) -> Stage {
    if s.keys > 0 && s.keys_destroyed == s.keys {
        Stage::Destroyed
    } else if s.keys_pending_destruction + s.keys_destroyed > 0 {
        Stage::Suspended
    } else if s.destructions.iter().any(|p| p.state == "pending") {
        Stage::AwaitingApproval
    } else {
        Stage::NotStarted
    }
}

/// What to do next, in words.
fn next_step(s: &Status) -> String {
    let exported = s.escrow_exports.iter().any(|p| p.state == "executed");
    let export_waiting = s.escrow_exports.iter().any(|p| p.state == "pending");
    match s.stage {
        Stage::NotStarted => "start with kagictl tenant offboard".into(),
        Stage::Destroyed => {
            "keep the destruction records (kagictl destruction-record show KEY --out FILE)".into()
        }
        _ if export_waiting => {
            "custodians approve the escrow export before the destruction date".into()
        }
        Stage::AwaitingApproval => "custodians approve the destruction proposal".into(),
        Stage::Suspended if exported => {
            "fetch and hand over the escrow bundle (kagictl escrow fetch); the scheduler \
             destroys the keys at the date"
                .into()
        }
        Stage::Suspended => "the scheduler destroys the keys at the date".into(),
    }
}

fn render(s: &Status) -> String {
    let proposals = |lines: &[ProposalLine]| {
        if lines.is_empty() {
            return "none".to_owned();
        }
        let shown: Vec<String> = lines
            .iter()
            .map(|p| format!("{} {}", p.id, p.state))
            .collect();
        shown.join(", ")
    };
    output::fields(&[
        ("tenant", format!("{} ({})", s.tenant_name, s.tenant_id)),
        ("stage", s.stage.as_str().to_owned()),
        ("escrow export", proposals(&s.escrow_exports)),
        ("destruction", proposals(&s.destructions)),
        (
            "keys",
            format!(
                "{} ({} pending destruction, {} destroyed)",
                s.keys, s.keys_pending_destruction, s.keys_destroyed
            ),
        ),
        ("active principals", s.active_principals.to_string()),
        ("next", s.next.clone()),
    ])
}

fn proposal_state(value: i32) -> &'static str {
    match pb::ProposalState::try_from(value) {
        Ok(pb::ProposalState::Pending) => "pending",
        Ok(pb::ProposalState::Executed) => "executed",
        Ok(pb::ProposalState::Cancelled) => "cancelled",
        Ok(pb::ProposalState::Expired) => "expired",
        Ok(pb::ProposalState::Failed) => "failed",
        _ => "unknown",
    }
}

async fn find_tenant(kagi: &Kagi, id_or_name: &str) -> Result<pb::Tenant, CliError> {
    kagi.keys()
        .list_tenants(pb::ListTenantsRequest {})
        .await?
        .into_inner()
        .tenants
        .into_iter()
        .find(|t| t.id == id_or_name || t.name == id_or_name)
        .ok_or_else(|| CliError::Data(format!("no tenant {id_or_name:?}")))
}

async fn tenant_keys(kagi: &Kagi, tenant_id: &str) -> Result<Vec<pb::Key>, CliError> {
    let mut keys = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = kagi
            .keys()
            .list_keys(pb::ListKeysRequest {
                tenant: tenant_id.into(),
                page_size: PAGE_SIZE,
                page_token,
            })
            .await?
            .into_inner();
        keys.extend(page.keys);
        if page.next_page_token.is_empty() {
            return Ok(keys);
        }
        page_token = page.next_page_token;
    }
}

async fn propose(kagi: &Kagi, operation: Operation) -> Result<pb::Proposal, CliError> {
    Ok(kagi
        .quorum()
        .propose(pb::ProposeRequest {
            operation: Some(operation.to_pb()),
            ttl_seconds: 0,
        })
        .await?
        .into_inner()
        .proposal
        .unwrap_or_default())
}

/// Revokes every active principal of the tenant; their names.
async fn revoke_principals(kagi: &Kagi, tenant_id: &str) -> Result<Vec<String>, CliError> {
    let principals = kagi
        .principals()
        .list_principals(pb::ListPrincipalsRequest {})
        .await?
        .into_inner()
        .principals;
    let mut revoked = Vec::new();
    for p in principals
        .iter()
        .filter(|p| p.tenant_id == tenant_id && p.revoked_at == 0)
    {
        kagi.principals()
            .revoke_principal(pb::RevokePrincipalRequest {
                principal: p.id.clone(),
            })
            .await?;
        revoked.push(p.name.clone());
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(keys: usize, pending: usize, destroyed: usize, proposals: &[&str]) -> Status {
        Status {
            tenant_id: "t".into(),
            tenant_name: "board".into(),
            stage: Stage::NotStarted,
            escrow_exports: vec![ProposalLine {
                id: "e".into(),
                state: "executed".into(),
            }],
            destructions: proposals
                .iter()
                .map(|s| ProposalLine {
                    id: "d".into(),
                    state: (*s).into(),
                })
                .collect(),
            keys,
            keys_pending_destruction: pending,
            keys_destroyed: destroyed,
            active_principals: 0,
            next: String::new(),
        }
    }

    #[test]
    fn the_stage_follows_the_keys_and_the_proposals() {
        assert_eq!(stage(&status(2, 0, 0, &[])), Stage::NotStarted);
        assert_eq!(stage(&status(2, 0, 0, &["expired"])), Stage::NotStarted);
        assert_eq!(
            stage(&status(2, 0, 0, &["pending"])),
            Stage::AwaitingApproval
        );
        assert_eq!(stage(&status(2, 2, 0, &["executed"])), Stage::Suspended);
        assert_eq!(stage(&status(2, 1, 1, &["executed"])), Stage::Suspended);
        assert_eq!(stage(&status(2, 0, 2, &["executed"])), Stage::Destroyed);
    }

    #[test]
    fn the_next_step_is_named() {
        let mut s = status(2, 2, 0, &["executed"]);
        s.stage = stage(&s);
        assert!(next_step(&s).contains("escrow fetch"));
        let mut s = status(2, 0, 2, &["executed"]);
        s.stage = stage(&s);
        assert!(next_step(&s).contains("destruction-record"));
    }
}
