//! The `custodians`, `seal_config` and `custodian_shares` tables: who the custodians are and
//! the public half of the root key's sharing. No share and no root key is ever written here.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError, u32_column, unique_violation};
use crate::model::{Custodian, Principal, Role, SealConfig};

const CUSTODIAN_COLUMNS: &str = "p.id, p.name, p.role, p.tenant_id, p.created_at, p.revoked_at, \
     c.person_name, c.public_key, c.acknowledgement_sha256, c.acknowledged_at, c.signing_key";

impl Store {
    /// Inserts a custodian principal and its custodian record in one transaction.
    pub async fn insert_custodian(
        &self,
        custodian: &Custodian,
        token_hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        let p = &custodian.principal;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO principals (id, name, role, tenant_id, token_hash, created_at, revoked_at) \
             VALUES ($1, $2, $3, NULL, $4, $5, NULL)",
        )
        .bind(&p.id)
        .bind(&p.name)
        .bind(Role::Custodian.as_str())
        .bind(&token_hash[..])
        .bind(p.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, || format!("active principal {:?}", p.name)))?;
        sqlx::query(
            "INSERT INTO custodians (principal_id, person_name, public_key, \
             acknowledgement_sha256, acknowledged_at, signing_key) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&p.id)
        .bind(&custodian.person_name)
        .bind(&custodian.public_key)
        .bind(&custodian.acknowledgement_sha256[..])
        .bind(custodian.acknowledged_at)
        .bind(custodian.signing_key.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            unique_violation(e, || {
                format!("a custodian with public key {}", custodian.public_key)
            })
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Every custodian, revoked ones included, with the share index each holds now.
    pub async fn list_custodians(&self) -> Result<Vec<Custodian>, StoreError> {
        let sql = format!(
            "SELECT {CUSTODIAN_COLUMNS}, s.share_index FROM custodians c \
             JOIN principals p ON p.id = c.principal_id \
             LEFT JOIN seal_config g ON g.id = 1 \
             LEFT JOIN custodian_shares s ON s.principal_id = c.principal_id \
                 AND s.generation = g.generation \
             ORDER BY p.created_at, p.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(custodian_from_row).collect()
    }

    /// The seal configuration, once Init has run.
    pub async fn seal_config(&self) -> Result<Option<SealConfig>, StoreError> {
        let row = sqlx::query(
            "SELECT init_id, generation, threshold, share_count, commitments, root_check, \
             initialised_at, changed_at FROM seal_config WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut config = config_from_row(&row)?;
        let holders = sqlx::query(
            "SELECT share_index, principal_id FROM custodian_shares WHERE generation = $1 \
             ORDER BY share_index",
        )
        .bind(i64::from(config.generation))
        .fetch_all(&self.pool)
        .await?;
        config.holders = holders
            .iter()
            .map(|r| Ok((small(r, "share_index")?, r.try_get("principal_id")?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(Some(config))
    }

    /// Records the first seal configuration. Refused if Init already ran or the store already
    /// holds keys (they would be wrapped under another root).
    pub async fn initialise(&self, config: &SealConfig) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let keys: i64 = sqlx::query("SELECT COUNT(*) AS n FROM keys")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if keys > 0 {
            return Err(StoreError::Conflict(format!(
                "the store already holds {keys} keys wrapped under another root (a dev-mode store?): \
                 initialise an empty store"
            )));
        }
        sqlx::query(
            "INSERT INTO seal_config (id, init_id, generation, threshold, share_count, \
             commitments, root_check, initialised_at, changed_at) \
             VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&config.init_id[..])
        .bind(i64::from(config.generation))
        .bind(i64::from(config.threshold))
        .bind(i64::from(config.share_count))
        .bind(&config.commitments)
        .bind(&config.root_check[..])
        .bind(config.initialised_at)
        .bind(config.changed_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, || "the root key (Init already ran)".into()))?;
        insert_holders(&mut tx, config).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves to the next generation if the stored one is still `previous` (compare-and-set).
    pub async fn commit_rekey(&self, previous: u32, next: &SealConfig) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE seal_config SET generation = $1, threshold = $2, share_count = $3, \
             commitments = $4, changed_at = $5 WHERE id = 1 AND generation = $6",
        )
        .bind(i64::from(next.generation))
        .bind(i64::from(next.threshold))
        .bind(i64::from(next.share_count))
        .bind(&next.commitments)
        .bind(next.changed_at)
        .bind(i64::from(previous))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(StoreError::Conflict(format!(
                "the custodian set is no longer at generation {previous}: another rekey completed first"
            )));
        }
        insert_holders(&mut tx, next).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether any principal, active or revoked, was ever created.
    pub async fn has_principals(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM principals")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(n > 0)
    }
}

async fn insert_holders(
    tx: &mut Transaction<'static, Any>,
    config: &SealConfig,
) -> Result<(), StoreError> {
    for (index, principal_id) in &config.holders {
        sqlx::query(
            "INSERT INTO custodian_shares (generation, share_index, principal_id) \
             VALUES ($1, $2, $3)",
        )
        .bind(i64::from(config.generation))
        .bind(i64::from(*index))
        .bind(principal_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn config_from_row(row: &AnyRow) -> Result<SealConfig, StoreError> {
    Ok(SealConfig {
        init_id: fixed(row, "init_id")?,
        generation: u32_column(row, "generation")?,
        threshold: small(row, "threshold")?,
        share_count: small(row, "share_count")?,
        commitments: row.try_get("commitments")?,
        root_check: fixed(row, "root_check")?,
        initialised_at: row.try_get("initialised_at")?,
        changed_at: row.try_get("changed_at")?,
        holders: Vec::new(),
    })
}

fn custodian_from_row(row: &AnyRow) -> Result<Custodian, StoreError> {
    let index: Option<i64> = row.try_get("share_index")?;
    Ok(Custodian {
        principal: Principal {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            role: Role::Custodian,
            tenant_id: None,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
        },
        person_name: row.try_get("person_name")?,
        public_key: row.try_get("public_key")?,
        acknowledgement_sha256: fixed(row, "acknowledgement_sha256")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        signing_key: row.try_get("signing_key")?,
        share_index: index
            .map(|i| u8::try_from(i).map_err(|_| StoreError::Corrupt(format!("share index {i}"))))
            .transpose()?,
    })
}

/// Reads a byte column of exactly `N` bytes.
fn fixed<const N: usize>(row: &AnyRow, column: &str) -> Result<[u8; N], StoreError> {
    let bytes: Vec<u8> = row.try_get(column)?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{column} is not {N} bytes")))
}

/// Reads a `BIGINT` column that holds a `u8` (thresholds, share indexes).
fn small(row: &AnyRow, column: &str) -> Result<u8, StoreError> {
    let value: i64 = row.try_get(column)?;
    u8::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{column} = {value} is out of range")))
}
