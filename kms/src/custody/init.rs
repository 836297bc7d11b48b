//! Init: generate the root key, split it M of N among enrolled custodians, and keep only the
//! public half (commitments, check value, who holds which index).

use super::share_files::{self, EncryptedShare};
use super::{Custody, CustodyError};
use crate::crypto::sharing::{self, ShareRecord, SharedSecret};
use crate::engine::EngineError;
use crate::model::{Custodian, SealConfig};

/// Shares for one generation: the public configuration and the encrypted shares.
#[derive(Debug)]
pub struct Dealt {
    /// The configuration to store (no secret in it).
    pub config: SealConfig,
    /// One share per custodian, encrypted to them.
    pub shares: Vec<EncryptedShare>,
}

impl Custody {
    /// Initialises an empty store. kagid stays sealed: a quorum unseals it with the shares.
    pub async fn init(
        &self,
        public_keys: &[String],
        threshold: u32,
    ) -> Result<Dealt, CustodyError> {
        if self.dev_mode {
            return Err(CustodyError::FailedPrecondition(
                "kagid runs in dev mode, whose root key is a local file: run kagid without --dev on its own store to initialise custodians".into(),
            ));
        }
        let (threshold, count) = check_set_size(public_keys.len(), threshold)?;
        let _guard = self.state.lock().await;
        if self.engine.store().seal_config().await?.is_some() {
            return Err(CustodyError::FailedPrecondition(
                "kagid is already initialised; to change custodians or the threshold, rekey (kagictl rekey start)".into(),
            ));
        }
        let custodians = self.custodians_for(public_keys).await?;
        let secret = SharedSecret::generate().map_err(internal)?;
        let init_id = sharing::new_init_id().map_err(internal)?;
        let now = self.engine.now();
        let blank = SealConfig {
            init_id,
            generation: 1,
            threshold,
            share_count: count,
            commitments: Vec::new(),
            root_check: sharing::root_check(&secret.root_key(&init_id)),
            initialised_at: now,
            changed_at: now,
            holders: Vec::new(),
        };
        let dealt = deal(&secret, blank, &custodians)?;
        drop(secret);
        self.engine.store().initialise(&dealt.config).await?;
        tracing::info!(
            event = "root_initialised",
            threshold,
            shares = count,
            "root key generated and split; kagid stays sealed until custodians unseal it"
        );
        Ok(dealt)
    }
}

/// Checks `2 ≤ threshold ≤ count ≤ 255` for a list of `count` custodians.
pub(super) fn check_set_size(count: usize, threshold: u32) -> Result<(u8, u8), CustodyError> {
    let invalid = |why: String| CustodyError::InvalidArgument(why);
    let count = u8::try_from(count)
        .ok()
        .filter(|n| *n >= sharing::MIN_THRESHOLD)
        .ok_or_else(|| invalid(format!("{count} custodians given: give 2 to 255")))?;
    let threshold = u8::try_from(threshold).unwrap_or(u8::MAX);
    sharing::check_parameters(threshold, count).map_err(|e| invalid(e.to_string()))?;
    Ok((threshold, count))
}

/// Splits `secret` for `custodians` (share i+1 to custodian i) and encrypts each share to its
/// holder. `config` gives the generation, threshold and times; commitments and holders are
/// filled in here.
pub(super) fn deal(
    secret: &SharedSecret,
    mut config: SealConfig,
    custodians: &[Custodian],
) -> Result<Dealt, CustodyError> {
    let count = u8::try_from(custodians.len()).map_err(|_| internal("too many custodians"))?;
    let (values, commitments) = secret.split(config.threshold, count).map_err(internal)?;
    let mut shares = Vec::with_capacity(custodians.len());
    config.holders.clear();
    for (value, custodian) in values.into_iter().zip(custodians) {
        let index = value.index();
        let record = ShareRecord {
            init_id: config.init_id,
            generation: config.generation,
            threshold: config.threshold,
            share: value,
        };
        let armored_age = share_files::encrypt(&record, &custodian.public_key)
            .map_err(CustodyError::InvalidArgument)?;
        config.holders.push((index, custodian.principal.id.clone()));
        shares.push(EncryptedShare {
            index,
            custodian_name: custodian.principal.name.clone(),
            public_key: custodian.public_key.clone(),
            armored_age,
        });
    }
    config.commitments = commitments.encode();
    config.share_count = count;
    Ok(Dealt { config, shares })
}

fn internal(err: impl std::fmt::Display) -> CustodyError {
    tracing::error!(error = %err, "sharing the root key failed");
    CustodyError::Engine(EngineError::Internal(format!(
        "sharing the root key failed: {err}"
    )))
}
