//! `kagi.v1.Crypto`: encrypt, decrypt, data keys, re-encrypt (one ciphertext, or a batch).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use futures::{StreamExt as _, stream};
use kagi_proto::v1 as pb;
use kagi_proto::v1::crypto_server::Crypto;
use tonic::{Request, Response, Status};

use super::call::code_name;
use super::{Call, authorized_key};
use crate::auth::policy::{Action, authorize, authorize_role};
use crate::engine::cipher::{DataKey, DataKeySpec, ParsedCiphertext, context_from};
use crate::engine::{Engine, EngineError};
use crate::model::{Key, Principal};

/// Most items in one `ReEncryptBatch` call.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// Items of one `ReEncryptBatch` call worked on at the same time (their key and version
/// lookups overlap; the cryptography is microseconds).
const BATCH_CONCURRENCY: usize = 8;

/// What a re-encryption is part of: a `ReEncrypt` call, in whose audit record it notes what
/// it touched; or a `ReEncryptBatch` call, whose one record sums up the batch, and whose keys
/// are looked up once.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    Call(&'a Call),
    Batch(&'a Resolved),
}

impl<'a> Scope<'a> {
    fn resolved(self) -> Option<&'a Resolved> {
        match self {
            Self::Call(_) => None,
            Self::Batch(resolved) => Some(resolved),
        }
    }

    fn key(self, key: &Key) {
        if let Self::Call(call) = self {
            call.key(key);
        }
    }

    fn version(self, version: u32) {
        if let Self::Call(call) = self {
            call.version(version);
        }
    }

    fn context(self, context: &HashMap<String, String>) {
        if let Self::Call(call) = self {
            call.context(context);
        }
    }
}

/// Keys already looked up within one `ReEncryptBatch` call, by the reference that named them
/// (a ciphertext's key id, or a destination as the caller wrote it), so that a thousand items
/// of one key cost one lookup. The principal is the same for the whole call; every item is
/// still authorised on its own. Only successes are kept: a failed lookup is tried again, and
/// fails with the same message.
#[derive(Debug, Default)]
struct Resolved(Mutex<HashMap<String, Key>>);

impl Resolved {
    fn get(&self, reference: &str) -> Option<Key> {
        self.lock().get(reference).cloned()
    }

