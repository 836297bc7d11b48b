//! `kagictl escrow fetch|signer|stage|submit-share|status`: escrow bundles, which carry a
//! tenant's keys to another (or the same) kagid under split knowledge.
//!
//! Exporting and importing are quorum operations (`kagictl quorum propose escrow-export` and
//! `escrow-import`); these commands move the bundle file around them:
//!
//! 1. On the source instance, once the export is approved, `fetch` saves the bundle and
//!    `signer` prints the key that signed it, for the importer to pin.
//! 2. On the target instance an admin runs `stage` (checked here first, then by kagid), the
//!    quorum approves `escrow-import`, and each escrow custodian runs `submit-share`: their
//!    share is opened here, on their machine, with the age identity in their key file, and
//!    checked against the bundle before it is sent. The share that reaches the threshold runs
//!    the import.
//! 3. `status` shows an import and the shares received so far.
//!
//! See docs/escrow.md.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use kagi_kms::escrow::bundle::{self, Bundle};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::output::{self, CliError, Format};
use crate::secrets;

/// Hex digits of a bundle digest (SHA-256).
const DIGEST_HEX_LEN: usize = 64;

/// Hex digits of a signer (an Ed25519 public key).
const SIGNER_HEX_LEN: usize = 64;

/// Escrow commands.
#[derive(Debug, Subcommand)]
pub enum EscrowCommand {
    /// Save the bundle an executed escrow-export proposal made (admin or custodian). The file
    /// is written with mode 0600 and never overwrites an existing one.
    Fetch {
        /// The escrow-export proposal's id.
        #[arg(long, value_name = "ID")]
        proposal: String,
        /// Where to write the bundle (must not exist yet).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print this instance's escrow signing key: give it to whoever imports its bundles, to
    /// pin with `kagictl escrow stage --signer`.
    Signer,
    /// Check a bundle file and stage it for import (admin). The next step is
    /// `kagictl quorum propose escrow-import --bundle-digest DIGEST`.
    Stage {
        /// The bundle file, as `kagictl escrow fetch` saved it on the source instance.
        #[arg(long, value_name = "FILE")]
        bundle: PathBuf,
        /// The source instance's signing key (hex, from `kagictl escrow signer` there): the
        /// bundle must be signed with it. Without it any valid signature is accepted.
        #[arg(long, value_name = "HEX", value_parser = parse_signer)]
        signer: Option<String>,
    },
    /// Open your share of a bundle with your key file and submit it (escrow custodian), once
    /// the escrow-import proposal was approved. The share is checked against the bundle here
    /// before it is sent; the share that reaches the threshold runs the import.
    SubmitShare(SubmitShareArgs),
    /// Show an import: its state and the shares received so far (admin or custodian).
    Status {
        /// The staged bundle's digest (hex).
        #[arg(long, value_name = "DIGEST", value_parser = parse_digest)]
        bundle_digest: String,
    },
}

/// Options of `escrow submit-share`.
#[derive(Debug, Args)]
pub struct SubmitShareArgs {
    /// The bundle file (the one that was staged; it names the import by its digest).
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,

    /// The key file whose age identity opens your share, and its passphrase.
    #[command(flatten)]
    key: secrets::IdentityArgs,

    /// Your custodian name in the bundle [default: the custodian whose public key is the one
    /// in your key file]. kagid accepts a share only from the principal of that name.
    #[arg(long, value_name = "NAME")]
    custodian: Option<String>,
}

/// The escrow custodians of `quorum propose escrow-export --custodians a,b,c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custodians(pub Vec<String>);

/// Parses `--custodians`: comma-separated principal names, each trimmed, none empty, none
/// given twice.
pub fn parse_custodians(text: &str) -> Result<Custodians, String> {
    let mut names: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name.is_empty() {
            return Err("an empty custodian name: give NAME,NAME,… without blanks".into());
        }
        if names.iter().any(|n| n == name) {
            return Err(format!(
                "{name:?} is given twice: each custodian holds one share"
            ));
        }
        names.push(name.to_owned());
    }
    Ok(Custodians(names))
}

