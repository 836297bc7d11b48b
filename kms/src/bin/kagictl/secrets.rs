//! The custodian's secrets on the custodian's machine: the passphrase, the custodian key (an
//! age X25519 identity and an Ed25519 signing key, kept in a passphrase-encrypted age file)
//! and the decrypted shares.
//!
//! Every secret lives in a zeroizing container ([`Zeroizing`], [`SecretString`], and
//! [`SigningKey`], which zeroes itself when dropped) and is never printed. Commands that
//! handle one call [`harden_process`] first, so that a crash cannot leave a core dump with the
//! secret in it.
//!
//! The key file is a standard age file (scrypt recipient, ASCII armour) around the text that
//! `age-keygen` writes, with one more comment line holding the Ed25519 seed that signs
//! approvals of proposals (dual control):
//!
//! ```text
//! # created: 2026-04-01T09:30:00Z
//! # public key: age1…
//! # kagi-ed25519-seed: <64 hex digits>
//! AGE-SECRET-KEY-1…
//! ```
//!
//! The seed is a comment to age, so `age -d KEYFILE` opens the file and `age -d -i KEYFILE`
//! still uses it as an identity file. Key files made before approvals existed (or by `age -p`
//! from an `age-keygen` key) have no seed line: they unseal and rekey, but cannot approve.
//! The share files are age files encrypted to the custodian's public key. Both armoured and
//! binary age files are read.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use age::secrecy::{ExposeSecret as _, SecretString};
use clap::Args;
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use crate::output::CliError;

/// Shortest passphrase accepted for a new key file, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// Smallest scrypt work factor (log2 of scrypt's N) that `custodian keygen` accepts.
pub const MIN_WORK_FACTOR: u8 = 10;

/// Largest scrypt work factor written or read: 2^22 takes 4 GiB of memory, and is the most
/// that the reference `age` tool accepts when it decrypts.
pub const MAX_WORK_FACTOR: u8 = 22;

/// The first line of an age X25519 identity.
const SECRET_KEY_PREFIX: &str = "AGE-SECRET-KEY-1";

/// The comment line of a key file that holds the Ed25519 seed, before 64 hex digits.
pub const SIGNING_SEED_PREFIX: &str = "# kagi-ed25519-seed:";

/// Length of an Ed25519 seed (the private key), in bytes.
pub const SIGNING_SEED_LEN: usize = 32;

/// How many times a mistyped or mismatched new passphrase is asked again.
const PROMPT_ATTEMPTS: usize = 3;

/// The custodian's key file and how to open it, for the commands that decrypt a share.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// Your key file, made by `kagictl custodian keygen` (an age file encrypted with a
    /// passphrase).
    #[arg(long, value_name = "KEYFILE")]
    pub identity: PathBuf,

    /// Read the key file's passphrase from the first line of this file instead of asking for
    /// it on the terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// Disables core dumps of this process (and, on Linux, ptrace by other processes of the same
/// user), so that the secrets in its memory cannot end up in a core file. Best effort: errors
/// are ignored.
pub fn harden_process() {
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}

/// The passphrase of a new key file: the first line of `passphrase_file`, or typed twice on
/// the terminal. Either way at least [`MIN_PASSPHRASE_CHARS`] characters.
pub fn new_passphrase(
    passphrase_file: Option<&Path>,
    key: &Path,
) -> Result<SecretString, CliError> {
    if let Some(file) = passphrase_file {
        let passphrase = read_passphrase_file(file)?;
        check_new_passphrase(passphrase.expose_secret()).map_err(|why| {
            CliError::Usage(format!("--passphrase-file {}: {why}", file.display()))
        })?;
        return Ok(passphrase);
    }
    require_terminal()?;
    for _ in 0..PROMPT_ATTEMPTS {
        let first = prompt(&format!(
            "New passphrase for {} (at least {MIN_PASSPHRASE_CHARS} characters): ",
            key.display()
        ))?;
        if let Err(why) = check_new_passphrase(&first) {
            eprintln!("kagictl: {why}; try again");
            continue;
        }
        let second = prompt("Type it again: ")?;
        if *first != *second {
            eprintln!("kagictl: the two passphrases differ; try again");
            continue;
        }
        return Ok(SecretString::from(first.as_str()));
    }
    Err(CliError::Usage(
        "no passphrase: too many attempts; nothing was written".into(),
    ))
}

