//! `kagictl destruction-record show|verify`: the signed record of a destroyed key (catalogue
//! D2), see [`kagi_kms::destruction::record`].
//!
//! - `show` fetches a destroyed key's record (KeyManagement.GetDestructionRecord), verifies it
//!   here, and prints it as text (English and Japanese) or, with `--json`, as the signed JSON;
//!   `--out` also saves the JSON to a new file, to be filed and verified later;
//! - `verify` checks a saved record here, without kagid.
//!
//! A record is signed with the instance's audit signing key, the key its audit checkpoints
//! carry. `--public-key` pins that key, as it does for `kagictl audit verify`; without it a
//! record is only checked against the key it names itself, which proves it was not modified
//! since it was signed, but not who signed it.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use kagi_kms::destruction::record::{Record, RecordError};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;

use crate::output::{self, CliError, Format};
use crate::secrets;

/// Mode of a saved record: it is evidence to be filed, not a secret.
const RECORD_FILE_MODE: u32 = 0o644;

/// Refuse record files larger than this: a record is a few KiB at most.
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// Destruction record commands.
#[derive(Debug, Subcommand)]
pub enum DestructionRecordCommand {
    /// Fetch a destroyed key's signed destruction record, verify it, and print it (text in
    /// English and Japanese; the signed JSON with --json); --out also saves the JSON.
    Show(ShowArgs),
    /// Verify a saved destruction record, here (kagid is not contacted).
    Verify(VerifyArgs),
}

/// Options of `destruction-record show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Key id or TENANT/NAME of the destroyed key.
    key: String,
    /// Also save the signed JSON record to this file (must not exist yet).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The instance's Ed25519 audit public key (64 hex digits) that must have signed the
    /// record [default: the key the record names].
    #[arg(long, visible_alias = "signer", value_name = "HEX", value_parser = parse_public_key)]
    public_key: Option<VerifyingKey>,
}

/// Options of `destruction-record verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The record file (the JSON that `kagictl destruction-record show --out` saved).
    file: PathBuf,
    /// The instance's Ed25519 audit public key (64 hex digits) that must have signed the
    /// record. Without it, only the record's self-consistency is checked: that it is signed
    /// by the key it names, which anyone could have made.
    #[arg(long, visible_alias = "signer", value_name = "HEX", value_parser = parse_public_key)]
    public_key: Option<VerifyingKey>,
}

/// Runs a destruction record command with a connection (`verify` does not use it: main.rs
/// runs it before connecting).
pub async fn run(
    command: DestructionRecordCommand,
    kagi: &Kagi,
    format: Format,
) -> Result<(), CliError> {
    match command {
        DestructionRecordCommand::Show(args) => show(args, kagi, format).await,
        DestructionRecordCommand::Verify(args) => verify(args, format).await,
    }
}

/// `destruction-record show`: fetches, verifies, then prints and (with --out) saves.
async fn show(args: ShowArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let response = kagi
        .keys()
        .get_destruction_record(pb::GetDestructionRecordRequest {
            key: args.key.clone(),
        })
        .await?
        .into_inner();
    let record = check_fetched(&response.record, &args.key, args.public_key.as_ref())?;
    if let Some(out) = &args.out {
        write_record(out, response.record.clone()).await?;
    }
    match format {
        // Exactly the bytes that verify, as kagid sent them.
        Format::Json => output::print(&with_newline(&response.record)),
        Format::Human => {
            // The text is made here from the verified record, not taken from kagid.
            let mut text = record.render();
            if let Some(out) = &args.out {
                text.push_str(&format!(
                    "\nsaved the signed record to {}: check it with kagictl destruction-record \
                     verify {} --public-key {}\n",
                    out.display(),
                    out.display(),
                    record.signer
                ));
            }
            output::print(&text)
        }
    }
}

/// The record kagid sent for `key`, verified (against `public_key` if given), and only if it
/// is the record of that key. Nothing is printed or written otherwise.
fn check_fetched(
    text: &str,
    key: &str,
    public_key: Option<&VerifyingKey>,
) -> Result<Record, CliError> {
    let refused = |why: String| {
        CliError::Data(format!(
            "kagid's destruction record of key {key} {why}; nothing was printed or written"
        ))
    };
    let record = verified(text, public_key).map_err(|e| refused(format!("is refused: {e}")))?;
    if !names_key(&record, key) {
        return Err(refused(format!(
            "is the record of another key, {}/{} ({})",
            record.tenant_name, record.key_name, record.key_id
        )));
    }
    Ok(record)
}

