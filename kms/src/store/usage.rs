//! The `version_usage` table: encrypts and decrypts per key version and node, and when the
//! version was last used (catalogue K5). Each node adds what it counted since its last flush;
//! readers sum the nodes.

use sqlx::Row;

use super::{Store, StoreError, u32_column};
use crate::model::UnixSeconds;

/// Use of one key version: on one node (a flush) or summed over nodes (a read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounts {
    /// Encrypts (Encrypt, data keys, and ReEncrypt's destination) under the version.
    pub encrypts: u64,
    /// Decrypts (Decrypt, and ReEncrypt's source) under the version.
    pub decrypts: u64,
    /// When the version was last used (Unix seconds), 0 if never.
    pub last_used_at: UnixSeconds,
}

impl UsageCounts {
    /// Adds `other`'s counts and keeps the later time.
    pub fn add(&mut self, other: &UsageCounts) {
        self.encrypts = self.encrypts.saturating_add(other.encrypts);
        self.decrypts = self.decrypts.saturating_add(other.decrypts);
        self.last_used_at = self.last_used_at.max(other.last_used_at);
    }
}

/// One version's counts, for a flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    /// The key.
    pub key_id: String,
    /// The version.
    pub version: u32,
    /// What was counted since the last flush.
    pub counts: UsageCounts,
}

impl Store {
    /// Adds `node`'s counts to the stored ones, in one transaction.
    pub async fn add_version_usage(
        &self,
        node: &str,
        deltas: &[UsageDelta],
    ) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for delta in deltas {
            sqlx::query(
                "INSERT INTO version_usage (key_id, version, node, encrypts, decrypts, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (key_id, version, node) DO UPDATE SET \
                 encrypts = version_usage.encrypts + excluded.encrypts, \
                 decrypts = version_usage.decrypts + excluded.decrypts, \
                 last_used_at = CASE WHEN excluded.last_used_at > version_usage.last_used_at \
                 THEN excluded.last_used_at ELSE version_usage.last_used_at END",
            )
            .bind(&delta.key_id)
            .bind(i64::from(delta.version))
            .bind(node)
            .bind(to_i64(delta.counts.encrypts))
            .bind(to_i64(delta.counts.decrypts))
            .bind(delta.counts.last_used_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every version of `key_id` that any node has flushed counts for, summed over nodes,
    /// by version.
    pub async fn version_usage(&self, key_id: &str) -> Result<Vec<(u32, UsageCounts)>, StoreError> {
        // SUM of BIGINT is NUMERIC on PostgreSQL, which the Any driver cannot read: cast back.
        let rows = sqlx::query(
            "SELECT version, CAST(SUM(encrypts) AS BIGINT) AS encrypts, \
             CAST(SUM(decrypts) AS BIGINT) AS decrypts, MAX(last_used_at) AS last_used_at \
             FROM version_usage WHERE key_id = $1 GROUP BY version ORDER BY version",
        )
        .bind(key_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    u32_column(row, "version")?,
                    UsageCounts {
                        encrypts: from_i64(row.try_get("encrypts")?),
                        decrypts: from_i64(row.try_get("decrypts")?),
                        last_used_at: row.try_get("last_used_at")?,
                    },
                ))
            })
            .collect()
    }
}

fn to_i64(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn from_i64(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}
