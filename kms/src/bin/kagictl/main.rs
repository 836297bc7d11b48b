//! kagictl: the operator CLI of the Kagi key management service.
//!
//! This file holds the command line and the dispatch only. Each command group lives in its
//! own module; [`connect`] turns the global options into a connection and [`output`] decides
//! how results and failures are shown.

#![forbid(unsafe_code)]

mod audit;
mod connect;
mod crypto;
mod custodian;
mod destruction;
mod escrow;
mod files;
mod key;
mod offboard;
mod operator;
mod output;
mod principal;
mod quorum;
mod rekey;
mod rewrap;
mod rotate;
mod secrets;
mod tenant;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::{CliError, Format};

/// kagictl, the operator CLI of the Kagi key management service.
///
/// Manages tenants, keys and principals, encrypts and decrypts with tenant keys, runs the
/// root key's custodian ceremonies (init, unseal, seal, rekey), and proposes and approves
/// operations under dual control, by calling kagid's gRPC API.
#[derive(Debug, Parser)]
#[command(name = "kagictl", version)]
struct Cli {
    /// Where kagid is and how to authenticate to it.
    #[command(flatten)]
    global: connect::Global,

    /// Print one JSON document instead of human-readable text.
    #[arg(long, global = true, help_heading = connect::HEADING)]
    json: bool,

    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The command groups and the crypto commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Create and list tenants.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Create, list and revoke principals (people and services) and their tokens.
    #[command(subcommand)]
    Principal(principal::PrincipalCommand),
    /// Create, list, show, rotate, enable and disable keys; cancel a destruction; set a
    /// retention hold.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Encrypt a file of any size with a data key of a tenant key (envelope encryption).
    Encrypt(crypto::EncryptArgs),
    /// Decrypt a file made by `kagictl encrypt` (any version).
    Decrypt(crypto::DecryptArgs),
    /// Generate a data key for envelope encryption.
    Datakey(crypto::DataKeyArgs),
    /// Re-wrap stored data keys (one KMS ciphertext per line) under a key's current version,
    /// resumably.
    Rewrap(rewrap::RewrapArgs),
    /// Make a custodian key; enrol and list the root key's custodians.
    #[command(subcommand)]
    Custodian(custodian::CustodianCommand),
    /// The root key's seal: status, init (split among custodians), seal, cancel an unseal.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Submit your share to unseal kagid (custodians).
    Unseal(operator::UnsealArgs),
    /// Replace the custodian set or the threshold: start, submit, verify, status, cancel.
    #[command(subcommand)]
    Rekey(rekey::RekeyCommand),
    /// Dual control: propose sensitive operations, approve them with your signing key
    /// (custodians), list, show and cancel proposals.
    #[command(subcommand)]
    Quorum(quorum::QuorumCommand),
    /// Escrow bundles: fetch an exported one, stage one for import, submit your escrow share
    /// (escrow custodians), show an import, print this instance's signing key.
    #[command(subcommand)]
    Escrow(escrow::EscrowCommand),
    /// Query, verify and export the audit trail (auditors only).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Show, save and verify the signed record of a destroyed key.
    #[command(subcommand)]
    DestructionRecord(destruction::DestructionRecordCommand),
    #[command(flatten)]
    Rotation(rotate::RotationCommand),
}

/// One thread is plenty: kagictl makes a few calls, one after the other, and file and
/// stdio reads run on tokio's blocking pool.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => err.report(),
    };
    // A read of stdin still blocked in the pool (after Ctrl-C) must not keep kagictl alive.
    runtime.shutdown_background();
    code
}

/// Connects and runs the chosen command.
async fn run(cli: Cli) -> Result<(), CliError> {
    let format = Format::from_json_flag(cli.json);
    let command = match cli.command {
        // Offline: a custodian makes their key on their own machine, with no token.
        Command::Custodian(custodian::CustodianCommand::Keygen(args)) => {
            return custodian::keygen(args, format).await;
        }
        // A file is verified here; kagid, if it answers, only adds its key and chain heads.
        Command::Audit(audit::AuditCommand::Verify(args)) if args.is_local() => {
            return audit::verify_file(args, cli.global, format).await;
        }
        // A saved record is verified here only: kagid is not contacted.
        Command::DestructionRecord(destruction::DestructionRecordCommand::Verify(args)) => {
            return destruction::verify(args, format).await;
        }
        command => command,
    };
    if handles_secrets(&command) {
        secrets::harden_process();
    }
    let kagi = match command {
        // Status needs no token: anyone may see whether kagid is sealed.
        Command::Operator(operator::OperatorCommand::Status) => {
            cli.global.connect_token_optional().await?
        }
        _ => cli.global.connect().await?,
    };
    match command {
        Command::Tenant(command) => tenant::run(command, &kagi, format).await,
        Command::Principal(command) => principal::run(command, &kagi, format).await,
        Command::Key(command) => key::run(command, &kagi, format).await,
        Command::Encrypt(args) => crypto::encrypt(args, &kagi, format).await,
        Command::Decrypt(args) => crypto::decrypt(args, &kagi, format).await,
        Command::Datakey(args) => crypto::data_key(args, &kagi, format).await,
        Command::Rewrap(args) => rewrap::run(args, &kagi, format).await,
        Command::Custodian(command) => custodian::run(command, &kagi, format).await,
        Command::Operator(command) => operator::run(command, &kagi, format).await,
        Command::Unseal(args) => operator::unseal(args, &kagi, format).await,
        Command::Rekey(command) => rekey::run(command, &kagi, format).await,
        Command::Quorum(command) => quorum::run(command, &kagi, format).await,
        Command::Escrow(command) => escrow::run(command, &kagi, format).await,
        Command::Audit(command) => audit::run(command, &kagi, format).await,
        Command::DestructionRecord(command) => destruction::run(command, &kagi, format).await,
        Command::Rotation(command) => rotate::run(command, &kagi, format).await,
    }
}

/// Whether the command opens a key file (and a share, or a signing key), so that core dumps
/// must be off before it starts (`custodian keygen` turns them off itself).
fn handles_secrets(command: &Command) -> bool {
    matches!(
        command,
        Command::Unseal(_)
            | Command::Rekey(
                rekey::RekeyCommand::Submit { .. } | rekey::RekeyCommand::Verify { .. }
            )
            | Command::Quorum(quorum::QuorumCommand::Approve(_))
            | Command::Escrow(escrow::EscrowCommand::SubmitShare(_))
    )
}
