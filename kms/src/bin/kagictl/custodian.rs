//! `kagictl custodian keygen|enroll|list`: the key custodians of the root key.
//!
//! `keygen` runs on the custodian's own machine and talks to nobody: it makes the custodian's
//! age X25519 key (which opens their shares) and Ed25519 signing key (which signs their
//! approvals of proposals), writes both encrypted with a passphrase, and writes the public keys
//! beside them. The admin then enrols the custodian with those public keys (`enroll`), which
//! gives the custodian a principal and a token.
//!
//! The public key file is an age recipients file with one more comment line, so `age -R
//! FILE.pub` still reads it:
//!
//! ```text
//! # kagi-ed25519: <64 hex digits>
//! age1…
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use clap::{Args, Subcommand};
use ed25519_dalek::{SigningKey, VerifyingKey};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::output::{self, CliError, Format, Table};
use crate::secrets;

/// The beginning of an age X25519 public key.
const PUBLIC_KEY_PREFIX: &str = "age1";

/// The comment line of a public key file that holds the Ed25519 signing public key, before 64
/// hex digits.
const SIGNING_KEY_PREFIX: &str = "# kagi-ed25519:";

/// Custodian commands.
#[derive(Debug, Subcommand)]
pub enum CustodianCommand {
    /// Make a custodian key: an age key and an Ed25519 signing key, encrypted with a
    /// passphrase, and their public keys. Needs no connection to kagid (run it on the
    /// custodian's own machine).
    Keygen(KeygenArgs),
    /// Enrol a custodian (admin): record the person, their public keys and their signed
    /// acknowledgement, and print the custodian's token (shown once).
    Enroll(EnrollArgs),
    /// List every custodian, the share each holds and whether each can approve proposals.
    List,
}

/// Options of `custodian keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key, encrypted with the passphrase (e.g. yamada.key). The public key
    /// goes beside it: FILE with .key replaced by .pub, or FILE.pub. Neither may exist.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    /// Read the new passphrase from the first line of this file instead of asking twice on the
    /// terminal (at least 12 characters).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,

    /// scrypt work factor of the passphrase, log2 of N, 10–22 [default: about one second of
    /// work on this machine].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(
        i64::from(secrets::MIN_WORK_FACTOR)..=i64::from(secrets::MAX_WORK_FACTOR)
    ))]
    work_factor: Option<u8>,
}

/// Options of `custodian enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// Principal name of the custodian: 1–64 letters, digits, '-', '_', '.' or '@'.
    #[arg(long)]
    name: String,

    /// Full name of the person who holds the role.
    #[arg(long, value_name = "FULL NAME")]
    person: String,

    /// The custodian's public key: the .pub file made by `kagictl custodian keygen` (its
    /// signing key, which approves proposals, is enrolled too), or the age1… key itself (then
    /// the custodian cannot approve).
    #[arg(long, value_name = "FILE")]
    public_key: String,

    /// The acknowledgement of custodian duties that the person signed (any file, e.g. a scanned
    /// PDF); kagid records its SHA-256.
    #[arg(long, value_name = "DOC")]
    acknowledgement: PathBuf,
}

/// Runs a custodian command.
pub async fn run(command: CustodianCommand, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    match command {
        CustodianCommand::Keygen(args) => keygen(args, format).await,
        CustodianCommand::Enroll(args) => enroll(kagi, args, format).await,
        CustodianCommand::List => list(kagi, format).await,
    }
}

/// The JSON document of `custodian keygen`.
#[derive(Debug, Serialize)]
struct KeygenView {
    /// The age recipient, `age1…`.
    public_key: String,
    /// The Ed25519 public key that verifies approvals, hex.
    signing_public_key: String,
    /// The passphrase-encrypted key file.
    key_file: String,
    /// The public key file.
    public_key_file: String,
}

