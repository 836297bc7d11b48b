//! One RPC from start to audit record: where it came from, who made it, what it touched, and
//! how it ended. Every handler begins a [`Call`] and ends it with [`Call::finish`], which waits
//! until the call's audit record is durable: a call whose record cannot be written fails with
//! `UNAVAILABLE` instead of succeeding unaudited.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Status};

use super::authenticate;
use crate::audit::record::Event;
use crate::audit::recorded_context;
use crate::auth::policy::{Action, authorize_role};
use crate::engine::Engine;
use crate::keyring::KeyringError;
use crate::model::{Key, Principal};

/// Longest `x-request-id` kept from a caller.
const MAX_REQUEST_ID: usize = 128;

/// An RPC in progress.
#[derive(Debug)]
pub struct Call {
    engine: Engine,
    operation: &'static str,
    principal: Option<Principal>,
    origin: Origin,
    target: Mutex<Target>,
}

/// Where a call came from.
#[derive(Debug, Clone, Default)]
struct Origin {
    peer: Option<String>,
    protocol: &'static str,
    tls_identity: Option<String>,
    request_id: String,
}

/// What a call touched.
#[derive(Debug, Clone, Default)]
struct Target {
    tenant: Option<String>,
    key_id: Option<String>,
    key_version: Option<u32>,
    context: BTreeMap<String, String>,
}

impl Call {
    /// Authenticates the caller. A failed authentication is recorded and refused.
    pub async fn begin<T>(
        engine: &Engine,
        request: &Request<T>,
        operation: &'static str,
    ) -> Result<Self, Status> {
        let mut call = Self::anonymous(engine, request, operation);
        if !engine.audit().healthy() {
            // Refuse before acting, so no change happens unrecorded. Recording the refusal is
            // also the probe: once a record can be written again, calls go through.
            let status = Status::unavailable(
                "the audit trail cannot be written, so the call was refused; try again later",
            );
            return Err(call.refuse(status).await);
        }
        match authenticate(engine, request).await {
            Ok(principal) => {
                call.principal = Some(principal);
                Ok(call)
            }
            Err(status) => Err(call.refuse(status).await),
        }
    }

    /// [`Call::begin`], then a check that the caller's role may do `action` at all; a refusal
    /// is recorded.
    pub async fn begin_authorized<T>(
        engine: &Engine,
        request: &Request<T>,
        operation: &'static str,
        action: Action,
    ) -> Result<Self, Status> {
        let call = Self::begin(engine, request, operation).await?;
        match authorize_role(call.principal(), action) {
            Ok(()) => Ok(call),
            Err(denied) => Err(call.refuse(denied.into()).await),
        }
    }

    /// Like [`Call::begin`], for services that need the root key: while sealed the call is
    /// recorded and refused with `UNAVAILABLE` before anything else.
    pub async fn begin_unsealed<T>(
        engine: &Engine,
        request: &Request<T>,
        operation: &'static str,
    ) -> Result<Self, Status> {
        if engine.keyring().is_sealed() {
            let call = Self::anonymous(engine, request, operation);
            let status = Status::unavailable(KeyringError::Sealed.to_string());
            return Err(call.refuse(status).await);
        }
        Self::begin(engine, request, operation).await
    }

    /// A call that needs no token (seal status).
    pub fn anonymous<T>(engine: &Engine, request: &Request<T>, operation: &'static str) -> Self {
        Self {
            engine: engine.clone(),
            operation,
            principal: None,
            origin: Origin::of(request),
            target: Mutex::default(),
        }
    }

    /// The authenticated principal.
    pub fn principal(&self) -> &Principal {
        self.principal
            .as_ref()
            .expect("only anonymous calls have no principal, and they do not ask")
    }

    /// Records the key (and its tenant) the call acts on.
    pub fn key(&self, key: &Key) {
        let mut target = self.lock();
        target.tenant = Some(key.tenant_id.clone());
        target.key_id = Some(key.id.clone());
    }

