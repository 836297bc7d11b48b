//! Envelope encryption: a data key from the KMS, the data encrypted here, one self-describing
//! message out. The plaintext never goes to the KMS.

use std::collections::BTreeMap;
use std::sync::Arc;

use kagi_crypto::SecretKey;
use kagi_crypto::context::EncryptionContext;
use zeroize::Zeroizing;

use crate::cache::{
    CacheClock, CacheLimits, CacheStats, DataKeyCache, DataKeyLease, SystemCacheClock,
};
use crate::message::header::{DEFAULT_FRAME_SIZE, FRAME_SIZE_RANGE, ParsedHeader};
use crate::message::seal::{open_message, parse_header, replace_wrapped_keys, seal_message};
use crate::message::{BodyMode, Header, MessageError, Suite, WrappedDataKey, WrappedKeyKind};
use crate::{Error, Kagi, pb};

/// An encryption context: pairs bound to a message. Never put personal data in it.
pub type Context = BTreeMap<String, String>;

/// Builds a [`Context`] from string pairs.
///
/// ```
/// let context = kagi_sdk::context([("school", "tokyo-01"), ("record", "grades")]);
/// assert_eq!(context["record"], "grades");
/// ```
pub fn context<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Context {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Encrypts and decrypts envelope messages with keys from kagid.
///
/// ```no_run
/// # async fn demo(kagi: kagi_sdk::Kagi) -> Result<(), kagi_sdk::Error> {
/// use kagi_sdk::{Envelope, context};
///
/// let envelope = Envelope::new(kagi);
/// let ctx = context([("record", "grades")]);
/// let message = envelope.encrypt("school-1/grades", b"pupil 42: A", &ctx).await?;
/// let plaintext = envelope.decrypt(&message, &ctx).await?;
/// assert_eq!(plaintext.as_slice(), b"pupil 42: A");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Envelope {
    kagi: Kagi,
    suite: Suite,
    frame_size: u32,
    cache: Option<Arc<DataKeyCache>>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("suite", &self.suite)
            .field("frame_size", &self.frame_size)
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

impl Envelope {
    /// Envelope encryption over a connection, with the default suite (AES-256-GCM), 64 KiB
    /// stream frames and no cache.
    pub fn new(kagi: Kagi) -> Self {
        Self {
            kagi,
            suite: Suite::default(),
            frame_size: DEFAULT_FRAME_SIZE,
            cache: None,
        }
    }

    /// The algorithm suite of new messages.
    pub fn with_suite(mut self, suite: Suite) -> Self {
        self.suite = suite;
        self
    }

    /// The frame size of new streams: 1 KiB to 16 MiB.
    pub fn with_frame_size(mut self, frame_size: u32) -> Result<Self, Error> {
        if !FRAME_SIZE_RANGE.contains(&frame_size) {
            return Err(Error::InvalidArgument(format!(
                "frame size {frame_size} is outside {}..={}",
                FRAME_SIZE_RANGE.start(),
                FRAME_SIZE_RANGE.end()
            )));
        }
        self.frame_size = frame_size;
        Ok(self)
    }

    /// Turns on the data-key cache with these limits.
    pub fn with_cache(self, limits: CacheLimits) -> Self {
        self.with_cache_clock(limits, Arc::new(SystemCacheClock))
    }

    /// Turns on the data-key cache with a clock of the caller's (for tests).
    pub fn with_cache_clock(mut self, limits: CacheLimits, clock: Arc<dyn CacheClock>) -> Self {
        self.cache = Some(Arc::new(DataKeyCache::new(limits, clock)));
        self
    }

    /// The cache's counters, if the cache is on.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// The suite of new messages.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The frame size of new streams.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// The connection this envelope calls kagid through (for key metadata, e.g. a key's
    /// importance class).
    ///
    /// ```no_run
    /// # async fn demo(envelope: kagi_sdk::Envelope) -> Result<(), kagi_sdk::Error> {
    /// use kagi_sdk::pb;
    ///
    /// let key = envelope
    ///     .kagi()
    ///     .keys()
    ///     .get_key(pb::GetKeyRequest { key: "school-1/grades".into() })
    ///     .await?
    ///     .into_inner()
    ///     .key;
    /// # let _ = key; Ok(()) }
    /// ```
    pub fn kagi(&self) -> &Kagi {
        &self.kagi
    }

    /// Encrypts `plaintext` under a data key of `key_id` (an id or `TENANT/NAME`), binding
    /// `context`, as a single-shot message.
    pub async fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &Context,
    ) -> Result<Vec<u8>, Error> {
        let context = to_context(context)?;
        let lease = self.lease(key_id, &context, plaintext.len() as u64).await?;
        let header = new_header(self.suite, BodyMode::Single, &lease, context)?;
        Ok(seal_message(&lease.key, header, plaintext)?)
    }

    /// Decrypts a message. Every pair of `expected` must be in the message's context; the key
    /// is read from the message.
    pub async fn decrypt(
        &self,
        message: &[u8],
        expected: &Context,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let parsed = parse_header(message)?;
        let key = self.unwrap_for(&parsed, expected).await?;
        Ok(open_message(&key, &parsed, message)?)
    }

    /// Re-wraps the message's data key under the current version of its tenant key, through
    /// the KMS (the data key never leaves it), leaving the body untouched. For the annual
    /// rotation job.
    pub async fn rewrap(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let parsed = parse_header(message)?;
        let header = &parsed.header;
        let wrapped = header.tenant_wrapped_key()?;
        check_wrapped_key_id(header, &wrapped.bytes)?;
        let request = pb::ReEncryptRequest {
            ciphertext: wrapped.bytes.clone(),
            source_context: proto_context(&header.context),
            destination_key_id: String::new(),
            destination_context: proto_context(&header.context),
        };
        let response = self.kagi.retry(|| {
            let mut client = self.kagi.crypto();
            let request = request.clone();
            async move { client.re_encrypt(request).await }
        });
        let response = response.await?.into_inner();
        check_wrapped_key_id(header, &response.ciphertext)?;
        let mut keys = header.wrapped_keys.clone();
        for key in keys.iter_mut().filter(|k| k.kind == WrappedKeyKind::Tenant) {
            key.bytes.clone_from(&response.ciphertext);
        }
        Ok(replace_wrapped_keys(message, &parsed, keys))
    }

    /// A data key for one message of `len` bytes: from the cache, or from the KMS.
    async fn lease(
        &self,
        key_id: &str,
        context: &EncryptionContext,
        len: u64,
    ) -> Result<DataKeyLease, Error> {
        let encoded = context.encode();
        if let Some(lease) = self
            .cache
            .as_ref()
            .and_then(|c| c.lease(key_id, &encoded, len))
        {
            return Ok(lease);
        }
        let lease = self.fresh_data_key(key_id, context).await?;
        if let Some(cache) = &self.cache {
            cache.insert_lease(key_id, &encoded, lease.clone(), len);
        }
        Ok(lease)
    }

    /// A new data key from the KMS.
    pub(crate) async fn fresh_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<DataKeyLease, Error> {
        let request = pb::GenerateDataKeyRequest {
            key_id: key_id.to_owned(),
            context: proto_context(context),
            spec: match self.suite {
                Suite::Aes256GcmHkdfSha256Commit => pb::DataKeySpec::Aes256,
                Suite::ChaCha20Poly1305HkdfSha256Commit => pb::DataKeySpec::Chacha20Poly1305256,
            } as i32,
        };
        let response = self.kagi.retry(|| {
            let mut client = self.kagi.crypto();
            let request = request.clone();
            async move { client.generate_data_key(request).await }
        });
        let response = response.await?.into_inner();
        let plaintext = Zeroizing::new(response.plaintext_key);
        let key = SecretKey::from_slice(&plaintext)
            .ok_or_else(|| Error::Protocol("the data key is not 32 bytes".into()))?;
        let key_uuid = parse_uuid(&response.key_id)?;
        Ok(DataKeyLease {
            key: Arc::new(key),
            wrapped: response.wrapped_key,
            tenant_id: response.tenant_id,
            key_id: key_uuid,
        })
    }

    /// Checks the expected context and unwraps the message's data key (cache, or KMS).
    pub(crate) async fn unwrap_for(
        &self,
        parsed: &ParsedHeader,
        expected: &Context,
    ) -> Result<Arc<SecretKey>, Error> {
        let header = &parsed.header;
        for (k, v) in expected {
            if header.context.pairs().get(k) != Some(v) {
                return Err(MessageError::ContextMismatch(k.clone()).into());
            }
        }
        let wrapped = &header.tenant_wrapped_key()?.bytes;
        check_wrapped_key_id(header, wrapped)?;
        let encoded = header.context.encode();
        if let Some(key) = self
            .cache
            .as_ref()
            .and_then(|c| c.unwrapped(wrapped, &encoded))
        {
            return Ok(key);
        }
        let request = pb::DecryptRequest {
            ciphertext: wrapped.clone(),
            context: proto_context(&header.context),
        };
        let response = self.kagi.retry(|| {
            let mut client = self.kagi.crypto();
            let request = request.clone();
            async move { client.decrypt(request).await }
        });
        let plaintext = Zeroizing::new(response.await?.into_inner().plaintext);
        let key = Arc::new(
            SecretKey::from_slice(&plaintext)
                .ok_or_else(|| Error::Protocol("the unwrapped data key is not 32 bytes".into()))?,
        );
        if let Some(cache) = &self.cache {
            cache.insert_unwrapped(wrapped, &encoded, key.clone());
        }
        Ok(key)
    }
}

