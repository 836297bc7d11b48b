//! The `principals` table. Tokens appear here only as SHA-256 hashes.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, enum_column, unique_violation};
use crate::model::{Principal, UnixSeconds};

const COLUMNS: &str = "id, name, role, tenant_id, created_at, revoked_at";

impl Store {
    /// Inserts a principal with the hash of its token.
    pub async fn insert_principal(
        &self,
        principal: &Principal,
        token_hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO principals (id, name, role, tenant_id, token_hash, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&principal.id)
        .bind(&principal.name)
        .bind(principal.role.as_str())
        .bind(principal.tenant_id.as_deref())
        .bind(&token_hash[..])
        .bind(principal.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, || format!("active principal {:?}", principal.name)))?;
        Ok(())
    }

    /// The principal whose token has this hash, revoked or not, with the stored hash.
    pub async fn principal_by_token_hash(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<(Principal, Vec<u8>)>, StoreError> {
        let sql = format!("SELECT {COLUMNS}, token_hash FROM principals WHERE token_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&token_hash[..])
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((principal_from_row(&row)?, row.try_get("token_hash")?)))
            .transpose()
    }

    /// The principal with this id, or else the active one with this name.
    pub async fn find_principal(&self, id_or_name: &str) -> Result<Option<Principal>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM principals WHERE id = $1 OR (name = $1 AND revoked_at IS NULL) \
             ORDER BY id = $1 DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(principal_from_row).transpose()
    }

    /// Every principal, revoked ones included, by creation time.
    pub async fn list_principals(&self) -> Result<Vec<Principal>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM principals ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(principal_from_row).collect()
    }

    /// Marks a principal revoked (once); returns it, or `None` if there is no such principal.
    pub async fn revoke_principal(
        &self,
        id: &str,
        now: UnixSeconds,
    ) -> Result<Option<Principal>, StoreError> {
        sqlx::query("UPDATE principals SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        self.find_principal(id).await
    }
}

fn principal_from_row(row: &AnyRow) -> Result<Principal, StoreError> {
    Ok(Principal {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: enum_column(row, "role")?,
        tenant_id: row.try_get("tenant_id")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
