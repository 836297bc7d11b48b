//! `kagictl encrypt|decrypt|datakey`: the data-plane commands, for tenant services.
//!
//! Encrypt writes an envelope message (docs/message-format.md) through `kagi-sdk`'s streaming
//! mode: one data key from kagid, then the file encrypted here frame by frame, in constant
//! memory whatever its size. Decrypt reads the first two bytes: "KE" is an envelope message,
//! streamed back the same way; "KG" is a KMS ciphertext made by earlier versions of kagictl
//! (at most 64 KiB), decrypted by kagid as before. [`crate::files`] handles --in and --out.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Args, ValueEnum};
use kagi_sdk::message::Header as MessageHeader;
use kagi_sdk::message::header::{DEFAULT_FRAME_SIZE, FRAME_SIZE_RANGE};
use kagi_sdk::{Envelope, Kagi, Suite, pb};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use zeroize::Zeroizing;

use crate::files::{Input, Output, Progress, Tap, io_failure, is_stdio};
use crate::output::{self, CliError, Format};

/// The longest KMS ciphertext: 64 KiB of plaintext (kagid's Encrypt limit) and 84 bytes of
/// header and tag.
const MAX_KMS_CIPHERTEXT: usize = 64 * 1024 + kagi_crypto::ciphertext::MIN_LEN;

/// Options of `encrypt`.
#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// Key id or TENANT/NAME.
    #[arg(long)]
    key: String,
    /// Encryption context: repeat for each pair; it is bound to the message, and decrypt can
    /// require any of its pairs.
    #[command(flatten)]
    context: Context,
    /// Plaintext file, or - for stdin.
    #[arg(long = "in", value_name = "FILE|-")]
    input: PathBuf,
    /// Ciphertext file (raw bytes), or - for stdout.
    #[arg(long = "out", value_name = "FILE|-")]
    output: PathBuf,
    /// Algorithm suite of the message.
    #[arg(long, value_enum, default_value_t = SuiteArg::Aes256Gcm)]
    suite: SuiteArg,
    /// Plaintext bytes per frame, 1024 to 16777216.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = DEFAULT_FRAME_SIZE,
        value_parser = clap::value_parser!(u32)
            .range(i64::from(*FRAME_SIZE_RANGE.start())..=i64::from(*FRAME_SIZE_RANGE.end()))
    )]
    frame_size: u32,
}

/// The algorithm suites of `--suite`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SuiteArg {
    /// AES-256-GCM with HKDF-SHA-256 and key commitment (CRYPTREC-recommended).
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
    /// ChaCha20-Poly1305 with HKDF-SHA-256 and key commitment (CPUs without AES instructions).
    #[value(name = "chacha20-poly1305")]
    Chacha20Poly1305,
}

impl From<SuiteArg> for Suite {
    fn from(suite: SuiteArg) -> Self {
        match suite {
            SuiteArg::Aes256Gcm => Suite::Aes256GcmHkdfSha256Commit,
            SuiteArg::Chacha20Poly1305 => Suite::ChaCha20Poly1305HkdfSha256Commit,
        }
    }
}

/// Options of `decrypt`. The key is read from the ciphertext.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The encryption context given to encrypt (an envelope message needs only the pairs
    /// given here to be among its own; a KMS ciphertext needs exactly its pairs).
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
    fn to_map(&self) -> Result<HashMap<String, String>, CliError> {
        let mut map = HashMap::new();
        for (key, value) in &self.pairs {
            if map.insert(key.clone(), value.clone()).is_some() {
                return Err(CliError::Usage(format!(
                    "--context {key:?} is given more than once"
                )));
            }
        }
        Ok(map)
    }

    /// The pairs as the SDK's context, with the same check.
    fn to_context(&self) -> Result<kagi_sdk::Context, CliError> {
        Ok(self.to_map()?.into_iter().collect())
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
    /// "envelope" (an envelope message) or "kms" (a KMS ciphertext).
    format: &'static str,
    /// The key used.
    key_id: String,
    /// The key version that wrapped the data key (envelope) or sealed the data (kms).
    key_version: u32,
    /// Bytes written to --out.
    bytes: u64,
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

/// `encrypt --key K [--context k=v]… [--suite S] [--frame-size N] --in FILE|- --out FILE|-`:
/// an envelope message, streamed frame by frame whatever the size of --in.
pub async fn encrypt(args: EncryptArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    // Raw ciphertext would garble the terminal and is useless there.
    if is_stdio(&args.output) && std::io::stdout().is_terminal() {
        return Err(CliError::Usage(
            "refusing to write binary ciphertext to a terminal: use --out FILE or redirect stdout"
                .into(),
        ));
    }
    let context = args.context.to_context()?;
    let envelope = Envelope::new(kagi.clone())
        .with_suite(args.suite.into())
        .with_frame_size(args.frame_size)
        .map_err(sdk_failure)?;
    let input = Input::open(&args.input).await?;
    let progress = Progress::for_input(input.len, format);
    let reader = Tap::new(
        progress.wrap(input.reader),
        format!("reading --in {}", args.input.display()),
    );
    let mut output = Output::create(&args.output)?;
    output.writer = output.writer.keeping_head();
    let streamed =
        interruptible(envelope.encrypt_stream(&args.key, &context, reader, &mut output.writer))
            .await;
    progress.finish();
    let summary = streamed?.map_err(sdk_failure)?;
    let head = output.writer.head().to_vec();
    output.commit().await?;
    summarize(&args.output, format, || {
        envelope_view(&head, summary.message_bytes)
    })
}

/// `decrypt [--context k=v]… --in FILE|- --out FILE|-`: an envelope message ("KE") streamed
/// frame by frame, or a KMS ciphertext ("KG", made by earlier versions of kagictl) through kagid.
pub async fn decrypt(args: DecryptArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let expected = args.context.to_context()?;
    let input = Input::open(&args.input).await?;
    let mut reader = input.reader;
    let mut magic = [0u8; 2];
    let read = read_up_to(&mut reader, &mut magic)
        .await
        .map_err(CliError::io(format!(
            "reading --in {}",
            args.input.display()
        )))?;
    let magic = &magic[..read];
    let reader = std::io::Cursor::new(magic.to_vec()).chain(reader);
    match magic {
        b"KE" => decrypt_envelope(&args, kagi, format, expected, reader, input.len).await,
        b"KG" => decrypt_kms(&args, kagi, format, expected, reader).await,
        _ => Err(CliError::Data(format!(
            "--in {} is not a Kagi ciphertext: it starts with neither \"KE\" (envelope message) \
             nor \"KG\" (KMS ciphertext)",
            args.input.display()
        ))),
    }
}

/// Decrypts an envelope message, writing each frame once its tag verified.
async fn decrypt_envelope<R>(
    args: &DecryptArgs,
    kagi: &Kagi,
    format: Format,
    expected: kagi_sdk::Context,
    reader: R,
    len: Option<u64>,
) -> Result<(), CliError>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let envelope = Envelope::new(kagi.clone());
    let progress = Progress::for_input(len, format);
    let mut reader = Tap::new(
        progress.wrap(reader),
        format!("reading --in {}", args.input.display()),
    )
    .keeping_head();
    let mut output = Output::create(&args.output)?;
    let streamed =
        interruptible(envelope.decrypt_stream(&expected, &mut reader, &mut output.writer)).await;
    progress.finish();
    let summary = streamed?.map_err(sdk_failure)?;
    output.commit().await?;
    summarize(&args.output, format, || {
        envelope_view(reader.head(), summary.plaintext_bytes)
    })
}

