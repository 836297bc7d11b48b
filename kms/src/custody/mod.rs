//! The sealed root of trust and its custodians (catalogue K6, K8, A3–A6).
//!
//! Outside dev mode the root key exists only as Feldman shares held by custodians, each
//! encrypted to one custodian's age key. [`Custody`] runs the ceremonies on one kagid node:
//!
//! - [`enrol`]: custodians, with their public key and acknowledgement of duties.
//! - [`init`]: generate the root key and split it M of N.
//! - [`unseal`]: collect M shares in a session and load the root into the keyring.
//! - [`rekey`]: move to a new custodian set and threshold, verify before commit.
//! - [`lockout`]: refuse submissions for 30 minutes after 6 invalid shares.
//! - [`share_files`]: shares encrypted to custodians with age.
//!
//! Sessions live in this node's memory only: a restart ends them and zeroizes their shares,
//! and each node of a deployment is unsealed on its own.

pub mod enrol;
pub mod init;
pub mod lockout;
pub mod rekey;
pub mod share_files;
pub mod unseal;

use crate::clock::rfc3339;
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use crate::crypto::sharing::{self, Commitments, ShareRecord, ShareValue, SharedSecret};
use crate::engine::{Engine, EngineError};
use crate::model::{Principal, SealConfig, UnixSeconds};
use lockout::Lockout;
use rekey::RekeySession;
use unseal::UnsealSession;

/// A ceremony session's idle limit: 15 minutes without progress (catalogue A6).
pub const SESSION_IDLE_SECONDS: i64 = 15 * 60;

/// Why a ceremony step was refused. Messages never contain a share or key bytes.
#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    /// The request is malformed, or the share is invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// The caller may not do this (say, submit another custodian's share).
    #[error("{0}")]
    PermissionDenied(String),
    /// The state refuses the step (not initialised, already unsealed, no such session).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Too many invalid shares: submissions are refused until the given time.
    #[error(
        "too many invalid shares: unseal and rekey submissions are refused until {} (catalogue A5)",
        rfc3339(*until)
    )]
    LockedOut {
        /// End of the lockout, Unix seconds.
        until: UnixSeconds,
    },
    /// The engine or store failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<crate::store::StoreError> for CustodyError {
    fn from(err: crate::store::StoreError) -> Self {
        Self::Engine(err.into())
    }
}

/// Seal state and ceremony progress on this node, for `Custodian.Status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealStatus {
    /// The seal configuration, once Init has run.
    pub config: Option<SealConfig>,
    /// Whether the keyring holds no root.
    pub sealed: bool,
    /// The unseal session in progress.
    pub unseal: Option<unseal::Progress>,
    /// End of the lockout, if locked.
    pub locked_until: Option<UnixSeconds>,
    /// Whether a rekey is in progress.
    pub rekey_in_progress: bool,
    /// Dev mode.
    pub dev_mode: bool,
}

/// Ceremony state of one kagid node.
#[derive(Debug, Default)]
struct State {
    unseal: Option<UnsealSession>,
    rekey: Option<RekeySession>,
    lockout: Lockout,
}

impl State {
    /// Drops sessions idle past their limit (their shares zeroize on drop).
    fn expire(&mut self, now: UnixSeconds) {
        if self.unseal.as_ref().is_some_and(|s| s.expired(now)) {
            tracing::info!(event = "unseal_session_expired");
            self.unseal = None;
        }
        if self.rekey.as_ref().is_some_and(|s| s.expired(now)) {
            tracing::info!(event = "rekey_session_expired");
            self.rekey = None;
        }
    }
}

/// The custodian ceremonies of one kagid node.
#[derive(Debug)]
pub struct Custody {
    engine: Engine,
    state: Mutex<State>,
    dev_mode: bool,
}

impl Custody {
    /// Ceremonies over `engine`'s store and keyring. In dev mode the root is a local file and
    /// no ceremony applies.
    pub fn new(engine: Engine, dev_mode: bool) -> Self {
        Self {
            engine,
            state: Mutex::default(),
            dev_mode,
        }
    }

    /// Seal state and progress. Reveals nothing secret.
    pub async fn status(&self) -> Result<SealStatus, CustodyError> {
        let now = self.engine.now();
        let mut state = self.state.lock().await;
        state.expire(now);
        Ok(SealStatus {
            config: self.engine.store().seal_config().await?,
            sealed: self.engine.keyring().is_sealed(),
            unseal: state.unseal.as_ref().map(UnsealSession::progress),
            locked_until: state.lockout.locked_until(now),
            rekey_in_progress: state.rekey.is_some(),
            dev_mode: self.dev_mode,
        })
    }

    /// Zeroizes the root key and every cached key, and ends any unseal session. Requests that
    /// already hold the keys finish with them; later ones answer UNAVAILABLE.
    pub async fn seal(&self) -> Result<(), CustodyError> {
        let mut state = self.state.lock().await;
        state.unseal = None;
        // Recorded (with a MAC) before the root goes: the records after it may carry none.
        self.engine
            .audit_internal(
                "Sealing",
                "the root key and cached keys are being zeroized".into(),
            )
            .await;
        self.engine.keyring().seal();
        Ok(())
    }

    /// The seal configuration, or why there is none.
    async fn config(&self) -> Result<SealConfig, CustodyError> {
        if self.dev_mode {
            return Err(CustodyError::FailedPrecondition(
                "kagid runs in dev mode: its root key is a local file and no custodian ceremony applies".into(),
            ));
        }
        self.engine.store().seal_config().await?.ok_or_else(|| {
            CustodyError::FailedPrecondition(
                "kagid is not initialised: an admin runs `kagictl operator init` first".into(),
            )
        })
    }

