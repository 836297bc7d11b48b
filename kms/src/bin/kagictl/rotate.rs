//! `kagictl rotate --due [--tenant T] [--dry-run]` and `kagictl usage KEY`: rotating the keys
//! whose rotation period has passed (catalogue K4), and which versions of a key are still in
//! use (K5).
//!
//! Both are top-level commands, registered in `main.rs` through one flattened variant.

use clap::{Args, Subcommand};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;

use crate::output::{self, CliError, Format, Table};

/// The rotation and usage commands.
#[derive(Debug, Subcommand)]
pub enum RotationCommand {
    /// Rotate every key whose rotation period has passed (admins); for a cron job. Exits 1 if
    /// any due key could not be rotated.
    Rotate(RotateArgs),
    /// Show a key's versions with their encrypts, decrypts and last use, summed over every
    /// kagid node (admins, auditors, the tenant's services).
    Usage {
        /// Key id or TENANT/NAME.
        key: String,
    },
}

/// Options of `rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Rotate the keys that are due (the only mode: a single key is rotated with
    /// `kagictl key rotate`).
    #[arg(long, required = true)]
    due: bool,
    /// Only the keys of this tenant (id or name) [default: every tenant].
    #[arg(long)]
    tenant: Option<String>,
    /// Show what would be rotated; rotate nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs a rotation or usage command.
pub async fn run(command: RotationCommand, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    match command {
        RotationCommand::Rotate(args) => rotate(args, kagi, format).await,
        RotationCommand::Usage { key } => usage(key, kagi, format).await,
    }
}

/// A rotated (or due) key as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct RotatedView {
    /// Key id.
    key_id: String,
    /// Tenant id.
    tenant_id: String,
    /// Tenant name.
    tenant: String,
    /// Key name.
    name: String,
    /// Primary version before.
    from_version: u32,
    /// Primary version after (in a dry run: what it would be).
    to_version: u32,
    /// When the rotation was due, RFC 3339 UTC.
    due_at: String,
}

impl From<&pb::RotatedKey> for RotatedView {
    fn from(k: &pb::RotatedKey) -> Self {
        Self {
            key_id: k.key_id.clone(),
            tenant_id: k.tenant_id.clone(),
            tenant: k.tenant_name.clone(),
            name: k.name.clone(),
            from_version: k.from_version,
            to_version: k.to_version,
            due_at: output::rfc3339(k.due_at),
        }
    }
}

/// A due key that could not be rotated.
#[derive(Debug, Serialize)]
struct FailedView {
    /// Key id.
    key_id: String,
    /// Tenant id.
    tenant_id: String,
    /// Tenant name.
    tenant: String,
    /// Key name.
    name: String,
    /// Why.
    reason: String,
}

/// The whole run, in JSON.
#[derive(Debug, Serialize)]
struct ReportView {
    /// Whether nothing was changed.
    dry_run: bool,
    /// Enabled and disabled keys looked at.
    checked: u32,
    /// Of those, not due.
    not_due: u32,
    /// Rotated by this run (in a dry run: would be).
    rotated: Vec<RotatedView>,
    /// Rotated meanwhile by another run (a node's scheduler): done, not failed.
    already_rotated: Vec<RotatedView>,
    /// Due keys that could not be rotated.
    failed: Vec<FailedView>,
}

async fn rotate(args: RotateArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    debug_assert!(args.due);
    let request = pb::RotateDueRequest {
        tenant: args.tenant.unwrap_or_default(),
        dry_run: args.dry_run,
    };
    let response = kagi.keys().rotate_due(request).await?.into_inner();
    let view = ReportView {
        dry_run: response.dry_run || args.dry_run,
        checked: response.checked,
        not_due: response.not_due,
        rotated: response.rotated.iter().map(RotatedView::from).collect(),
        already_rotated: response
            .already_rotated
            .iter()
            .map(RotatedView::from)
            .collect(),
        failed: response
            .failed
            .iter()
            .map(|f| FailedView {
                key_id: f.key_id.clone(),
                tenant_id: f.tenant_id.clone(),
                tenant: f.tenant_name.clone(),
                name: f.name.clone(),
                reason: f.reason.clone(),
            })
            .collect(),
    };
    if format == Format::Json {
        output::json(&view)?;
    } else {
        output::print(&render(&view))?;
    }
    match view.failed.len() {
        0 => Ok(()),
        n => Err(CliError::Data(format!(
            "{n} due key{} could not be rotated (see above); the others were{}",
            if n == 1 { "" } else { "s" },
            if view.dry_run {
                " not changed: dry run"
            } else {
                " rotated"
            }
        ))),
    }
}

