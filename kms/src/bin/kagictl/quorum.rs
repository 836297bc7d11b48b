//! `kagictl quorum propose|approve|list|show|cancel`: dual control.
//!
//! A sensitive operation (a lockdown, lifting one, a key's rotation period, a destruction,
//! marking a version compromised, an escrow export or import) is first proposed, by an admin or
//! a custodian, and runs only once a quorum of other custodians has approved it.
//! An approval is an Ed25519 signature over the proposal's 32-byte digest, made here with the
//! signing key in the custodian's key file.
//!
//! `approve` does not sign what kagid says the digest is. It rebuilds the signed form of the
//! proposal ([`Signed`]) from the fields kagid showed, operation included, recomputes the digest
//! and refuses to sign if kagid's differs: a server cannot get a signature over something other
//! than what the approver was shown (catalogue C3).

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use clap::{Args, Subcommand, ValueEnum};
use ed25519_dalek::Signer as _;
use kagi_kms::quorum::proposal::{Operation, Signed};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;

use crate::output::{self, CliError, Format, Table};
use crate::{escrow, secrets};

/// Longest lifetime of a proposal that kagid accepts, in hours (7 days).
const MAX_TTL_HOURS: u32 = 7 * 24;

/// Longest rotation period kagid accepts for any key, in days (school data: 365).
const MAX_ROTATION_DAYS: u32 = 3650;

/// Quorum commands.
#[derive(Debug, Subcommand)]
pub enum QuorumCommand {
    /// Propose a sensitive operation (admin or custodian); it runs once enough other
    /// custodians approve it.
    #[command(subcommand)]
    Propose(ProposeCommand),
    /// Approve a proposal (custodian): check it, show it, and sign its digest with the signing
    /// key in your key file.
    Approve(ApproveArgs),
    /// List proposals, newest first.
    List {
        /// Only proposals still waiting for approvals.
        #[arg(long)]
        pending: bool,
    },
    /// Show a proposal and its approvals.
    Show {
        /// Proposal id.
        id: String,
    },
    /// Withdraw your own pending proposal.
    Cancel {
        /// Proposal id.
        id: String,
    },
}

/// What can be proposed.
#[derive(Debug, Subcommand)]
pub enum ProposeCommand {
    /// Refuse every decrypt, re-encrypt and data key of a tenant (or of every tenant) until
    /// the lockdown is lifted: for an attack in progress.
    Lockdown {
        /// Tenant id or name [default: EVERY tenant].
        #[arg(long)]
        tenant: Option<String>,
        /// Why, in a few words (recorded, and shown to the approvers).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// How long approvers have.
        #[command(flatten)]
        ttl: TtlArgs,
    },
    /// Lift the lockdown of a tenant, or the global one.
    LiftLockdown {
        /// Tenant id or name [default: the global lockdown].
        #[arg(long)]
        tenant: Option<String>,
        /// How long approvers have.
        #[command(flatten)]
        ttl: TtlArgs,
    },
    /// Change a key's rotation period (lengthening one weakens K4, hence the quorum).
    RotationPeriod {
        /// Key id or TENANT/NAME.
        #[arg(long)]
        key: String,
        /// The new period in days (kagid allows at most 365 for school data).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(
            1..=i64::from(MAX_ROTATION_DAYS)
        ))]
        days: u32,
        /// How long approvers have.
        #[command(flatten)]
        ttl: TtlArgs,
    },
    /// Schedule a key's destruction: every use is refused at once, and the material is
    /// destroyed for good after the waiting period (cancel before then with
    /// `kagictl key cancel-destruction`).
    DestroyKey {
        /// Key id or TENANT/NAME.
        #[arg(long)]
        key: String,
        /// The waiting period.
        #[command(flatten)]
        waiting: WaitingArgs,
        /// How long approvers have.
        #[command(flatten)]
        ttl: TtlArgs,
    },
    /// Mark a key version compromised: it then decrypts only inside ReEncrypt (every use
    /// audited), and the key is rotated at once if it is the primary. Re-wrap afterwards
    /// (`kagictl rewrap`; `kagictl usage KEY` shows what still uses the version).
    MarkCompromised {
        /// Key id or TENANT/NAME.
        #[arg(long)]
        key: String,
        /// The suspected version.
        #[arg(long, value_name = "N")]
        version: u32,
        /// How long approvers have.
        #[command(flatten)]
        ttl: TtlArgs,
    },
    /// Schedule the destruction of every key of a tenant (off-boarding).
    DestroyTenant {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// The waiting period.
        #[command(flatten)]
        waiting: WaitingArgs,
        /// How long approvers have.
        #[command(flatten)]
        ttl: TtlArgs,
    },
    /// Export every key of a tenant into an escrow bundle that any M of the named escrow
    /// custodians can open; once approved, save it with `kagictl escrow fetch`.
    EscrowExport {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// The escrow custodians: enrolled custodians' principal names, comma-separated; each
        /// gets one share, encrypted to their custodian key.
        #[arg(long, value_name = "NAME,…", value_parser = escrow::parse_custodians)]
        custodians: escrow::Custodians,
        /// Shares needed to open the bundle (M): at least 2, at most the number of custodians.
        #[arg(long, value_name = "M", value_parser = clap::value_parser!(u8).range(2..))]
        threshold: u8,
        /// How long approvers have.
        #[command(flatten)]
        ttl: TtlArgs,
    },
    /// Import a bundle staged with `kagictl escrow stage`; once approved, its escrow
    /// custodians bring their shares with `kagictl escrow submit-share`.
    EscrowImport {
        /// The staged bundle's digest (hex), as `kagictl escrow stage` printed it.
        #[arg(long, value_name = "DIGEST", value_parser = escrow::parse_digest)]
        bundle_digest: String,
        /// How long approvers have.
        #[command(flatten)]
        ttl: TtlArgs,
    },
}