/// Parses a bundle digest: 64 hex digits, given back in lowercase.
pub fn parse_digest(text: &str) -> Result<String, String> {
    parse_hex(text, DIGEST_HEX_LEN, "a bundle digest")
}

/// Parses a signer: 64 hex digits, given back in lowercase.
fn parse_signer(text: &str) -> Result<String, String> {
    parse_hex(text, SIGNER_HEX_LEN, "an escrow signing key")
}

/// `text`, trimmed and in lowercase, if it is `len` hex digits; otherwise why not.
fn parse_hex(text: &str, len: usize, what: &str) -> Result<String, String> {
    let text = text.trim();
    if text.len() != len || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{what} is {len} hex digits"));
    }
    Ok(text.to_ascii_lowercase())
}

/// Runs an escrow command.
pub async fn run(command: EscrowCommand, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    match command {
        EscrowCommand::Fetch { proposal, out } => fetch(kagi, proposal, &out, format).await,
        EscrowCommand::Signer => signer(kagi, format).await,
        EscrowCommand::Stage { bundle, signer } => stage(kagi, &bundle, signer, format).await,
        EscrowCommand::SubmitShare(args) => submit_share(kagi, args, format).await,
        EscrowCommand::Status { bundle_digest } => status(kagi, bundle_digest, format).await,
    }
}

/// The state of an import, as kagictl prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum State {
    /// Staged; waiting for an approved escrow-import proposal.
    Staged,
    /// Approved; collecting shares.
    Authorised,
    /// The keys are in this instance.
    Done,
    /// Refused after approval; nothing was imported.
    Failed,
}

impl State {
    /// The state of a protobuf value; `None` for unspecified or unknown.
    fn from_pb(value: i32) -> Option<Self> {
        match pb::ImportState::try_from(value).ok()? {
            pb::ImportState::ImportStaged => Some(Self::Staged),
            pb::ImportState::ImportAuthorised => Some(Self::Authorised),
            pb::ImportState::ImportDone => Some(Self::Done),
            pb::ImportState::ImportFailed => Some(Self::Failed),
            pb::ImportState::Unspecified => None,
        }
    }
}

/// An escrow custodian of an import, as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct CustodianView {
    /// Share index, 1-based.
    index: u32,
    /// Principal name.
    name: String,
    /// Whether their share was received.
    received: bool,
}

/// An import as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct ImportView {
    /// The bundle's digest (hex).
    bundle_digest: String,
    /// The tenant the bundle carries (its id on the source instance).
    tenant_id: String,
    /// The tenant's name.
    tenant_name: String,
    /// staged, authorised, done or failed.
    state: String,
    /// Shares needed.
    threshold: u32,
    /// The escrow custodians, in share order.
    custodians: Vec<CustodianView>,
    /// Indexes of the shares received so far.
    shares_received: Vec<u32>,
    /// The escrow-import proposal; null until one is approved.
    proposal_id: Option<String>,
    /// RFC 3339 UTC.
    staged_at: Option<String>,
    /// When the import was done or failed; null before.
    finished_at: Option<String>,
    /// What the import did, or why it failed; null before.
    result: Option<String>,
    /// The bundle's signer (hex).
    signer: String,
    /// The instance that made the bundle.
    source_instance: String,
}

