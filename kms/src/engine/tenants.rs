//! Tenants.

use super::{Engine, EngineError, validate_name};
use crate::model::Tenant;

impl Engine {
    /// Creates a tenant with a unique name.
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant, EngineError> {
        validate_name("tenant", name, &['-', '_', '.'])?;
        let tenant = Tenant {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            created_at: self.now(),
        };
        self.store.insert_tenant(&tenant).await?;
        Ok(tenant)
    }

    /// Every tenant, by name.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, EngineError> {
        Ok(self.store.list_tenants().await?)
    }

    /// The tenant with this id or name.
    pub async fn resolve_tenant(&self, id_or_name: &str) -> Result<Tenant, EngineError> {
        if id_or_name.is_empty() {
            return Err(EngineError::InvalidArgument(
                "a tenant (id or name) is required".into(),
            ));
        }
        self.store
            .find_tenant(id_or_name)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("tenant {id_or_name:?} not found")))
    }
}