/// The waiting period of a destruction.
#[derive(Debug, Args)]
pub struct WaitingArgs {
    /// Days between approval and destruction, 7–30 [default: 30, kagid's].
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(7..=30))]
    waiting_days: Option<u32>,
}

/// How long a proposal waits for its approvals.
#[derive(Debug, Args)]
pub struct TtlArgs {
    /// Hours until the proposal expires unapproved, 1–168 [default: 24, kagid's].
    #[arg(long, value_name = "H", value_parser = clap::value_parser!(u32).range(
        1..=i64::from(MAX_TTL_HOURS)
    ))]
    ttl_hours: Option<u32>,
}

impl TtlArgs {
    /// `ttl_seconds` of the request: 0 lets kagid choose.
    fn seconds(&self) -> u32 {
        self.ttl_hours.map_or(0, |hours| hours * 3600)
    }
}

/// Options of `quorum approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Proposal id (from `kagictl quorum propose` or `kagictl quorum list --pending`).
    id: String,

    /// The key file whose signing key signs the approval, and its passphrase.
    #[command(flatten)]
    key: secrets::IdentityArgs,

    /// Approve without asking "Approve? [y/N]" (for scripted drills; needed when stdin is not
    /// a terminal). The proposal is still checked and shown.
    #[arg(long)]
    yes: bool,
}

/// Runs a quorum command.
pub async fn run(command: QuorumCommand, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    match command {
        QuorumCommand::Propose(what) => propose(kagi, what, format).await,
        QuorumCommand::Approve(args) => approve(kagi, args, format).await,
        QuorumCommand::List { pending } => list(kagi, pending, format).await,
        QuorumCommand::Show { id } => show(kagi, id, format).await,
        QuorumCommand::Cancel { id } => cancel(kagi, id, format).await,
    }
}

/// The state of a proposal, as kagictl prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum State {
    /// Waiting for approvals.
    Pending,
    /// Approved, and the operation ran.
    Executed,
    /// Withdrawn by its proposer.
    Cancelled,
    /// Not approved in time.
    Expired,
    /// Approved, but the operation failed when it ran.
    Failed,
}

