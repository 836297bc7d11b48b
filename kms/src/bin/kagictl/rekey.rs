//! `kagictl rekey start|submit|verify|status|cancel`: replacing the custodian set or the
//! threshold. The root key does not change; its shares do.
//!
//! An admin or a custodian proposes the new set (`start`). M custodians of the current set
//! submit their current shares (`submit`); at M, kagid makes the new shares, encrypted to the
//! new custodians, and the last `submit` (or `status --out-dir`) writes them. The new
//! custodians then prove theirs (`verify`); when enough have, the new generation takes over
//! and the old shares stop working.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;

use crate::operator::{self, ShareFileView};
use crate::output::{self, CliError, Format};
use crate::secrets;

/// Rekey commands.
#[derive(Debug, Subcommand)]
pub enum RekeyCommand {
    /// Propose a new custodian set and threshold (admin or custodian). Prints the session id
    /// to give the custodians.
    Start {
        /// The new set's custodians, one share each: their .pub files or age1… keys,
        /// comma-separated. Each must be enrolled.
        #[arg(long, value_name = "PUB,…", value_delimiter = ',', required = true)]
        custodians: Vec<String>,
        /// Shares the new set needs to unseal (M): at least 2, at most the number of
        /// custodians.
        #[arg(long, value_name = "M")]
        threshold: u32,
    },
    /// Submit your current share to the rekey (custodian of the current set). The share that
    /// completes the quorum makes the new shares, written to --out-dir.
    Submit {
        /// The rekey session (from `kagictl rekey start` or `kagictl rekey status`).
        #[arg(long, value_name = "ID")]
        session: String,
        /// Your share file of the current generation.
        #[arg(long, value_name = "FILE")]
        share: PathBuf,
        /// The key file that opens the share file, and its passphrase.
        #[command(flatten)]
        key: secrets::IdentityArgs,
        /// Where to write the new share files if this share completes the quorum (created if
        /// missing; existing files are never overwritten).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out_dir: PathBuf,
    },
    /// Prove your new share (custodian of the new set). When enough are proven, the new set
    /// takes over.
    Verify {
        /// The rekey session.
        #[arg(long, value_name = "ID")]
        session: String,
        /// Your new share file.
        #[arg(long, value_name = "FILE")]
        share: PathBuf,
        /// The key file that opens the share file, and its passphrase.
        #[command(flatten)]
        key: secrets::IdentityArgs,
    },
    /// Show the rekey in progress.
    Status {
        /// Write the new share files, once made, to this directory (created if missing;
        /// a file already holding the same share is left as it is).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Abandon the rekey; the current shares stay valid (custodian or admin).
    Cancel,
}

/// The stage of a rekey, as kagictl prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Stage {
    /// Collecting M shares of the current generation.
    Collecting,
    /// New shares made; the new custodians prove theirs.
    Verifying,
    /// The new generation is in force.
    Completed,
}

impl Stage {
    /// The stage of a protobuf value; `None` for unspecified or unknown.
    fn from_pb(value: i32) -> Option<Self> {
        match pb::RekeyStage::try_from(value).ok()? {
            pb::RekeyStage::Collecting => Some(Self::Collecting),
            pb::RekeyStage::Verifying => Some(Self::Verifying),
            pb::RekeyStage::Completed => Some(Self::Completed),
            pb::RekeyStage::Unspecified => None,
        }
    }
}

/// A new share of the rekey, written to a file or not.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum NewShareView {
    /// Written (or not writable) by this command.
    File(ShareFileView),
    /// Listed only (no --out-dir).
    Listed {
        /// Share index.
        index: u32,
        /// The custodian's principal name.
        custodian: String,
        /// The custodian's age public key.
        public_key: String,
        /// The age file, ASCII armour (only the custodian's key opens it).
        armored_age: String,
    },
}

/// A rekey as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct RekeyView {
    /// Session id.
    session_id: String,
    /// collecting, verifying or completed.
    stage: String,
    /// Current-generation shares received.
    submitted: u32,
    /// Current threshold.
    threshold: u32,
    /// New-generation shares proven.
    verified: u32,
    /// New threshold.
    new_threshold: u32,
    /// The generation the rekey makes.
    new_generation: u32,
    /// When the session expires without progress, RFC 3339 UTC.
    expires_at: Option<String>,
    /// The new shares, once made.
    new_shares: Vec<NewShareView>,
}

