//! `kagictl operator status|init|seal|cancel-unseal` and `kagictl unseal`: the root key's seal.
//!
//! Outside dev mode kagid starts sealed: the root key exists only as M-of-N shares, each
//! encrypted to one custodian. `operator init` makes them once, and writes each custodian's
//! share file; `unseal` is what each custodian runs with their own share file and key file.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;

use crate::custodian;
use crate::output::{self, CliError, Format, Table};
use crate::secrets;

/// Smallest threshold kagid accepts: one custodian alone never unseals.
const MIN_THRESHOLD: usize = 2;

/// Most custodians one generation can have (share indexes are 1–255).
const MAX_CUSTODIANS: usize = 255;

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Show whether kagid is initialised and sealed, and the ceremony in progress. Needs no
    /// token.
    Status,
    /// Make the root key and split it among the custodians, M of N (admin, once, on an empty
    /// store), and write each custodian's encrypted share file.
    Init(InitArgs),
    /// Seal kagid: it forgets the root key and every cached key until a quorum unseals it
    /// (custodian or admin).
    Seal,
    /// End the unseal session in progress; the shares submitted are discarded (custodian or
    /// admin).
    CancelUnseal,
}

/// Options of `operator init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The custodians, one share each (N = their number): their .pub files or age1… keys,
    /// comma-separated. Each must be enrolled.
    #[arg(long, value_name = "PUB,…", value_delimiter = ',', required = true)]
    custodians: Vec<String>,

    /// Shares needed to unseal (M): at least 2, at most the number of custodians.
    #[arg(long, value_name = "M")]
    threshold: u32,

    /// Directory for the share files, share-INDEX-NAME.age (created if missing; existing
    /// files are never overwritten).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
}

/// Options of `unseal`.
#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// Your share file (share-INDEX-NAME.age), from `operator init` or a rekey.
    #[arg(long, value_name = "FILE")]
    share: PathBuf,

    /// The key file that opens the share file, and its passphrase.
    #[command(flatten)]
    key: secrets::IdentityArgs,

    /// Add the share to this unseal session (see `kagictl operator status`) [default: the
    /// session in progress, or a new one].
    #[arg(long, value_name = "ID")]
    session: Option<String>,
}

/// Runs an operator command.
pub async fn run(command: OperatorCommand, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    match command {
        OperatorCommand::Status => status(kagi, format).await,
        OperatorCommand::Init(args) => init(kagi, args, format).await,
        OperatorCommand::Seal => seal(kagi, format).await,
        OperatorCommand::CancelUnseal => cancel_unseal(kagi, format).await,
    }
}

/// An unseal session as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct UnsealProgressView {
    /// Session id.
    session_id: String,
    /// Valid shares received (k).
    submitted: u32,
    /// Shares needed (M).
    threshold: u32,
    /// When the session expires without progress, RFC 3339 UTC.
    expires_at: Option<String>,
}

impl From<&pb::UnsealProgress> for UnsealProgressView {
    fn from(p: &pb::UnsealProgress) -> Self {
        Self {
            session_id: p.session_id.clone(),
            submitted: p.submitted,
            threshold: p.threshold,
            expires_at: output::optional_time(p.expires_at),
        }
    }
}

impl UnsealProgressView {
    /// `2 of 3 (session …, expires …)`.
    fn text(&self) -> String {
        let expires = match &self.expires_at {
            Some(at) => format!(", expires {at}"),
            None => String::new(),
        };
        format!(
            "{} of {} (session {}{expires})",
            self.submitted, self.threshold, self.session_id
        )
    }
}

/// The JSON document of `operator status`.
#[derive(Debug, Serialize)]
struct StatusView {
    /// Whether Init has run on this store.
    initialised: bool,
    /// Whether this kagid node holds no root key.
    sealed: bool,
    /// Shares needed (M).
    threshold: u32,
    /// Shares issued (N).
    share_count: u32,
    /// Share generation: 1 at Init, +1 per rekey.
    generation: u32,
    /// The unseal session in progress; null if none.
    unseal: Option<UnsealProgressView>,
    /// Until when unseal attempts are refused, RFC 3339 UTC; null when not locked.
    locked_until: Option<String>,
    /// Whether a rekey is in progress.
    rekey_in_progress: bool,
    /// Dev mode: a local root key file, no ceremony.
    dev_mode: bool,
}

