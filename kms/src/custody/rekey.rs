//! Rekey: a new custodian set and/or threshold for the same root key, verify before commit.
//!
//! 1. Start: the new set (enrolled custodians) and threshold M'.
//! 2. Collect: M current custodians submit current shares; the secret is recovered, checked,
//!    and split anew for the new set. The new shares are returned encrypted to their holders.
//! 3. Verify: new custodians prove their new shares; at M' the root is recovered from the new
//!    shares alone and checked, and only then the generation advances in the store. Until that
//!    commit the old shares stay valid; after it they are refused.
//!
//! The root key does not change, so no tenant key is rewrapped.

use super::init::{Dealt, check_set_size, deal};
use super::share_files::EncryptedShare;
use super::{Custody, CustodyError, SESSION_IDLE_SECONDS, State, collect, new_session_id, recover};
use crate::crypto::sharing::{ShareRecord, ShareValue};
use crate::model::{Custodian, Principal, SealConfig, UnixSeconds};

/// How long new custodians have to prove their new shares, without progress: 24 hours.
pub const VERIFY_IDLE_SECONDS: i64 = 24 * 60 * 60;

/// Where a rekey stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Collecting current shares.
    Collecting,
    /// New shares made; waiting for new custodians to prove theirs.
    Verifying,
    /// The new generation is in force.
    Completed,
}

/// A rekey's progress, as reported to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekeyProgress {
    /// Session id.
    pub session_id: String,
    /// Stage.
    pub stage: Stage,
    /// Current shares received.
    pub submitted: u8,
    /// Current threshold.
    pub threshold: u8,
    /// New shares proven.
    pub verified: u8,
    /// New threshold.
    pub new_threshold: u8,
    /// The generation the rekey moves to.
    pub new_generation: u32,
    /// The new shares, encrypted to their holders (once made).
    pub new_shares: Vec<EncryptedShare>,
    /// When the session expires without progress (0 once completed).
    pub expires_at: UnixSeconds,
}

#[derive(Debug)]
enum Phase {
    Collecting {
        shares: Vec<ShareValue>,
    },
    Verifying {
        pending: SealConfig,
        new_shares: Vec<EncryptedShare>,
        proven: Vec<ShareValue>,
    },
}

/// A rekey in progress. Held shares zeroize when it is dropped.
#[derive(Debug)]
pub(super) struct RekeySession {
    id: String,
    from: SealConfig,
    new_set: Vec<Custodian>,
    new_threshold: u8,
    phase: Phase,
    last_progress: UnixSeconds,
}

impl RekeySession {
    pub(super) fn expired(&self, now: UnixSeconds) -> bool {
        let limit = match self.phase {
            Phase::Collecting { .. } => SESSION_IDLE_SECONDS,
            Phase::Verifying { .. } => VERIFY_IDLE_SECONDS,
        };
        now - self.last_progress >= limit
    }

    fn progress(&self) -> RekeyProgress {
        let count = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
        let (stage, submitted, verified, new_shares, limit) = match &self.phase {
            Phase::Collecting { shares } => (
                Stage::Collecting,
                count(shares.len()),
                0,
                Vec::new(),
                SESSION_IDLE_SECONDS,
            ),
            Phase::Verifying {
                new_shares, proven, ..
            } => (
                Stage::Verifying,
                self.from.threshold,
                count(proven.len()),
                new_shares.clone(),
                VERIFY_IDLE_SECONDS,
            ),
        };
        RekeyProgress {
            session_id: self.id.clone(),
            stage,
            submitted,
            threshold: self.from.threshold,
            verified,
            new_threshold: self.new_threshold,
            new_generation: self.from.generation + 1,
            new_shares,
            expires_at: self.last_progress + limit,
        }
    }
}

impl Custody {
    /// Proposes a new custodian set and threshold.
    pub async fn start_rekey(
        &self,
        who: &Principal,
        public_keys: &[String],
        threshold: u32,
    ) -> Result<RekeyProgress, CustodyError> {
        let now = self.engine.now();
        let (new_threshold, _) = check_set_size(public_keys.len(), threshold)?;
        let mut state = self.state.lock().await;
        state.expire(now);
        if let Some(session) = &state.rekey {
            return Err(CustodyError::FailedPrecondition(format!(
                "rekey {} is already in progress: finish or cancel it first (kagictl rekey cancel)",
                session.id
            )));
        }
        let from = self.config().await?;
        let new_set = self.custodians_for(public_keys).await?;
        let session = state.rekey.insert(RekeySession {
            id: new_session_id()?,
            from,
            new_set,
            new_threshold,
            phase: Phase::Collecting { shares: Vec::new() },
            last_progress: now,
        });
        tracing::info!(
            event = "rekey_started",
            principal = %who.id,
            session = %session.id,
            new_threshold,
            new_shares = public_keys.len(),
        );
        Ok(session.progress())
    }