/// The passphrase that opens `key`: the first line of `passphrase_file`, or typed once on
/// the terminal.
pub fn passphrase_for(
    passphrase_file: Option<&Path>,
    key: &Path,
) -> Result<SecretString, CliError> {
    if let Some(file) = passphrase_file {
        return read_passphrase_file(file);
    }
    require_terminal()?;
    let typed = prompt(&format!("Passphrase for {}: ", key.display()))?;
    Ok(SecretString::from(typed.as_str()))
}

/// Why `passphrase` is too weak for a new key file, if it is.
fn check_new_passphrase(passphrase: &str) -> Result<(), String> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(format!(
            "the passphrase is shorter than {MIN_PASSPHRASE_CHARS} characters"
        ));
    }
    Ok(())
}

/// Refuses to prompt when stdin is not a terminal (a script, a pipe), where nobody would see
/// the question.
fn require_terminal() -> Result<(), CliError> {
    if std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(CliError::Usage(
            "no passphrase: stdin is not a terminal, so kagictl cannot ask for one; \
             pass --passphrase-file FILE"
                .into(),
        ))
    }
}

/// Asks on the terminal, without echo.
fn prompt(question: &str) -> Result<Zeroizing<String>, CliError> {
    // The question goes to the terminal, not to stdout, which may be a file or a pipe.
    let _ = std::io::stderr().flush();
    rpassword::prompt_password(question)
        .map(Zeroizing::new)
        .map_err(CliError::io("reading the passphrase from the terminal"))
}

/// The first line of a passphrase file, without its line ending.
pub fn read_passphrase_file(path: &Path) -> Result<SecretString, CliError> {
    let what = || format!("--passphrase-file {}", path.display());
    let bytes =
        Zeroizing::new(std::fs::read(path).map_err(CliError::io(format!("reading {}", what())))?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::Usage(format!("{} is not UTF-8 text", what())))?;
    let line = first_line(text);
    if line.is_empty() {
        return Err(CliError::Usage(format!(
            "{}: the first line is empty",
            what()
        )));
    }
    Ok(SecretString::from(line))
}

/// The text up to the first line break, without a trailing `\r`.
fn first_line(text: &str) -> &str {
    let line = text.split('\n').next().unwrap_or_default();
    line.strip_suffix('\r').unwrap_or(line)
}

/// A fresh key file's plaintext, in the text form of `age-keygen`: two comment lines (creation
/// time, public key), then, with a signing seed, the comment line
/// `# kagi-ed25519-seed: <64 hex>`, then the secret key. Without a seed it is exactly what
/// `age-keygen` writes.
pub fn identity_text(
    identity: &age::x25519::Identity,
    created: &str,
    signing_seed: Option<&[u8; SIGNING_SEED_LEN]>,
) -> Zeroizing<String> {
    let secret = identity.to_string();
    let public = identity.to_public().to_string();
    // Room for everything up front: a reallocation would leave a copy of the secrets behind in
    // the freed buffer, which Zeroizing never sees.
    let mut text = Zeroizing::new(String::with_capacity(
        created.len()
            + public.len()
            + secret.expose_secret().len()
            + SIGNING_SEED_PREFIX.len()
            + 2 * SIGNING_SEED_LEN
            + 48,
    ));
    text.push_str("# created: ");
    text.push_str(created);
    text.push_str("\n# public key: ");
    text.push_str(&public);
    text.push('\n');
    if let Some(seed) = signing_seed {
        text.push_str(SIGNING_SEED_PREFIX);
        text.push(' ');
        push_hex(&mut text, seed);
        text.push('\n');
    }
    text.push_str(secret.expose_secret());
    text.push('\n');
    text
}

