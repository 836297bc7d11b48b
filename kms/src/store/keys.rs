//! The `keys` and `key_versions` tables.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, enum_column, u32_column, unique_violation};
use crate::crypto::CryptoError;
use crate::model::{Key, KeyState, KeyVersion, UnixSeconds, VersionState};

const KEY_COLUMNS: &str = "id, tenant_id, name, purpose, importance_class, domain, algorithm, \
     rotation_period_days, state, primary_version, created_at, updated_at, rotated_at";

impl Store {
    /// Inserts a key and its first version in one transaction.
    pub async fn insert_key(&self, key: &Key, first: &KeyVersion) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_key_row(&mut tx, key).await?;
        insert_version(&mut tx, first).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The key with this id.
    pub async fn get_key(&self, id: &str) -> Result<Option<Key>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// The key with this name in this tenant.
    pub async fn get_key_by_name(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<Key>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE tenant_id = $1 AND name = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Up to `limit` keys ordered by id, after `after_id`, of one tenant or of all.
    pub async fn list_keys(
        &self,
        tenant_id: Option<&str>,
        after_id: &str,
        limit: u32,
    ) -> Result<Vec<Key>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE ($1 = '' OR tenant_id = $1) AND id > $2 \
             ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id.unwrap_or(""))
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Every version of a key, oldest first.
    pub async fn list_versions(&self, key_id: &str) -> Result<Vec<KeyVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT key_id, version, state, wrapped_material, created_at FROM key_versions \
             WHERE key_id = $1 ORDER BY version",
        )
        .bind(key_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// One version of a key.
    pub async fn get_version(
        &self,
        key_id: &str,
        version: u32,
    ) -> Result<Option<KeyVersion>, StoreError> {
        let row = sqlx::query(
            "SELECT key_id, version, state, wrapped_material, created_at FROM key_versions \
             WHERE key_id = $1 AND version = $2",
        )
        .bind(key_id)
        .bind(i64::from(version))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    /// Adds the next version and makes it primary, in one transaction.
    ///
    /// `make_material(n)` returns the wrapped material of version `n`; it runs inside the
    /// transaction, once the number is known, because the wrapping is bound to the number.
    /// With `expected` set, this is a compare-and-set on the primary version
    /// ([`StoreError::VersionMismatch`] if it moved). Without it, concurrent rotations queue on
    /// the key's row and each adds exactly one version, so numbers stay contiguous.
    pub async fn rotate_key(
        &self,
        key_id: &str,
        expected: Option<u32>,
        now: UnixSeconds,
        make_material: impl FnOnce(u32) -> Result<Vec<u8>, CryptoError>,
    ) -> Result<Key, StoreError> {
        let mut tx = self.begin_write().await?;
        // The UPDATE comes first so that it takes the row (PostgreSQL) or database (SQLite)
        // write lock before anything is read: the compare and the increment are one step.
        let bumped = sqlx::query(
            "UPDATE keys SET primary_version = primary_version + 1, updated_at = $2, rotated_at = $2 \
             WHERE id = $1 AND ($3 = 0 OR primary_version = $3) RETURNING primary_version, state",
        )
        .bind(key_id)
        .bind(now)
        .bind(i64::from(expected.unwrap_or(0)))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = bumped else {
            let current = sqlx::query("SELECT primary_version FROM keys WHERE id = $1")
                .bind(key_id)
                .fetch_optional(&mut *tx)
                .await?;
            return Err(match (current, expected) {
                (Some(row), Some(expected)) => StoreError::VersionMismatch {
                    expected,
                    actual: u32_column(&row, "primary_version")?,
                },
                _ => StoreError::NotFound(format!("key {key_id}")),
            });
        };
        refuse_pending_destruction(key_id, enum_column(&row, "state")?)?;
        let version = u32_column(&row, "primary_version")?;
        let material = make_material(version)?;
        sqlx::query("UPDATE key_versions SET state = $2 WHERE key_id = $1 AND state = $3")
            .bind(key_id)
            .bind(VersionState::Deactivated.as_str())
            .bind(VersionState::Active.as_str())
            .execute(&mut *tx)
            .await?;
        let new_version = KeyVersion {
            key_id: key_id.to_owned(),
            version,
            state: VersionState::Active,
            wrapped_material: material,
            created_at: now,
        };
        insert_version(&mut tx, &new_version).await?;
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key_id)
            .fetch_one(&mut *tx)
            .await?;
        let key = key_from_row(&row)?;
        tx.commit().await?;
        Ok(key)
    }

    /// Enables or disables a key; `None` if there is no such key. A key pending destruction
    /// keeps its state ([`StoreError::Conflict`]): only cancelling the destruction changes it.
    pub async fn set_key_state(
        &self,
        key_id: &str,
        state: KeyState,
        now: UnixSeconds,
    ) -> Result<Option<Key>, StoreError> {
        if !matches!(state, KeyState::Enabled | KeyState::Disabled) {
            return Err(StoreError::Conflict(
                "a key becomes pending destruction or destroyed only through an approved proposal"
                    .into(),
            ));
        }
        // One conditional UPDATE, so a destruction scheduled meanwhile is never overwritten.
        let done = sqlx::query(
            "UPDATE keys SET state = $2, updated_at = $3 WHERE id = $1 AND state <> $4 AND state <> $5",
        )
        .bind(key_id)
        .bind(state.as_str())
        .bind(now)
        .bind(KeyState::PendingDestruction.as_str())
        .bind(KeyState::Destroyed.as_str())
        .execute(&self.pool)
        .await?;
        let key = self.get_key(key_id).await?;
        if done.rows_affected() == 0
            && let Some(key) = &key
        {
            refuse_pending_destruction(key_id, key.state)?;
        }
        Ok(key)
    }
}