impl State {
    /// The state of a protobuf value; `None` for unspecified or unknown.
    fn from_pb(value: i32) -> Option<Self> {
        match pb::ProposalState::try_from(value).ok()? {
            pb::ProposalState::Pending => Some(Self::Pending),
            pb::ProposalState::Executed => Some(Self::Executed),
            pb::ProposalState::Cancelled => Some(Self::Cancelled),
            pb::ProposalState::Expired => Some(Self::Expired),
            pb::ProposalState::Failed => Some(Self::Failed),
            pb::ProposalState::Unspecified => None,
        }
    }
}

/// The operation that `propose WHAT` asks for, and the lifetime.
fn proposed(what: ProposeCommand) -> (Operation, u32) {
    match what {
        ProposeCommand::Lockdown {
            tenant,
            reason,
            ttl,
        } => (Operation::Lockdown { tenant, reason }, ttl.seconds()),
        ProposeCommand::LiftLockdown { tenant, ttl } => {
            (Operation::LiftLockdown { tenant }, ttl.seconds())
        }
        ProposeCommand::RotationPeriod { key, days, ttl } => (
            Operation::SetRotationPeriod { key_id: key, days },
            ttl.seconds(),
        ),
        ProposeCommand::DestroyKey { key, waiting, ttl } => (
            Operation::ScheduleKeyDestruction {
                key_id: key,
                waiting_days: waiting.waiting_days.unwrap_or(0),
            },
            ttl.seconds(),
        ),
        ProposeCommand::DestroyTenant {
            tenant,
            waiting,
            ttl,
        } => (
            Operation::ScheduleTenantDestruction {
                tenant_id: tenant,
                waiting_days: waiting.waiting_days.unwrap_or(0),
            },
            ttl.seconds(),
        ),
        ProposeCommand::MarkCompromised { key, version, ttl } => (
            Operation::MarkCompromised {
                key_id: key,
                version,
            },
            ttl.seconds(),
        ),
        ProposeCommand::EscrowExport {
            tenant,
            custodians,
            threshold,
            ttl,
        } => (
            Operation::EscrowExport {
                tenant_id: tenant,
                custodians: custodians.0,
                threshold,
            },
            ttl.seconds(),
        ),
        // kagid fills in the tenant from the staged bundle.
        ProposeCommand::EscrowImport { bundle_digest, ttl } => (
            Operation::EscrowImport {
                bundle_digest,
                tenant_id: String::new(),
                tenant_name: String::new(),
            },
            ttl.seconds(),
        ),
    }
}

/// What an approval signs, rebuilt from the proposal kagid showed; `None` when the operation
/// is missing or unknown to this kagictl.
fn signed_from_pb(proposal: &pb::Proposal) -> Option<Signed> {
    Some(Signed {
        id: proposal.id.clone(),
        operation: Operation::from_pb(proposal.operation.as_ref())?,
        proposer_id: proposal.proposer_id.clone(),
        nonce: proposal.nonce.clone(),
        created_at: proposal.created_at,
        expires_at: proposal.expires_at,
        threshold: proposal.threshold,
    })
}

/// Whether kagid's hex digest is the digest of the proposal it showed.
fn digest_matches(signed: &Signed, shown: &str) -> bool {
    hex::decode(shown).is_ok_and(|digest| digest == signed.digest())
}

/// The digest to sign: recomputed from the proposal as shown, and only if kagid's digest is
/// the same; otherwise an error, and nothing is signed.
fn digest_to_sign(proposal: &pb::Proposal) -> Result<[u8; 32], CliError> {
    let signed = signed_from_pb(proposal).ok_or_else(|| {
        CliError::Data(format!(
            "proposal {} has an operation this kagictl does not know (a newer kagid?): not \
             signing; update kagictl",
            proposal.id
        ))
    })?;
    if !digest_matches(&signed, &proposal.digest) {
        return Err(CliError::Data(
            "the server's digest does not match the proposal it showed: not signing".into(),
        ));
    }
    Ok(signed.digest())
}

/// An approval as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct ApprovalView {
    /// The approving custodian's principal id.
    principal_id: String,
    /// Their principal name.
    principal_name: String,
    /// When they approved, RFC 3339 UTC.
    approved_at: Option<String>,
}