/// `custodian keygen --out FILE [--passphrase-file F] [--work-factor N]`. Works offline.
pub async fn keygen(args: KeygenArgs, format: Format) -> Result<(), CliError> {
    secrets::harden_process();
    let key_path = args.out;
    let pub_path = public_key_path(&key_path);
    for path in [&key_path, &pub_path] {
        // symlink_metadata: a dangling link counts as existing, as it does for create_new.
        if path.symlink_metadata().is_ok() {
            return Err(CliError::Usage(format!(
                "{} exists; kagictl does not overwrite key files: choose another --out",
                path.display()
            )));
        }
    }
    let view = tokio::task::spawn_blocking(move || {
        let passphrase = secrets::new_passphrase(args.passphrase_file.as_deref(), &key_path)?;
        let keys = generate(&key_path, &pub_path, passphrase, args.work_factor)?;
        Ok::<_, CliError>(KeygenView {
            public_key: keys.age,
            signing_public_key: keys.signing,
            key_file: key_path.display().to_string(),
            public_key_file: pub_path.display().to_string(),
        })
    })
    .await
    .expect("making a key does not panic")?;
    match format {
        Format::Json => output::json(&view),
        Format::Human => output::print(&format!(
            "{}\
             Give {} to the admin, to enrol you as a custodian. Keep {} and its passphrase to \
             yourself: whoever has both can open your shares and approve in your name.\n",
            output::fields(&[
                ("public key", view.public_key.clone()),
                ("signing key", view.signing_public_key.clone()),
                ("key file", view.key_file.clone()),
                ("public key file", view.public_key_file.clone()),
            ]),
            view.public_key_file,
            view.key_file,
        )),
    }
}

/// The public keys of a new key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PublicKeys {
    /// The age recipient, `age1…`.
    age: String,
    /// The Ed25519 public key, hex.
    signing: String,
}

/// Generates an age identity and an Ed25519 signing key, writes both to `key_path` encrypted
/// with `passphrase` (mode 0600) and their public keys to `pub_path`; gives the public keys.
fn generate(
    key_path: &Path,
    pub_path: &Path,
    passphrase: age::secrecy::SecretString,
    work_factor: Option<u8>,
) -> Result<PublicKeys, CliError> {
    let identity = age::x25519::Identity::generate();
    let public_key = identity.to_public().to_string();
    let seed = Zeroizing::new(
        kagi_kms::crypto::random::array::<{ secrets::SIGNING_SEED_LEN }>()
            .map_err(|e| CliError::Data(format!("no randomness for the signing key: {e}")))?,
    );
    let signing_public_key = hex::encode(SigningKey::from_bytes(&seed).verifying_key().to_bytes());
    let created = output::rfc3339(now());
    let text = secrets::identity_text(&identity, &created, Some(&seed));
    let armored =
        secrets::encrypt_with_passphrase(text.as_bytes(), passphrase.clone(), work_factor)?;
    // Open it again before writing anything: a key file that cannot be opened (a work factor
    // beyond what kagictl and age accept, a fault) must not be found out at the first unseal.
    let reopened = secrets::open_key_file_bytes(
        armored.as_bytes(),
        &key_path.display().to_string(),
        passphrase,
    )
    .map_err(|err| match err {
        CliError::Data(why) => CliError::Data(format!(
            "the new key file failed its check ({why}); nothing was written: try --work-factor {}",
            secrets::MAX_WORK_FACTOR - 4
        )),
        other => other,
    })?;
    let reopened_signing = reopened
        .signing_key
        .map(|key| hex::encode(key.verifying_key().to_bytes()));
    if reopened.identity.to_public().to_string() != public_key
        || reopened_signing.as_deref() != Some(signing_public_key.as_str())
    {
        return Err(CliError::Data(
            "the new key file failed its check (another key inside); nothing was written".into(),
        ));
    }
    secrets::write_new_file(key_path, armored.as_bytes(), 0o600).map_err(CliError::io(format!(
        "writing --out {}",
        key_path.display()
    )))?;
    let public_text = public_key_file_text(&public_key, &signing_public_key);
    if let Err(err) = secrets::write_new_file(pub_path, public_text.as_bytes(), 0o644) {
        // Half a key pair is no use; leave nothing behind.
        let _ = std::fs::remove_file(key_path);
        return Err(CliError::Io {
            what: format!("writing {}", pub_path.display()),
            source: err,
        });
    }
    Ok(PublicKeys {
        age: public_key,
        signing: signing_public_key,
    })
}

