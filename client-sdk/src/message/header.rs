//! The message header.
//!
//! ```text
//! authenticated part
//!   magic "KE" (2) │ version 0x01 │ suite (1) │ body mode (1) │ frame size (u32)
//!   message id (32) │ tenant id length (u16) │ tenant id (UTF-8)
//!   key id (16) │ context length (u16) │ context (canonical encoding) │ commitment (32)
//! header tag (16): the suite's AEAD, per-message key, nonce 0, empty plaintext,
//!   AAD "kagi/v1/header" ‖ authenticated part
//! key section
//!   count (u8, 1–8) │ per key: kind (u8) │ length (u16) │ wrapped data key (a KMS ciphertext)
//! ```
//!
//! The key section sits outside the header tag on purpose: re-wrapping a data key under a new
//! tenant-key version (the annual rotation job) replaces it without the data key and without
//! touching the body. It needs no tag of its own: a wrapped key is itself authenticated by the
//! KMS (bound to key id and context), and a wrapped key that unwraps to any other data key fails
//! the commitment check before anything is decrypted.

use kagi_crypto::aead::{NONCE_LEN, TAG_LEN};
use kagi_crypto::context::EncryptionContext;

use super::MessageError;
use super::suite::{MessageKeys, Suite};

/// The magic bytes of an envelope message ("Kagi Envelope").
pub const MAGIC: [u8; 2] = *b"KE";
/// The format version this SDK writes.
pub const VERSION_1: u8 = 0x01;
/// Smallest and largest frame sizes.
pub const FRAME_SIZE_RANGE: std::ops::RangeInclusive<u32> = 1024..=(16 << 20);
/// The default frame size of streams: 64 KiB.
pub const DEFAULT_FRAME_SIZE: u32 = 64 * 1024;
/// Most wrapped keys in a key section.
pub const MAX_WRAPPED_KEYS: usize = 8;
/// Longest wrapped key accepted.
pub const MAX_WRAPPED_LEN: usize = 4096;
/// Longest tenant id accepted.
pub const MAX_TENANT_ID_LEN: usize = 256;
/// Label that starts the header tag's AAD.
const HEADER_LABEL: &[u8] = b"kagi/v1/header";

/// How the body is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// One final frame holding the whole plaintext: for records.
    Single,
    /// Regular frames of `frame_size` plaintext bytes, then a final frame of at most that.
    Framed {
        /// Plaintext bytes per regular frame.
        frame_size: u32,
    },
}

/// Whose key wrapped a data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrappedKeyKind {
    /// The tenant's key in kagid (a KMS ciphertext).
    Tenant,
    /// An escrow key (catalogue K6), for recovery outside the tenant's kagid.
    Escrow,
}

impl WrappedKeyKind {
    fn id(self) -> u8 {
        match self {
            WrappedKeyKind::Tenant => 0x01,
            WrappedKeyKind::Escrow => 0x02,
        }
    }

    fn from_id(id: u8) -> Result<Self, MessageError> {
        match id {
            0x01 => Ok(WrappedKeyKind::Tenant),
            0x02 => Ok(WrappedKeyKind::Escrow),
            other => Err(MessageError::Format(format!(
                "unknown wrapped key kind 0x{other:02x}"
            ))),
        }
    }
}

/// One wrapped copy of the message's data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    /// Who can unwrap it.
    pub kind: WrappedKeyKind,
    /// The wrapped bytes (for [`WrappedKeyKind::Tenant`], a Kagi KMS ciphertext).
    pub bytes: Vec<u8>,
}

/// A parsed or to-be-written header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Algorithm suite.
    pub suite: Suite,
    /// Body layout.
    pub body: BodyMode,
    /// Random per message; the HKDF salt of the message key.
    pub message_id: [u8; 32],
    /// The tenant that owns the key.
    pub tenant_id: String,
    /// The tenant key (binary UUID).
    pub key_id: [u8; 16],
    /// The encryption context, also bound to the wrapped data key by the KMS.
    pub context: EncryptionContext,
    /// The key commitment.
    pub commitment: [u8; 32],
    /// Wrapped copies of the data key (at least the tenant's).
    pub wrapped_keys: Vec<WrappedDataKey>,
}