/// Appends `bytes` in lowercase hex to `text`, without an intermediate string (which would not
/// be zeroed).
fn push_hex(text: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// Encrypts `plaintext` with `passphrase` (age scrypt recipient) and ASCII armour.
/// `work_factor` is log2 of scrypt's N; `None` lets age pick about one second of work.
pub fn encrypt_with_passphrase(
    plaintext: &[u8],
    passphrase: SecretString,
    work_factor: Option<u8>,
) -> Result<String, CliError> {
    let mut recipient = age::scrypt::Recipient::new(passphrase);
    if let Some(log_n) = work_factor {
        recipient.set_work_factor(log_n.clamp(MIN_WORK_FACTOR, MAX_WORK_FACTOR));
    }
    age::encrypt_and_armor(&recipient, plaintext)
        .map_err(|e| CliError::Data(format!("encrypting the key file failed: {e}")))
}

/// What a key file holds once opened.
pub struct KeyFile {
    /// The age X25519 identity that opens the custodian's shares.
    pub identity: age::x25519::Identity,
    /// The Ed25519 key that signs approvals; `None` in a key file without a
    /// `# kagi-ed25519-seed:` line.
    pub signing_key: Option<SigningKey>,
}

/// Opens the key file with its passphrase and parses the identity inside.
pub fn open_identity(
    key: &Path,
    passphrase: SecretString,
) -> Result<age::x25519::Identity, CliError> {
    let shown = key.display();
    let file = std::fs::read(key).map_err(CliError::io(format!("reading --identity {shown}")))?;
    open_identity_bytes(&file, &shown.to_string(), passphrase)
}

/// Opens the bytes of a key file (named `shown` in errors) with its passphrase and parses the
/// identity inside. The signing seed line, if any, is not looked at: unseal and rekey need
/// only the identity.
pub fn open_identity_bytes(
    file: &[u8],
    shown: &str,
    passphrase: SecretString,
) -> Result<age::x25519::Identity, CliError> {
    let text = decrypt_key_file(file, shown, passphrase)?;
    parse_identity(&text).map_err(|why| CliError::Data(format!("{shown}: {why}")))
}

/// Opens the key file with its passphrase and gives the Ed25519 signing key inside; an error
/// that says what to do when the file has none.
pub fn open_signing_key(key: &Path, passphrase: SecretString) -> Result<SigningKey, CliError> {
    let shown = key.display().to_string();
    let file = std::fs::read(key).map_err(CliError::io(format!("reading --identity {shown}")))?;
    open_key_file_bytes(&file, &shown, passphrase)?
        .signing_key
        .ok_or_else(|| no_signing_key(&shown))
}

/// The error for a key file (named `shown`) without a signing key.
fn no_signing_key(shown: &str) -> CliError {
    CliError::Data(format!(
        "{shown} has no signing key: it was made before approvals existed; make a new key pair \
         and re-enrol"
    ))
}

/// Opens the bytes of a key file (named `shown` in errors) with its passphrase and parses both
/// the identity and the signing seed, if any, inside.
pub fn open_key_file_bytes(
    file: &[u8],
    shown: &str,
    passphrase: SecretString,
) -> Result<KeyFile, CliError> {
    let text = decrypt_key_file(file, shown, passphrase)?;
    let identity =
        parse_identity(&text).map_err(|why| CliError::Data(format!("{shown}: {why}")))?;
    let signing_key = parse_signing_seed(&text)
        .map_err(|why| CliError::Data(format!("{shown}: {why}")))?
        .map(|seed| SigningKey::from_bytes(&seed));
    Ok(KeyFile {
        identity,
        signing_key,
    })
}

/// Decrypts a key file (named `shown` in errors) with its passphrase: the text inside.
fn decrypt_key_file(
    file: &[u8],
    shown: &str,
    passphrase: SecretString,
) -> Result<Zeroizing<String>, CliError> {
    let mut scrypt = age::scrypt::Identity::new(passphrase);
    scrypt.set_max_work_factor(MAX_WORK_FACTOR);
    let bytes = age::decrypt(&scrypt, file).map_err(|err| {
        CliError::Data(match err {
            age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed => {
                format!("the passphrase does not open {shown}")
            }
            age::DecryptError::ExcessiveWork { required, .. } => format!(
                "{shown} needs scrypt work factor {required}, more than the \
                 {MAX_WORK_FACTOR} kagictl accepts"
            ),
            age::DecryptError::NoMatchingKeys => format!(
                "{shown} is not encrypted with a passphrase: give the key file made by \
                 kagictl custodian keygen"
            ),
            _ if contains(file, SECRET_KEY_PREFIX.as_bytes()) => format!(
                "{shown} holds an unencrypted age key; kagictl uses passphrase-protected \
                 key files only (encrypt it with `age -p -a`, or make one with kagictl \
                 custodian keygen)"
            ),
            age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => format!(
                "{shown} is not an age file: give the key file made by kagictl custodian \
                 keygen"
            ),
            other => format!("{shown} cannot be opened: {other}"),
        })
    })?;
    // String::from_utf8 takes the buffer over without copying it; on failure the bytes come
    // back in the error and are zeroed here.
    String::from_utf8(bytes).map(Zeroizing::new).map_err(|err| {
        drop(Zeroizing::new(err.into_bytes()));
        CliError::Data(format!("{shown} does not hold an age identity"))
    })
}

/// The Ed25519 seed of the `# kagi-ed25519-seed: <64 hex>` line of a key file's text, if it
/// has one. A line that is there but malformed is an error, not "no seed": the file was
/// damaged or edited.
pub fn parse_signing_seed(text: &str) -> Result<Option<Zeroizing<[u8; SIGNING_SEED_LEN]>>, String> {
    let Some(line) = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(SIGNING_SEED_PREFIX))
    else {
        return Ok(None);
    };
    let digits = line[SIGNING_SEED_PREFIX.len()..].trim();
    let mut seed = Zeroizing::new([0u8; SIGNING_SEED_LEN]);
    if digits.len() != 2 * SIGNING_SEED_LEN
        || hex::decode_to_slice(digits, seed.as_mut_slice()).is_err()
    {
        return Err(format!(
            "the signing key line ({SIGNING_SEED_PREFIX} …) is damaged: it must hold {} hex \
             digits",
            2 * SIGNING_SEED_LEN
        ));
    }
    Ok(Some(seed))
}