    /// Records the key version used.
    pub fn version(&self, version: u32) {
        self.lock().key_version = Some(version);
    }

    /// Records the tenant the call acts on.
    pub fn tenant(&self, tenant_id: &str) {
        self.lock().tenant = Some(tenant_id.to_owned());
    }

    /// Records the encryption context's keys (values shown or HMACed per configuration).
    pub fn context(&self, context: &HashMap<String, String>) {
        let ordered: BTreeMap<String, String> = context
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.lock().context =
            recorded_context(self.engine.audit(), self.engine.keyring(), &ordered);
    }

    /// Ends the call: records it and returns its result, or `UNAVAILABLE` if the record cannot
    /// be written. `resource` is what the caller named, as they named it.
    pub async fn finish<T>(self, resource: &str, result: Result<T, Status>) -> Result<T, Status> {
        let outcome = result.as_ref().err().cloned();
        match self.write(resource, outcome.as_ref()).await {
            Ok(()) => result,
            Err(status) => Err(status),
        }
    }

    /// Records a refusal and returns it (or `UNAVAILABLE` if it cannot be recorded).
    pub async fn refuse(self, status: Status) -> Status {
        match self.write("", Some(&status)).await {
            Ok(()) => status,
            Err(unavailable) => unavailable,
        }
    }

    async fn write(&self, resource: &str, failure: Option<&Status>) -> Result<(), Status> {
        self.engine.calls().count(self.operation);
        let target = self.lock().clone();
        let principal = self.principal.as_ref();
        let event = Event {
            time_ms: self.engine.now_ms(),
            node: self.engine.audit().node().to_owned(),
            operation: self.operation.to_owned(),
            principal: principal.map(|p| p.id.clone()),
            role: principal.map(|p| p.role.as_str().to_owned()),
            tenant: target
                .tenant
                .or_else(|| principal.and_then(|p| p.tenant_id.clone())),
            key_id: target.key_id,
            key_version: target.key_version,
            resource: (!resource.is_empty()).then(|| resource.to_owned()),
            outcome: failure.map_or("OK".to_owned(), |s| code_name(s.code()).to_owned()),
            reason: failure.map(|s| s.message().to_owned()),
            peer: self.origin.peer.clone(),
            protocol: self.origin.protocol.to_owned(),
            tls_identity: self.origin.tls_identity.clone(),
            request_id: self.origin.request_id.clone(),
            context: target.context,
        };
        log(&event);
        self.engine.audit().append(event).await.map(drop).map_err(|err| {
            tracing::error!(event = "audit_append_failed", operation = self.operation, error = %err);
            Status::unavailable(
                "the audit trail cannot be written, so the call was refused; try again later",
            )
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Target> {
        self.target.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Origin {
    fn of<T>(request: &Request<T>) -> Self {
        let tls = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
        let peer = request
            .remote_addr()
            .or_else(|| tls.and_then(|t| t.get_ref().remote_addr()));
        let tls_identity = request.peer_certs().and_then(|certs| {
            certs.first().map(|cert| {
                use sha2::Digest;
                format!(
                    "sha256:{}",
                    hex::encode(sha2::Sha256::digest(cert.as_ref()))
                )
            })
        });
        let request_id = request
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                hex::encode(crate::crypto::random::array::<16>().unwrap_or_default())
            });
        Self {
            peer: peer.map(|p| p.to_string()),
            protocol: if tls.is_some() { "grpc+tls" } else { "grpc" },
            tls_identity,
            request_id,
        }
    }
}

/// One structured log line per call, as before the audit trail existed.
fn log(event: &Event) {
    tracing::info!(
        event = "rpc",
        operation = %event.operation,
        principal = event.principal.as_deref().unwrap_or("-"),
        resource = event.resource.as_deref().unwrap_or("-"),
        outcome = %event.outcome,
        reason = event.reason.as_deref().unwrap_or(""),
        request_id = %event.request_id,
    );
}

/// The canonical name of a gRPC code, as in the gRPC spec (`PERMISSION_DENIED`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