impl RekeyView {
    /// The view of `r`, with `new_shares` as given (written or listed).
    fn new(r: &pb::RekeyResponse, new_shares: Vec<NewShareView>) -> Self {
        Self {
            session_id: r.session_id.clone(),
            stage: output::word(Stage::from_pb(r.stage)),
            submitted: r.submitted,
            threshold: r.threshold,
            verified: r.verified,
            new_threshold: r.new_threshold,
            new_generation: r.new_generation,
            expires_at: output::optional_time(r.expires_at),
            new_shares,
        }
    }
}

/// Runs a rekey command.
pub async fn run(command: RekeyCommand, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    match command {
        RekeyCommand::Start {
            custodians,
            threshold,
        } => start(kagi, &custodians, threshold, format).await,
        RekeyCommand::Submit {
            session,
            share,
            key,
            out_dir,
        } => submit(kagi, session, share, key, out_dir, format).await,
        RekeyCommand::Verify {
            session,
            share,
            key,
        } => verify(kagi, session, share, key, format).await,
        RekeyCommand::Status { out_dir } => status(kagi, out_dir, format).await,
        RekeyCommand::Cancel => cancel(kagi, format).await,
    }
}

/// `rekey start --custodians … --threshold M`.
async fn start(
    kagi: &Kagi,
    custodians: &[String],
    threshold: u32,
    format: Format,
) -> Result<(), CliError> {
    let keys = operator::custodian_keys(custodians)?;
    operator::check_threshold(threshold, keys.len())?;
    let response = kagi
        .custodians()
        .start_rekey(pb::StartRekeyRequest {
            custodian_public_keys: keys,
            threshold,
        })
        .await?
        .into_inner();
    show(&response, None, format)
}

/// `rekey submit --session ID --share FILE --identity KEYFILE [--out-dir DIR]`.
async fn submit(
    kagi: &Kagi,
    session_id: String,
    share: PathBuf,
    key: secrets::IdentityArgs,
    out_dir: PathBuf,
    format: Format,
) -> Result<(), CliError> {
    let share = secrets::open_share(share, key).await?;
    let response = kagi
        .custodians()
        .submit_rekey_share(pb::SubmitRekeyShareRequest {
            session_id,
            share: share.to_vec(),
        })
        .await;
    drop(share);
    let response = response?.into_inner();
    let write_to = (Stage::from_pb(response.stage) == Some(Stage::Verifying)
        && !response.new_shares.is_empty())
    .then_some(out_dir);
    show(&response, write_to, format)
}

/// `rekey verify --session ID --share FILE --identity KEYFILE`.
async fn verify(
    kagi: &Kagi,
    session_id: String,
    share: PathBuf,
    key: secrets::IdentityArgs,
    format: Format,
) -> Result<(), CliError> {
    let share = secrets::open_share(share, key).await?;
    let response = kagi
        .custodians()
        .verify_rekey_share(pb::VerifyRekeyShareRequest {
            session_id,
            share: share.to_vec(),
        })
        .await;
    drop(share);
    show(&response?.into_inner(), None, format)
}

/// `rekey status [--out-dir DIR]`.
async fn status(kagi: &Kagi, out_dir: Option<PathBuf>, format: Format) -> Result<(), CliError> {
    let response = kagi
        .custodians()
        .get_rekey(pb::GetRekeyRequest {})
        .await?
        .into_inner();
    let write_to = out_dir.filter(|_| !response.new_shares.is_empty());
    show(&response, write_to, format)
}

/// `rekey cancel`.
async fn cancel(kagi: &Kagi, format: Format) -> Result<(), CliError> {
    kagi.custodians()
        .cancel_rekey(pb::CancelRekeyRequest {})
        .await?;
    match format {
        Format::Json => output::json(&serde_json::json!({ "cancelled": true })),
        Format::Human => output::print("The rekey was cancelled; the current shares stay valid.\n"),
    }
}

