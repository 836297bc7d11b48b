//! Dual control (catalogue A2, A3, C3): sensitive operations run only after a quorum of
//! custodians approves them, each with an Ed25519 signature over the proposal's digest.
//!
//! 1. [`Quorum::propose`] records the exact operation, the proposer, a random nonce, the time
//!    and an expiry (24 h by default), and returns the digest to sign.
//! 2. [`Quorum::approve`] checks the signature against the custodian's enrolled key; the
//!    proposer never approves their own proposal, and each custodian counts once.
//! 3. At the threshold (the custodian threshold M, at least 2) the operation runs exactly once,
//!    in the transaction that marks the proposal executed.
//!
//! - [`proposal`]: operations, the canonical form and the digest.

pub mod proposal;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::engine::{Engine, EngineError};
use crate::model::{Principal, Role, UnixSeconds};
use crate::store::StoreError;
use crate::store::quorum::{ProposalState, StoredProposal};
use proposal::{Operation, Signed};

/// Default lifetime of a proposal: 24 hours (catalogue A6).
pub const DEFAULT_TTL_SECONDS: u32 = 24 * 3600;
/// Longest lifetime of a proposal: 7 days.
pub const MAX_TTL_SECONDS: u32 = 7 * 24 * 3600;
/// Fewest approvals any operation needs.
pub const MIN_THRESHOLD: u32 = 2;

/// Why a proposal step was refused.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// Malformed request or signature.
    #[error("{0}")]
    InvalidArgument(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// No such proposal.
    #[error("{0}")]
    NotFound(String),
    /// The proposal's state refuses the step.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The engine or store failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for QuorumError {
    fn from(err: StoreError) -> Self {
        Self::Engine(err.into())
    }
}

/// Proposals and approvals over an engine.
#[derive(Debug, Clone)]
pub struct Quorum {
    engine: Engine,
}

impl Quorum {
    /// Dual control over `engine`'s store.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    /// Approvals every proposal needs now: the custodian threshold M, at least 2.
    pub async fn threshold(&self) -> Result<u32, QuorumError> {
        let m = self
            .engine
            .store()
            .seal_config()
            .await?
            .map_or(MIN_THRESHOLD, |c| u32::from(c.threshold));
        Ok(m.max(MIN_THRESHOLD))
    }

    /// Records a proposal of `operation` by `proposer`.
    pub async fn propose(
        &self,
        proposer: &Principal,
        operation: Operation,
        ttl_seconds: u32,
    ) -> Result<StoredProposal, QuorumError> {
        let ttl = match ttl_seconds {
            0 => DEFAULT_TTL_SECONDS,
            t if t <= MAX_TTL_SECONDS => t,
            t => {
                return Err(QuorumError::InvalidArgument(format!(
                    "ttl_seconds {t} is too long: a proposal lives at most {MAX_TTL_SECONDS} s (7 days)"
                )));
            }
        };
        let now = self.engine.now();
        let nonce: [u8; 16] = crate::crypto::random::array().map_err(EngineError::from)?;
        let signed = Signed {
            id: uuid::Uuid::new_v4().to_string(),
            operation,
            proposer_id: proposer.id.clone(),
            nonce: hex::encode(nonce),
            created_at: now,
            expires_at: now + i64::from(ttl),
            threshold: self.threshold().await?,
        };
        self.engine.store().insert_proposal(&signed).await?;
        self.get(&signed.id).await
    }