/// The text of a public key file: the signing key as a comment line (age skips it), then the
/// age recipient.
fn public_key_file_text(age: &str, signing: &str) -> String {
    format!("{SIGNING_KEY_PREFIX} {signing}\n{age}\n")
}

/// Unix time now, in seconds.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Where the public key of key file `key` goes: `.key` replaced by `.pub`, or `.pub` added.
pub fn public_key_path(key: &Path) -> PathBuf {
    if key.extension().is_some_and(|ext| ext == "key") {
        key.with_extension("pub")
    } else {
        let mut name = key.as_os_str().to_owned();
        name.push(".pub");
        PathBuf::from(name)
    }
}

/// An age public key given on the command line: an `age1…` key itself, or a file holding one
/// (the first line starting with `age1`; blank lines and `#` comments are skipped).
pub fn read_public_key(arg: &str) -> Result<String, CliError> {
    read_public_keys(arg).map(|keys| keys.0)
}

/// The age public key and, if there is one, the Ed25519 signing public key (hex) given on the
/// command line: an `age1…` key itself (no signing key), or a public key file made by `kagictl
/// custodian keygen` (`# kagi-ed25519: HEX` and `age1…` lines) or by `age-keygen` (no signing
/// key).
fn read_public_keys(arg: &str) -> Result<(String, Option<String>), CliError> {
    let arg = arg.trim();
    let path = Path::new(arg);
    let not_a_key = |why: &str| {
        CliError::Usage(format!(
            "{arg} is not an age X25519 public key (age1…): {why}give the .pub file made by \
             kagictl custodian keygen"
        ))
    };
    let (text, signing) = if arg.starts_with(PUBLIC_KEY_PREFIX) && !path.exists() {
        (arg.to_owned(), None)
    } else {
        let bytes =
            std::fs::read(path).map_err(CliError::io(format!("reading public key {arg}")))?;
        let age = public_key_in(&bytes).map_err(|why| not_a_key(&format!("{why}; ")))?;
        let signing =
            signing_key_in(&bytes).map_err(|why| CliError::Usage(format!("{arg}: {why}")))?;
        (age, signing)
    };
    let age = age::x25519::Recipient::from_str(&text)
        .map(|recipient| recipient.to_string())
        .map_err(|_| not_a_key(""))?;
    Ok((age, signing))
}

/// The `age1…` line of a public key file.
fn public_key_in(bytes: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not a text file".to_owned())?;
    if text.contains("AGE-SECRET-KEY-") || text.contains(secrets::SIGNING_SEED_PREFIX) {
        // Whatever the file is, it must not travel; stop before it is used anywhere.
        return Err("the file holds a private key".into());
    }
    if text.contains("-----BEGIN AGE ENCRYPTED FILE-----")
        || text.starts_with("age-encryption.org/")
    {
        return Err("the file is encrypted (a key file, or a share file?)".into());
    }
    text.lines()
        .map(str::trim)
        .find(|line| line.starts_with(PUBLIC_KEY_PREFIX))
        .map(str::to_owned)
        .ok_or_else(|| "no line of the file starts with age1".into())
}

/// The Ed25519 public key of the `# kagi-ed25519: HEX` line of a public key file, as lowercase
/// hex; `None` when the file has no such line. A line that is there must hold a valid key.
fn signing_key_in(bytes: &[u8]) -> Result<Option<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not a text file".to_owned())?;
    let Some(line) = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(SIGNING_KEY_PREFIX))
    else {
        return Ok(None);
    };
    let damaged = || {
        format!(
            "the signing key line ({SIGNING_KEY_PREFIX} …) is damaged: it must hold an Ed25519 \
             public key, 64 hex digits"
        )
    };
    let mut key = [0u8; 32];
    hex::decode_to_slice(line[SIGNING_KEY_PREFIX.len()..].trim(), &mut key)
        .map_err(|_| damaged())?;
    VerifyingKey::from_bytes(&key).map_err(|_| damaged())?;
    Ok(Some(hex::encode(key)))
}

