//! `kagi.v1.KeyManagement`: tenants and keys.

use kagi_proto::v1 as pb;
use kagi_proto::v1::key_management_server::KeyManagement;
use tonic::{Request, Response, Status};

use super::{authenticate, authorized_key, convert, record};
use crate::auth::policy::{Action, authorize, authorize_role};
use crate::engine::Engine;
use crate::engine::keys::NewKey;
use crate::model::KeyState;

/// The `KeyManagement` service.
#[derive(Debug, Clone)]
pub struct KeyManagementService {
    engine: Engine,
}

impl KeyManagementService {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    async fn set_state(
        &self,
        request: Request<String>,
        state: KeyState,
        op: &'static str,
    ) -> Result<pb::Key, Status> {
        let principal = authenticate(&self.engine, &request).await?;
        let reference = request.into_inner();
        let result = async {
            let key =
                authorized_key(&self.engine, &principal, Action::ManageKey, &reference).await?;
            let key = self.engine.set_key_state(&key, state).await?;
            Ok(convert::key(&key, &[]))
        }
        .await;
        record(&self.engine, op, Some(&principal), &reference, &result);
        result
    }
}

#[tonic::async_trait]
impl KeyManagement for KeyManagementService {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let principal = authenticate(&self.engine, &request).await?;
        let name = request.into_inner().name;
        let result = async {
            authorize(&principal, Action::CreateTenant, None)?;
            let tenant = self.engine.create_tenant(&name).await?;
            Ok(pb::CreateTenantResponse {
                tenant: Some(convert::tenant(&tenant)),
            })
        }
        .await;
        record(
            &self.engine,
            "CreateTenant",
            Some(&principal),
            &name,
            &result,
        );
        result.map(Response::new)
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let principal = authenticate(&self.engine, &request).await?;
        let result = async {
            authorize(&principal, Action::ListTenants, None)?;
            let tenants = self.engine.list_tenants().await?;
            Ok(pb::ListTenantsResponse {
                tenants: tenants.iter().map(convert::tenant).collect(),
            })
        }
        .await;
        record(&self.engine, "ListTenants", Some(&principal), "", &result);
        result.map(Response::new)
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let principal = authenticate(&self.engine, &request).await?;
        let req = request.into_inner();
        let result = async {
            authorize_role(&principal, Action::CreateKey)?;
            let tenant = self.engine.resolve_tenant(&req.tenant).await?;
            authorize(&principal, Action::CreateKey, Some(&tenant.id))?;
            let new = NewKey {
                tenant_id: tenant.id,
                name: req.name.clone(),
                purpose: convert::purpose_from_pb(req.purpose)?,
                class: convert::class_from_pb(req.importance_class)?,
                domain: convert::domain_from_pb(req.domain)?,
                algorithm: convert::algorithm_from_pb(req.algorithm)?,
                rotation_period_days: (req.rotation_period_days != 0)
                    .then_some(req.rotation_period_days),
            };
            let key = self.engine.create_key(new).await?;
            let versions = self.engine.key_versions(&key).await?;
            Ok(pb::CreateKeyResponse {
                key: Some(convert::key(&key, &versions)),
            })
        }
        .await;
        record(
            &self.engine,
            "CreateKey",
            Some(&principal),
            &format!("{}/{}", req.tenant, req.name),
            &result,
        );
        result.map(Response::new)
    }

    async fn get_key(
        &self,
        request: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::GetKeyResponse>, Status> {
        let principal = authenticate(&self.engine, &request).await?;
        let reference = request.into_inner().key;
        let result = async {
            let key = authorized_key(&self.engine, &principal, Action::ReadKey, &reference).await?;
            let versions = self.engine.key_versions(&key).await?;
            Ok(pb::GetKeyResponse {
                key: Some(convert::key(&key, &versions)),
            })
        }
        .await;
        record(
            &self.engine,
            "GetKey",
            Some(&principal),
            &reference,
            &result,
        );
        result.map(Response::new)
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let principal = authenticate(&self.engine, &request).await?;
        let req = request.into_inner();
        let result = async {
            authorize_role(&principal, Action::ReadKey)?;
            let tenant_id = match (req.tenant.as_str(), principal.tenant_id.as_deref()) {
                ("", own) => own.map(str::to_owned),
                (named, _) => Some(self.engine.resolve_tenant(named).await?.id),
            };
            authorize(&principal, Action::ReadKey, tenant_id.as_deref())?;
            let (keys, next) = self
                .engine
                .list_keys(tenant_id.as_deref(), req.page_size, &req.page_token)
                .await?;
            Ok(pb::ListKeysResponse {
                keys: keys.iter().map(|k| convert::key(k, &[])).collect(),
                next_page_token: next,
            })
        }
        .await;
        record(
            &self.engine,
            "ListKeys",
            Some(&principal),
            &req.tenant,
            &result,
        );
        result.map(Response::new)
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::RotateKeyResponse>, Status> {
        let principal = authenticate(&self.engine, &request).await?;
        let req = request.into_inner();
        let result = async {
            let key = authorized_key(&self.engine, &principal, Action::ManageKey, &req.key).await?;
            let expected =
                (req.expected_current_version != 0).then_some(req.expected_current_version);
            let key = self.engine.rotate_key(&key, expected).await?;
            let versions = self.engine.key_versions(&key).await?;
            Ok(pb::RotateKeyResponse {
                key: Some(convert::key(&key, &versions)),
            })
        }
        .await;
        record(
            &self.engine,
            "RotateKey",
            Some(&principal),
            &req.key,
            &result,
        );
        result.map(Response::new)
    }

    async fn enable_key(
        &self,
        request: Request<pb::EnableKeyRequest>,
    ) -> Result<Response<pb::EnableKeyResponse>, Status> {
        let request = request.map(|r| r.key);
        let key = self
            .set_state(request, KeyState::Enabled, "EnableKey")
            .await?;
        Ok(Response::new(pb::EnableKeyResponse { key: Some(key) }))
    }

    async fn disable_key(
        &self,
        request: Request<pb::DisableKeyRequest>,
    ) -> Result<Response<pb::DisableKeyResponse>, Status> {
        let request = request.map(|r| r.key);
        let key = self
            .set_state(request, KeyState::Disabled, "DisableKey")
            .await?;
        Ok(Response::new(pb::DisableKeyResponse { key: Some(key) }))
    }
}