/// The report as text: a summary line, then a table per list that is not empty.
fn render(view: &ReportView) -> String {
    let verb = if view.dry_run {
        "would rotate"
    } else {
        "rotated"
    };
    let mut text = format!(
        "{verb} {} key{} ({} checked, {} not due{}{})\n",
        view.rotated.len(),
        if view.rotated.len() == 1 { "" } else { "s" },
        view.checked,
        view.not_due,
        match view.already_rotated.len() {
            0 => String::new(),
            n => format!(", {n} already rotated by another run"),
        },
        match view.failed.len() {
            0 => String::new(),
            n => format!(", {n} FAILED"),
        },
    );
    for (title, keys) in [
        ("", &view.rotated),
        ("already rotated by another run:\n", &view.already_rotated),
    ] {
        if keys.is_empty() {
            continue;
        }
        text.push_str(title);
        let mut table = Table::new(&["TENANT", "KEY", "FROM", "TO", "DUE", "ID"]);
        for k in keys {
            table.row(vec![
                k.tenant.clone(),
                k.name.clone(),
                k.from_version.to_string(),
                k.to_version.to_string(),
                k.due_at.clone(),
                k.key_id.clone(),
            ]);
        }
        text.push_str(&table.render());
    }
    if !view.failed.is_empty() {
        text.push_str("failed:\n");
        let mut table = Table::new(&["TENANT", "KEY", "ID", "REASON"]);
        for f in &view.failed {
            table.row(vec![
                f.tenant.clone(),
                f.name.clone(),
                f.key_id.clone(),
                f.reason.clone(),
            ]);
        }
        text.push_str(&table.render());
    }
    text
}

/// One version's use, in JSON.
#[derive(Debug, Serialize)]
struct UsageView {
    /// Version number.
    version: u32,
    /// active, deactivated or destroyed.
    state: &'static str,
    /// Encrypts under it (Encrypt, data keys, ReEncrypt into the key).
    encrypts: u64,
    /// Decrypts under it (Decrypt, ReEncrypt out of the key).
    decrypts: u64,
    /// Last encrypt or decrypt, RFC 3339 UTC; absent if none was counted.
    last_used_at: Option<String>,
    /// RFC 3339 UTC.
    created_at: String,
}

async fn usage(key: String, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let request = pb::VersionUsageRequest { key };
    let response = kagi.keys().version_usage(request).await?.into_inner();
    let versions: Vec<UsageView> = response
        .versions
        .iter()
        .map(|v| UsageView {
            version: v.version,
            state: crate::key::version_state_word(v.state),
            encrypts: v.encrypts,
            decrypts: v.decrypts,
            last_used_at: output::optional_time(v.last_used_at),
            created_at: output::rfc3339(v.created_at),
        })
        .collect();
    if format == Format::Json {
        #[derive(Serialize)]
        struct View<'a> {
            key_id: &'a str,
            versions: &'a [UsageView],
        }
        return output::json(&View {
            key_id: &response.key_id,
            versions: &versions,
        });
    }
    let mut table = Table::new(&[
        "VERSION",
        "STATE",
        "ENCRYPTS",
        "DECRYPTS",
        "LAST USED",
        "CREATED",
    ]);
    for v in &versions {
        table.row(vec![
            v.version.to_string(),
            v.state.to_owned(),
            v.encrypts.to_string(),
            v.decrypts.to_string(),
            v.last_used_at.clone().unwrap_or_else(|| "never".into()),
            v.created_at.clone(),
        ]);
    }
    output::print(&table.render())
}