/// A custodian as kagictl prints it in JSON.
#[derive(Debug, Serialize)]
struct CustodianView {
    /// Principal name.
    name: String,
    /// Principal id (UUID).
    principal_id: String,
    /// Full name of the person.
    person_name: String,
    /// age recipient, `age1…`.
    public_key: String,
    /// Ed25519 public key that verifies the custodian's approvals, hex; null if none is
    /// enrolled (the custodian cannot approve proposals).
    signing_public_key: Option<String>,
    /// Index of the share held in the current generation; null if none.
    share_index: Option<u32>,
    /// SHA-256 of the signed acknowledgement, hex.
    acknowledgement_sha256: String,
    /// When the acknowledgement was recorded, RFC 3339 UTC.
    acknowledged_at: Option<String>,
    /// When the principal was created, RFC 3339 UTC.
    created_at: Option<String>,
    /// Revocation time, RFC 3339 UTC; null while the custodian is active.
    revoked_at: Option<String>,
}

impl From<&pb::KeyCustodian> for CustodianView {
    fn from(c: &pb::KeyCustodian) -> Self {
        let principal = c.principal.clone().unwrap_or_default();
        Self {
            name: principal.name,
            principal_id: principal.id,
            person_name: c.person_name.clone(),
            public_key: c.public_key.clone(),
            signing_public_key: (!c.signing_public_key.is_empty())
                .then(|| c.signing_public_key.clone()),
            share_index: (c.share_index != 0).then_some(c.share_index),
            acknowledgement_sha256: hex::encode(&c.acknowledgement_sha256),
            acknowledged_at: output::optional_time(c.acknowledged_at),
            created_at: output::optional_time(principal.created_at),
            revoked_at: output::optional_time(principal.revoked_at),
        }
    }
}

/// The JSON document of `custodian enroll`: the custodian and its only showing of the token.
/// Not `Debug`, so that no debug output can show the token.
#[derive(Serialize)]
struct EnrolledView {
    /// The new custodian.
    custodian: CustodianView,
    /// Its bearer token.
    token: String,
}

/// `custodian enroll --name N --person P --public-key FILE --acknowledgement DOC`.
async fn enroll(kagi: &Kagi, args: EnrollArgs, format: Format) -> Result<(), CliError> {
    let (public_key, signing_public_key) = read_public_keys(&args.public_key)?;
    let document = std::fs::read(&args.acknowledgement).map_err(CliError::io(format!(
        "reading --acknowledgement {}",
        args.acknowledgement.display()
    )))?;
    let digest = sha2::Sha256::digest(&document).to_vec();
    let response = kagi
        .custodians()
        .enroll(pb::EnrollRequest {
            name: args.name,
            person_name: args.person,
            public_key,
            acknowledgement_sha256: digest,
            signing_public_key: signing_public_key.clone().unwrap_or_default(),
        })
        .await?
        .into_inner();
    let enrolled = EnrolledView {
        custodian: CustodianView::from(&response.custodian.unwrap_or_default()),
        token: response.token,
    };
    if signing_public_key.is_none() {
        eprintln!(
            "kagictl: warning: {} has no signing key ({SIGNING_KEY_PREFIX} line): custodian {} \
             can unseal but cannot approve proposals; for that, they make a new key pair with \
             kagictl custodian keygen and are enrolled with it",
            args.public_key.trim(),
            enrolled.custodian.name
        );
    }
    match format {
        Format::Json => output::json(&enrolled),
        Format::Human => output::print(&enrolled_text(&enrolled)),
    }
}