    /// The principal name of share `index`'s holder, for messages.
    async fn holder_name(&self, config: &SealConfig, index: u8) -> String {
        let Some(id) = config.holder(index) else {
            return "nobody".into();
        };
        match self.engine.store().find_principal(id).await {
            Ok(Some(p)) => p.name,
            _ => id.to_owned(),
        }
    }

    /// Parses a submitted share and checks it belongs to `config`, to the caller, and to the
    /// committed polynomial. Every refusal here counts towards the lockout.
    async fn check_share(
        &self,
        config: &SealConfig,
        who: &Principal,
        bytes: &[u8],
    ) -> Result<ShareRecord, CustodyError> {
        let invalid = CustodyError::InvalidArgument;
        let record = ShareRecord::parse(bytes).map_err(|_| {
            invalid(
                "the share is not a Kagi share record: submit the decrypted contents of your \
                 .age share file (kagictl unseal decrypts it for you)"
                    .into(),
            )
        })?;
        if record.init_id != config.init_id {
            return Err(invalid(
                "this share belongs to another initialisation of Kagi (another store or \
                 environment), not to this one"
                    .into(),
            ));
        }
        if record.generation != config.generation {
            let why = if record.generation < config.generation {
                format!(
                    "this is a share of generation {}; the custodian set was rekeyed to \
                     generation {} on {}: use your new share",
                    record.generation,
                    config.generation,
                    rfc3339(config.changed_at)
                )
            } else {
                format!(
                    "this is a share of generation {}, but generation {} is expected here",
                    record.generation, config.generation
                )
            };
            return Err(invalid(why));
        }
        let index = record.share.index();
        let Some(holder) = config.holder(index) else {
            return Err(invalid(format!(
                "no share {index} was issued in generation {}",
                config.generation
            )));
        };
        let name = self.holder_name(config, index).await;
        if holder != who.id {
            return Err(CustodyError::PermissionDenied(format!(
                "share {index} was issued to custodian {name:?}, not to {:?}: each custodian \
                 submits only their own share",
                who.name
            )));
        }
        let commitments = commitments(config)?;
        commitments.verify(&record.share).map_err(|_| {
            invalid(format!(
                "share {index} (issued to {name:?}) does not match the commitments of \
                 generation {}: it was altered or damaged, and is refused",
                config.generation
            ))
        })?;
        Ok(record)
    }

    /// [`Custody::check_share`], counting a refusal towards the lockout.
    async fn checked(
        &self,
        state: &mut State,
        config: &SealConfig,
        who: &Principal,
        share: &[u8],
        now: UnixSeconds,
    ) -> Result<ShareRecord, CustodyError> {
        match self.check_share(config, who, share).await {
            Ok(record) => Ok(record),
            Err(refusal) => {
                let locked = state.lockout.fail(now);
                tracing::warn!(
                    event = "share_refused",
                    principal = %who.id,
                    failures = state.lockout.failures(),
                    reason = %refusal,
                );
                if let Some(until) = locked {
                    // A lockout ends every session: their shares are zeroized.
                    state.unseal = None;
                    state.rekey = None;
                    tracing::warn!(event = "ceremony_locked_out", until);
                    self.engine
                        .audit_internal(
                            "LockoutStarted",
                            format!(
                                "unseal and rekey submissions refused until {} after {} invalid shares",
                                rfc3339(until),
                                lockout::MAX_FAILURES
                            ),
                        )
                        .await;
                }
                Err(refusal)
            }
        }
    }
}

/// The decoded commitments of a configuration.
fn commitments(config: &SealConfig) -> Result<Commitments, CustodyError> {
    Commitments::decode(&config.commitments).map_err(|e| {
        tracing::error!(error = %e, "stored commitments are invalid");
        CustodyError::Engine(EngineError::Internal(
            "the stored seal configuration is invalid; see the server log".into(),
        ))
    })
}

/// Adds a checked share to a session's collection, refusing a second share of one index.
fn collect(
    shares: &mut Vec<ShareValue>,
    share: ShareValue,
    session: &str,
) -> Result<(), CustodyError> {
    let index = share.index();
    if shares.iter().any(|s| s.index() == index) {
        return Err(CustodyError::FailedPrecondition(format!(
            "share {index} was already submitted in session {session}"
        )));
    }
    shares.push(share);
    Ok(())
}

/// Recovers the shared secret from verified shares of `config` and confirms it against the
/// stored check value. A failure here means the stored configuration and the shares disagree.
fn recover(config: &SealConfig, shares: &[ShareValue]) -> Result<SharedSecret, CustodyError> {
    let secret = commitments(config)?.combine(shares).map_err(|err| {
        tracing::error!(error = %err, "verified shares did not recombine");
        internal("the shares did not recover the root key; see the server log")
    })?;
    let check = sharing::root_check(&secret.root_key(&config.init_id));
    if !bool::from(check.ct_eq(&config.root_check)) {
        tracing::error!("the recovered root key does not match the stored check value");
        return Err(internal(
            "the recovered root key does not match the stored check value; see the server log",
        ));
    }
    Ok(secret)
}

fn internal(message: &str) -> CustodyError {
    CustodyError::Engine(EngineError::Internal(message.into()))
}

/// A fresh random session id (128 bits, hex).
fn new_session_id() -> Result<String, CustodyError> {
    let bytes: [u8; 16] = crate::crypto::random::array().map_err(EngineError::from)?;
    Ok(hex::encode(bytes))
}
