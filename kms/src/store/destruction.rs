//! The `key_destructions`, `retention_holds` and `destruction_records` tables: keys scheduled
//! for destruction, what holds them back, and what their destruction left (catalogue K9, D1,
//! D2).
//!
//! Scheduling runs inside the transaction that executes an approved proposal, so a key is
//! pending destruction exactly when its proposal executed.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Backend, Store, StoreError, enum_column};
use crate::model::{KeyState, UnixSeconds, VersionState};

/// A key's scheduled destruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destruction {
    /// The key.
    pub key_id: String,
    /// The state to restore if the destruction is cancelled.
    pub previous_state: KeyState,
    /// When it was scheduled.
    pub scheduled_at: UnixSeconds,
    /// When the material is destroyed.
    pub destroy_at: UnixSeconds,
    /// The approved proposal that scheduled it.
    pub proposal_id: String,
    /// When the material was destroyed, once it was.
    pub destroyed_at: Option<UnixSeconds>,
}

/// A retention hold: no destruction of the key before `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionHold {
    /// The key.
    pub key_id: String,
    /// Until when (Unix seconds).
    pub until: UnixSeconds,
    /// Why (a law, a contract, a case).
    pub reason: String,
    /// Who set it (principal id).
    pub set_by: String,
    /// When.
    pub set_at: UnixSeconds,
}

const DESTRUCTION_COLUMNS: &str =
    "key_id, previous_state, scheduled_at, destroy_at, proposal_id, destroyed_at";

impl Store {
    /// The scheduled destruction of `key_id`, if any.
    pub async fn destruction(&self, key_id: &str) -> Result<Option<Destruction>, StoreError> {
        let sql = format!("SELECT {DESTRUCTION_COLUMNS} FROM key_destructions WHERE key_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(destruction_from_row).transpose()
    }

    /// Destructions whose waiting period has ended at `now` and that are not carried out yet.
    pub async fn due_destructions(&self, now: UnixSeconds) -> Result<Vec<Destruction>, StoreError> {
        let sql = format!(
            "SELECT {DESTRUCTION_COLUMNS} FROM key_destructions \
             WHERE destroyed_at IS NULL AND destroy_at <= $1 ORDER BY destroy_at, key_id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(destruction_from_row).collect()
    }

    /// How many keys have been destroyed here: nodes compare it to drop cached keys.
    pub async fn destroyed_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM key_destructions WHERE destroyed_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Destroys a due key's material: every version's wrapped material is overwritten with
    /// nothing and marked destroyed, the key becomes a tombstone, the tenant's stored escrow
    /// bundles are deleted and `record` is stored, in one transaction. Returns how many bundles
    /// went, or `None` (and nothing changed) if the destruction is not due, was carried out
    /// already, was cancelled, or a retention hold is in force.
    pub async fn destroy_key(
        &self,
        key_id: &str,
        tenant_id: &str,
        record: &str,
        now: UnixSeconds,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE key_destructions SET destroyed_at = $1 WHERE key_id = $2 \
             AND destroyed_at IS NULL AND destroy_at <= $1 AND NOT EXISTS \
             (SELECT 1 FROM retention_holds h WHERE h.key_id = $2 AND h.until > $1)",
        )
        .bind(now)
        .bind(key_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed != 1 {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE key_versions SET wrapped_material = $1, \
             state = CASE WHEN state = $2 THEN $3 ELSE $4 END WHERE key_id = $5",
        )
        .bind(Vec::<u8>::new())
        .bind(VersionState::Compromised.as_str())
        .bind(VersionState::DestroyedCompromised.as_str())
        .bind(VersionState::Destroyed.as_str())
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE keys SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(KeyState::Destroyed.as_str())
            .bind(now)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO destruction_records (key_id, tenant_id, destroyed_at, record) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(key_id)
        .bind(tenant_id)
        .bind(now)
        .bind(record)
        .execute(&mut *tx)
        .await?;
        // The tenant's escrow bundles kept here would bring the key back (catalogue D1): they
        // go too. Bundle files that custodians saved are theirs to destroy (docs/escrow.md).
        let bundles = sqlx::query("DELETE FROM escrow_bundles WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        self.reclaim_destroyed().await;
        Ok(Some(bundles))
    }

    /// Makes the overwritten material unrecoverable from the database files: SQLite (whose
    /// `secure_delete` already zeroes freed space) checkpoints and truncates its WAL, which
    /// may still hold page images with the material; PostgreSQL vacuums `key_versions`, so the
    /// dead row versions that held it are reclaimed. Best effort: a failure is logged, and the
    /// next destruction tries again.
    async fn reclaim_destroyed(&self) {
        let done = match self.backend {
            // (busy, log frames, checkpointed frames): busy = 1 means readers kept it from
            // finishing, and the WAL may still hold old pages.
            Backend::Sqlite => sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await
                .and_then(|row| row.try_get::<i64, _>(0))
                .map(|busy| busy == 0),
            Backend::Postgres => sqlx::raw_sql("VACUUM key_versions")
                .execute(&self.pool)
                .await
                .map(|_| true),
        };
        match done {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                event = "destruction_reclaim_incomplete",
                "the SQLite WAL checkpoint was blocked by readers; it completes at a later checkpoint"
            ),
            Err(err) => tracing::warn!(event = "destruction_reclaim_failed", error = %err),
        }
    }

    /// The signed destruction record of a destroyed key (JSON).
    pub async fn destruction_record(&self, key_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT record FROM destruction_records WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("record").map_err(StoreError::from))
            .transpose()
    }

    /// The retention hold of a key, if any (past or in force).
    pub async fn retention_hold(&self, key_id: &str) -> Result<Option<RetentionHold>, StoreError> {
        let row = sqlx::query(
            "SELECT key_id, until, reason, set_by, set_at FROM retention_holds WHERE key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(RetentionHold {
                key_id: r.try_get("key_id")?,
                until: r.try_get("until")?,
                reason: r.try_get("reason")?,
                set_by: r.try_get("set_by")?,
                set_at: r.try_get("set_at")?,
            })
        })
        .transpose()
    }

    /// Sets or lengthens a key's retention hold. A hold never shortens: a later hold in force
    /// is kept and [`StoreError::Conflict`] says until when.
    pub async fn set_retention_hold(&self, hold: &RetentionHold) -> Result<(), StoreError> {
        let n = sqlx::query(
            "INSERT INTO retention_holds (key_id, until, reason, set_by, set_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO UPDATE SET \
             until = excluded.until, reason = excluded.reason, set_by = excluded.set_by, \
             set_at = excluded.set_at WHERE retention_holds.until < excluded.until",
        )
        .bind(&hold.key_id)
        .bind(hold.until)
        .bind(&hold.reason)
        .bind(&hold.set_by)
        .bind(hold.set_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            let current = self.retention_hold(&hold.key_id).await?;
            return Err(StoreError::Conflict(format!(
                "key {} is already held until {}: a retention hold only lengthens",
                hold.key_id,
                crate::clock::rfc3339(current.map_or(0, |h| h.until))
            )));
        }
        Ok(())
    }

    /// Cancels the scheduled destruction of `key_id`: the key gets back the state it had, in
    /// one transaction with removing the schedule. [`StoreError::Conflict`] if the key is not
    /// pending destruction.
    pub async fn cancel_destruction(
        &self,
        key_id: &str,
        now: UnixSeconds,
    ) -> Result<Destruction, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "DELETE FROM key_destructions WHERE key_id = $1 AND destroyed_at IS NULL \
             RETURNING key_id, previous_state, scheduled_at, destroy_at, proposal_id, destroyed_at",
        )
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("key {key_id} is not pending destruction")))?;
        let destruction = destruction_from_row(&row)?;
        sqlx::query("UPDATE keys SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(destruction.previous_state.as_str())
            .bind(now)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(destruction)
    }
}

