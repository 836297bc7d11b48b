//! The `tenants` table.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, unique_violation};
use crate::model::Tenant;

impl Store {
    /// Inserts a tenant; a taken name is [`StoreError::AlreadyExists`].
    pub async fn insert_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, || format!("tenant {:?}", tenant.name)))?;
        Ok(())
    }

    /// The tenant with this id, or else with this name.
    pub async fn find_tenant(&self, id_or_name: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1")
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// Every tenant, by name.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }
}

fn tenant_from_row(row: &AnyRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}