impl From<&pb::ImportStatus> for ImportView {
    fn from(s: &pb::ImportStatus) -> Self {
        let custodians = (1..)
            .zip(&s.custodians)
            .map(|(index, name)| CustodianView {
                index,
                name: name.clone(),
                received: s.shares_received.contains(&index),
            })
            .collect();
        Self {
            bundle_digest: s.bundle_digest.clone(),
            tenant_id: s.tenant_id.clone(),
            tenant_name: s.tenant_name.clone(),
            state: output::word(State::from_pb(s.state)),
            threshold: s.threshold,
            custodians,
            shares_received: s.shares_received.clone(),
            proposal_id: (!s.proposal_id.is_empty()).then(|| s.proposal_id.clone()),
            staged_at: output::optional_time(s.staged_at),
            finished_at: output::optional_time(s.finished_at),
            result: (!s.result.is_empty()).then(|| s.result.clone()),
            signer: s.signer.clone(),
            source_instance: s.source_instance.clone(),
        }
    }
}

impl ImportView {
    /// `1 of 2 received`.
    fn progress(&self) -> String {
        format!(
            "{} of {} received",
            self.shares_received.len(),
            self.threshold
        )
    }

    /// `1 alice (received), 2 bob`.
    fn custodian_list(&self) -> String {
        let names: Vec<String> = self
            .custodians
            .iter()
            .map(|c| {
                let received = if c.received { " (received)" } else { "" };
                format!("{} {}{received}", c.index, c.name)
            })
            .collect();
        names.join(", ")
    }

    /// The `label  value` lines of `stage`, `submit-share` and `status`.
    fn text(&self) -> String {
        let mut pairs = vec![
            ("bundle digest", self.bundle_digest.clone()),
            (
                "tenant",
                format!("{} ({})", self.tenant_name, self.tenant_id),
            ),
            ("source", self.source_instance.clone()),
            ("signer", self.signer.clone()),
            ("state", self.state.clone()),
            ("shares", self.progress()),
            ("custodians", self.custodian_list()),
            ("proposal", self.proposal_id.clone().unwrap_or("-".into())),
            ("staged", self.staged_at.clone().unwrap_or("-".into())),
        ];
        if let Some(finished) = &self.finished_at {
            pairs.push(("finished", finished.clone()));
        }
        if let Some(result) = &self.result {
            pairs.push(("result", result.clone()));
        }
        output::fields(&pairs)
    }

    /// What to do next, for the states that wait for someone.
    fn next_step(&self) -> Option<String> {
        match self.state.as_str() {
            "staged" => Some(format!(
                "next: kagictl quorum propose escrow-import --bundle-digest {}, for the quorum \
                 to approve\n",
                self.bundle_digest
            )),
            "authorised" => Some(format!(
                "next: {} more escrow custodian(s) run kagictl escrow submit-share --bundle FILE \
                 --identity KEYFILE\n",
                usize::try_from(self.threshold)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(self.shares_received.len())
            )),
            _ => None,
        }
    }
}

/// Prints an import; in human form with `lead` first and the next step last.
fn print_import(status: &pb::ImportStatus, lead: &str, format: Format) -> Result<(), CliError> {
    let view = ImportView::from(status);
    match format {
        Format::Json => output::json(&view),
        Format::Human => output::print(&format!(
            "{lead}{}{}",
            view.text(),
            view.next_step().unwrap_or_default()
        )),
    }
}

/// A bundle fetched and saved, as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct FetchView {
    /// Where the bundle was written.
    file: String,
    /// The bundle's digest (hex): its name in escrow-import proposals.
    digest: String,
    /// The tenant's id on this instance.
    tenant_id: String,
    /// The tenant's name.
    tenant_name: String,
    /// This instance's signing key (hex), which signed the bundle.
    signer: String,
    /// Shares needed to open the bundle.
    threshold: u8,
    /// The escrow custodians, in share order.
    custodians: Vec<String>,
    /// How many keys the bundle carries.
    keys: usize,
    /// RFC 3339 UTC.
    created_at: String,
}