/// Whether `record` is the record of the key `reference` names (its id, in any spelling
/// kagid accepts, or `TENANT/NAME` with the tenant by id or name).
fn names_key(record: &Record, reference: &str) -> bool {
    let same_id = |a: &str, b: &str| match (uuid::Uuid::parse_str(a), uuid::Uuid::parse_str(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if uuid::Uuid::parse_str(reference).is_ok() {
        return same_id(reference, &record.key_id);
    }
    match reference.split_once('/') {
        Some((tenant, name)) => {
            name == record.key_name
                && (tenant == record.tenant_name || same_id(tenant, &record.tenant_id))
        }
        None => false,
    }
}

/// A record's JSON, verified: signed by the key it names and, if given, by `public_key`.
fn verified(text: &str, public_key: Option<&VerifyingKey>) -> Result<Record, RecordError> {
    let record = Record::from_json(text)?;
    if let Some(key) = public_key {
        record.verify_signer(&hex::encode(key.to_bytes()))?;
    }
    Ok(record)
}

/// Writes the record to `out`, refusing to overwrite anything.
async fn write_record(out: &Path, text: String) -> Result<(), CliError> {
    let path = out.to_path_buf();
    let written = tokio::task::spawn_blocking(move || {
        secrets::write_new_file(&path, with_newline(&text).as_bytes(), RECORD_FILE_MODE)
    })
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

/// `text`, ending with a newline (added outside the JSON, so the record still verifies).
fn with_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}\n")
    }
}

/// A verified record, as `verify` prints it in JSON.
#[derive(Debug, Serialize)]
struct VerifiedView {
    /// Always true: a record that does not verify is an error.
    verified: bool,
    /// The file verified.
    file: String,
    /// The destroyed key's id.
    key_id: String,
    /// Its name.
    key_name: String,
    /// Its tenant's name.
    tenant_name: String,
    /// When it was destroyed, RFC 3339 UTC.
    destroyed_at: String,
    /// The public key (hex) that signed the record.
    signer: String,
    /// Whether the signer was checked against `--public-key` (false: only self-consistency).
    signer_checked: bool,
}

impl VerifiedView {
    /// The view of `record`, read from `file`.
    fn new(file: &Path, record: &Record, signer_checked: bool) -> Self {
        Self {
            verified: true,
            file: file.display().to_string(),
            key_id: record.key_id.clone(),
            key_name: record.key_name.clone(),
            tenant_name: record.tenant_name.clone(),
            destroyed_at: output::rfc3339(record.destroyed_at),
            signer: record.signer.clone(),
            signer_checked,
        }
    }

    /// The line `verify` prints.
    fn text(&self) -> String {
        let pinned = if self.signer_checked {
            " (the expected key)"
        } else {
            ""
        };
        format!(
            "verified: key {}/{} ({}), destroyed {}, signed by {}{pinned}\n",
            self.tenant_name, self.key_name, self.key_id, self.destroyed_at, self.signer
        )
    }
}

/// `destruction-record verify FILE`: reads and verifies the file here; fails (exit 1) with
/// the reason the record does not verify.
pub async fn verify(args: VerifyArgs, format: Format) -> Result<(), CliError> {
    let text = read_record(&args.file).await?;
    let view = verify_text(&args.file, &text, args.public_key.as_ref())?;
    if !view.signer_checked {
        eprintln!(
            "kagictl: warning: only the record's self-consistency was checked (it is signed by \
             the key it names, which anyone could have made); give --public-key with the \
             instance's audit public key to check who signed it"
        );
    }
    match format {
        Format::Json => output::json(&view),
        Format::Human => output::print(&view.text()),
    }
}

/// Verifies the record `text` read from `file`.
fn verify_text(
    file: &Path,
    text: &str,
    public_key: Option<&VerifyingKey>,
) -> Result<VerifiedView, CliError> {
    let record = verified(text, public_key)
        .map_err(|e| CliError::Data(format!("{}: {e}", file.display())))?;
    Ok(VerifiedView::new(file, &record, public_key.is_some()))
}

/// Reads a record file: UTF-8, and no larger than a record can be.
async fn read_record(path: &Path) -> Result<String, CliError> {
    let what = format!("reading {}", path.display());
    let metadata = tokio::fs::metadata(path)
        .await
        .map_err(CliError::io(what.clone()))?;
    if metadata.is_file() && metadata.len() > MAX_RECORD_BYTES {
        return Err(CliError::Data(format!(
            "{}: {} bytes is too large for a destruction record",
            path.display(),
            metadata.len()
        )));
    }
    let bytes = tokio::fs::read(path).await.map_err(CliError::io(what))?;
    String::from_utf8(bytes).map_err(|_| {
        CliError::Data(format!(
            "{}: {}",
            path.display(),
            RecordError::Malformed("the file is not UTF-8 text".into())
        ))
    })
}