    /// Adds a current share; at the current threshold the new shares are made.
    pub async fn submit_rekey_share(
        &self,
        who: &Principal,
        session_id: &str,
        share: &[u8],
    ) -> Result<RekeyProgress, CustodyError> {
        let now = self.engine.now();
        let mut state = self.state.lock().await;
        let from = self
            .rekey_session(&mut state, now, session_id)?
            .from
            .clone();
        if !matches!(
            state.rekey.as_ref().map(|s| &s.phase),
            Some(Phase::Collecting { .. })
        ) {
            return Err(CustodyError::FailedPrecondition(
                "this rekey already has its current shares: new custodians now verify their new shares (kagictl rekey verify)".into(),
            ));
        }
        let stored = self.config().await?;
        if stored.generation != from.generation {
            state.rekey = None;
            return Err(CustodyError::FailedPrecondition(
                "the custodian set changed since this rekey started; start again".into(),
            ));
        }
        let record = self.checked(&mut state, &from, who, share, now).await?;
        let session = state.rekey.as_mut().expect("checked above");
        let Phase::Collecting { shares } = &mut session.phase else {
            unreachable!("checked above")
        };
        let index = record.share.index();
        collect(shares, record.share, session_id)?;
        session.last_progress = now;
        tracing::info!(
            event = "rekey_share_accepted",
            principal = %who.id,
            share_index = index,
            submitted = shares.len(),
            threshold = from.threshold,
        );
        if shares.len() < usize::from(from.threshold) {
            return Ok(session.progress());
        }
        let recovered = recover(&from, shares);
        shares.clear();
        let secret = match recovered {
            Ok(secret) => secret,
            Err(err) => {
                state.rekey = None;
                return Err(err);
            }
        };
        let next = SealConfig {
            generation: from.generation + 1,
            threshold: session.new_threshold,
            changed_at: now,
            ..from.clone()
        };
        let Dealt { config, shares } = deal(&secret, next, &session.new_set)?;
        drop(secret);
        session.phase = Phase::Verifying {
            pending: config,
            new_shares: shares,
            proven: Vec::new(),
        };
        tracing::info!(event = "rekey_shares_made", session = %session.id);
        Ok(session.progress())
    }

    /// Adds a proven new share; at the new threshold the new generation is committed.
    pub async fn verify_rekey_share(
        &self,
        who: &Principal,
        session_id: &str,
        share: &[u8],
    ) -> Result<RekeyProgress, CustodyError> {
        let now = self.engine.now();
        let mut state = self.state.lock().await;
        let session = self.rekey_session(&mut state, now, session_id)?;
        let Phase::Verifying { pending, .. } = &session.phase else {
            return Err(CustodyError::FailedPrecondition(format!(
                "rekey {session_id} is still collecting current shares ({} of {}): new shares do not exist yet",
                session.progress().submitted,
                session.from.threshold
            )));
        };
        let pending = pending.clone();
        if ShareRecord::parse(share).is_ok_and(|r| r.generation == session.from.generation) {
            return Err(CustodyError::InvalidArgument(format!(
                "this is a current share (generation {}): rekey verify takes your NEW share of \
                 generation {}, made by this rekey; current shares go to rekey submit",
                session.from.generation, pending.generation
            )));
        }
        let record = self.checked(&mut state, &pending, who, share, now).await?;
        let session = state.rekey.as_mut().expect("checked above");
        let from_generation = session.from.generation;
        let Phase::Verifying { proven, .. } = &mut session.phase else {
            unreachable!("checked above")
        };
        let index = record.share.index();
        collect(proven, record.share, session_id)?;
        session.last_progress = now;
        tracing::info!(
            event = "rekey_share_verified",
            principal = %who.id,
            share_index = index,
            verified = proven.len(),
            new_threshold = pending.threshold,
        );
        if proven.len() < usize::from(pending.threshold) {
            return Ok(session.progress());
        }
        // Verify before commit: the new shares alone must recover the same root.
        let recovered = recover(&pending, proven).map(drop);
        proven.clear();
        if let Err(err) = recovered {
            state.rekey = None;
            tracing::error!("the new shares do not recover the root key; the rekey is abandoned");
            return Err(err);
        }
        let mut progress = session.progress();
        progress.verified = pending.threshold;
        let result = self
            .engine
            .store()
            .commit_rekey(from_generation, &pending)
            .await;
        state.rekey = None;
        result?;
        // Shares of the old generation cannot finish an unseal any more.
        state.unseal = None;
        state.lockout.reset();
        progress.stage = Stage::Completed;
        progress.expires_at = 0;
        tracing::info!(
            event = "rekey_committed",
            generation = pending.generation,
            threshold = pending.threshold,
            shares = pending.share_count,
        );
        Ok(progress)
    }

    /// The rekey in progress, if any.
    pub async fn rekey(&self) -> Option<RekeyProgress> {
        let now = self.engine.now();
        let mut state = self.state.lock().await;
        state.expire(now);
        state.rekey.as_ref().map(RekeySession::progress)
    }

    /// Abandons the rekey in progress; the current shares stay valid.
    pub async fn cancel_rekey(&self) -> bool {
        self.state.lock().await.rekey.take().is_some()
    }

    /// The session named `session_id`, after expiry and lockout checks.
    fn rekey_session<'s>(
        &self,
        state: &'s mut State,
        now: UnixSeconds,
        session_id: &str,
    ) -> Result<&'s mut RekeySession, CustodyError> {
        state.expire(now);
        if let Some(until) = state.lockout.locked_until(now) {
            return Err(CustodyError::LockedOut { until });
        }
        match state.rekey.as_mut() {
            Some(session) if session.id == session_id => Ok(session),
            _ => Err(CustodyError::FailedPrecondition(format!(
                "rekey {session_id} is not in progress (it expired, was cancelled or completed): see kagictl rekey status"
            ))),
        }
    }
}
