//! Unsealing: custodians submit their shares to a session; at M valid shares the root is
//! recovered, checked against the stored check value, and loaded into the keyring.

use super::{Custody, CustodyError, SESSION_IDLE_SECONDS, collect, new_session_id, recover};
use crate::crypto::sharing::ShareValue;
use crate::model::{Principal, UnixSeconds};

/// Progress of an unseal session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Random id of the session.
    pub session_id: String,
    /// Valid shares received.
    pub submitted: u8,
    /// Shares needed.
    pub threshold: u8,
    /// When the session expires without further progress.
    pub expires_at: UnixSeconds,
}

/// What a submission achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsealOutcome {
    /// The share was accepted; more are needed.
    Progress(Progress),
    /// The root key is loaded: kagid is unsealed.
    Unsealed,
}

/// Shares received so far. They zeroize when the session is dropped (expiry, cancel, success).
#[derive(Debug)]
pub(super) struct UnsealSession {
    id: String,
    threshold: u8,
    shares: Vec<ShareValue>,
    last_progress: UnixSeconds,
}

impl UnsealSession {
    pub(super) fn expired(&self, now: UnixSeconds) -> bool {
        now - self.last_progress >= SESSION_IDLE_SECONDS
    }

    pub(super) fn progress(&self) -> Progress {
        Progress {
            session_id: self.id.clone(),
            submitted: u8::try_from(self.shares.len()).unwrap_or(u8::MAX),
            threshold: self.threshold,
            expires_at: self.last_progress + SESSION_IDLE_SECONDS,
        }
    }
}

impl Custody {
    /// Adds the caller's share to the unseal session (`session_id`, or the one in progress, or
    /// a new one), and unseals at the threshold.
    pub async fn unseal(
        &self,
        who: &Principal,
        share: &[u8],
        session_id: Option<&str>,
    ) -> Result<UnsealOutcome, CustodyError> {
        let now = self.engine.now();
        let mut state = self.state.lock().await;
        state.expire(now);
        if !self.engine.keyring().is_sealed() {
            return Err(CustodyError::FailedPrecondition(
                "kagid is already unsealed".into(),
            ));
        }
        if let Some(until) = state.lockout.locked_until(now) {
            return Err(CustodyError::LockedOut { until });
        }
        let config = self.config().await?;
        if let Some(wanted) = session_id
            && state.unseal.as_ref().is_none_or(|s| s.id != wanted)
        {
            return Err(CustodyError::FailedPrecondition(format!(
                "unseal session {wanted} is not in progress (it expired, was cancelled or \
                 completed): submit without a session id to start a new one"
            )));
        }
        let record = self.checked(&mut state, &config, who, share, now).await?;
        let session = match state.unseal.take() {
            Some(session) => session,
            None => UnsealSession {
                id: new_session_id()?,
                threshold: config.threshold,
                shares: Vec::new(),
                last_progress: now,
            },
        };
        let session = state.unseal.insert(session);
        let index = record.share.index();
        collect(&mut session.shares, record.share, &session.id)?;
        session.last_progress = now;
        tracing::info!(
            event = "unseal_share_accepted",
            principal = %who.id,
            share_index = index,
            submitted = session.shares.len(),
            threshold = config.threshold,
        );
        if session.shares.len() < usize::from(config.threshold) {
            return Ok(UnsealOutcome::Progress(session.progress()));
        }
        let session = state.unseal.take().expect("the session was just inserted");
        let root = recover(&config, &session.shares)?.root_key(&config.init_id);
        drop(session);
        self.engine.keyring().unseal(root);
        state.lockout.reset();
        tracing::info!(event = "unsealed", generation = config.generation);
        Ok(UnsealOutcome::Unsealed)
    }

    /// Ends the unseal session in progress, if any; its shares are zeroized.
    pub async fn cancel_unseal(&self) -> bool {
        self.state.lock().await.unseal.take().is_some()
    }
}