/// A proposal as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct ProposalView {
    /// Proposal id.
    id: String,
    /// pending, executed, cancelled, expired or failed.
    state: String,
    /// The operation as signed: `kind` (`lockdown`, `lift-lockdown`, `set-rotation-period`,
    /// `escrow-export`, `escrow-import`, …) and its parameters, tenants and keys by id; null
    /// if this kagictl does not know it.
    operation: Option<Operation>,
    /// kagid's description of the operation.
    description: String,
    /// Principal id of the proposer.
    proposer_id: String,
    /// Approvals needed.
    threshold: u32,
    /// The approvals so far.
    approvals: Vec<ApprovalView>,
    /// RFC 3339 UTC.
    created_at: Option<String>,
    /// When the proposal expires unapproved, RFC 3339 UTC.
    expires_at: Option<String>,
    /// When it was executed, cancelled, expired or failed; null while pending.
    finished_at: Option<String>,
    /// Why it failed, when failed; null otherwise.
    result: Option<String>,
    /// The random nonce, hex.
    nonce: String,
    /// What approvers sign: hex SHA-256 of the canonical proposal, as kagid gave it.
    digest: String,
    /// Whether kagictl recomputed the same digest from the fields shown; null if it cannot
    /// (an operation it does not know).
    digest_verified: Option<bool>,
}

impl From<&pb::Proposal> for ProposalView {
    fn from(p: &pb::Proposal) -> Self {
        let signed = signed_from_pb(p);
        Self {
            id: p.id.clone(),
            state: output::word(State::from_pb(p.state)),
            operation: signed.as_ref().map(|s| s.operation.clone()),
            description: p.description.clone(),
            proposer_id: p.proposer_id.clone(),
            threshold: p.threshold,
            approvals: p
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    principal_id: a.principal_id.clone(),
                    principal_name: a.principal_name.clone(),
                    approved_at: output::optional_time(a.approved_at),
                })
                .collect(),
            created_at: output::optional_time(p.created_at),
            expires_at: output::optional_time(p.expires_at),
            finished_at: output::optional_time(p.finished_at),
            result: (!p.result.is_empty()).then(|| p.result.clone()),
            nonce: p.nonce.clone(),
            digest: p.digest.clone(),
            digest_verified: signed.map(|s| digest_matches(&s, &p.digest)),
        }
    }
}

impl ProposalView {
    /// `2 of 3`.
    fn progress(&self) -> String {
        format!("{} of {}", self.approvals.len(), self.threshold)
    }

    /// The operation in kagictl's own words, from the operation that is signed, when these
    /// differ from kagid's description (which may name tenants and keys where the signed form
    /// has ids).
    fn signed_description(&self) -> Option<String> {
        let own = self.operation.as_ref()?.describe();
        (own != self.description).then_some(own)
    }

