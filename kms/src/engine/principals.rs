//! Principals and their tokens.

use super::{Engine, EngineError, validate_name};
use crate::auth::token::Token;
use crate::model::{Principal, Role, Tenant};

impl Engine {
    /// Creates a principal and returns it with its token, which is shown only this once.
    pub async fn create_principal(
        &self,
        name: &str,
        role: Role,
        tenant: Option<&Tenant>,
    ) -> Result<(Principal, Token), EngineError> {
        validate_name("principal", name, &['-', '_', '.', '@'])?;
        match (role.is_tenant_bound(), tenant) {
            (true, None) => {
                return Err(EngineError::InvalidArgument(format!(
                    "role {role} needs a tenant"
                )));
            }
            (false, Some(_)) => {
                return Err(EngineError::InvalidArgument(format!(
                    "role {role} is not bound to a tenant: leave the tenant empty"
                )));
            }
            _ => {}
        }
        let token = Token::generate()?;
        let principal = Principal {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            role,
            tenant_id: tenant.map(|t| t.id.clone()),
            created_at: self.now(),
            revoked_at: None,
        };
        self.store
            .insert_principal(&principal, &token.hash())
            .await?;
        Ok((principal, token))
    }

    /// Every principal, revoked ones included.
    pub async fn list_principals(&self) -> Result<Vec<Principal>, EngineError> {
        Ok(self.store.list_principals().await?)
    }

    /// Revokes a principal by id or active name; its token stops working at once.
    pub async fn revoke_principal(&self, id_or_name: &str) -> Result<Principal, EngineError> {
        let found = self
            .store
            .find_principal(id_or_name)
            .await?
            .ok_or_else(|| {
                EngineError::NotFound(format!(
                    "no active principal named {id_or_name:?}: a revoked principal is named by its id"
                ))
            })?;
        self.store
            .revoke_principal(&found.id, self.now())
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("principal {id_or_name:?} not found")))
    }
}