/// The identity in `age-keygen` text: the first `AGE-SECRET-KEY-1…` line (comments and blank
/// lines are skipped).
pub fn parse_identity(text: &str) -> Result<age::x25519::Identity, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(SECRET_KEY_PREFIX))
        .ok_or_else(|| format!("no age X25519 identity ({SECRET_KEY_PREFIX}…) in the file"))?;
    age::x25519::Identity::from_str(line)
        .map_err(|why| format!("the age identity does not parse ({why})"))
}

/// Decrypts a share file with the custodian's identity: the binary share record inside
/// (its length is checked; kagid checks the rest).
pub fn decrypt_share(
    share: &Path,
    identity: &age::x25519::Identity,
    key: &Path,
) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let shown = share.display();
    let file = std::fs::read(share).map_err(CliError::io(format!("reading --share {shown}")))?;
    let record = age::decrypt(identity, &file)
        .map(Zeroizing::new)
        .map_err(|err| {
            CliError::Data(match err {
                age::DecryptError::NoMatchingKeys => {
                    format!("{shown} is not encrypted to the key in {}", key.display())
                }
                age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
                    format!("{shown} is not an age file: give your share file (share-N-NAME.age)")
                }
                other => format!("{shown} cannot be opened: {other}"),
            })
        })?;
    let expected = kagi_crypto::sharing::RECORD_LEN;
    if record.len() != expected {
        return Err(CliError::Data(format!(
            "{shown} does not hold a Kagi share: it decrypts to {} bytes, not {expected}",
            record.len()
        )));
    }
    Ok(record)
}

/// The share in `share`, decrypted with the identity in the key file: asks for (or reads) the
/// passphrase, opens the key file, decrypts the share. scrypt and the prompt block, so this
/// runs on tokio's blocking pool.
pub async fn open_share(share: PathBuf, key: IdentityArgs) -> Result<Zeroizing<Vec<u8>>, CliError> {
    harden_process();
    tokio::task::spawn_blocking(move || {
        let passphrase = passphrase_for(key.passphrase_file.as_deref(), &key.identity)?;
        let identity = open_identity(&key.identity, passphrase)?;
        decrypt_share(&share, &identity, &key.identity)
    })
    .await
    .expect("decrypting a share does not panic")
}