    /// The `label  value` lines of `show`, `propose`, `cancel` and the question of `approve`.
    fn text(&self) -> String {
        let mut pairs = vec![
            ("proposal", self.id.clone()),
            ("operation", self.description.clone()),
        ];
        if let Some(own) = self.signed_description() {
            pairs.push(("signed operation", own));
        }
        pairs.extend([
            ("state", self.state.clone()),
            ("approvals", self.progress()),
            ("proposer", self.proposer_id.clone()),
            ("created", time(self.created_at.as_ref())),
            ("expires", time(self.expires_at.as_ref())),
        ]);
        if let Some(finished) = &self.finished_at {
            pairs.push(("finished", finished.clone()));
        }
        if let Some(result) = &self.result {
            pairs.push(("result", result.clone()));
        }
        pairs.push((
            "digest",
            match self.digest_verified {
                Some(true) => format!("{} (checked)", self.digest),
                Some(false) => format!(
                    "{} (DOES NOT MATCH the proposal: do not approve it)",
                    self.digest
                ),
                None => format!("{} (not checked: unknown operation)", self.digest),
            },
        ));
        let mut text = output::fields(&pairs);
        if !self.approvals.is_empty() {
            text.push_str("approved by:\n");
            let mut table = Table::new(&["NAME", "PRINCIPAL", "APPROVED"]);
            for a in &self.approvals {
                table.row(vec![
                    if a.principal_name.is_empty() {
                        "-".into()
                    } else {
                        a.principal_name.clone()
                    },
                    a.principal_id.clone(),
                    time(a.approved_at.as_ref()),
                ]);
            }
            for line in table.render().lines() {
                text.push_str("  ");
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

/// A time, or `-`.
fn time(value: Option<&String>) -> String {
    value.cloned().unwrap_or_else(|| "-".into())
}

/// The proposal of a response.
fn proposal_of(response: tonic::Response<pb::ProposalResponse>) -> pb::Proposal {
    response.into_inner().proposal.unwrap_or_default()
}

/// `quorum propose lockdown|lift-lockdown|rotation-period|…|escrow-export|escrow-import`.
async fn propose(kagi: &Kagi, what: ProposeCommand, format: Format) -> Result<(), CliError> {
    let (operation, ttl_seconds) = proposed(what);
    let proposal = proposal_of(
        kagi.quorum()
            .propose(pb::ProposeRequest {
                operation: Some(operation.to_pb()),
                ttl_seconds,
            })
            .await?,
    );
    let view = ProposalView::from(&proposal);
    match format {
        Format::Json => output::json(&view),
        Format::Human => output::print(&format!(
            "{}{} other custodians approve it, each with: kagictl quorum approve {} --identity \
             KEYFILE\n",
            view.text(),
            view.threshold,
            view.id
        )),
    }
}

/// `quorum approve ID --identity KEYFILE [--passphrase-file F] [--yes]`.
async fn approve(kagi: &Kagi, args: ApproveArgs, format: Format) -> Result<(), CliError> {
    secrets::harden_process();
    // Before anything else: a script without --yes would otherwise get as far as the question.
    if !args.yes && !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "stdin is not a terminal, so kagictl cannot ask whether to approve: read the \
             proposal with kagictl quorum show ID, then pass --yes"
                .into(),
        ));
    }
    let proposal = proposal_of(
        kagi.quorum()
            .get_proposal(pb::GetProposalRequest {
                proposal_id: args.id.clone(),
            })
            .await?,
    );
    // kagid answers for the id asked; anything else is not the proposal the approver named.
    if !proposal.id.eq_ignore_ascii_case(args.id.trim()) {
        return Err(CliError::Data(format!(
            "kagid answered with proposal {:?} for {:?}: not signing",
            proposal.id, args.id
        )));
    }
    let digest = digest_to_sign(&proposal)?;
    let view = ProposalView::from(&proposal);
    let state = State::from_pb(proposal.state);
    if state != Some(State::Pending) {
        return Err(CliError::Data(format!(
            "proposal {} is {}: it takes no more approvals",
            view.id, view.state
        )));
    }
    // The proposal goes to stderr, with the question: stdout is for the result (one JSON
    // document with --json).
    eprint!("{}", view.text());
    if !args.yes && !confirm().await? {
        return Err(CliError::Usage(
            "not approved: nothing was signed or sent".into(),
        ));
    }
    let signing_key = secrets::open_signing_key_args(args.key).await?;
    let signature = signing_key.sign(&digest);
    drop(signing_key);
    let approved = proposal_of(
        kagi.quorum()
            .approve(pb::ApproveRequest {
                proposal_id: proposal.id.clone(),
                signature: signature.to_bytes().to_vec(),
            })
            .await?,
    );
    let view = ProposalView::from(&approved);
    match format {
        Format::Json => output::json(&view),
        Format::Human => output::print(&approved_text(&view)),
    }
}

/// Asks "Approve? [y/N]" on the terminal; only `y` or `yes` approve.
async fn confirm() -> Result<bool, CliError> {
    tokio::task::spawn_blocking(|| {
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "Approve? [y/N] ");
        let _ = stderr.flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(CliError::io("reading the answer from the terminal"))?;
        Ok(is_yes(&answer))
    })
    .await
    .expect("reading an answer does not panic")
}