/// An Ed25519 public key from 64 hex digits (as `kagictl audit verify --public-key` takes it).
fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "expected 64 hex digits (an Ed25519 public key)".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key".to_owned())
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use kagi_kms::destruction::record::{DestroyedVersion, FORMAT};

    use super::*;

    const KEY_ID: &str = "0b3c6f1e-8d2a-4c57-9e41-7a5d2c9b8f10";

    fn record() -> Record {
        Record {
            format: FORMAT,
            key_id: KEY_ID.into(),
            key_name: "grades".into(),
            tenant_id: "5f1d2e3c-1111-4222-8333-944455556666".into(),
            tenant_name: "board-a".into(),
            purpose: "learning-record".into(),
            class: "II".into(),
            versions: vec![DestroyedVersion {
                version: 1,
                state: "active".into(),
                created_at: 1_800_000_000,
            }],
            proposal_id: "p".into(),
            requested_by: "admin".into(),
            approved_by: vec!["alice".into(), "bob".into()],
            scheduled_at: 1_800_000_000,
            destroyed_at: 1_802_592_000,
            method: "overwritten and deleted".into(),
            instance: "kagi:dev".into(),
            signer: String::new(),
            signature: String::new(),
        }
    }

    fn audit_key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn signed_json() -> String {
        record().sign(&audit_key()).to_json()
    }

    #[test]
    fn a_good_record_verifies_with_and_without_the_signer() {
        let file = Path::new("record.json");
        let key = audit_key().verifying_key();
        let pinned = verify_text(file, &signed_json(), Some(&key)).unwrap();
        assert!(pinned.verified && pinned.signer_checked);
        assert_eq!(pinned.signer, hex::encode(key.to_bytes()));
        assert_eq!(
            pinned.text(),
            format!(
                "verified: key board-a/grades ({KEY_ID}), destroyed 2027-02-14T08:00:00Z, signed \
                 by {} (the expected key)\n",
                hex::encode(key.to_bytes())
            )
        );
        let unpinned = verify_text(file, &signed_json(), None).unwrap();
        assert!(!unpinned.signer_checked);
        assert!(unpinned.text().starts_with("verified: key board-a/grades"));
        let json = serde_json::to_value(&unpinned).unwrap();
        assert_eq!(json["destroyed_at"], "2027-02-14T08:00:00Z");
        assert_eq!(json["signer_checked"], false);
    }

    #[test]
    fn a_modified_record_does_not_verify() {
        let file = Path::new("record.json");
        let key = audit_key().verifying_key();
        for changed in [
            signed_json().replace("\"bob\"", "\"eve\""),
            signed_json().replace("1802592000", "1802678400"),
        ] {
            for public_key in [None, Some(&key)] {
                let err = verify_text(file, &changed, public_key).unwrap_err();
                assert!(
                    matches!(&err, CliError::Data(m)
                        if *m == format!("record.json: {}", RecordError::BadSignature)),
                    "{err:?}"
                );
            }
        }
        let err = verify_text(file, "{\"format\": 1}", None).unwrap_err();
        assert!(
            matches!(&err, CliError::Data(m) if m.contains("not a Kagi destruction record")),
            "{err:?}"
        );
    }

    #[test]
    fn a_record_signed_by_another_key_is_refused() {
        let other = SigningKey::from_bytes(&[8; 32]);
        let forged = record().sign(&other).to_json();
        // Self-consistent: it verifies against the key it names…
        assert!(verify_text(Path::new("r.json"), &forged, None).is_ok());
        // …but not against the instance's key.
        let err = verify_text(
            Path::new("r.json"),
            &forged,
            Some(&audit_key().verifying_key()),
        )
        .unwrap_err();
        let expected = RecordError::UnexpectedSigner {
            expected: hex::encode(audit_key().verifying_key().to_bytes()),
            found: hex::encode(other.verifying_key().to_bytes()),
        };
        assert!(
            matches!(&err, CliError::Data(m) if *m == format!("r.json: {expected}")),
            "{err:?}"
        );
    }

    #[test]
    fn fetched_records_must_be_of_the_key_asked_for() {
        let json = signed_json();
        for reference in [
            KEY_ID,
            &KEY_ID.to_uppercase(),
            &KEY_ID.replace('-', ""),
            "board-a/grades",
            "5f1d2e3c-1111-4222-8333-944455556666/grades",
        ] {
            assert_eq!(
                check_fetched(&json, reference, None).unwrap().key_id,
                KEY_ID,
                "{reference}"
            );
        }
        for reference in [
            "board-a/other",
            "board-b/grades",
            "0b3c6f1e-8d2a-4c57-9e41-7a5d2c9b8f11",
        ] {
            assert!(
                matches!(check_fetched(&json, reference, None),
                    Err(CliError::Data(m)) if m.contains("another key")),
                "{reference}"
            );
        }
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(matches!(
            check_fetched(&json, KEY_ID, Some(&other)),
            Err(CliError::Data(m)) if m.contains("not by the expected key")
        ));
    }

    #[tokio::test]
    async fn saved_records_never_overwrite_a_file_and_verify_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("record.json");
        let json = signed_json();
        write_record(&out, json.trim_end().to_owned())
            .await
            .unwrap();
        let err = write_record(&out, "second".into()).await.unwrap_err();
        assert!(matches!(err, CliError::Usage(m) if m.contains("exists")));
        let text = read_record(&out).await.unwrap();
        assert_eq!(text, json);
        verify_text(&out, &text, Some(&audit_key().verifying_key())).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            // 0644 less the umask: never more than that, and always the owner's read and write.
            assert_eq!(mode & 0o777 & !0o644, 0);
            assert_eq!(mode & 0o600, 0o600);
        }
    }

    #[test]
    fn public_keys_are_64_hex_digits() {
        let key = audit_key().verifying_key();
        assert_eq!(parse_public_key(&hex::encode(key.to_bytes())), Ok(key));
        assert!(parse_public_key("abcd").is_err());
        assert!(parse_public_key(&"zz".repeat(32)).is_err());
    }
}