impl Header {
    /// The bytes the header tag authenticates.
    pub fn authenticated_bytes(&self) -> Vec<u8> {
        let context = self.context.encode();
        let mut out = Vec::with_capacity(128 + self.tenant_id.len() + context.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION_1);
        out.push(self.suite.id());
        match self.body {
            BodyMode::Single => out.extend_from_slice(&[0x01, 0, 0, 0, 0]),
            BodyMode::Framed { frame_size } => {
                out.push(0x02);
                out.extend_from_slice(&frame_size.to_be_bytes());
            }
        }
        out.extend_from_slice(&self.message_id);
        out.extend_from_slice(&(self.tenant_id.len() as u16).to_be_bytes());
        out.extend_from_slice(self.tenant_id.as_bytes());
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&(context.len() as u16).to_be_bytes());
        out.extend_from_slice(&context);
        out.extend_from_slice(&self.commitment);
        out
    }

    /// The key section's bytes.
    pub fn key_section_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.wrapped_keys.len() as u8];
        for key in &self.wrapped_keys {
            out.push(key.kind.id());
            out.extend_from_slice(&(key.bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(&key.bytes);
        }
        out
    }

    /// The whole header: authenticated part, tag (made with `keys`), key section.
    pub fn encode(&self, keys: &MessageKeys) -> Vec<u8> {
        let authenticated = self.authenticated_bytes();
        let tag = keys
            .cipher
            .seal(&[0; NONCE_LEN], &header_aad(&authenticated), &[]);
        [authenticated, tag, self.key_section_bytes()].concat()
    }

    /// Parses a header from the start of `bytes`. `Ok(None)`: more bytes are needed.
    /// The tag is returned unchecked: checking needs the data key ([`ParsedHeader::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<Option<ParsedHeader>, MessageError> {
        match parse_header(&mut Reader { bytes, at: 0 }) {
            Ok(parsed) => Ok(Some(parsed)),
            Err(Parse::Incomplete) => Ok(None),
            Err(Parse::Bad(err)) => Err(err),
        }
    }

    /// The tenant's wrapped data key.
    pub fn tenant_wrapped_key(&self) -> Result<&WrappedDataKey, MessageError> {
        self.wrapped_keys
            .iter()
            .find(|k| k.kind == WrappedKeyKind::Tenant)
            .ok_or_else(|| MessageError::Format("no wrapped key for the tenant".into()))
    }
}

/// A header read from bytes, with what verifying it needs.
#[derive(Debug, Clone)]
pub struct ParsedHeader {
    /// The header.
    pub header: Header,
    /// The header tag as read.
    pub tag: [u8; TAG_LEN],
    /// How many bytes the header took.
    pub len: usize,
}

impl ParsedHeader {
    /// Checks the header tag with the message keys.
    pub fn verify(&self, keys: &MessageKeys) -> Result<(), MessageError> {
        let aad = header_aad(&self.header.authenticated_bytes());
        keys.cipher
            .open(&[0; NONCE_LEN], &aad, &self.tag)
            .map(drop)
            .map_err(|_| MessageError::Authentication("header"))
    }
}

fn header_aad(authenticated: &[u8]) -> Vec<u8> {
    [HEADER_LABEL, authenticated].concat()
}

enum Parse {
    Incomplete,
    Bad(MessageError),
}

impl From<MessageError> for Parse {
    fn from(err: MessageError) -> Self {
        Parse::Bad(err)
    }
}

fn bad(why: impl Into<String>) -> Parse {
    Parse::Bad(MessageError::Format(why.into()))
}

/// A cursor that reports running out of bytes as [`Parse::Incomplete`].
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Parse> {
        let end = self.at.checked_add(n).ok_or(Parse::Incomplete)?;
        let slice = self.bytes.get(self.at..end).ok_or(Parse::Incomplete)?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Parse> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8, Parse> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, Parse> {
        Ok(u16::from_be_bytes(self.array()?) as usize)
    }
}

fn parse_header(r: &mut Reader<'_>) -> Result<ParsedHeader, Parse> {
    if r.take(2)? != MAGIC {
        return Err(bad(
            "bad magic bytes (a Kagi KMS ciphertext starts with \"KG\"; use Decrypt for those)",
        ));
    }
    let version = r.u8()?;
    if version != VERSION_1 {
        return Err(bad(format!(
            "unknown format version {version}; this SDK reads version 1"
        )));
    }
    let suite = Suite::from_id(r.u8()?)?;
    let mode = r.u8()?;
    let frame_size = u32::from_be_bytes(r.array()?);
    let body = match (mode, frame_size) {
        (0x01, 0) => BodyMode::Single,
        (0x02, size) if FRAME_SIZE_RANGE.contains(&size) => BodyMode::Framed { frame_size: size },
        (0x01 | 0x02, size) => return Err(bad(format!("invalid frame size {size}"))),
        (other, _) => return Err(bad(format!("unknown body mode 0x{other:02x}"))),
    };
    let message_id = r.array()?;
    let tenant_len = r.u16()?;
    if tenant_len == 0 || tenant_len > MAX_TENANT_ID_LEN {
        return Err(bad("invalid tenant id length"));
    }
    let tenant_id = String::from_utf8(r.take(tenant_len)?.to_vec())
        .map_err(|_| bad("tenant id is not UTF-8"))?;
    let key_id = r.array()?;
    let context_len = r.u16()?;
    let context =
        EncryptionContext::decode(r.take(context_len)?).map_err(|e| bad(e.to_string()))?;
    let commitment = r.array()?;
    let tag = r.array()?;
    let count = r.u8()? as usize;
    if count == 0 || count > MAX_WRAPPED_KEYS {
        return Err(bad(format!(
            "{count} wrapped keys; 1 to {MAX_WRAPPED_KEYS} allowed"
        )));
    }
    let mut wrapped_keys = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = WrappedKeyKind::from_id(r.u8()?)?;
        let len = r.u16()?;
        if len == 0 || len > MAX_WRAPPED_LEN {
            return Err(bad("invalid wrapped key length"));
        }
        wrapped_keys.push(WrappedDataKey {
            kind,
            bytes: r.take(len)?.to_vec(),
        });
    }
    let header = Header {
        suite,
        body,
        message_id,
        tenant_id,
        key_id,
        context,
        commitment,
        wrapped_keys,
    };
    Ok(ParsedHeader {
        header,
        tag,
        len: r.at,
    })
}