/// The Ed25519 key in the key file, for signing an approval: asks for (or reads) the
/// passphrase and opens the key file. scrypt and the prompt block, so this runs on tokio's
/// blocking pool.
pub async fn open_signing_key_args(key: IdentityArgs) -> Result<SigningKey, CliError> {
    harden_process();
    tokio::task::spawn_blocking(move || {
        let passphrase = passphrase_for(key.passphrase_file.as_deref(), &key.identity)?;
        open_signing_key(&key.identity, passphrase)
    })
    .await
    .expect("opening a key file does not panic")
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Writes a new file that must not exist yet, with `mode` on Unix, and syncs it. A file that
/// could not be written completely is removed.
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), std::io::Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(err) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(err);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_strips_line_endings() {
        assert_eq!(first_line("correct horse\n"), "correct horse");
        assert_eq!(first_line("correct horse\r\nsecond"), "correct horse");
        assert_eq!(first_line("no newline"), "no newline");
        assert_eq!(first_line(" spaces kept \n"), " spaces kept ");
        assert_eq!(first_line(""), "");
        assert_eq!(first_line("\nsecond"), "");
    }

    #[test]
    fn passphrase_files_give_their_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "long enough passphrase\nignored\n").unwrap();
        let passphrase = read_passphrase_file(&path).unwrap();
        assert_eq!(passphrase.expose_secret(), "long enough passphrase");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_passphrase_file(&path).is_err());
    }

    #[test]
    fn new_passphrases_have_a_minimum_length() {
        assert!(check_new_passphrase("short").is_err());
        assert!(check_new_passphrase("12345678901").is_err());
        assert!(check_new_passphrase("123456789012").is_ok());
        // Characters, not bytes: 12 kana are enough.
        assert!(check_new_passphrase("かぎかぎかぎかぎかぎかぎ").is_ok());
    }

    #[test]
    fn identity_text_parses_back() {
        let identity = age::x25519::Identity::generate();
        let text = identity_text(&identity, "2026-04-01T09:30:00Z", None);
        let public = identity.to_public().to_string();
        assert!(text.starts_with(&format!(
            "# created: 2026-04-01T09:30:00Z\n# public key: {public}\nAGE-SECRET-KEY-1"
        )));
        assert!(text.ends_with('\n'));
        let parsed = parse_identity(&text).unwrap();
        assert_eq!(parsed.to_public().to_string(), public);
        assert!(parse_signing_seed(&text).unwrap().is_none());
        assert!(parse_identity("# public key: age1…\n").is_err());
        assert!(parse_identity("AGE-SECRET-KEY-1NOTBECH32\n").is_err());
    }

    #[test]
    fn the_signing_seed_is_a_comment_line_before_the_secret_key() {
        let identity = age::x25519::Identity::generate();
        let seed = [0xa5u8; SIGNING_SEED_LEN];
        let text = identity_text(&identity, "2026-04-01T09:30:00Z", Some(&seed));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            format!("# kagi-ed25519-seed: {}", "a5".repeat(32))
        );
        assert!(lines[3].starts_with(SECRET_KEY_PREFIX));
        assert_eq!(*parse_signing_seed(&text).unwrap().unwrap(), seed);
        // The identity still parses (age skips the comment as well).
        assert_eq!(
            parse_identity(&text).unwrap().to_public().to_string(),
            identity.to_public().to_string()
        );
        let upper = format!("# kagi-ed25519-seed:   {}  \n", "A5".repeat(32));
        assert_eq!(*parse_signing_seed(&upper).unwrap().unwrap(), seed);
    }

    #[test]
    fn damaged_seed_lines_are_errors_not_missing_seeds() {
        for line in [
            "# kagi-ed25519-seed:".to_owned(),
            format!("# kagi-ed25519-seed: {}", "a5".repeat(31)),
            format!("# kagi-ed25519-seed: {}", "a5".repeat(33)),
            format!("# kagi-ed25519-seed: {}zz", "a5".repeat(31)),
        ] {
            let err = parse_signing_seed(&format!("{line}\nAGE-SECRET-KEY-1X\n")).unwrap_err();
            assert!(err.contains("damaged"), "{line}: {err}");
        }
        assert!(
            parse_signing_seed("# kagi-ed25519: abc\n")
                .unwrap()
                .is_none()
        );
    }

    /// Writes a key file with `seed` (or none) under passphrase `pass`; gives its path.
    fn key_file(
        dir: &Path,
        name: &str,
        identity: &age::x25519::Identity,
        seed: Option<&[u8; SIGNING_SEED_LEN]>,
        pass: &str,
    ) -> PathBuf {
        let key = dir.join(name);
        let text = identity_text(identity, "2026-04-01T09:30:00Z", seed);
        let armored = encrypt_with_passphrase(
            text.as_bytes(),
            SecretString::from(pass),
            Some(MIN_WORK_FACTOR),
        )
        .unwrap();
        write_new_file(&key, armored.as_bytes(), 0o600).unwrap();
        key
    }

    #[test]
    fn key_files_open_with_their_passphrase_only() {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let key = key_file(
            dir.path(),
            "c.key",
            &identity,
            None,
            "a passphrase of some length",
        );
        assert!(
            std::fs::read_to_string(&key)
                .unwrap()
                .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
        );
        let opened =
            open_identity(&key, SecretString::from("a passphrase of some length")).unwrap();
        assert_eq!(
            opened.to_public().to_string(),
            identity.to_public().to_string()
        );
        let Err(wrong) = open_identity(&key, SecretString::from("another passphrase")) else {
            panic!("a wrong passphrase opened the key file");
        };
        assert!(matches!(wrong, CliError::Data(m) if m.contains("passphrase does not open")));
        // No overwriting.
        assert!(write_new_file(&key, b"x", 0o600).is_err());
    }

    #[test]
    fn signing_keys_come_from_the_seed_line() {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let seed = [7u8; SIGNING_SEED_LEN];
        let pass = "a passphrase of some length";
        let key = key_file(dir.path(), "new.key", &identity, Some(&seed), pass);
        let signing = open_signing_key(&key, SecretString::from(pass)).unwrap();
        assert_eq!(
            signing.verifying_key().to_bytes(),
            SigningKey::from_bytes(&seed).verifying_key().to_bytes()
        );
        // The same file still unseals.
        assert_eq!(
            open_identity(&key, SecretString::from(pass))
                .unwrap()
                .to_public()
                .to_string(),
            identity.to_public().to_string()
        );
        // A key file from before approvals: a clear error.
        let old = key_file(dir.path(), "old.key", &identity, None, pass);
        let Err(CliError::Data(why)) = open_signing_key(&old, SecretString::from(pass)) else {
            panic!("a key file without a seed gave a signing key");
        };
        assert_eq!(
            why,
            format!(
                "{} has no signing key: it was made before approvals existed; make a new key \
                 pair and re-enrol",
                old.display()
            )
        );
    }

    #[test]
    fn shares_open_armoured_or_binary_with_the_right_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let record = vec![7u8; kagi_crypto::sharing::RECORD_LEN];
        let armored = age::encrypt_and_armor(&identity.to_public(), &record).unwrap();
        let binary = age::encrypt(&identity.to_public(), &record).unwrap();
        let short = age::encrypt(&identity.to_public(), &record[..10]).unwrap();
        let key = Path::new("c.key");
        for (name, bytes) in [("a.age", armored.as_bytes()), ("b.age", &binary[..])] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(*decrypt_share(&path, &identity, key).unwrap(), record);
            let err = decrypt_share(&path, &other, key).unwrap_err();
            assert!(matches!(err, CliError::Data(m) if m.contains("is not encrypted to the key")));
        }
        let path = dir.path().join("short.age");
        std::fs::write(&path, short).unwrap();
        assert!(decrypt_share(&path, &identity, key).is_err());
    }

    #[test]
    fn hardening_does_not_panic() {
        harden_process();
        assert_eq!(
            rustix::process::getrlimit(rustix::process::Resource::Core).current,
            Some(0)
        );
    }
}