/// Prints a rekey, after writing its new shares to `write_to` if given.
fn show(
    response: &pb::RekeyResponse,
    write_to: Option<PathBuf>,
    format: Format,
) -> Result<(), CliError> {
    let written = match &write_to {
        Some(dir) => {
            operator::prepare_out_dir(dir)?;
            Some(operator::write_shares(dir, &response.new_shares))
        }
        None => None,
    };
    let new_shares = match &written {
        Some(files) => files.iter().cloned().map(NewShareView::File).collect(),
        None => response
            .new_shares
            .iter()
            .map(|s| NewShareView::Listed {
                index: s.index,
                custodian: s.custodian_name.clone(),
                public_key: s.public_key.clone(),
                armored_age: s.armored_age.clone(),
            })
            .collect(),
    };
    let view = RekeyView::new(response, new_shares);
    match format {
        Format::Json => output::json(&view)?,
        Format::Human => output::print(&rekey_text(&view, written.as_deref()))?,
    }
    written.map_or(Ok(()), |files| operator::unwritten_error(&files))
}

/// The human output of a rekey: progress, and the new shares if any.
fn rekey_text(view: &RekeyView, written: Option<&[ShareFileView]>) -> String {
    if view.stage == output::word(Some(Stage::Completed)) {
        let in_force = match view.new_shares.len() {
            0 => format!("{} (threshold {})", view.new_generation, view.new_threshold),
            n => format!(
                "{} ({} of {n} shares unseal kagid)",
                view.new_generation, view.new_threshold
            ),
        };
        return format!(
            "{}The new shares are in force, and the old shares no longer work: every custodian \
             destroys their old share files now.\n",
            output::fields(&[
                ("session", view.session_id.clone()),
                ("stage", view.stage.clone()),
                ("generation", in_force),
            ])
        );
    }
    let mut text = output::fields(&[
        ("session", view.session_id.clone()),
        ("stage", view.stage.clone()),
        (
            "current shares",
            format!("{} of {} submitted", view.submitted, view.threshold),
        ),
        (
            "new shares",
            format!(
                "{} of {} verified (generation {})",
                view.verified, view.new_threshold, view.new_generation
            ),
        ),
        (
            "expires",
            view.expires_at.clone().unwrap_or_else(|| "-".into()),
        ),
    ]);
    match written {
        Some(files) => {
            text.push_str("\nNew share files:\n");
            text.push_str(&operator::shares_text(files, view.new_threshold));
            text.push_str(
                "Each new custodian proves their share with kagictl rekey verify; the old \
                 shares work until enough have.\n",
            );
        }
        None if !view.new_shares.is_empty() => {
            text.push_str(&format!(
                "\n{} new shares are ready: write them with kagictl rekey status --out-dir DIR.\n",
                view.new_shares.len()
            ));
        }
        None => {}
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_have_words() {
        assert_eq!(
            output::word(Stage::from_pb(pb::RekeyStage::Verifying as i32)),
            "verifying"
        );
        assert_eq!(output::word(Stage::from_pb(0)), "unknown");
        assert_eq!(output::word(Stage::from_pb(99)), "unknown");
    }

    #[test]
    fn status_text_points_at_unwritten_shares() {
        let response = pb::RekeyResponse {
            session_id: "s1".into(),
            stage: pb::RekeyStage::Verifying as i32,
            submitted: 2,
            threshold: 2,
            verified: 0,
            new_threshold: 2,
            new_generation: 2,
            new_shares: vec![pb::EncryptedShare {
                index: 1,
                custodian_name: "a".into(),
                public_key: "age1…".into(),
                armored_age: "A".into(),
            }],
            expires_at: 0,
        };
        let listed = RekeyView::new(&response, Vec::new());
        let text = rekey_text(
            &RekeyView {
                new_shares: vec![NewShareView::Listed {
                    index: 1,
                    custodian: "a".into(),
                    public_key: "age1…".into(),
                    armored_age: "A".into(),
                }],
                ..listed
            },
            None,
        );
        assert!(text.contains("stage           verifying"));
        assert!(text.contains("--out-dir DIR"));
        let completed = RekeyView {
            stage: "completed".into(),
            ..RekeyView::new(&response, Vec::new())
        };
        let text = rekey_text(&completed, None);
        assert!(text.contains("generation  2 (threshold 2)"));
        assert!(!text.contains("--out-dir"));
    }
}