/// The human output of `custodian enroll`: like `principal create`, every line but the export
/// is a shell comment, so the output can be pasted into (or `eval`ed by) a shell.
fn enrolled_text(enrolled: &EnrolledView) -> String {
    let c = &enrolled.custodian;
    format!(
        "# Enrolled custodian {} ({}) for {}, public key {}.\n\
         # Signing key (approves proposals): {}\n\
         # Acknowledgement SHA-256: {}\n\
         export KAGI_TOKEN={}\n\
         # This token is shown once: kagid keeps only its hash. Give it to the custodian alone, \
         to store in their secret store.\n",
        c.name,
        c.principal_id,
        c.person_name,
        c.public_key,
        c.signing_public_key
            .as_deref()
            .unwrap_or("none (cannot approve proposals)"),
        c.acknowledgement_sha256,
        enrolled.token
    )
}

/// `custodian list`.
async fn list(kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let custodians: Vec<CustodianView> = kagi
        .custodians()
        .list_custodians(pb::ListCustodiansRequest {})
        .await?
        .into_inner()
        .custodians
        .iter()
        .map(CustodianView::from)
        .collect();
    if format == Format::Json {
        return output::json_list("custodians", &custodians);
    }
    let mut table = Table::new(&[
        "NAME",
        "PERSON",
        "PUBLIC KEY",
        "SIGNING KEY",
        "SHARE",
        "ACKNOWLEDGED",
        "PRINCIPAL",
        "REVOKED",
    ]);
    for c in custodians {
        table.row(vec![
            c.name,
            c.person_name,
            short_key(&c.public_key),
            c.signing_public_key
                .as_deref()
                .map_or_else(|| "-".into(), short_key),
            c.share_index.map_or_else(|| "-".into(), |i| i.to_string()),
            c.acknowledged_at.unwrap_or_else(|| "-".into()),
            c.principal_id,
            c.revoked_at.unwrap_or_else(|| "-".into()),
        ]);
    }
    output::print(&table.render())
}