/// Whether a typed answer is yes.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The human output of `approve`: the new state in one line.
fn approved_text(view: &ProposalView) -> String {
    match view.state.as_str() {
        "executed" => format!(
            "approved: {}: EXECUTED ({})\n",
            view.progress(),
            view.description
        ),
        "failed" => format!(
            "approved: {}, but the operation FAILED: {}\n",
            view.progress(),
            view.result.as_deref().unwrap_or("no reason given")
        ),
        "pending" => format!(
            "approved: {} (proposal {}, expires {})\n",
            view.progress(),
            view.id,
            time(view.expires_at.as_ref())
        ),
        other => format!(
            "approved: {} (proposal {} is {other})\n",
            view.progress(),
            view.id
        ),
    }
}

/// `quorum list [--pending]`.
async fn list(kagi: &Kagi, pending: bool, format: Format) -> Result<(), CliError> {
    let proposals: Vec<ProposalView> = kagi
        .quorum()
        .list_proposals(pb::ListProposalsRequest {
            pending_only: pending,
        })
        .await?
        .into_inner()
        .proposals
        .iter()
        .map(ProposalView::from)
        .collect();
    if format == Format::Json {
        return output::json_list("proposals", &proposals);
    }
    let mut table = Table::new(&["ID", "STATE", "APPROVALS", "EXPIRES", "OPERATION"]);
    for p in proposals {
        table.row(vec![
            p.id.clone(),
            p.state.clone(),
            p.progress(),
            time(p.expires_at.as_ref()),
            p.description,
        ]);
    }
    output::print(&table.render())
}

/// `quorum show ID`.
async fn show(kagi: &Kagi, id: String, format: Format) -> Result<(), CliError> {
    let proposal = proposal_of(
        kagi.quorum()
            .get_proposal(pb::GetProposalRequest { proposal_id: id })
            .await?,
    );
    print_proposal(&ProposalView::from(&proposal), format)
}

/// `quorum cancel ID`.
async fn cancel(kagi: &Kagi, id: String, format: Format) -> Result<(), CliError> {
    let proposal = proposal_of(
        kagi.quorum()
            .cancel_proposal(pb::CancelProposalRequest { proposal_id: id })
            .await?,
    );
    print_proposal(&ProposalView::from(&proposal), format)
}