    fn put(&self, reference: &str, key: &Key) {
        self.lock().insert(reference.to_owned(), key.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Key>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `Crypto` service.
#[derive(Debug, Clone)]
pub struct CryptoService {
    engine: Engine,
}

impl CryptoService {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    /// Reads a ciphertext's header and resolves the key it names, if the principal may use it.
    async fn ciphertext_key<'a>(
        &self,
        principal: &Principal,
        scope: Scope<'_>,
        ciphertext: &'a [u8],
    ) -> Result<(ParsedCiphertext<'a>, Key), Status> {
        authorize_role(principal, Action::UseKey)?;
        let parsed = self.engine.parse_ciphertext(ciphertext)?;
        let resolved = scope.resolved();
        let key = match resolved.and_then(|r| r.get(&parsed.key_id)) {
            Some(key) => key,
            None => {
                let key = self
                    .engine
                    .resolve_key(&parsed.key_id)
                    .await
                    .map_err(|e| match e {
                        EngineError::NotFound(_) => Status::not_found(format!(
                            "the key that made this ciphertext ({}) does not exist on this server",
                            parsed.key_id
                        )),
                        other => other.into(),
                    })?;
                if let Some(resolved) = resolved {
                    resolved.put(&parsed.key_id, &key);
                }
                key
            }
        };
        scope.key(&key);
        scope.version(parsed.header.key_version);
        authorize(principal, Action::UseKey, Some(&key.tenant_id))?;
        Ok((parsed, key))
    }

    /// The destination key of a re-encryption, if the principal may use it: for `ReEncrypt`,
    /// [`authorized_key`]; for an item of a batch, the same checks, remembered for the batch.
    async fn destination_key(
        &self,
        principal: &Principal,
        scope: Scope<'_>,
        reference: &str,
    ) -> Result<Key, Status> {
        let resolved = match scope {
            Scope::Call(call) => {
                return authorized_key(&self.engine, call, Action::UseKey, reference).await;
            }
            Scope::Batch(resolved) => resolved,
        };
        if let Some(key) = resolved.get(reference) {
            // This reference passed every check below earlier in the batch, for this same
            // principal; the authorisation is repeated all the same (it costs nothing).
            authorize(principal, Action::UseKey, Some(&key.tenant_id))?;
            return Ok(key);
        }
        // As `authorized_key`: another tenant named as `TENANT/NAME` is refused before any
        // lookup of the key.
        authorize_role(principal, Action::UseKey)?;
        if let (Some(own), Some((tenant, _))) =
            (principal.tenant_id.as_deref(), reference.split_once('/'))
            && tenant != own
            && self.engine.resolve_tenant(own).await?.name != tenant
        {
            authorize(principal, Action::UseKey, Some(tenant))?;
        }
        let key = self.engine.resolve_key(reference).await?;
        authorize(principal, Action::UseKey, Some(&key.tenant_id))?;
        resolved.put(reference, &key);
        Ok(key)
    }

    /// One `ReEncrypt`: every check, then the work. `resource` becomes what the audit record
    /// names. Returns the answer and the destination key.
    async fn re_encrypt_one(
        &self,
        principal: &Principal,
        scope: Scope<'_>,
        req: pb::ReEncryptRequest,
        resource: &mut String,
    ) -> Result<(pb::ReEncryptResponse, Key), Status> {
        let (parsed, source) = self
            .ciphertext_key(principal, scope, &req.ciphertext)
            .await?;
        self.engine.check_lockdown(&source.tenant_id).await?;
        *resource = format!("{} -> {}", source.id, req.destination_key_id);
        scope.context(&req.source_context);
        let destination = if req.destination_key_id.is_empty() {
            // Just resolved, so its primary version is the current one.
            source.clone()
        } else {
            self.destination_key(principal, scope, &req.destination_key_id)
                .await?
        };
        let source_context = context_from(req.source_context)?;
        let destination_context = context_from(req.destination_context)?;
        let (ciphertext, key_version) = self
            .engine
            .re_encrypt(
                &source,
                &parsed,
                &source_context,
                &destination,
                &destination_context,
            )
            .await?;
        // The record names the destination key and the version it now uses.
        scope.key(&destination);
        scope.version(key_version);
        let response = pb::ReEncryptResponse {
            ciphertext,
            source_key_id: source.id,
            source_key_version: parsed.header.key_version,
            key_id: destination.id.clone(),
            key_version,
        };
        Ok((response, destination))
    }

    async fn data_key(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
        op: &'static str,
        with_plaintext: bool,
    ) -> Result<(DataKey, Key), Status> {
        let call = Call::begin_unsealed(&self.engine, &request, op).await?;
        let req = request.into_inner();
        let result = async {
            let spec = match pb::DataKeySpec::try_from(req.spec) {
                Ok(pb::DataKeySpec::Unspecified | pb::DataKeySpec::Aes256) => DataKeySpec::Aes256,
                Ok(pb::DataKeySpec::Chacha20Poly1305256) => DataKeySpec::ChaCha20Poly1305,
                Err(_) => {
                    return Err(Status::invalid_argument(
                        "unknown data key spec: use AES_256 or CHACHA20_POLY1305_256",
                    ));
                }
            };
            let key = authorized_key(&self.engine, &call, Action::UseKey, &req.key_id).await?;
            if with_plaintext {
                // A plaintext data key is as good as a decrypt.
                self.engine.check_lockdown(&key.tenant_id).await?;
            }
            call.context(&req.context);
            let context = context_from(req.context)?;
            let data_key = self.engine.generate_data_key(&key, &context, spec).await?;
            call.version(data_key.version);
            Ok((data_key, key))
        }
        .await;
        call.finish(&req.key_id, result).await
    }
}

#[tonic::async_trait]
impl Crypto for CryptoService {
    async fn encrypt(
        &self,
        request: Request<pb::EncryptRequest>,
    ) -> Result<Response<pb::EncryptResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "Encrypt").await?;
        let req = request.into_inner();
        let result = async {
            let key = authorized_key(&self.engine, &call, Action::UseKey, &req.key_id).await?;
            call.context(&req.context);
            let context = context_from(req.context)?;
            let (ciphertext, key_version) =
                self.engine.encrypt(&key, &context, &req.plaintext).await?;
            call.version(key_version);
            Ok(pb::EncryptResponse {
                ciphertext,
                key_id: key.id,
                key_version,
            })
        }
        .await;
        call.finish(&req.key_id, result).await.map(Response::new)
    }

