//! `kagictl encrypt|decrypt|datakey`: the data-plane commands, for tenant services.
//!
//! Encrypt and decrypt move whole files through one call; kagid refuses plaintext over 64 KiB
//! and that refusal is passed on as is (streaming comes later).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Args, ValueEnum};
use kagi_sdk::{Kagi, pb};
use serde::Serialize;

use crate::output::{self, CliError, Format};

/// Options of `encrypt`.
#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// Key id or TENANT/NAME.
    #[arg(long)]
    key: String,
    /// Encryption context: repeat for each pair; decrypt must give the same pairs.
    #[command(flatten)]
    context: Context,
    /// Plaintext file, or - for stdin.
    #[arg(long = "in", value_name = "FILE|-")]
    input: PathBuf,
    /// Ciphertext file (raw bytes), or - for stdout.
    #[arg(long = "out", value_name = "FILE|-")]
    output: PathBuf,
}

/// Options of `decrypt`. The key is read from the ciphertext.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The encryption context given to encrypt.
    #[command(flatten)]
    context: Context,
    /// Ciphertext file, or - for stdin.
    #[arg(long = "in", value_name = "FILE|-")]
    input: PathBuf,
    /// Plaintext file, or - for stdout.
    #[arg(long = "out", value_name = "FILE|-")]
    output: PathBuf,
}

/// Options of `datakey`.
#[derive(Debug, Args)]
pub struct DataKeyArgs {
    /// Key id or TENANT/NAME of the key that wraps the data key.
    #[arg(long)]
    key: String,
    /// Encryption context bound to the wrapped key.
    #[command(flatten)]
    context: Context,
    /// Cipher the data key is meant for [default: aes-256].
    #[arg(long, value_enum)]
    spec: Option<Spec>,
}

/// The repeatable `--context KEY=VALUE` option.
#[derive(Debug, Args)]
struct Context {
    /// A KEY=VALUE pair of the encryption context (repeatable). It is logged by kagid:
    /// never put personal data in it.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pairs: Vec<(String, String)>,
}

impl Context {
    /// The pairs as the request's map. A key given twice is refused: silently keeping one
    /// value would make a ciphertext that the operator cannot reproduce the context of.
    fn into_map(self) -> Result<HashMap<String, String>, CliError> {
        let mut map = HashMap::new();
        for (key, value) in self.pairs {
            if map.insert(key.clone(), value).is_some() {
                return Err(CliError::Usage(format!(
                    "--context {key:?} is given more than once"
                )));
            }
        }
        Ok(map)
    }
}

/// Splits `KEY=VALUE` at the first '='; the value may itself contain '='.
fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

/// The cipher a data key is generated for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Spec {
    /// A 256-bit AES key.
    #[value(name = "aes-256")]
    Aes256,
    /// A 256-bit ChaCha20-Poly1305 key.
    #[value(name = "chacha20-poly1305")]
    Chacha20Poly1305,
}

impl Spec {
    /// The protobuf spec.
    fn to_pb(self) -> pb::DataKeySpec {
        match self {
            Self::Aes256 => pb::DataKeySpec::Aes256,
            Self::Chacha20Poly1305 => pb::DataKeySpec::Chacha20Poly1305256,
        }
    }
}

/// What `--json` prints after encrypt or decrypt wrote to a file.
#[derive(Debug, Serialize)]
struct CryptoView {
    /// The key used.
    key_id: String,
    /// The key version used.
    key_version: u32,
    /// Bytes written to --out.
    bytes: usize,
}

/// What `datakey` prints.
#[derive(Debug, Serialize)]
struct DataKeyView {
    /// The data key, base64: use it, then forget it.
    plaintext_key: String,
    /// The data key wrapped by the tenant key, base64: store it beside the data.
    wrapped_key: String,
    /// The wrapping key.
    key_id: String,
    /// The wrapping key's version.
    key_version: u32,
}

/// `encrypt --key K [--context k=v]… --in FILE|- --out FILE|-`.
pub async fn encrypt(args: EncryptArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    // Raw ciphertext would garble the terminal and is useless there.
    if is_stdio(&args.output) && std::io::stdout().is_terminal() {
        return Err(CliError::Usage(
            "refusing to write binary ciphertext to a terminal: use --out FILE or redirect stdout"
                .into(),
        ));
    }
    let request = pb::EncryptRequest {
        key_id: args.key,
        context: args.context.into_map()?,
        plaintext: read_input(&args.input)?,
    };
    let response = kagi.crypto().encrypt(request).await?.into_inner();
    write_output(&args.output, &response.ciphertext)?;
    summarize(
        &args.output,
        format,
        CryptoView {
            key_id: response.key_id,
            key_version: response.key_version,
            bytes: response.ciphertext.len(),
        },
    )
}

/// `decrypt [--context k=v]… --in FILE|- --out FILE|-`.
pub async fn decrypt(args: DecryptArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let request = pb::DecryptRequest {
        context: args.context.into_map()?,
        ciphertext: read_input(&args.input)?,
    };
    let response = kagi.crypto().decrypt(request).await?.into_inner();
    write_output(&args.output, &response.plaintext)?;
    summarize(
        &args.output,
        format,
        CryptoView {
            key_id: response.key_id,
            key_version: response.key_version,
            bytes: response.plaintext.len(),
        },
    )
}

/// With `--json` and a file as --out, prints which key did the work. Human mode prints
/// nothing, and with `--out -` stdout carries the data, which a summary would corrupt.
fn summarize(out: &Path, format: Format, view: CryptoView) -> Result<(), CliError> {
    match format {
        Format::Json if !is_stdio(out) => output::json(&view),
        _ => Ok(()),
    }
}

/// `datakey --key K [--context k=v]… [--spec S]`.
pub async fn data_key(args: DataKeyArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let request = pb::GenerateDataKeyRequest {
        key_id: args.key,
        context: args.context.into_map()?,
        spec: args.spec.map_or(pb::DataKeySpec::Unspecified, Spec::to_pb) as i32,
    };
    let response = kagi.crypto().generate_data_key(request).await?.into_inner();
    let view = DataKeyView {
        plaintext_key: BASE64.encode(&response.plaintext_key),
        wrapped_key: BASE64.encode(&response.wrapped_key),
        key_id: response.key_id,
        key_version: response.key_version,
    };
    match format {
        Format::Json => output::json(&view),
        Format::Human => output::print(&output::fields(&[
            ("plaintext key", view.plaintext_key),
            ("wrapped key", view.wrapped_key),
            ("key id", view.key_id),
            ("key version", view.key_version.to_string()),
        ])),
    }
}

/// Whether a --in or --out path means stdin or stdout.
fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// All of --in: a file, or stdin for `-`.
fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    let mut bytes = Vec::new();
    if is_stdio(path) {
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(CliError::io("reading stdin"))?;
    } else {
        bytes = std::fs::read(path)
            .map_err(CliError::io(format!("reading --in {}", path.display())))?;
    }
    Ok(bytes)
}

/// Writes --out: a file, or stdout for `-`. Called only after kagid answered, so a failed
/// call leaves an existing file untouched.
fn write_output(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    if is_stdio(path) {
        return output::write_stdout(bytes);
    }
    let what = format!("writing --out {}", path.display());
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // New files are readable by their owner only: --out is often decrypted plaintext.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(CliError::io(what.clone()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(CliError::io(what))
}
