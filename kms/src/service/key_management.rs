//! `kagi.v1.KeyManagement`: tenants and keys.

use kagi_proto::v1 as pb;
use kagi_proto::v1::key_management_server::KeyManagement;
use tonic::{Request, Response, Status};

use super::{Call, authorized_key, convert};
use crate::auth::policy::{Action, authorize, authorize_role};
use crate::engine::Engine;
use crate::engine::keys::NewKey;
use crate::engine::rotation::{RotatedKey, RotationReport};
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
        let call = Call::begin_unsealed(&self.engine, &request, op).await?;
        let reference = request.into_inner();
        let result = async {
            let key = authorized_key(&self.engine, &call, Action::ManageKey, &reference).await?;
            let key = self.engine.set_key_state(&key, state).await?;
            Ok(convert::key(&key, &[]))
        }
        .await;
        call.finish(&reference, result).await
    }
}

#[tonic::async_trait]
impl KeyManagement for KeyManagementService {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "CreateTenant").await?;
        let principal = call.principal().clone();
        let name = request.into_inner().name;
        let result = async {
            authorize(&principal, Action::CreateTenant, None)?;
            let tenant = self.engine.create_tenant(&name).await?;
            call.tenant(&tenant.id);
            Ok(pb::CreateTenantResponse {
                tenant: Some(convert::tenant(&tenant)),
            })
        }
        .await;
        call.finish(&name, result).await.map(Response::new)
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "ListTenants").await?;
        let principal = call.principal().clone();
        let result = async {
            authorize(&principal, Action::ListTenants, None)?;
            let tenants = self.engine.list_tenants().await?;
            Ok(pb::ListTenantsResponse {
                tenants: tenants.iter().map(convert::tenant).collect(),
            })
        }
        .await;
        call.finish("", result).await.map(Response::new)
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "CreateKey").await?;
        let principal = call.principal().clone();
        let req = request.into_inner();
        let result = async {
            authorize_role(&principal, Action::CreateKey)?;
            let tenant = self.engine.resolve_tenant(&req.tenant).await?;
            call.tenant(&tenant.id);
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
            call.key(&key);
            call.version(key.primary_version);
            let versions = self.engine.key_versions(&key).await?;
            Ok(pb::CreateKeyResponse {
                key: Some(convert::key(&key, &versions)),
            })
        }
        .await;
        call.finish(&format!("{}/{}", req.tenant, req.name), result)
            .await
            .map(Response::new)
    }

    async fn get_key(
        &self,
        request: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::GetKeyResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "GetKey").await?;
        let reference = request.into_inner().key;
        let result = async {
            let key = authorized_key(&self.engine, &call, Action::ReadKey, &reference).await?;
            let versions = self.engine.key_versions(&key).await?;
            Ok(pb::GetKeyResponse {
                key: Some(convert::key(&key, &versions)),
            })
        }
        .await;
        call.finish(&reference, result).await.map(Response::new)
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "ListKeys").await?;
        let principal = call.principal().clone();
        let req = request.into_inner();
        let result = async {
            authorize_role(&principal, Action::ReadKey)?;
            let tenant_id = match (req.tenant.as_str(), principal.tenant_id.as_deref()) {
                ("", own) => own.map(str::to_owned),
                (named, _) => Some(self.engine.resolve_tenant(named).await?.id),
            };
            if let Some(tenant) = &tenant_id {
                call.tenant(tenant);
            }
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
        call.finish(&req.tenant, result).await.map(Response::new)
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::RotateKeyResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "RotateKey").await?;
        let req = request.into_inner();
        let result = async {
            let key = authorized_key(&self.engine, &call, Action::ManageKey, &req.key).await?;
            let expected =
                (req.expected_current_version != 0).then_some(req.expected_current_version);
            let key = self.engine.rotate_key(&key, expected).await?;
            call.version(key.primary_version);
            let versions = self.engine.key_versions(&key).await?;
            Ok(pb::RotateKeyResponse {
                key: Some(convert::key(&key, &versions)),
            })
        }
        .await;
        call.finish(&req.key, result).await.map(Response::new)
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

    async fn cancel_key_destruction(
        &self,
        request: Request<pb::CancelKeyDestructionRequest>,
    ) -> Result<Response<pb::CancelKeyDestructionResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "CancelKeyDestruction").await?;
        let reference = request.into_inner().key;
        let result = async {
            let key = authorized_key(&self.engine, &call, Action::ManageKey, &reference).await?;
            let key = self.engine.cancel_destruction(&key).await?;
            Ok(pb::CancelKeyDestructionResponse {
                key: Some(convert::key(&key, &[])),
            })
        }
        .await;
        call.finish(&reference, result).await.map(Response::new)
    }

    async fn set_retention_hold(
        &self,
        request: Request<pb::SetRetentionHoldRequest>,
    ) -> Result<Response<pb::SetRetentionHoldResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "SetRetentionHold").await?;
        let req = request.into_inner();
        let result = async {
            let key = authorized_key(&self.engine, &call, Action::ManageKey, &req.key).await?;
            let hold = self
                .engine
                .set_retention_hold(&key, req.until, &req.reason, call.principal())
                .await?;
            Ok(pb::SetRetentionHoldResponse {
                key_id: hold.key_id,
                until: hold.until,
                reason: hold.reason,
            })
        }
        .await;
        // The record names the date and the reason, not only the key.
        let resource = format!(
            "{}: until {} ({})",
            req.key,
            crate::clock::rfc3339(req.until),
            req.reason.trim()
        );
        call.finish(&resource, result).await.map(Response::new)
    }

    async fn get_destruction_record(
        &self,
        request: Request<pb::GetDestructionRecordRequest>,
    ) -> Result<Response<pb::GetDestructionRecordResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "GetDestructionRecord").await?;
        let reference = request.into_inner().key;
        let result = async {
            let key = authorized_key(&self.engine, &call, Action::ReadKey, &reference).await?;
            let record = self.engine.destruction_record(&key).await?;
            let text = crate::destruction::record::Record::from_json(&record)
                .map_err(|e| Status::internal(format!("a stored destruction record: {e}")))?
                .render();
            Ok(pb::GetDestructionRecordResponse { record, text })
        }
        .await;
        call.finish(&reference, result).await.map(Response::new)
    }

    async fn rotate_due(
        &self,
        request: Request<pb::RotateDueRequest>,
    ) -> Result<Response<pb::RotateDueResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "RotateDue").await?;
        let principal = call.principal().clone();
        let req = request.into_inner();
        let result = async {
            authorize_role(&principal, Action::ManageKey)?;
            let tenant = match req.tenant.as_str() {
                "" => None,
                named => {
                    let tenant = self.engine.resolve_tenant(named).await?;
                    call.tenant(&tenant.id);
                    authorize(&principal, Action::ManageKey, Some(&tenant.id))?;
                    Some(tenant.id)
                }
            };
            let report = self
                .engine
                .rotate_due(tenant.as_deref(), req.dry_run)
                .await?;
            Ok(rotation_report(report))
        }
        .await;
        let resource = format!(
            "{}{}",
            if req.tenant.is_empty() {
                "all tenants"
            } else {
                &req.tenant
            },
            if req.dry_run { " (dry run)" } else { "" }
        );
        call.finish(&resource, result).await.map(Response::new)
    }

    async fn version_usage(
        &self,
        request: Request<pb::VersionUsageRequest>,
    ) -> Result<Response<pb::VersionUsageResponse>, Status> {
        let call = Call::begin_unsealed(&self.engine, &request, "VersionUsage").await?;
        let reference = request.into_inner().key;
        let result = async {
            let key = authorized_key(&self.engine, &call, Action::ReadKey, &reference).await?;
            let usage = self.engine.version_usage(&key).await?;
            Ok(pb::VersionUsageResponse {
                versions: usage
                    .iter()
                    .map(|(version, counts)| pb::VersionUsageEntry {
                        version: version.version,
                        state: convert::version_state(version.state) as i32,
                        encrypts: counts.encrypts,
                        decrypts: counts.decrypts,
                        last_used_at: counts.last_used_at,
                        created_at: version.created_at,
                    })
                    .collect(),
                key_id: key.id,
            })
        }
        .await;
        call.finish(&reference, result).await.map(Response::new)
    }
}

/// A rotation run as its protobuf response.
fn rotation_report(report: RotationReport) -> pb::RotateDueResponse {
    let rotated = |k: RotatedKey| pb::RotatedKey {
        key_id: k.key_id,
        tenant_id: k.tenant_id,
        tenant_name: k.tenant_name,
        name: k.name,
        from_version: k.from_version,
        to_version: k.to_version,
        due_at: k.due_at,
    };
    pb::RotateDueResponse {
        rotated: report.rotated.into_iter().map(rotated).collect(),
        failed: report
            .failed
            .into_iter()
            .map(|f| pb::FailedRotation {
                key_id: f.key_id,
                tenant_id: f.tenant_id,
                tenant_name: f.tenant_name,
                name: f.name,
                reason: f.reason,
            })
            .collect(),
        checked: report.checked,
        not_due: report.not_due,
        already_rotated: report.already_rotated.into_iter().map(rotated).collect(),
        dry_run: report.dry_run,
    }
}
