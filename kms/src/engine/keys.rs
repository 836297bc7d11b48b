//! Tenant keys: creation, lookup, listing, rotation and state.

use super::{Engine, EngineError, validate_name};
use crate::keyring::VersionOwner;
use crate::model::{
    Algorithm, Domain, ImportanceClass, Key, KeyState, KeyVersion, Purpose, VersionState,
};

/// The rotation period when none is asked for, and the most allowed for school data (K4).
pub const MAX_ROTATION_DAYS: u32 = 365;
/// Most keys a `ListKeys` page returns.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Keys per page when the caller names no size.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// What a new key is for and how it behaves.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Owning tenant id.
    pub tenant_id: String,
    /// Unique within the tenant.
    pub name: String,
    /// What it protects.
    pub purpose: Purpose,
    /// Importance class.
    pub class: ImportanceClass,
    /// Domain; `None` picks 学習系 for learning records and 校務系 otherwise.
    pub domain: Option<Domain>,
    /// Algorithm; `None` picks the default.
    pub algorithm: Option<Algorithm>,
    /// Rotation period in days; `None` means 365.
    pub rotation_period_days: Option<u32>,
}

impl Engine {
    /// Creates a key with its first version.
    pub async fn create_key(&self, new: NewKey) -> Result<Key, EngineError> {
        validate_name("key", &new.name, &['-', '_', '.'])?;
        let rotation_period_days = new.rotation_period_days.unwrap_or(MAX_ROTATION_DAYS);
        check_rotation_period(new.purpose, rotation_period_days)?;
        let keyring = self.keyring.unsealed()?;
        let now = self.now();
        let key = Key {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: new.tenant_id,
            name: new.name,
            purpose: new.purpose,
            class: new.class,
            domain: new.domain.unwrap_or(match new.purpose {
                Purpose::LearningRecord => Domain::Gakushu,
                _ => Domain::Komu,
            }),
            algorithm: new.algorithm.unwrap_or(Algorithm::Aes256GcmHkdfSha256),
            rotation_period_days,
            state: KeyState::Enabled,
            primary_version: 1,
            created_at: now,
            updated_at: now,
            rotated_at: now,
        };
        let first = KeyVersion {
            key_id: key.id.clone(),
            version: 1,
            state: VersionState::Active,
            wrapped_material: keyring.new_version(owner(&key), 1)?,
            created_at: now,
        };
        self.store.insert_key(&key, &first).await?;
        Ok(key)
    }

    /// The key named by `reference`: its id, or `TENANT/NAME` with the tenant by id or name.
    pub async fn resolve_key(&self, reference: &str) -> Result<Key, EngineError> {
        let found = if let Ok(id) = uuid::Uuid::parse_str(reference) {
            self.store.get_key(&id.to_string()).await?
        } else if let Some((tenant, name)) = reference.split_once('/') {
            let tenant = self.resolve_tenant(tenant).await?;
            self.store.get_key_by_name(&tenant.id, name).await?
        } else if reference.is_empty() {
            return Err(EngineError::InvalidArgument(
                "a key (id or TENANT/NAME) is required".into(),
            ));
        } else {
            return Err(EngineError::InvalidArgument(format!(
                "key {reference:?} is neither a key id (UUID) nor TENANT/NAME"
            )));
        };
        found.ok_or_else(|| EngineError::NotFound(format!("key {reference:?} not found")))
    }

    /// Every version of a key, oldest first.
    pub async fn key_versions(&self, key: &Key) -> Result<Vec<KeyVersion>, EngineError> {
        Ok(self.store.list_versions(&key.id).await?)
    }

    /// One page of keys of a tenant (or of all tenants) and the next page token.
    pub async fn list_keys(
        &self,
        tenant_id: Option<&str>,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<Key>, String), EngineError> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(EngineError::InvalidArgument(format!(
                    "page_size {n} is too large: at most {MAX_PAGE_SIZE}"
                )));
            }
            n => n,
        };
        if !page_token.is_empty() && uuid::Uuid::parse_str(page_token).is_err() {
            return Err(EngineError::InvalidArgument(
                "page_token is not one this server issued: pass next_page_token unchanged".into(),
            ));
        }
        let keys = self.store.list_keys(tenant_id, page_token, size).await?;
        let next = if keys.len() == size as usize {
            keys.last().map(|k| k.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok((keys, next))
    }

    /// Adds a new primary version; with `expected`, only if that is still the primary.
    pub async fn rotate_key(&self, key: &Key, expected: Option<u32>) -> Result<Key, EngineError> {
        let keyring = self.keyring.unsealed()?;
        let owner = owner(key);
        let rotated = self
            .store
            .rotate_key(&key.id, expected, self.now(), |version| {
                keyring.new_version(owner, version)
            })
            .await?;
        Ok(rotated)
    }

    /// Enables or disables a key.
    pub async fn set_key_state(&self, key: &Key, state: KeyState) -> Result<Key, EngineError> {
        self.keyring.unsealed()?;
        self.store
            .set_key_state(&key.id, state, self.now())
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("key {} not found", key.id)))
    }

    /// Cancels a key's scheduled destruction, giving it back the state it had before.
    pub async fn cancel_destruction(&self, key: &Key) -> Result<Key, EngineError> {
        self.keyring.unsealed()?;
        self.store.cancel_destruction(&key.id, self.now()).await?;
        self.store
            .get_key(&key.id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("key {} not found", key.id)))
    }
}

/// The owner of a key's versions, for wrapping and cache binding.
pub(crate) fn owner(key: &Key) -> VersionOwner<'_> {
    VersionOwner {
        tenant_id: &key.tenant_id,
        key_id: &key.id,
    }
}

fn check_rotation_period(purpose: Purpose, days: u32) -> Result<(), EngineError> {
    if days == 0 {
        return Err(EngineError::InvalidArgument(
            "rotation period must be at least 1 day".into(),
        ));
    }
    if days > MAX_ROTATION_DAYS && purpose.protects_school_data() {
        return Err(EngineError::InvalidArgument(format!(
            "rotation period {days} days is too long: keys for {purpose} must rotate at least every {MAX_ROTATION_DAYS} days (catalogue K4)"
        )));
    }
    if days > 3650 {
        return Err(EngineError::InvalidArgument(format!(
            "rotation period {days} days is too long: at most 3650"
        )));
    }
    Ok(())
}
