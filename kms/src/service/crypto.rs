//! `kagi.v1.Crypto`: encrypt, decrypt, data keys, re-encrypt.

use kagi_proto::v1 as pb;
use kagi_proto::v1::crypto_server::Crypto;
use tonic::{Request, Response, Status};

use super::{Call, authorized_key};
use crate::auth::policy::{Action, authorize, authorize_role};
use crate::engine::cipher::{DataKey, DataKeySpec, ParsedCiphertext, context_from};
use crate::engine::{Engine, EngineError};
use crate::model::Key;

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
        call: &Call,
        ciphertext: &'a [u8],
    ) -> Result<(ParsedCiphertext<'a>, Key), Status> {
        let principal = call.principal();
        authorize_role(principal, Action::UseKey)?;
        let parsed = self.engine.parse_ciphertext(ciphertext)?;
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
        call.key(&key);
        call.version(parsed.header.key_version);
        authorize(principal, Action::UseKey, Some(&key.tenant_id))?;
        Ok((parsed, key))
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
            let (parsed, key) = self.ciphertext_key(&call, &req.ciphertext).await?;
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
        let result = async {
            let (parsed, source) = self.ciphertext_key(&call, &req.ciphertext).await?;
            self.engine.check_lockdown(&source.tenant_id).await?;
            resource = format!("{} -> {}", source.id, req.destination_key_id);
            call.context(&req.source_context);
            let destination = if req.destination_key_id.is_empty() {
                // Just resolved, so its primary version is the current one.
                source.clone()
            } else {
                authorized_key(&self.engine, &call, Action::UseKey, &req.destination_key_id).await?
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
            call.key(&destination);
            call.version(key_version);
            Ok(pb::ReEncryptResponse {
                ciphertext,
                source_key_id: source.id,
                source_key_version: parsed.header.key_version,
                key_id: destination.id,
                key_version,
            })
        }
        .await;
        call.finish(&resource, result).await.map(Response::new)
    }
}