impl FetchView {
    /// The view of `bundle`, saved as `file`.
    fn new(file: &Path, bundle: &Bundle) -> Self {
        let metadata = &bundle.metadata;
        Self {
            file: file.display().to_string(),
            digest: hex::encode(bundle.digest()),
            tenant_id: metadata.tenant_id.clone(),
            tenant_name: metadata.tenant_name.clone(),
            signer: bundle.signer.clone(),
            threshold: metadata.threshold,
            custodians: metadata.custodians.iter().map(|c| c.name.clone()).collect(),
            keys: metadata.keys.len(),
            created_at: output::rfc3339(metadata.created_at),
        }
    }

    /// The human output of `fetch`.
    fn text(&self) -> String {
        let mut text = output::fields(&[
            ("file", self.file.clone()),
            ("digest", self.digest.clone()),
            (
                "tenant",
                format!("{} ({})", self.tenant_name, self.tenant_id),
            ),
            ("signer", self.signer.clone()),
            (
                "custodians",
                format!("any {} of {}", self.threshold, self.custodians.join(", ")),
            ),
            ("keys", self.keys.to_string()),
            ("created", self.created_at.clone()),
        ]);
        text.push_str(&format!(
            "next, on the importing instance: kagictl escrow stage --bundle {} --signer {}\n",
            self.file, self.signer
        ));
        text
    }
}

/// `escrow fetch --proposal ID --out FILE`.
async fn fetch(kagi: &Kagi, proposal: String, out: &Path, format: Format) -> Result<(), CliError> {
    let response = kagi
        .escrow()
        .get_bundle(pb::GetBundleRequest {
            proposal_id: proposal.clone(),
        })
        .await?
        .into_inner();
    let bundle = check_fetched(&response, &proposal)?;
    write_bundle(out, response.bundle).await?;
    let view = FetchView::new(out, &bundle);
    match format {
        Format::Json => output::json(&view),
        Format::Human => output::print(&view.text()),
    }
}

/// The bundle kagid gave for `proposal`, verified, and only if it is the one kagid described.
fn check_fetched(response: &pb::GetBundleResponse, proposal: &str) -> Result<Bundle, CliError> {
    let refused = |why: String| {
        CliError::Data(format!(
            "kagid's bundle for proposal {proposal} {why}; nothing was written"
        ))
    };
    let bundle = Bundle::from_json(&response.bundle)
        .map_err(|e| refused(format!("does not verify: {e}")))?;
    let digest = hex::encode(bundle.digest());
    if !digest.eq_ignore_ascii_case(&response.digest) {
        return Err(refused(format!(
            "has digest {digest}, not {} as kagid said",
            response.digest
        )));
    }
    if bundle.metadata.tenant_id != response.tenant_id {
        return Err(refused(format!(
            "carries tenant {}, not {} as kagid said",
            bundle.metadata.tenant_id, response.tenant_id
        )));
    }
    Ok(bundle)
}

/// Writes the bundle to `out`, mode 0600, refusing to overwrite anything.
async fn write_bundle(out: &Path, text: String) -> Result<(), CliError> {
    let path = out.to_path_buf();
    let written =
        tokio::task::spawn_blocking(move || secrets::write_new_file(&path, text.as_bytes(), 0o600))
            .await
            .expect("writing a file does not panic");
    written.map_err(|err| match err.kind() {
        std::io::ErrorKind::AlreadyExists => CliError::Usage(format!(
            "--out {} exists: kagictl never overwrites a file; choose another name",
            out.display()
        )),
        _ => CliError::Io {
            what: format!("writing --out {}", out.display()),
            source: err,
        },
    })
}

/// `escrow signer`.
async fn signer(kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let signer = kagi
        .escrow()
        .get_signer(pb::GetSignerRequest {})
        .await?
        .into_inner()
        .signer;
    match format {
        Format::Json => output::json(&serde_json::json!({ "signer": signer })),
        Format::Human => output::print(&output::fields(&[("signer", signer)])),
    }
}