    /// Adds `approver`'s signature; runs the operation at the threshold.
    pub async fn approve(
        &self,
        approver: &Principal,
        id: &str,
        signature: &[u8],
    ) -> Result<StoredProposal, QuorumError> {
        let proposal = self.pending(id).await?;
        if proposal.signed.proposer_id == approver.id {
            return Err(QuorumError::PermissionDenied(
                "the proposer of an operation can never approve it (catalogue A2): another custodian must".into(),
            ));
        }
        let keys = self.signing_keys().await?;
        let Some(key) = keys
            .iter()
            .find(|(id, _)| *id == approver.id)
            .map(|(_, key)| *key)
        else {
            return Err(self.no_signing_key(approver).await);
        };
        let signature: [u8; 64] = signature.try_into().map_err(|_| {
            QuorumError::InvalidArgument("signature must be a 64-byte Ed25519 signature".into())
        })?;
        key.verify_strict(
            &proposal.signed.digest(),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| {
            QuorumError::InvalidArgument(format!(
                "the signature does not verify over proposal {id}'s digest with your enrolled \
                     key: it was made for another proposal, or with another key"
            ))
        })?;
        let now = self.engine.now();
        match self
            .engine
            .store()
            .insert_approval(id, &approver.id, &signature, now)
            .await
        {
            Ok(()) => {}
            Err(StoreError::AlreadyExists(_)) => {
                return Err(QuorumError::FailedPrecondition(format!(
                    "you have already approved proposal {id}: each custodian counts once"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let proposal = self.get(id).await?;
        // Count only approvals whose signatures verify now, over the digest recomputed from the
        // stored operation: rows written into the store by other means count for nothing.
        if valid_approvals(&proposal, &keys) < proposal.signed.threshold as usize {
            return Ok(proposal);
        }
        self.execute(&proposal, now).await?;
        self.get(id).await
    }

    /// Runs an approved proposal's operation, once: a racing approval that loses finds the
    /// proposal no longer pending and does nothing.
    async fn execute(
        &self,
        proposal: &StoredProposal,
        now: UnixSeconds,
    ) -> Result<(), QuorumError> {
        let id = &proposal.signed.id;
        let operation = &proposal.signed.operation;
        // An export's bundle is made before the transaction: it needs the keyring.
        let bundle = match operation {
            Operation::EscrowExport {
                tenant_id,
                custodians,
                threshold,
            } => match self
                .engine
                .export_bundle(id, tenant_id, custodians, *threshold)
                .await
            {
                Ok(bundle) => Some(bundle),
                Err(
                    err @ (EngineError::NotFound(_)
                    | EngineError::InvalidArgument(_)
                    | EngineError::FailedPrecondition(_)),
                ) => return self.fail(id, &err.to_string(), now).await,
                Err(err) => return Err(err.into()),
            },
            _ => None,
        };
        match self
            .engine
            .store()
            .execute_proposal(id, operation, bundle.as_ref(), now)
            .await
        {
            Ok(ran) => {
                self.engine.forget_lockdowns();
                if ran {
                    if let Operation::MarkCompromised { key_id, version } = operation {
                        self.rotate_away_from(key_id, *version).await;
                    }
                    tracing::info!(event = "proposal_executed", proposal = %id, kind = operation.kind());
                    self.engine
                        .audit_internal(
                            "ProposalExecuted",
                            format!("{id}: {}", operation.describe()),
                        )
                        .await;
                }
                Ok(())
            }
            Err(err @ (StoreError::Conflict(_) | StoreError::NotFound(_))) => {
                self.fail(id, &err.to_string(), now).await
            }
            Err(err) => Err(err.into()),
        }
    }

    /// After `version` of `key_id` was marked compromised: rotates the key if that version is
    /// its primary, so nothing new is encrypted under it. A failure is logged and audited; the
    /// key then refuses to encrypt until an admin rotates it (kagictl key rotate).
    async fn rotate_away_from(&self, key_id: &str, version: u32) {
        let key = match self.engine.resolve_key(key_id).await {
            Ok(key) if key.primary_version == version => key,
            Ok(_) => return,
            Err(err) => {
                tracing::error!(event = "compromise_rotation_failed", key = key_id, error = %err);
                return;
            }
        };
        let mut columns = crate::audit::record::Event {
            tenant: Some(key.tenant_id.clone()),
            key_id: Some(key.id.clone()),
            ..Default::default()
        };
        let (operation, resource) = match self.engine.rotate_key(&key, Some(version)).await {
            Ok(rotated) => {
                columns.key_version = Some(rotated.primary_version);
                let new = rotated.primary_version;
                let what = format!("rotated from compromised version {version} to version {new}");
                ("KeyRotated", format!("key {key_id} {what}"))
            }
            Err(err) => {
                tracing::error!(event = "compromise_rotation_failed", key = key_id, error = %err);
                let why = format!("rotation away from compromised version {version} failed: {err}");
                ("KeyRotationFailed", format!("key {key_id}: {why}"))
            }
        };
        self.engine
            .audit_internal_event(operation, resource, columns)
            .await;
    }

    /// Marks an approved proposal failed: its operation could not run.
    async fn fail(&self, id: &str, why: &str, now: UnixSeconds) -> Result<(), QuorumError> {
        self.engine
            .store()
            .finish_proposal(id, ProposalState::Failed, Some(why), now)
            .await?;
        self.engine
            .audit_internal("ProposalFailed", format!("{id}: {why}"))
            .await;
        Ok(())
    }

    /// Withdraws a pending proposal; only its proposer may.
    pub async fn cancel(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<StoredProposal, QuorumError> {
        let proposal = self.pending(id).await?;
        if proposal.signed.proposer_id != caller.id {
            return Err(QuorumError::PermissionDenied(
                "only the proposer can cancel a proposal; others let it expire".into(),
            ));
        }
        let now = self.engine.now();
        self.engine
            .store()
            .finish_proposal(id, ProposalState::Cancelled, None, now)
            .await?;
        self.get(id).await
    }

    /// A proposal, marked expired first if its time has passed.
    pub async fn get(&self, id: &str) -> Result<StoredProposal, QuorumError> {
        let proposal = self
            .engine
            .store()
            .proposal(id)
            .await?
            .ok_or_else(|| QuorumError::NotFound(format!("no proposal {id}")))?;
        self.expire(proposal).await
    }

    /// Proposals, newest first.
    pub async fn list(&self, pending_only: bool) -> Result<Vec<StoredProposal>, QuorumError> {
        let mut out = Vec::new();
        for p in self.engine.store().proposals(pending_only).await? {
            let p = self.expire(p).await?;
            if !pending_only || p.state == ProposalState::Pending {
                out.push(p);
            }
        }
        Ok(out)
    }

    async fn expire(&self, proposal: StoredProposal) -> Result<StoredProposal, QuorumError> {
        let now = self.engine.now();
        if proposal.state == ProposalState::Pending && now >= proposal.signed.expires_at {
            let id = proposal.signed.id.clone();
            self.engine
                .store()
                .finish_proposal(&id, ProposalState::Expired, None, now)
                .await?;
            return Ok(self.engine.store().proposal(&id).await?.unwrap_or(proposal));
        }
        Ok(proposal)
    }

    /// A proposal that can still be approved or cancelled.
    async fn pending(&self, id: &str) -> Result<StoredProposal, QuorumError> {
        let proposal = self.get(id).await?;
        match proposal.state {
            ProposalState::Pending => Ok(proposal),
            ProposalState::Expired => Err(QuorumError::FailedPrecondition(format!(
                "proposal {id} expired unapproved; propose the operation again"
            ))),
            state => Err(QuorumError::FailedPrecondition(format!(
                "proposal {id} is {}: it takes no more approvals",
                state.as_str()
            ))),
        }
    }

    /// The enrolled signing key of every custodian who may approve, by principal id: active,
    /// and, once the root key is split (Init has run), holding a share of its current
    /// generation. An admin can enrol custodians alone, but only Init and a rekey (which needs
    /// M share holders) hand out shares, so one admin cannot make approvers. Before Init (dev
    /// mode: the root is not split) every active custodian with a signing key approves.
    async fn signing_keys(&self) -> Result<Vec<(String, VerifyingKey)>, QuorumError> {
        let split = self.engine.store().seal_config().await?.is_some();
        let mut keys = Vec::new();
        for c in self.engine.store().list_custodians().await? {
            let may_approve =
                c.principal.revoked_at.is_none() && (!split || c.share_index.is_some());
            let Some(hex_key) = c.signing_key.filter(|_| may_approve) else {
                continue;
            };
            let bytes: [u8; 32] = hex::decode(&hex_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| EngineError::Internal("a stored signing key is malformed".into()))?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|_| EngineError::Internal("a stored signing key is invalid".into()))?;
            keys.push((c.principal.id, key));
        }
        Ok(keys)
    }

    async fn no_signing_key(&self, who: &Principal) -> QuorumError {
        if who.role != Role::Custodian {
            return QuorumError::PermissionDenied("only custodians approve proposals".into());
        }
        let custodians = match self.engine.store().list_custodians().await {
            Ok(list) => list,
            Err(err) => return err.into(),
        };
        let enrolled = custodians.iter().find(|c| c.principal.id == who.id);
        if enrolled.is_some_and(|c| c.signing_key.is_some()) {
            return QuorumError::PermissionDenied(format!(
                "custodian {:?} holds no share of the current root key: once kagid is \
                 initialised only the root's share holders approve; a rekey ceremony (run by \
                 M share holders) makes a custodian a share holder",
                who.name
            ));
        }
        QuorumError::PermissionDenied(format!(
            "custodian {:?} has no enrolled signing key: make a new key pair with kagictl \
             custodian keygen and re-enrol",
            who.name
        ))
    }
}

/// Distinct approvers, other than the proposer, whose stored signatures verify over the digest
/// recomputed from the proposal.
fn valid_approvals(proposal: &StoredProposal, keys: &[(String, VerifyingKey)]) -> usize {
    let digest = proposal.signed.digest();
    proposal
        .approvals
        .iter()
        .filter(|a| a.principal_id != proposal.signed.proposer_id)
        .filter(|a| {
            let Some((_, key)) = keys.iter().find(|(id, _)| *id == a.principal_id) else {
                return false;
            };
            let Ok(signature) = <[u8; 64]>::try_from(a.signature.as_slice()) else {
                return false;
            };
            key.verify_strict(&digest, &Signature::from_bytes(&signature))
                .is_ok()
        })
        .count()
}
