//! What Kagi does, with no gRPC in sight: tenants, keys, principals and the crypto operations.
//! Service handlers authenticate and authorise, then call in here.
//!
//! - [`tenants`]: create, list and resolve tenants.
//! - [`keys`]: create, resolve, list, rotate, enable and disable keys.
//! - [`cipher`]: encrypt, decrypt, data keys and re-encrypt under tenant keys.
//! - [`principals`]: principals and their tokens.
//! - [`destruction`]: carrying out scheduled destructions, retention holds, records.
//! - [`escrow`]: escrow export and import.
//! - [`lockdown`]: tenants whose decrypts a quorum has stopped.
//! - [`rotation`]: rotating keys whose rotation period has passed.
//! - [`usage`]: call counts per operation, and encrypts and decrypts per key version.

pub mod cipher;
pub mod destruction;
pub mod escrow;
pub mod keys;
pub mod lockdown;
pub mod principals;
pub mod rotation;
pub mod tenants;
pub mod usage;

use std::sync::Arc;

use crate::audit::{Audit, AuditConfig, AuditError};
use crate::clock::Clock;
use crate::crypto::CryptoError;
use crate::keyring::{Keyring, KeyringError};
use crate::store::{Store, StoreError};

/// Why an operation failed, in terms a caller can act on. Messages never carry key bytes,
/// tokens or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// A named tenant, key, version or principal does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A unique name is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The resource is in a state that refuses the operation (e.g. a disabled key).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller may not do this to this resource (say, submit another custodian's share).
    #[error("{0}")]
    PermissionDenied(String),
    /// A compare-and-set lost to a concurrent change; read again and retry.
    #[error("{0}")]
    Aborted(String),
    /// No root key is loaded.
    #[error("kagid is sealed; custodians must unseal it")]
    Sealed,
    /// The store failed; details are logged, not returned.
    #[error("the key store is unavailable; try again later")]
    Unavailable,
    /// Stored data is inconsistent; details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::AlreadyExists(what) => {
                EngineError::AlreadyExists(format!("{what} already exists"))
            }
            StoreError::NotFound(what) => EngineError::NotFound(format!("{what} not found")),
            StoreError::VersionMismatch { expected, actual } => EngineError::Aborted(format!(
                "the key's primary version is {actual}, not the expected {expected}: another rotation won; read the key again"
            )),
            StoreError::Crypto(e) => EngineError::from(e),
            StoreError::Conflict(why) => EngineError::FailedPrecondition(why),
            StoreError::Corrupt(what) => {
                tracing::error!(error = %what, "stored data is invalid");
                EngineError::Internal("stored data is invalid; see the server log".into())
            }
            other => {
                tracing::error!(error = %other, "store failure");
                EngineError::Unavailable
            }
        }
    }
}

impl From<CryptoError> for EngineError {
    fn from(err: CryptoError) -> Self {
        match err {
            CryptoError::Random => {
                tracing::error!("the OS random number generator failed");
                EngineError::Internal("random number generation failed".into())
            }
            CryptoError::Authentication => EngineError::InvalidArgument(
                "decryption failed: the ciphertext was modified, or the encryption context differs from the one used to encrypt".into(),
            ),
            CryptoError::Malformed(why) => EngineError::InvalidArgument(format!("malformed ciphertext: {why}")),
            CryptoError::InvalidContext(why) => EngineError::InvalidArgument(format!("invalid encryption context: {why}")),
        }
    }
}

impl From<KeyringError> for EngineError {
    fn from(err: KeyringError) -> Self {
        match err {
            KeyringError::Sealed => EngineError::Sealed,
            KeyringError::Crypto(e) => EngineError::from(e),
            bad @ KeyringError::BadMaterial { .. } => {
                tracing::error!(error = %bad, "key material failed to unwrap");
                EngineError::Internal(bad.to_string())
            }
        }
    }
}

/// The KMS: store, keyring, clock and audit trail.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    keyring: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    calls: Arc<usage::CallCounts>,
    /// Encrypts and decrypts per key version, not yet flushed to the store.
    version_counts: Arc<usage::VersionCounts>,
    audit: Audit,
    lockdowns: Arc<lockdown::LockdownCache>,
    /// How many destroyed keys this node has seen; a change drops its cached keys.
    destroyed_seen: Arc<std::sync::atomic::AtomicI64>,
}

impl Engine {
    /// An engine over an opened store and a keyring (sealed or not), auditing with the default
    /// settings (no sinks). Starts the audit writer: call it inside a tokio runtime.
    pub fn new(store: Store, keyring: Arc<Keyring>, clock: Arc<dyn Clock>) -> Self {
        Self::with_audit(store, keyring, clock, AuditConfig::default())
            .expect("the default audit settings open no sink, so they cannot fail")
    }

    /// An engine whose audit trail follows `config`.
    pub fn with_audit(
        store: Store,
        keyring: Arc<Keyring>,
        clock: Arc<dyn Clock>,
        config: AuditConfig,
    ) -> Result<Self, AuditError> {
        let audit = Audit::start(config, store.clone(), keyring.clone(), clock.clone())?;
        Ok(Self {
            store,
            keyring,
            clock,
            calls: Arc::default(),
            version_counts: Arc::default(),
            audit,
            lockdowns: Arc::default(),
            destroyed_seen: Arc::default(),
        })
    }

    /// The audit trail.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Records something kagid did on its own (a lockout, pruning, shutdown). A failure is
    /// logged: there is no caller to refuse.
    pub async fn audit_internal(&self, operation: &str, resource: String) {
        self.audit_internal_event(operation, resource, Default::default())
            .await;
    }

    /// [`Engine::audit_internal`] with the tenant and key columns of `event` filled in, so
    /// that queries by tenant or key find the record.
    pub async fn audit_internal_event(
        &self,
        operation: &str,
        resource: String,
        event: crate::audit::record::Event,
    ) {
        let event = crate::audit::record::Event {
            time_ms: self.now_ms(),
            node: self.audit.node().to_owned(),
            operation: operation.to_owned(),
            resource: Some(resource),
            outcome: "OK".into(),
            protocol: "internal".into(),
            request_id: String::new(),
            ..event
        };
        if let Err(err) = self.audit.append(event).await {
            tracing::error!(event = "audit_internal_failed", operation, error = %err);
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Call counts per operation.
    pub fn calls(&self) -> &usage::CallCounts {
        &self.calls
    }

    /// Now, in Unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// Checks a tenant, key or principal name: 1–64 of letters, digits and `extra` characters.
pub(crate) fn validate_name(kind: &str, name: &str, extra: &[char]) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c));
    if ok && uuid::Uuid::parse_str(name).is_ok() {
        // Names and ids share the lookup paths; a name shaped like an id would shadow one.
        Err(EngineError::InvalidArgument(format!(
            "{kind} name {name:?} looks like an id: choose another"
        )))
    } else if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "{kind} name {name:?} is invalid: use 1 to 64 ASCII letters, digits or any of {}",
            extra
                .iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(" ")
        )))
    }
}
