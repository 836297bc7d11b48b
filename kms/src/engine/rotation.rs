//! Rotation when due (catalogue K4): every key whose rotation period has passed gets a new
//! primary version. Run by every node's scheduler and by the `RotateDue` RPC
//! (`kagictl rotate --due`); safe when several run at once, because each rotation is a
//! compare-and-set on the primary version the run saw.

use std::collections::HashMap;

use super::{Engine, EngineError};
use crate::clock::rfc3339;
use crate::model::{Key, KeyState, UnixSeconds};

/// Keys read per page while looking for due ones.
const PAGE: u32 = 1000;

/// A key rotated (or, in a dry run, that would be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedKey {
    /// Key id.
    pub key_id: String,
    /// Owning tenant id.
    pub tenant_id: String,
    /// Owning tenant's name.
    pub tenant_name: String,
    /// Key name.
    pub name: String,
    /// The primary version before.
    pub from_version: u32,
    /// The primary version after.
    pub to_version: u32,
    /// When the rotation was due (Unix seconds).
    pub due_at: UnixSeconds,
}

/// A due key that could not be rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRotation {
    /// Key id.
    pub key_id: String,
    /// Owning tenant id.
    pub tenant_id: String,
    /// Owning tenant's name.
    pub tenant_name: String,
    /// Key name.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// What a [`Engine::rotate_due`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Whether nothing was changed (the keys in `rotated` would have been).
    pub dry_run: bool,
    /// Keys this run rotated (or would have).
    pub rotated: Vec<RotatedKey>,
    /// Due keys that another run (another node's scheduler, a concurrent `RotateDue`) rotated
    /// between this run's look and its rotation: done, not failed. `to_version` is the primary
    /// version found.
    pub already_rotated: Vec<RotatedKey>,
    /// Due keys that could not be rotated.
    pub failed: Vec<FailedRotation>,
    /// Keys looked at: enabled and disabled ones (keys pending destruction or destroyed are
    /// never rotated and not counted).
    pub checked: u32,
    /// Of those, how many were not due.
    pub not_due: u32,
}

impl Engine {
    /// Rotates every enabled or disabled key of `tenant` (an id or name; every tenant if
    /// `None`) whose rotation period has passed at `now` (`now >= key.next_rotation_at()`).
    /// With `dry_run`, changes nothing and reports what it would rotate. Each rotation is
    /// audited (`KeyRotated`, internal).
    pub async fn rotate_due(
        &self,
        tenant: Option<&str>,
        dry_run: bool,
    ) -> Result<RotationReport, EngineError> {
        if !dry_run {
            self.keyring.unsealed()?;
        }
        let tenant_id = match tenant {
            Some(t) if !t.is_empty() => Some(self.resolve_tenant(t).await?.id),
            _ => None,
        };
        let now = self.now();
        let mut report = RotationReport {
            dry_run,
            ..RotationReport::default()
        };
        let mut tenant_names: HashMap<String, String> = HashMap::new();
        let mut after = String::new();
        loop {
            let page = self
                .store
                .list_keys(tenant_id.as_deref(), &after, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            let full = page.len() == PAGE as usize;
            for key in page {
                if !matches!(key.state, KeyState::Enabled | KeyState::Disabled) {
                    continue;
                }
                report.checked += 1;
                if now < key.next_rotation_at() {
                    report.not_due += 1;
                    continue;
                }
                let tenant_name = self.tenant_name(&mut tenant_names, &key.tenant_id).await;
                self.rotate_one(&key, tenant_name, now, dry_run, &mut report)
                    .await;
            }
            if !full {
                break;
            }
        }
        Ok(report)
    }

    /// Rotates one due key with a compare-and-set on the primary version this run saw.
    async fn rotate_one(
        &self,
        key: &Key,
        tenant_name: String,
        now: UnixSeconds,
        dry_run: bool,
        report: &mut RotationReport,
    ) {
        let due_at = key.next_rotation_at();
        let mut done = RotatedKey {
            key_id: key.id.clone(),
            tenant_id: key.tenant_id.clone(),
            tenant_name,
            name: key.name.clone(),
            from_version: key.primary_version,
            to_version: key.primary_version + 1,
            due_at,
        };
        if dry_run {
            report.rotated.push(done);
            return;
        }
        match self.rotate_key(key, Some(key.primary_version)).await {
            Ok(rotated) => {
                done.to_version = rotated.primary_version;
                tracing::info!(
                    event = "key_rotated_due", key = %key.id, tenant = %key.tenant_id,
                    from = done.from_version, to = done.to_version
                );
                let resource = format!(
                    "{} ({}): version {} -> {}, rotation period of {} days passed (due {}, \
                     rotated {})",
                    key.id,
                    key.name,
                    done.from_version,
                    done.to_version,
                    key.rotation_period_days,
                    rfc3339(due_at),
                    rfc3339(now)
                );
                let columns = crate::audit::record::Event {
                    tenant: Some(key.tenant_id.clone()),
                    key_id: Some(key.id.clone()),
                    key_version: Some(done.to_version),
                    ..Default::default()
                };
                self.audit_internal_event("KeyRotated", resource, columns)
                    .await;
                report.rotated.push(done);
            }
            // The compare-and-set lost: another run rotated the key after this one looked.
            Err(EngineError::Aborted(_)) => {
                if let Ok(Some(current)) = self.store.get_key(&key.id).await {
                    done.to_version = current.primary_version;
                }
                report.already_rotated.push(done);
            }
            Err(err) => {
                tracing::error!(event = "rotation_failed", key = %key.id, error = %err);
                report.failed.push(FailedRotation {
                    key_id: done.key_id,
                    tenant_id: done.tenant_id,
                    tenant_name: done.tenant_name,
                    name: done.name,
                    reason: err.to_string(),
                });
            }
        }
    }

    /// A tenant's name, looked up once per run.
    async fn tenant_name(&self, names: &mut HashMap<String, String>, tenant_id: &str) -> String {
        if let Some(name) = names.get(tenant_id) {
            return name.clone();
        }
        let name = match self.store.find_tenant(tenant_id).await {
            Ok(Some(tenant)) => tenant.name,
            _ => String::new(),
        };
        names.insert(tenant_id.to_owned(), name.clone());
        name
    }
}