/// Reads and verifies a bundle file: the text as read, and the bundle in it.
async fn read_bundle(path: &Path) -> Result<(String, Bundle), CliError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(CliError::io(format!("reading --bundle {}", path.display())))?;
    let bundle = Bundle::from_json(&text).map_err(|e| bundle_error(path, &e))?;
    Ok((text, bundle))
}

/// A bundle file that failed a check; nothing was sent.
fn bundle_error(path: &Path, err: &bundle::EscrowError) -> CliError {
    CliError::Data(format!(
        "--bundle {}: {err}; nothing was sent",
        path.display()
    ))
}

/// `escrow stage --bundle FILE [--signer HEX]`.
async fn stage(
    kagi: &Kagi,
    path: &Path,
    signer: Option<String>,
    format: Format,
) -> Result<(), CliError> {
    let (text, bundle) = read_bundle(path).await?;
    match &signer {
        Some(expected) => bundle
            .check_signer(expected)
            .map_err(|e| bundle_error(path, &e))?,
        None => eprintln!(
            "kagictl: warning: no --signer: the signature was checked, not who made it; pin the \
             source instance's key (kagictl escrow signer, run there)"
        ),
    }
    let status = kagi
        .escrow()
        .stage_import(pb::StageImportRequest {
            bundle: text,
            expected_signer: signer.unwrap_or_default(),
        })
        .await?
        .into_inner();
    print_import(&status, "", format)
}

/// `escrow submit-share --bundle FILE --identity KEYFILE [--passphrase-file F] [--custodian N]`.
async fn submit_share(kagi: &Kagi, args: SubmitShareArgs, format: Format) -> Result<(), CliError> {
    secrets::harden_process();
    let (_, bundle) = read_bundle(&args.bundle).await?;
    let bundle_digest = hex::encode(bundle.digest());
    let shown = args.bundle.display().to_string();
    let (custodian, share) = tokio::task::spawn_blocking(move || {
        open_own_share(&bundle, &args.key, args.custodian.as_deref(), &shown)
    })
    .await
    .expect("opening a share does not panic")?;
    let status = kagi
        .escrow()
        .submit_escrow_share(pb::SubmitEscrowShareRequest {
            bundle_digest,
            share: share.to_vec(),
        })
        .await?
        .into_inner();
    print_import(
        &status,
        &format!("submitted the escrow share of {custodian}\n"),
        format,
    )
}

/// Opens the key file (asking for its passphrase) and the share of `named`, or of the
/// custodian whose public key the key file holds: the custodian's name and the encoded share
/// record, checked against the bundle. Blocks (the prompt, scrypt).
fn open_own_share(
    bundle: &Bundle,
    key: &secrets::IdentityArgs,
    named: Option<&str>,
    shown: &str,
) -> Result<(String, Zeroizing<Vec<u8>>), CliError> {
    let passphrase = secrets::passphrase_for(key.passphrase_file.as_deref(), &key.identity)?;
    let identity = secrets::open_identity(&key.identity, passphrase)?;
    let custodian = match named {
        Some(name) => name.to_owned(),
        None => custodian_of(bundle, &identity.to_public().to_string(), &key.identity)?,
    };
    let record = bundle::open_share(bundle, &identity, &custodian)
        .map_err(|e| CliError::Data(format!("--bundle {shown}: {e}")))?;
    Ok((custodian, record.encode()))
}

/// The name of the bundle's custodian whose share is encrypted to `public_key` (the key in
/// key file `key`).
fn custodian_of(bundle: &Bundle, public_key: &str, key: &Path) -> Result<String, CliError> {
    let custodians = &bundle.metadata.custodians;
    custodians
        .iter()
        .find(|c| c.public_key.trim().eq_ignore_ascii_case(public_key))
        .map(|c| c.name.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = custodians.iter().map(|c| c.name.as_str()).collect();
            CliError::Data(format!(
                "the key in {} ({public_key}) is not one of this bundle's escrow custodians \
                 ({}): give your own key file, or name your share with --custodian NAME",
                key.display(),
                names.join(", ")
            ))
        })
}