    async fn decrypt(
        &self,
        request: Request<pb::DecryptRequest>,
    ) -> Result<Response<pb::DecryptResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "Decrypt").await?;
        let req = request.into_inner();
        let result = async {
            let (parsed, key) = self
                .ciphertext_key(call.principal(), Scope::Call(&call), &req.ciphertext)
                .await?;
            self.engine.check_lockdown(&key.tenant_id).await?;
            call.context(&req.context);
            let context = context_from(req.context)?;
            let plaintext = self.engine.decrypt(&key, &parsed, &context).await?;
            Ok(pb::DecryptResponse {
                plaintext: plaintext.to_vec(),
                key_id: key.id,
                key_version: parsed.header.key_version,
            })
        }
        .await;
        call.finish("ciphertext", result).await.map(Response::new)
    }

    async fn generate_data_key(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
    ) -> Result<Response<pb::GenerateDataKeyResponse>, Status> {
        let (data_key, key) = self.data_key(request, "GenerateDataKey", true).await?;
        Ok(Response::new(pb::GenerateDataKeyResponse {
            plaintext_key: data_key.plaintext.expose().to_vec(),
            wrapped_key: data_key.wrapped,
            key_id: key.id,
            key_version: data_key.version,
            tenant_id: key.tenant_id,
        }))
    }

    async fn generate_data_key_without_plaintext(
        &self,
        request: Request<pb::GenerateDataKeyRequest>,
    ) -> Result<Response<pb::GenerateDataKeyWithoutPlaintextResponse>, Status> {
        let (data_key, key) = self
            .data_key(request, "GenerateDataKeyWithoutPlaintext", false)
            .await?;
        Ok(Response::new(pb::GenerateDataKeyWithoutPlaintextResponse {
            wrapped_key: data_key.wrapped,
            key_id: key.id,
            key_version: data_key.version,
            tenant_id: key.tenant_id,
        }))
    }

    async fn re_encrypt(
        &self,
        request: Request<pb::ReEncryptRequest>,
    ) -> Result<Response<pb::ReEncryptResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "ReEncrypt").await?;
        let req = request.into_inner();
        let mut resource = format!("ciphertext -> {}", req.destination_key_id);
        let result = self
            .re_encrypt_one(call.principal(), Scope::Call(&call), req, &mut resource)
            .await
            .map(|(response, _)| response);
        call.finish(&resource, result).await.map(Response::new)
    }

    /// Each item as `ReEncrypt` would do it, with one audit record for the call: it names the
    /// count, the source and destination keys and versions, and the failures by code; its
    /// outcome is `OK` only if every item succeeded, otherwise the code of the first failure
    /// (the call itself still answers with every item's result).
    async fn re_encrypt_batch(
        &self,
        request: Request<pb::ReEncryptBatchRequest>,
    ) -> Result<Response<pb::ReEncryptBatchResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "ReEncryptBatch").await?;
        let items = request.into_inner().items;
        let count = items.len();
        let principal = call.principal();
        // Refusals that concern the whole call: the role, the size, and a lockdown of the
        // caller's own tenant (which every item would meet, with the same message).
        let refused = async {
            authorize_role(principal, Action::UseKey)?;
            if count > MAX_BATCH_ITEMS {
                return Err(Status::invalid_argument(format!(
                    "{count} items: ReEncryptBatch takes at most {MAX_BATCH_ITEMS} items per \
                     call; send them in several calls"
                )));
            }
            if let Some(own) = &principal.tenant_id {
                self.engine.check_lockdown(own).await?;
            }
            Ok(())
        }
        .await;
        if let Err(status) = refused {
            return call.finish(&format!("{count} items"), Err(status)).await;
        }
        call.context(&shared_context(&items));
        let resolved = Resolved::default();
        let outcomes: Vec<Result<(pb::ReEncryptResponse, Key), Status>> = stream::iter(items)
            .map(|item| {
                let resolved = &resolved;
                async move {
                    let mut resource = String::new();
                    self.re_encrypt_one(principal, Scope::Batch(resolved), item, &mut resource)
                        .await
                }
            })
            .buffered(BATCH_CONCURRENCY)
            .collect()
            .await;
        let summary = BatchSummary::of(&outcomes);
        if let Some(key) = &summary.destination {
            call.key(key);
        }
        if let Some(version) = summary.destination_version {
            call.version(version);
        }
        let results = outcomes
            .into_iter()
            .map(|outcome| pb::ReEncryptResult {
                result: Some(match outcome {
                    Ok((response, _)) => pb::re_encrypt_result::Result::Ok(response),
                    Err(status) => pb::re_encrypt_result::Result::Error(pb::ReEncryptError {
                        code: code_name(status.code()).to_owned(),
                        message: status.message().to_owned(),
                    }),
                }),
            })
            .collect();
        let response = pb::ReEncryptBatchResponse { results };
        let recorded = summary.failure.clone().map_or(Ok(()), Err);
        match call.finish(&summary.resource, recorded).await {
            Ok(()) => Ok(Response::new(response)),
            // The record carries the items' failure; the call itself succeeded.
            Err(status)
                if summary.failure.as_ref().is_some_and(|failure| {
                    failure.code() == status.code() && failure.message() == status.message()
                }) =>
            {
                Ok(Response::new(response))
            }
            // The record could not be written: the call fails, as every call does then.
            Err(status) => Err(status),
        }
    }
}