/// A header for a new message (commitment filled in when sealing).
pub(crate) fn new_header(
    suite: Suite,
    body: BodyMode,
    lease: &DataKeyLease,
    context: EncryptionContext,
) -> Result<Header, Error> {
    let message_id = kagi_crypto::random::array().map_err(|e| Error::Protocol(e.to_string()))?;
    Ok(Header {
        suite,
        body,
        message_id,
        tenant_id: lease.tenant_id.clone(),
        key_id: lease.key_id,
        context,
        commitment: [0; 32],
        wrapped_keys: vec![WrappedDataKey {
            kind: WrappedKeyKind::Tenant,
            bytes: lease.wrapped.clone(),
        }],
    })
}

/// The wrapped key must be a KMS ciphertext of the key the header names.
fn check_wrapped_key_id(header: &Header, wrapped: &[u8]) -> Result<(), Error> {
    let (kms_header, _) = kagi_crypto::ciphertext::Header::parse(wrapped)
        .map_err(|e| MessageError::Format(format!("the wrapped data key: {e}")))?;
    if kms_header.key_id != header.key_id {
        return Err(MessageError::Format(
            "the wrapped data key belongs to another key than the header names".into(),
        )
        .into());
    }
    Ok(())
}

pub(crate) fn to_context(context: &Context) -> Result<EncryptionContext, Error> {
    EncryptionContext::new(context.iter().map(|(k, v)| (k.clone(), v.clone())))
        .map_err(|e| Error::InvalidArgument(e.to_string()))
}

fn proto_context(context: &EncryptionContext) -> std::collections::HashMap<String, String> {
    context
        .pairs()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn parse_uuid(text: &str) -> Result<[u8; 16], Error> {
    uuid::Uuid::parse_str(text)
        .map(|u| *u.as_bytes())
        .map_err(|_| {
            Error::Protocol(format!(
                "kagid returned a key id that is not a UUID: {text:?}"
            ))
        })
}
