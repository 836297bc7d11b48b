//! Retention (catalogue L4): records older than the retention period (default 400 days, at
//! least 365) are pruned, and the chain stays verifiable: before deleting records up to seq S,
//! a `retention-start` checkpoint signs S and its hash, which the next record's `prev_hash`
//! must match. Pruning needs the node unsealed (the checkpoint is signed with a root-derived
//! key); a sealed node skips it until it is unsealed.

use std::sync::Arc;
use std::time::Duration;

use super::checkpoint::{Checkpoint, Kind};
use crate::clock::Clock;
use crate::keyring::Keyring;
use crate::store::{Store, StoreError};

/// Default retention: 400 days.
pub const DEFAULT_DAYS: u32 = 400;
/// Shortest retention allowed: one year (catalogue L4).
pub const MIN_DAYS: u32 = 365;
/// How often the pruning job runs.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// Prunes `node`'s records older than `before_ms`; returns how many were deleted (0 while
/// sealed or when nothing is old enough).
pub async fn prune(
    store: &Store,
    keyring: &Keyring,
    node: &str,
    before_ms: i64,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let Some(last_old) = store.audit_last_before(node, before_ms).await? else {
        return Ok(0);
    };
    let Ok(keys) = keyring.unsealed() else {
        return Ok(0);
    };
    let seq = last_old.record.seq;
    let hash = last_old.record.hash;
    let bytes = Checkpoint::signed_bytes(node, Kind::RetentionStart, seq, &hash, now_ms);
    let start = Checkpoint {
        node: node.to_owned(),
        kind: Kind::RetentionStart,
        seq,
        head_hash: hex::encode(hash),
        time_ms: now_ms,
        public_key: hex::encode(keys.audit_public_key().to_bytes()),
        signature: hex::encode(keys.sign_checkpoint(&bytes)),
    };
    drop(keys);
    let deleted = store.prune_audit(&start).await?;
    tracing::info!(event = "audit_pruned", node, up_to_seq = seq, deleted);
    Ok(deleted)
}

/// Runs [`prune`] every [`INTERVAL`] for records older than `days`, and records each pruning
/// in the trail itself (catalogue L6: every deletion is recorded).
pub async fn run(
    store: Store,
    keyring: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    node: String,
    days: u32,
    audit: super::Audit,
) {
    loop {
        let now_ms = clock.now_ms();
        let before = now_ms - i64::from(days) * 86_400_000;
        match prune(&store, &keyring, &node, before, now_ms).await {
            Ok(0) => {}
            Ok(deleted) => {
                let event = super::record::Event {
                    time_ms: now_ms,
                    node: node.clone(),
                    operation: "AuditPruned".into(),
                    resource: Some(format!(
                        "{deleted} records older than {days} days deleted behind a retention-start checkpoint"
                    )),
                    outcome: "OK".into(),
                    protocol: "internal".into(),
                    ..Default::default()
                };
                if let Err(err) = audit.append(event).await {
                    tracing::error!(event = "audit_internal_failed", error = %err);
                }
            }
            Err(err) => tracing::error!(event = "audit_prune_failed", error = %err),
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