/// The context pairs that every item's source context holds, for the batch's audit record
/// (usually all of them: one job re-wraps one kind of data with one context).
fn shared_context(items: &[pb::ReEncryptRequest]) -> HashMap<String, String> {
    let mut items = items.iter();
    let Some(first) = items.next() else {
        return HashMap::new();
    };
    let mut shared = first.source_context.clone();
    for item in items {
        shared.retain(|k, v| item.source_context.get(k) == Some(v));
        if shared.is_empty() {
            break;
        }
    }
    shared
}

/// Most distinct keys and versions a batch's audit record lists on each side.
const RECORD_LISTS: usize = 4;

/// What one `ReEncryptBatch` call did, for its audit record.
struct BatchSummary {
    /// `N items: …`.
    resource: String,
    /// The destination key, when every re-encrypted item went to the same one.
    destination: Option<Key>,
    /// The destination version, when every re-encrypted item got the same one.
    destination_version: Option<u32>,
    /// The outcome to record when an item failed: the first failure's code, with counts.
    failure: Option<Status>,
}

impl BatchSummary {
    fn of(outcomes: &[Result<(pb::ReEncryptResponse, Key), Status>]) -> Self {
        let mut sources: BTreeMap<(&str, u32), usize> = BTreeMap::new();
        let mut destinations: BTreeMap<(&str, u32), usize> = BTreeMap::new();
        let mut codes: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut first_failure = None;
        let mut destination: Option<&Key> = None;
        let mut same_destination = true;
        for (index, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Ok((response, key)) => {
                    *sources
                        .entry((&response.source_key_id, response.source_key_version))
                        .or_default() += 1;
                    *destinations
                        .entry((&response.key_id, response.key_version))
                        .or_default() += 1;
                    match destination {
                        None => destination = Some(key),
                        Some(first) if first.id != key.id => same_destination = false,
                        Some(_) => {}
                    }
                }
                Err(status) => {
                    *codes.entry(code_name(status.code())).or_default() += 1;
                    first_failure.get_or_insert((index, status));
                }
            }
        }
        let count = outcomes.len();
        let failed: usize = codes.values().sum();
        let mut resource = format!("{count} items: {} re-encrypted", count - failed);
        if !sources.is_empty() {
            let _ = write!(
                resource,
                " from {} to {}",
                list(sources.iter().map(|((k, v), n)| format!("{k} v{v} x{n}"))),
                list(
                    destinations
                        .iter()
                        .map(|((k, v), n)| format!("{k} v{v} x{n}"))
                ),
            );
        }
        if failed > 0 {
            let _ = write!(
                resource,
                ", {failed} failed ({})",
                list(codes.iter().map(|(code, n)| format!("{code} x{n}")))
            );
        }
        let failure = first_failure.map(|(index, status)| {
            Status::new(
                status.code(),
                format!(
                    "{failed} of {count} items failed; the first, item {index} (from 0): {}",
                    status.message()
                ),
            )
        });
        let destination_version = (destinations.len() == 1)
            .then(|| destinations.keys().next().map(|(_, v)| *v))
            .flatten();
        Self {
            resource,
            destination: destination.filter(|_| same_destination).cloned(),
            destination_version,
            failure,
        }
    }
}

/// `a, b, c, d and 3 more`.
fn list(items: impl ExactSizeIterator<Item = String>) -> String {
    let total = items.len();
    let mut text = items.take(RECORD_LISTS).collect::<Vec<_>>().join(", ");
    if total > RECORD_LISTS {
        let _ = write!(text, " and {} more", total - RECORD_LISTS);
    }
    text
}