/// Puts every key in `key_ids` into `pending-destruction`, remembering its state. A key that is
/// already pending, or missing, fails the whole transaction ([`StoreError::Conflict`] or
/// [`StoreError::NotFound`]).
pub(super) async fn schedule(
    tx: &mut Transaction<'static, Any>,
    key_ids: &[String],
    proposal_id: &str,
    now: UnixSeconds,
    destroy_at: UnixSeconds,
) -> Result<(), StoreError> {
    for key_id in key_ids {
        let row = sqlx::query("SELECT state FROM keys WHERE id = $1")
            .bind(key_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("key {key_id}")))?;
        let state: KeyState = enum_column(&row, "state")?;
        match state {
            KeyState::PendingDestruction => {
                return Err(StoreError::Conflict(format!(
                    "key {key_id} is already pending destruction"
                )));
            }
            KeyState::Destroyed => {
                return Err(StoreError::Conflict(format!(
                    "key {key_id} is already destroyed"
                )));
            }
            KeyState::Enabled | KeyState::Disabled => {}
        }
        let held = sqlx::query(
            "SELECT until, reason FROM retention_holds WHERE key_id = $1 AND until > $2",
        )
        .bind(key_id)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(hold) = held {
            let until: UnixSeconds = hold.try_get("until")?;
            let reason: String = hold.try_get("reason")?;
            return Err(StoreError::Conflict(format!(
                "key {key_id} is under a retention hold until {} ({reason}): it cannot be \
                 scheduled for destruction before then",
                crate::clock::rfc3339(until)
            )));
        }
        sqlx::query(
            "INSERT INTO key_destructions (key_id, previous_state, scheduled_at, destroy_at, proposal_id) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key_id)
        .bind(state.as_str())
        .bind(now)
        .bind(destroy_at)
        .bind(proposal_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE keys SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(KeyState::PendingDestruction.as_str())
            .bind(now)
            .bind(key_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Ids of the keys of `tenant_id` that can still be scheduled (not already pending).
pub(super) async fn schedulable_keys(
    tx: &mut Transaction<'static, Any>,
    tenant_id: &str,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT id FROM keys WHERE tenant_id = $1 AND state <> $2 AND state <> $3 ORDER BY id",
    )
    .bind(tenant_id)
    .bind(KeyState::PendingDestruction.as_str())
    .bind(KeyState::Destroyed.as_str())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| r.try_get("id").map_err(StoreError::from))
        .collect()
}

fn destruction_from_row(row: &AnyRow) -> Result<Destruction, StoreError> {
    Ok(Destruction {
        key_id: row.try_get("key_id")?,
        previous_state: enum_column(row, "previous_state")?,
        scheduled_at: row.try_get("scheduled_at")?,
        destroy_at: row.try_get("destroy_at")?,
        proposal_id: row.try_get("proposal_id")?,
        destroyed_at: row.try_get("destroyed_at")?,
    })
}