/// `age1abcdefgh…uvwxyz`: enough of a public key to tell keys apart in a table.
pub fn short_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 20 {
        return key.to_owned();
    }
    let head: String = chars[..12].iter().collect();
    let tail: String = chars[chars.len() - 6..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use age::secrecy::SecretString;

    use super::*;

    #[test]
    fn public_key_paths_replace_key_or_add_pub() {
        assert_eq!(
            public_key_path(Path::new("yamada.key")),
            Path::new("yamada.pub")
        );
        assert_eq!(
            public_key_path(Path::new("/keys/yamada.key")),
            Path::new("/keys/yamada.pub")
        );
        assert_eq!(
            public_key_path(Path::new("yamada")),
            Path::new("yamada.pub")
        );
        assert_eq!(
            public_key_path(Path::new("yamada.age")),
            Path::new("yamada.age.pub")
        );
        assert_eq!(
            public_key_path(Path::new("dir.key/yamada")),
            Path::new("dir.key/yamada.pub")
        );
    }

    #[test]
    fn public_keys_come_from_files_or_the_argument() {
        let identity = age::x25519::Identity::generate();
        let public = identity.to_public().to_string();
        assert_eq!(read_public_key(&public).unwrap(), public);
        assert_eq!(read_public_keys(&public).unwrap(), (public.clone(), None));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pub");
        std::fs::write(&path, format!("# a comment\n\n{public}\n")).unwrap();
        assert_eq!(read_public_key(path.to_str().unwrap()).unwrap(), public);
        let secret = dir.path().join("c.txt");
        let text = secrets::identity_text(&identity, "2026-04-01T09:30:00Z", None);
        std::fs::write(&secret, text.as_bytes()).unwrap();
        assert!(read_public_key(secret.to_str().unwrap()).is_err());
        assert!(read_public_key("age1notakey").is_err());
    }

    #[test]
    fn public_key_files_carry_the_signing_key_as_a_comment() {
        let identity = age::x25519::Identity::generate();
        let public = identity.to_public().to_string();
        let signing = hex::encode(
            SigningKey::from_bytes(&[3u8; 32])
                .verifying_key()
                .to_bytes(),
        );
        let text = public_key_file_text(&public, &signing);
        assert_eq!(text, format!("# kagi-ed25519: {signing}\n{public}\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pub");
        std::fs::write(&path, &text).unwrap();
        let arg = path.to_str().unwrap();
        // enroll reads both; operator init and rekey start read the age key as before.
        assert_eq!(
            read_public_keys(arg).unwrap(),
            (public.clone(), Some(signing.clone()))
        );
        assert_eq!(read_public_key(arg).unwrap(), public);
        // Upper case and spacing are accepted; the key comes back in lower case.
        std::fs::write(
            &path,
            format!(
                "#  kagi-ed25519 is not this\n  # kagi-ed25519:   {}  \r\n{public}\r\n",
                signing.to_uppercase()
            ),
        )
        .unwrap();
        assert_eq!(read_public_keys(arg).unwrap().1, Some(signing.clone()));
        // A file from age-keygen (or an old keygen) has none.
        std::fs::write(&path, format!("{public}\n")).unwrap();
        assert_eq!(read_public_keys(arg).unwrap(), (public.clone(), None));
        // A damaged line is refused, not taken for "no signing key".
        for bad in [
            signing[..62].to_owned(),
            format!("{signing}00"),
            format!("{}zz", &signing[..62]),
            String::new(),
        ] {
            std::fs::write(&path, format!("# kagi-ed25519: {bad}\n{public}\n")).unwrap();
            let Err(CliError::Usage(why)) = read_public_keys(arg) else {
                panic!("a damaged signing key line was accepted: {bad}");
            };
            assert!(why.contains("damaged"), "{why}");
        }
        // A key file's plaintext (with the seed) must not be taken for a public key file.
        let seed_line = format!(
            "{} {}\n{public}\n",
            secrets::SIGNING_SEED_PREFIX,
            "00".repeat(32)
        );
        std::fs::write(&path, seed_line).unwrap();
        assert!(read_public_keys(arg).is_err());
    }

    #[test]
    fn keygen_writes_a_key_file_that_opens_with_the_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("yamada.key");
        let public = dir.path().join("yamada.pub");
        let passphrase = "correct horse battery staple";
        let keys = generate(&key, &public, SecretString::from(passphrase), Some(10)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&public).unwrap(),
            format!("# kagi-ed25519: {}\n{}\n", keys.signing, keys.age)
        );
        assert_eq!(
            read_public_keys(public.to_str().unwrap()).unwrap(),
            (keys.age.clone(), Some(keys.signing.clone()))
        );
        let armored = std::fs::read_to_string(&key).unwrap();
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!armored.contains("AGE-SECRET-KEY"));
        assert!(!armored.contains("kagi-ed25519"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The plaintext is age-keygen's text form, with the seed as one more comment line.
        let mut scrypt = age::scrypt::Identity::new(SecretString::from(passphrase));
        scrypt.set_max_work_factor(10);
        let text = String::from_utf8(age::decrypt(&scrypt, armored.as_bytes()).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("# created: 20"));
        assert_eq!(lines[1], format!("# public key: {}", keys.age));
        assert!(lines[2].starts_with("# kagi-ed25519-seed: "));
        assert_eq!(lines[2].len(), "# kagi-ed25519-seed: ".len() + 64);
        assert!(lines[3].starts_with("AGE-SECRET-KEY-1"));
        let identity = secrets::open_identity(&key, SecretString::from(passphrase)).unwrap();
        assert_eq!(identity.to_public().to_string(), keys.age);
        let signing = secrets::open_signing_key(&key, SecretString::from(passphrase)).unwrap();
        assert_eq!(
            hex::encode(signing.verifying_key().to_bytes()),
            keys.signing
        );
        // Never over an existing file.
        assert!(generate(&key, &public, SecretString::from(passphrase), Some(10)).is_err());
        // Two key pairs never share a signing key.
        let other = generate(
            &dir.path().join("b.key"),
            &dir.path().join("b.pub"),
            SecretString::from(passphrase),
            Some(10),
        )
        .unwrap();
        assert_ne!(other.signing, keys.signing);
    }

    #[test]
    fn short_keys_keep_both_ends() {
        assert_eq!(short_key("age1short"), "age1short");
        let key = "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqwxyz12";
        assert_eq!(short_key(key), "age1qqqqqqqq…wxyz12");
    }
}