/// Prints one proposal.
fn print_proposal(view: &ProposalView, format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => output::json(view),
        Format::Human => output::print(&view.text()),
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{SigningKey, Verifier as _};

    use super::*;

    /// A pending lockdown proposal of one tenant, with the digest kagid would give.
    fn proposal(operation: &Operation) -> pb::Proposal {
        let mut p = pb::Proposal {
            id: "5b0c7a8e-2d64-4f39-9c0e-3f7a2b1d9e11".into(),
            operation: Some(operation.to_pb()),
            description: operation.describe(),
            proposer_id: "3b2c3697-6770-408a-82e7-221822897188".into(),
            digest: String::new(),
            created_at: 1_775_035_800,
            expires_at: 1_775_122_200,
            threshold: 2,
            state: pb::ProposalState::Pending as i32,
            approvals: vec![],
            finished_at: 0,
            result: String::new(),
            nonce: "9f86d081884c7d659a2feaa0c55ad015".into(),
        };
        p.digest = hex::encode(signed_from_pb(&p).unwrap().digest());
        p
    }

    fn operations() -> Vec<Operation> {
        vec![
            Operation::Lockdown {
                tenant: Some("54874d35-2935-430a-bb25-d00ed5f2c709".into()),
                reason: "incident 7".into(),
            },
            Operation::Lockdown {
                tenant: None,
                reason: "ransomware".into(),
            },
            Operation::LiftLockdown {
                tenant: Some("54874d35-2935-430a-bb25-d00ed5f2c709".into()),
            },
            Operation::LiftLockdown { tenant: None },
            Operation::SetRotationPeriod {
                key_id: "8aa011d9-0ecb-4b95-9aab-6911942b057f".into(),
                days: 730,
            },
            Operation::EscrowExport {
                tenant_id: "54874d35-2935-430a-bb25-d00ed5f2c709".into(),
                custodians: vec!["alice".into(), "bob".into(), "carol".into()],
                threshold: 2,
            },
            Operation::EscrowImport {
                bundle_digest: "ab".repeat(32),
                tenant_id: "54874d35-2935-430a-bb25-d00ed5f2c709".into(),
                tenant_name: "school-1".into(),
            },
        ]
    }

    #[test]
    fn proposals_map_to_the_signed_form_field_by_field() {
        let operation = operations().remove(0);
        let p = proposal(&operation);
        assert_eq!(
            signed_from_pb(&p).unwrap(),
            Signed {
                id: p.id.clone(),
                operation,
                proposer_id: p.proposer_id.clone(),
                nonce: p.nonce.clone(),
                created_at: p.created_at,
                expires_at: p.expires_at,
                threshold: 2,
            }
        );
    }

    #[test]
    fn the_digest_signed_is_the_one_recomputed() {
        for operation in operations() {
            let p = proposal(&operation);
            let digest = digest_to_sign(&p).unwrap();
            assert_eq!(hex::encode(digest), p.digest);
            // Upper-case hex from kagid is the same digest.
            let mut upper = p.clone();
            upper.digest = p.digest.to_uppercase();
            assert_eq!(digest_to_sign(&upper).unwrap(), digest);
        }
    }

    #[test]
    fn a_digest_that_does_not_match_the_proposal_is_not_signed() {
        let operation = operations().remove(0);
        let honest = proposal(&operation);
        let refused = |p: &pb::Proposal| match digest_to_sign(p) {
            Err(CliError::Data(why)) => {
                assert_eq!(
                    why,
                    "the server's digest does not match the proposal it showed: not signing"
                );
            }
            other => panic!("signed a mismatched proposal: {other:?}"),
        };
        // The server shows one operation but asks for a signature over another's digest.
        let mut swapped = honest.clone();
        swapped.digest = proposal(&Operation::Lockdown {
            tenant: None,
            reason: "incident 7".into(),
        })
        .digest;
        refused(&swapped);
        // Or shows other fields than the ones it hashed.
        for change in [
            (|p: &mut pb::Proposal| p.id = "another".into()) as fn(&mut pb::Proposal),
            |p| p.proposer_id = "someone else".into(),
            |p| p.nonce = "00".into(),
            |p| p.created_at += 1,
            |p| p.expires_at += 86_400,
            |p| p.threshold = 1,
            |p| {
                p.operation = Some(
                    Operation::Lockdown {
                        tenant: Some("54874d35-2935-430a-bb25-d00ed5f2c709".into()),
                        reason: "incident 8".into(),
                    }
                    .to_pb(),
                );
            },
        ] {
            let mut shown = honest.clone();
            change(&mut shown);
            refused(&shown);
        }
        // A digest that is not hex, or truncated.
        for digest in ["", "zz", &honest.digest[..62]] {
            let mut bad = honest.clone();
            bad.digest = digest.into();
            refused(&bad);
        }
        // An operation this kagictl does not know is never signed.
        let mut unknown = honest.clone();
        unknown.operation = None;
        assert!(
            matches!(digest_to_sign(&unknown), Err(CliError::Data(m)) if m.contains("does not know"))
        );
    }

    #[test]
    fn approvals_sign_the_raw_digest() {
        let p = proposal(&operations().remove(1));
        let digest = digest_to_sign(&p).unwrap();
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let signature = key.sign(&digest);
        assert_eq!(signature.to_bytes().len(), 64);
        key.verifying_key().verify(&digest, &signature).unwrap();
        key.verifying_key()
            .verify_strict(&digest, &signature)
            .unwrap();
    }

    #[test]
    fn views_say_whether_the_digest_checks_out() {
        let p = proposal(&operations().remove(0));
        let view = ProposalView::from(&p);
        assert_eq!(view.state, "pending");
        assert_eq!(view.digest_verified, Some(true));
        assert_eq!(view.progress(), "0 of 2");
        assert!(view.text().contains("(checked)"));
        assert_eq!(view.signed_description(), None);
        let mut bad = p.clone();
        bad.nonce = "00".into();
        let view = ProposalView::from(&bad);
        assert_eq!(view.digest_verified, Some(false));
        assert!(view.text().contains("DOES NOT MATCH"));
        // kagid's description may name the tenant; the signed form is shown beside it.
        let mut named = p.clone();
        named.description = "lock down tenant school-1".into();
        let view = ProposalView::from(&named);
        assert!(view.signed_description().unwrap().contains("54874d35"));
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["operation"]["kind"], "lockdown");
        assert_eq!(json["state"], "pending");
    }

    #[test]
    fn only_yes_approves() {
        for yes in ["y\n", "Y\n", "yes\n", " YES \r\n"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n\n", "no\n", "yess\n", "ok\n", "y es\n"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }

    #[test]
    fn approved_text_names_the_new_state() {
        let mut p = proposal(&operations().remove(0));
        p.approvals.push(pb::Approval {
            principal_id: "c1".into(),
            principal_name: "bob".into(),
            approved_at: 1_775_036_000,
        });
        let text = approved_text(&ProposalView::from(&p));
        assert!(text.starts_with("approved: 1 of 2 (proposal "), "{text}");
        p.approvals.push(pb::Approval {
            principal_id: "c2".into(),
            principal_name: "carol".into(),
            approved_at: 1_775_036_100,
        });
        p.state = pb::ProposalState::Executed as i32;
        let text = approved_text(&ProposalView::from(&p));
        assert!(text.starts_with("approved: 2 of 2: EXECUTED ("), "{text}");
    }

    #[test]
    fn ttl_hours_become_seconds() {
        assert_eq!(TtlArgs { ttl_hours: None }.seconds(), 0);
        assert_eq!(TtlArgs { ttl_hours: Some(1) }.seconds(), 3600);
        assert_eq!(
            TtlArgs {
                ttl_hours: Some(MAX_TTL_HOURS)
            }
            .seconds(),
            kagi_kms::quorum::MAX_TTL_SECONDS
        );
    }

    #[test]
    fn escrow_proposals_carry_what_was_asked() {
        let cli = |args: &[&str]| {
            #[derive(Debug, clap::Parser)]
            struct Cli {
                #[command(subcommand)]
                what: ProposeCommand,
            }
            <Cli as clap::Parser>::try_parse_from(
                std::iter::once("propose").chain(args.iter().copied()),
            )
            .map(|cli| proposed(cli.what))
        };
        assert_eq!(
            cli(&[
                "escrow-export",
                "--tenant",
                "school-1",
                "--custodians",
                "alice, bob,carol",
                "--threshold",
                "2",
                "--ttl-hours",
                "2"
            ])
            .unwrap(),
            (
                Operation::EscrowExport {
                    tenant_id: "school-1".into(),
                    custodians: vec!["alice".into(), "bob".into(), "carol".into()],
                    threshold: 2,
                },
                7200
            )
        );
        assert_eq!(
            cli(&["escrow-import", "--bundle-digest", &"AB".repeat(32)]).unwrap(),
            (
                Operation::EscrowImport {
                    bundle_digest: "ab".repeat(32),
                    tenant_id: String::new(),
                    tenant_name: String::new(),
                },
                0
            )
        );
        for bad in [
            &[
                "escrow-export",
                "--tenant",
                "t",
                "--custodians",
                "a,a",
                "--threshold",
                "2",
            ][..],
            &[
                "escrow-export",
                "--tenant",
                "t",
                "--custodians",
                "a,b",
                "--threshold",
                "1",
            ],
            &[
                "escrow-export",
                "--tenant",
                "t",
                "--custodians",
                "a,,b",
                "--threshold",
                "2",
            ],
            &["escrow-import", "--bundle-digest", "abc"],
        ] {
            assert!(cli(bad).is_err(), "{bad:?}");
        }
    }
}