/// `escrow status --bundle-digest D`.
async fn status(kagi: &Kagi, bundle_digest: String, format: Format) -> Result<(), CliError> {
    let status = kagi
        .escrow()
        .get_import(pb::GetImportRequest { bundle_digest })
        .await?
        .into_inner();
    print_import(&status, "", format)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use kagi_kms::escrow::bundle::EscrowCustodian;

    use super::*;

    /// A bundle that any 2 of alice, bob and carol open, and their identities.
    fn sealed() -> (Bundle, Vec<age::x25519::Identity>) {
        let identities: Vec<_> = (0..3).map(|_| age::x25519::Identity::generate()).collect();
        let custodians = ["alice", "bob", "carol"]
            .iter()
            .zip(&identities)
            .enumerate()
            .map(|(i, (name, identity))| EscrowCustodian {
                name: (*name).into(),
                principal_id: format!("p{i}"),
                public_key: identity.to_public().to_string(),
            })
            .collect();
        let bundle = bundle::seal(
            "54874d35-2935-430a-bb25-d00ed5f2c709",
            "school-1",
            "kagi-a",
            1_775_035_800,
            vec![],
            custodians,
            2,
            b"the keys",
            &SigningKey::from_bytes(&[7u8; 32]),
        )
        .unwrap();
        (bundle, identities)
    }

    #[test]
    fn custodians_are_names_separated_by_commas() {
        assert_eq!(
            parse_custodians("alice,bob, carol ").unwrap(),
            Custodians(vec!["alice".into(), "bob".into(), "carol".into()])
        );
        assert_eq!(
            parse_custodians("alice").unwrap(),
            Custodians(vec!["alice".into()])
        );
        for bad in ["", "alice,,bob", "alice,", " , bob"] {
            assert!(
                parse_custodians(bad).unwrap_err().contains("empty"),
                "{bad}"
            );
        }
        assert!(
            parse_custodians("alice,bob,alice")
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn digests_and_signers_are_64_hex_digits() {
        let upper = "AB".repeat(32);
        assert_eq!(
            parse_digest(&format!(" {upper} ")).unwrap(),
            "ab".repeat(32)
        );
        assert_eq!(parse_signer(&upper).unwrap(), "ab".repeat(32));
        for bad in [
            "",
            "ab",
            &"ab".repeat(33),
            &format!("{}zz", "ab".repeat(31)),
        ] {
            assert!(parse_digest(bad).is_err(), "{bad}");
            assert!(parse_signer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_custodian_is_found_by_the_public_key() {
        let (bundle, identities) = sealed();
        let key = Path::new("bob.key");
        let bob = identities[1].to_public().to_string();
        assert_eq!(custodian_of(&bundle, &bob, key).unwrap(), "bob");
        let record = bundle::open_share(&bundle, &identities[1], "bob").unwrap();
        assert_eq!(record.share.index(), 2);
        assert_eq!(record.encode().len(), kagi_crypto::sharing::RECORD_LEN);
        let stranger = age::x25519::Identity::generate().to_public().to_string();
        let Err(CliError::Data(why)) = custodian_of(&bundle, &stranger, key) else {
            panic!("a stranger's key found a custodian");
        };
        assert!(why.contains("(alice, bob, carol)"), "{why}");
        // Naming another custodian's share does not open it with bob's key.
        assert!(bundle::open_share(&bundle, &identities[1], "alice").is_err());
    }

    #[tokio::test]
    async fn bundle_files_are_verified_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (bundle, _) = sealed();
        let good = dir.path().join("good.json");
        std::fs::write(&good, bundle.to_json()).unwrap();
        let (text, read) = read_bundle(&good).await.unwrap();
        assert_eq!(text, bundle.to_json());
        assert_eq!(read, bundle);
        // One byte of the tenant's name changed.
        let flipped = dir.path().join("flipped.json");
        std::fs::write(&flipped, bundle.to_json().replace("school-1", "school-2")).unwrap();
        let Err(CliError::Data(why)) = read_bundle(&flipped).await else {
            panic!("a modified bundle was read");
        };
        assert!(why.contains("signature does not verify"), "{why}");
        assert!(why.ends_with("nothing was sent"), "{why}");
    }

    #[tokio::test]
    async fn fetched_bundles_never_overwrite_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("bundle.json");
        write_bundle(&out, "first".into()).await.unwrap();
        let err = write_bundle(&out, "second".into()).await.unwrap_err();
        assert!(matches!(err, CliError::Usage(m) if m.contains("exists")));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "first");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn fetched_bundles_must_be_the_ones_described() {
        let (bundle, _) = sealed();
        let mut response = pb::GetBundleResponse {
            bundle: bundle.to_json(),
            digest: hex::encode(bundle.digest()).to_uppercase(),
            tenant_id: bundle.metadata.tenant_id.clone(),
            created_at: 1_775_035_800,
        };
        assert_eq!(check_fetched(&response, "p").unwrap(), bundle);
        response.digest = "00".repeat(32);
        assert!(
            matches!(check_fetched(&response, "p"), Err(CliError::Data(m)) if m.contains("digest"))
        );
        response.digest = hex::encode(bundle.digest());
        response.bundle = response.bundle.replace("kagi-a", "kagi-b");
        assert!(
            matches!(check_fetched(&response, "p"), Err(CliError::Data(m)) if m.contains("does not verify"))
        );
    }

    /// An authorised import with bob's share in.
    fn import_status() -> pb::ImportStatus {
        pb::ImportStatus {
            bundle_digest: "ab".repeat(32),
            tenant_id: "54874d35".into(),
            tenant_name: "school-1".into(),
            state: pb::ImportState::ImportAuthorised as i32,
            threshold: 2,
            custodians: vec!["alice".into(), "bob".into(), "carol".into()],
            shares_received: vec![2],
            proposal_id: "5b0c7a8e".into(),
            staged_at: 1_775_035_800,
            finished_at: 0,
            result: String::new(),
            signer: "cd".repeat(32),
            source_instance: "kagi-a".into(),
        }
    }

    #[test]
    fn imports_show_the_shares_received() {
        let view = ImportView::from(&import_status());
        assert_eq!(view.state, "authorised");
        assert_eq!(view.progress(), "1 of 2 received");
        assert_eq!(view.custodian_list(), "1 alice, 2 bob (received), 3 carol");
        let text = view.text();
        assert!(
            text.contains("tenant         school-1 (54874d35)\n"),
            "{text}"
        );
        assert!(
            text.contains("staged         2026-04-01T09:30:00Z\n"),
            "{text}"
        );
        assert!(!text.contains("finished"), "{text}");
        assert!(
            view.next_step()
                .unwrap()
                .starts_with("next: 1 more escrow custodian")
        );
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["custodians"][1]["received"], true);
        assert_eq!(json["finished_at"], serde_json::Value::Null);
    }

    #[test]
    fn finished_imports_show_their_result_and_no_next_step() {
        let mut status = import_status();
        status.state = pb::ImportState::ImportDone as i32;
        status.shares_received = vec![2, 3];
        status.finished_at = 1_775_036_000;
        status.result = "imported 3 keys".into();
        let view = ImportView::from(&status);
        assert_eq!(view.state, "done");
        assert!(view.text().contains("result         imported 3 keys\n"));
        assert_eq!(view.next_step(), None);
        status.state = pb::ImportState::ImportStaged as i32;
        let staged = ImportView::from(&status).next_step().unwrap();
        assert!(staged.contains("kagictl quorum propose escrow-import --bundle-digest abab"));
        status.state = 99;
        assert_eq!(ImportView::from(&status).state, "unknown");
    }
}