/// `operator status`.
async fn status(kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let s = kagi
        .custodians()
        .status(pb::StatusRequest {})
        .await?
        .into_inner();
    let view = StatusView {
        initialised: s.initialised,
        sealed: s.sealed,
        threshold: s.threshold,
        share_count: s.share_count,
        generation: s.generation,
        unseal: s
            .unseal
            .as_ref()
            .filter(|u| !u.session_id.is_empty())
            .map(UnsealProgressView::from),
        locked_until: output::optional_time(s.locked_until),
        rekey_in_progress: s.rekey_in_progress,
        dev_mode: s.dev_mode,
    };
    if format == Format::Json {
        return output::json(&view);
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let dash = || "-".to_owned();
    let threshold = if view.initialised {
        format!("{} of {}", view.threshold, view.share_count)
    } else {
        dash()
    };
    let generation = if view.initialised {
        view.generation.to_string()
    } else {
        dash()
    };
    output::print(&output::fields(&[
        ("initialised", yes_no(view.initialised)),
        (
            "state",
            if view.sealed { "sealed" } else { "unsealed" }.to_owned(),
        ),
        ("threshold", threshold),
        ("generation", generation),
        (
            "unseal progress",
            view.unseal
                .as_ref()
                .map_or_else(|| "none".to_owned(), UnsealProgressView::text),
        ),
        ("locked until", view.locked_until.unwrap_or_else(dash)),
        (
            "rekey",
            if view.rekey_in_progress {
                "in progress"
            } else {
                "none"
            }
            .to_owned(),
        ),
        ("dev mode", yes_no(view.dev_mode)),
    ]))
}

/// The public keys of `--custodians`, read and checked: 2–255 distinct keys.
pub fn custodian_keys(args: &[String]) -> Result<Vec<String>, CliError> {
    let keys = args
        .iter()
        .filter(|arg| !arg.trim().is_empty())
        .map(|arg| custodian::read_public_key(arg))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.len() < MIN_THRESHOLD || keys.len() > MAX_CUSTODIANS {
        return Err(CliError::Usage(format!(
            "--custodians names {} keys; give {MIN_THRESHOLD} to {MAX_CUSTODIANS}",
            keys.len()
        )));
    }
    for (i, key) in keys.iter().enumerate() {
        if keys[..i].contains(key) {
            return Err(CliError::Usage(format!(
                "--custodians names {key} twice; each custodian holds one share"
            )));
        }
    }
    Ok(keys)
}

/// Checks `--threshold` against the number of custodians: 2 ≤ M ≤ N.
pub fn check_threshold(threshold: u32, custodians: usize) -> Result<(), CliError> {
    let m = usize::try_from(threshold).unwrap_or(usize::MAX);
    if m < MIN_THRESHOLD || m > custodians {
        return Err(CliError::Usage(format!(
            "--threshold {threshold} is not allowed: need {MIN_THRESHOLD} ≤ threshold ≤ \
             {custodians}, the number of custodians"
        )));
    }
    Ok(())
}

/// `operator init --custodians … --threshold M --out-dir DIR`.
async fn init(kagi: &Kagi, args: InitArgs, format: Format) -> Result<(), CliError> {
    let keys = custodian_keys(&args.custodians)?;
    check_threshold(args.threshold, keys.len())?;
    // The shares come back once and kagid keeps no copy: make sure they can be written
    // before asking for them.
    prepare_out_dir(&args.out_dir)?;
    let response = kagi
        .custodians()
        .init(pb::InitRequest {
            custodian_public_keys: keys,
            threshold: args.threshold,
        })
        .await?
        .into_inner();
    let shares = write_shares(&args.out_dir, &response.shares);
    let view = InitView {
        generation: response.generation,
        threshold: response.threshold,
        shares,
    };
    match format {
        Format::Json => output::json(&view)?,
        Format::Human => output::print(&format!(
            "Initialised: generation {}, {} of {} shares unseal kagid. kagid stays sealed until \
             then.\n{}",
            view.generation,
            view.threshold,
            view.shares.len(),
            shares_text(&view.shares, view.threshold)
        ))?,
    }
    unwritten_error(&view.shares)
}

/// The JSON document of `operator init`.
#[derive(Debug, Serialize)]
struct InitView {
    /// Share generation (1).
    generation: u32,
    /// Shares needed to unseal (M).
    threshold: u32,
    /// The shares and where they were written.
    shares: Vec<ShareFileView>,
}

/// One encrypted share and the file it was written to.
#[derive(Debug, Clone, Serialize)]
pub struct ShareFileView {
    /// Share index.
    pub index: u32,
    /// The custodian's principal name.
    pub custodian: String,
    /// The custodian's age public key.
    pub public_key: String,
    /// The share file; null if it was not written.
    pub file: Option<String>,
    /// The age file itself, only when it was not written to a file (so it is not lost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub armored_age: Option<String>,
    /// Why it could not be written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Creates the share directory (mode 0700 when new) and checks that files can be made in it.
pub fn prepare_out_dir(dir: &Path) -> Result<(), CliError> {
    let what = || format!("preparing --out-dir {}", dir.display());
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(CliError::io(what()))?;
    let probe = dir.join(format!(
        ".kagictl-probe-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    secrets::write_new_file(&probe, b"", 0o600).map_err(CliError::io(what()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// `share-INDEX-NAME.age`, with anything but letters, digits, '-', '_', '.' and '@' in the
/// name replaced by '_'.
pub fn share_file_name(index: u32, custodian: &str) -> String {
    let name: String = custodian
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("share-{index}-{name}.age")
}

/// Writes each share to `dir` (mode 0600, never over a different file; a file that already
/// holds the same share counts as written). A share that cannot be written keeps its age text
/// in the result, to be printed rather than lost.
pub fn write_shares(dir: &Path, shares: &[pb::EncryptedShare]) -> Vec<ShareFileView> {
    shares
        .iter()
        .map(|share| {
            let path = dir.join(share_file_name(share.index, &share.custodian_name));
            let written = match secrets::write_new_file(&path, share.armored_age.as_bytes(), 0o600)
            {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    match std::fs::read(&path) {
                        Ok(existing) if existing == share.armored_age.as_bytes() => Ok(()),
                        _ => Err(format!(
                            "{} exists and holds something else; it was not overwritten",
                            path.display()
                        )),
                    }
                }
                Err(err) => Err(format!("writing {}: {err}", path.display())),
            };
            let (file, armored_age, error) = match written {
                Ok(()) => (Some(path.display().to_string()), None, None),
                Err(why) => (None, Some(share.armored_age.clone()), Some(why)),
            };
            ShareFileView {
                index: share.index,
                custodian: share.custodian_name.clone(),
                public_key: share.public_key.clone(),
                file,
                armored_age,
                error,
            }
        })
        .collect()
}

/// The table of share files, the reminder, and any share that could not be written, in full.
/// `threshold` is the number of shares that unseal.
pub fn shares_text(shares: &[ShareFileView], threshold: u32) -> String {
    let mut table = Table::new(&["INDEX", "CUSTODIAN", "FILE"]);
    for share in shares {
        table.row(vec![
            share.index.to_string(),
            share.custodian.clone(),
            share.file.clone().unwrap_or_else(|| "(not written)".into()),
        ]);
    }
    let mut text = table.render();
    text.push_str(&format!(
        "Give each custodian their own share file and no other: each file opens only with its \
         custodian's key, and any {threshold} of them unseal kagid.\n"
    ));
    for share in shares.iter().filter(|s| s.file.is_none()) {
        text.push_str(&format!(
            "\nShare {} of {} could not be written ({}). Save this text as {} and give it to \
             {}:\n{}",
            share.index,
            share.custodian,
            share.error.as_deref().unwrap_or("unknown error"),
            share_file_name(share.index, &share.custodian),
            share.custodian,
            share.armored_age.as_deref().unwrap_or_default(),
        ));
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

/// The error to exit with when some shares were printed instead of written.
pub fn unwritten_error(shares: &[ShareFileView]) -> Result<(), CliError> {
    let unwritten = shares.iter().filter(|s| s.file.is_none()).count();
    if unwritten == 0 {
        return Ok(());
    }
    Err(CliError::Data(format!(
        "{unwritten} share file(s) could not be written; their age text was printed on stdout: \
         save it now, kagid keeps no copy"
    )))
}

/// `operator seal`.
async fn seal(kagi: &Kagi, format: Format) -> Result<(), CliError> {
    kagi.custodians().seal(pb::SealRequest {}).await?;
    match format {
        Format::Json => output::json(&serde_json::json!({ "sealed": true })),
        Format::Human => output::print(
            "kagid is sealed: it forgot the root key and every cached key. A quorum of \
             custodians must unseal it (kagictl unseal).\n",
        ),
    }
}

/// `operator cancel-unseal`.
async fn cancel_unseal(kagi: &Kagi, format: Format) -> Result<(), CliError> {
    kagi.custodians()
        .cancel_unseal(pb::CancelUnsealRequest {})
        .await?;
    match format {
        Format::Json => output::json(&serde_json::json!({ "cancelled": true })),
        Format::Human => output::print(
            "The unseal session was cancelled; the shares submitted to it were discarded.\n",
        ),
    }
}

/// The JSON document of `unseal`.
#[derive(Debug, Serialize)]
struct UnsealView {
    /// Whether kagid is still sealed.
    sealed: bool,
    /// The session after this share; null once unsealed.
    progress: Option<UnsealProgressView>,
}

/// `unseal --share FILE --identity KEYFILE [--passphrase-file F] [--session ID]`.
pub async fn unseal(args: UnsealArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let share = secrets::open_share(args.share, args.key).await?;
    let response = kagi
        .custodians()
        .unseal(pb::UnsealRequest {
            share: share.to_vec(),
            session_id: args.session.unwrap_or_default(),
        })
        .await;
    // kagictl's own copy is zeroized now; the request's copy went with tonic's buffers.
    drop(share);
    let response = response?.into_inner();
    let view = UnsealView {
        sealed: response.sealed,
        progress: response
            .progress
            .as_ref()
            .filter(|_| response.sealed)
            .map(UnsealProgressView::from),
    };
    match format {
        Format::Json => output::json(&view),
        Format::Human => match &view.progress {
            _ if !view.sealed => output::print("kagid is unsealed\n"),
            Some(progress) => output::print(&format!("share accepted: {}\n", progress.text())),
            None => output::print("share accepted; kagid is still sealed\n"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_file_names_are_safe() {
        assert_eq!(share_file_name(2, "yamada"), "share-2-yamada.age");
        assert_eq!(
            share_file_name(10, "hanako@board.example"),
            "share-10-hanako@board.example.age"
        );
        assert_eq!(share_file_name(1, "../x/y"), "share-1-.._x_y.age");
    }

    #[test]
    fn thresholds_are_between_two_and_the_custodian_count() {
        assert!(check_threshold(1, 3).is_err());
        assert!(check_threshold(2, 3).is_ok());
        assert!(check_threshold(3, 3).is_ok());
        assert!(check_threshold(4, 3).is_err());
    }

    #[test]
    fn custodian_lists_are_distinct() {
        let a = age::x25519::Identity::generate().to_public().to_string();
        let b = age::x25519::Identity::generate().to_public().to_string();
        assert_eq!(
            custodian_keys(&[a.clone(), b.clone()]).unwrap(),
            vec![a.clone(), b]
        );
        assert!(custodian_keys(&[a.clone(), a.clone()]).is_err());
        assert!(custodian_keys(&[a]).is_err());
    }

    #[test]
    fn shares_are_written_once_and_never_over_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("shares");
        prepare_out_dir(&out).unwrap();
        let share = |index: u32, name: &str, text: &str| pb::EncryptedShare {
            index,
            custodian_name: name.into(),
            public_key: "age1…".into(),
            armored_age: text.into(),
        };
        let first = write_shares(&out, &[share(1, "a", "A\n"), share(2, "b", "B\n")]);
        assert!(first.iter().all(|s| s.file.is_some()));
        assert_eq!(
            std::fs::read_to_string(out.join("share-1-a.age")).unwrap(),
            "A\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(out.join("share-2-b.age"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The same share again is fine; another one under the same name is not written.
        let again = write_shares(&out, &[share(1, "a", "A\n"), share(2, "b", "other\n")]);
        assert!(again[0].file.is_some());
        assert!(again[1].file.is_none());
        assert_eq!(again[1].armored_age.as_deref(), Some("other\n"));
        assert_eq!(
            std::fs::read_to_string(out.join("share-2-b.age")).unwrap(),
            "B\n"
        );
        assert!(shares_text(&again, 2).contains("other\n"));
        assert!(unwritten_error(&again).is_err());
        assert!(unwritten_error(&first).is_ok());
    }
}