/// [`StoreError::Conflict`] if `state` is pending destruction or destroyed.
fn refuse_pending_destruction(key_id: &str, state: KeyState) -> Result<(), StoreError> {
    match state {
        KeyState::PendingDestruction => Err(StoreError::Conflict(format!(
            "key {key_id} is pending destruction: cancel the destruction \
             (kagictl key cancel-destruction) before changing it"
        ))),
        KeyState::Destroyed => Err(StoreError::Conflict(format!(
            "key {key_id} is destroyed: only its tombstone remains"
        ))),
        KeyState::Enabled | KeyState::Disabled => Ok(()),
    }
}

/// Inserts a key's row (its versions go in with [`insert_version`]).
pub(super) async fn insert_key_row(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    key: &Key,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO keys (id, tenant_id, name, purpose, importance_class, domain, algorithm, \
         rotation_period_days, state, primary_version, created_at, updated_at, rotated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&key.id)
    .bind(&key.tenant_id)
    .bind(&key.name)
    .bind(key.purpose.as_str())
    .bind(key.class.as_str())
    .bind(key.domain.as_str())
    .bind(key.algorithm.as_str())
    .bind(i64::from(key.rotation_period_days))
    .bind(key.state.as_str())
    .bind(i64::from(key.primary_version))
    .bind(key.created_at)
    .bind(key.updated_at)
    .bind(key.rotated_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| unique_violation(e, || format!("key {:?} in this tenant", key.name)))?;
    Ok(())
}

/// Inserts one version of a key.
pub(super) async fn insert_version(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    version: &KeyVersion,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO key_versions (key_id, version, state, wrapped_material, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&version.key_id)
    .bind(i64::from(version.version))
    .bind(version.state.as_str())
    .bind(&version.wrapped_material)
    .bind(version.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        unique_violation(e, || {
            format!("version {} of key {}", version.version, version.key_id)
        })
    })?;
    Ok(())
}

fn key_from_row(row: &AnyRow) -> Result<Key, StoreError> {
    Ok(Key {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        purpose: enum_column(row, "purpose")?,
        class: enum_column(row, "importance_class")?,
        domain: enum_column(row, "domain")?,
        algorithm: enum_column(row, "algorithm")?,
        rotation_period_days: u32_column(row, "rotation_period_days")?,
        state: enum_column(row, "state")?,
        primary_version: u32_column(row, "primary_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        rotated_at: row.try_get("rotated_at")?,
    })
}

fn version_from_row(row: &AnyRow) -> Result<KeyVersion, StoreError> {
    Ok(KeyVersion {
        key_id: row.try_get("key_id")?,
        version: u32_column(row, "version")?,
        state: enum_column(row, "state")?,
        wrapped_material: row.try_get("wrapped_material")?,
        created_at: row.try_get("created_at")?,
    })
}