/// Decrypts a KMS ciphertext (at most 64 KiB of plaintext) with kagid's Decrypt.
async fn decrypt_kms<R>(
    args: &DecryptArgs,
    kagi: &Kagi,
    format: Format,
    expected: kagi_sdk::Context,
    reader: R,
) -> Result<(), CliError>
where
    R: AsyncRead + Unpin,
{
    let mut ciphertext = Vec::new();
    reader
        .take(MAX_KMS_CIPHERTEXT as u64 + 1)
        .read_to_end(&mut ciphertext)
        .await
        .map_err(CliError::io(format!(
            "reading --in {}",
            args.input.display()
        )))?;
    if ciphertext.len() > MAX_KMS_CIPHERTEXT {
        return Err(CliError::Data(format!(
            "--in {} starts like a KMS ciphertext but is longer than any ({MAX_KMS_CIPHERTEXT} \
             bytes at most)",
            args.input.display()
        )));
    }
    let request = pb::DecryptRequest {
        context: expected.into_iter().collect(),
        ciphertext,
    };
    let response = kagi.crypto().decrypt(request).await?.into_inner();
    let plaintext = Zeroizing::new(response.plaintext);
    let mut output = Output::create(&args.output)?;
    output
        .writer
        .write_all(&plaintext)
        .await
        .map_err(io_failure)?;
    output.commit().await?;
    summarize(&args.output, format, || {
        Ok(CryptoView {
            format: "kms",
            key_id: response.key_id,
            key_version: response.key_version,
            bytes: plaintext.len() as u64,
        })
    })
}

/// What `--json` shows of an envelope message: key id and version from its header (`head`
/// holds its first bytes).
fn envelope_view(head: &[u8], bytes: u64) -> Result<CryptoView, CliError> {
    let unreadable = || CliError::Data("the message header cannot be read back".into());
    let parsed = MessageHeader::parse(head)
        .ok()
        .flatten()
        .ok_or_else(unreadable)?;
    let wrapped = parsed
        .header
        .tenant_wrapped_key()
        .map_err(|_| unreadable())?;
    let (kms_header, _) =
        kagi_crypto::ciphertext::Header::parse(&wrapped.bytes).map_err(|_| unreadable())?;
    Ok(CryptoView {
        format: "envelope",
        key_id: uuid::Uuid::from_bytes(parsed.header.key_id).to_string(),
        key_version: kms_header.key_version,
        bytes,
    })
}

/// Runs a stream to its end, or stops it on Ctrl-C; dropping it removes the partial --out.
async fn interruptible<T>(work: impl Future<Output = T>) -> Result<T, CliError> {
    tokio::select! {
        done = work => Ok(done),
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
async fn read_up_to<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The CLI's error for an SDK failure: kagid's refusals as they are, a bad message as a data
/// error, I/O with the file it concerns.
fn sdk_failure(err: kagi_sdk::Error) -> CliError {
    match err {
        kagi_sdk::Error::Io(err) => io_failure(err),
        kagi_sdk::Error::Message(err) => CliError::Data(err.to_string()),
        kagi_sdk::Error::InvalidArgument(message) => CliError::Usage(message),
        other => other.into(),
    }
}

/// With `--json` and a file as --out, prints which key did the work. Human mode prints
/// nothing, and with `--out -` stdout carries the data, which a summary would corrupt.
fn summarize(
    out: &Path,
    format: Format,
    view: impl FnOnce() -> Result<CryptoView, CliError>,
) -> Result<(), CliError> {
    match format {
        Format::Json if !is_stdio(out) => output::json(&view()?),
        _ => Ok(()),
    }
}

/// `datakey --key K [--context k=v]… [--spec S]`.
pub async fn data_key(args: DataKeyArgs, kagi: &Kagi, format: Format) -> Result<(), CliError> {
    let request = pb::GenerateDataKeyRequest {
        key_id: args.key,
        context: args.context.to_map()?,
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
