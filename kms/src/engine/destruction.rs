//! Carrying out destructions (catalogue K9, D1, D2): when a scheduled key's waiting period
//! ends, its material is destroyed, every node drops its cached copies, and a signed record
//! remains. Retention holds keep a key from being scheduled or destroyed before their date.

use std::sync::atomic::Ordering;

use super::{Engine, EngineError};
use crate::clock::rfc3339;
use crate::destruction::record::{DestroyedVersion, Record};
use crate::model::{Key, Principal, UnixSeconds};
use crate::store::Backend;
use crate::store::destruction::{Destruction, RetentionHold};

/// Longest retention hold: 100 years.
const MAX_HOLD_DAYS: i64 = 36_525;

impl Engine {
    /// Destroys every key whose waiting period has ended (and that no retention hold keeps);
    /// returns the ids of the keys destroyed. Safe on several nodes at once: each destruction
    /// is claimed in its own transaction, so a key is destroyed once.
    pub async fn destroy_due(&self) -> Result<Vec<String>, EngineError> {
        self.keyring.unsealed()?;
        let now = self.now();
        let mut destroyed = Vec::new();
        for due in self.store.due_destructions(now).await? {
            if let Some(hold) = self.store.retention_hold(&due.key_id).await?
                && hold.until > now
            {
                tracing::warn!(event = "destruction_held", key = %due.key_id, until = hold.until);
                continue;
            }
            let Some(key) = self.store.get_key(&due.key_id).await? else {
                continue;
            };
            let record = self.destruction_record_for(&key, &due, now).await?;
            let done = self
                .store
                .destroy_key(&key.id, &key.tenant_id, &record.to_json(), now)
                .await?;
            if let Some(bundles) = done {
                self.keyring.forget_cached();
                tracing::info!(event = "key_destroyed", key = %key.id, tenant = %key.tenant_id);
                let versions: Vec<u32> = record.versions.iter().map(|v| v.version).collect();
                let resource = format!(
                    "{} ({}): versions {versions:?} destroyed, scheduled by proposal {}; \
                     {bundles} stored escrow bundles of the tenant deleted",
                    key.id, key.name, due.proposal_id
                );
                let columns = crate::audit::record::Event {
                    tenant: Some(key.tenant_id.clone()),
                    key_id: Some(key.id.clone()),
                    ..Default::default()
                };
                self.audit_internal_event("KeyDestroyed", resource, columns)
                    .await;
                destroyed.push(key.id);
            }
        }
        Ok(destroyed)
    }

    /// Drops this node's cached version keys if any node destroyed a key since the last look,
    /// so no copy of destroyed material outlives the scheduler's next tick anywhere.
    pub async fn forget_destroyed(&self) -> Result<(), EngineError> {
        let count = self.store.destroyed_count().await?;
        if self.destroyed_seen.swap(count, Ordering::SeqCst) != count {
            self.keyring.forget_cached();
        }
        Ok(())
    }

    /// Sets or lengthens `key`'s retention hold until `until` (Unix seconds) for `reason`.
    pub async fn set_retention_hold(
        &self,
        key: &Key,
        until: UnixSeconds,
        reason: &str,
        by: &Principal,
    ) -> Result<RetentionHold, EngineError> {
        let now = self.now();
        if until <= now || until > now + MAX_HOLD_DAYS * 86_400 {
            return Err(EngineError::InvalidArgument(format!(
                "a retention hold ends in the future and within 100 years; {} is not",
                rfc3339(until)
            )));
        }
        if reason.trim().is_empty() {
            return Err(EngineError::InvalidArgument(
                "a retention hold needs a reason (the law, contract or case that requires it)"
                    .into(),
            ));
        }
        let hold = RetentionHold {
            key_id: key.id.clone(),
            until,
            reason: reason.trim().to_owned(),
            set_by: by.id.clone(),
            set_at: now,
        };
        self.store.set_retention_hold(&hold).await?;
        Ok(hold)
    }

    /// The signed destruction record of a destroyed key (JSON).
    pub async fn destruction_record(&self, key: &Key) -> Result<String, EngineError> {
        self.store
            .destruction_record(&key.id)
            .await?
            .ok_or_else(|| {
                EngineError::FailedPrecondition(format!(
                    "key {} ({}) is {}, not destroyed: it has no destruction record",
                    key.id, key.name, key.state
                ))
            })
    }

    /// The record of destroying `key` at `now`, signed.
    async fn destruction_record_for(
        &self,
        key: &Key,
        due: &Destruction,
        now: UnixSeconds,
    ) -> Result<Record, EngineError> {
        let tenant = self.store.find_tenant(&key.tenant_id).await?;
        let versions = self.store.list_versions(&key.id).await?;
        let proposal = self.store.proposal(&due.proposal_id).await?;
        let name_of = |id: String| async move {
            match self.store.find_principal(&id).await {
                Ok(Some(p)) => p.name,
                _ => id,
            }
        };
        let (mut requested_by, mut approved_by) = (String::new(), Vec::new());
        if let Some(p) = proposal {
            requested_by = name_of(p.signed.proposer_id).await;
            for approval in p.approvals {
                approved_by.push(name_of(approval.principal_id).await);
            }
        }
        let record = Record {
            format: crate::destruction::record::FORMAT,
            key_id: key.id.clone(),
            key_name: key.name.clone(),
            tenant_id: key.tenant_id.clone(),
            tenant_name: tenant.map(|t| t.name).unwrap_or_default(),
            purpose: key.purpose.as_str().into(),
            class: key.class.as_str().into(),
            versions: versions
                .iter()
                .map(|v| DestroyedVersion {
                    version: v.version,
                    state: v.state.as_str().into(),
                    created_at: v.created_at,
                })
                .collect(),
            proposal_id: due.proposal_id.clone(),
            requested_by,
            approved_by,
            scheduled_at: due.scheduled_at,
            destroyed_at: now,
            method: self.destruction_method().into(),
            instance: self.instance_name().await?,
            signer: String::new(),
            signature: String::new(),
        };
        Ok(self.keyring.unsealed()?.sign_destruction_record(record))
    }

    fn destruction_method(&self) -> &'static str {
        match self.store.backend() {
            Backend::Sqlite => {
                "wrapped material of every version overwritten with nothing in one transaction, \
                 version rows kept as tombstones (SQLite secure_delete; WAL checkpointed and \
                 truncated); cached copies zeroized on every node"
            }
            Backend::Postgres => {
                "wrapped material of every version overwritten with nothing in one transaction, \
                 version rows kept as tombstones (PostgreSQL; key_versions vacuumed); cached \
                 copies zeroized on every node"
            }
        }
    }
}
