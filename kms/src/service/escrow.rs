//! `kagi.v1.Escrow`: bundles made by approved exports, and imports collecting shares.

use kagi_proto::v1 as pb;
use kagi_proto::v1::escrow_server;
use tonic::{Request, Response, Status};

use super::Call;
use crate::auth::policy::Action;
use crate::engine::Engine;
use crate::escrow::bundle::Bundle;
use crate::store::escrow::{ImportState, StagedImport};

/// The `Escrow` service.
#[derive(Debug, Clone)]
pub struct EscrowService {
    engine: Engine,
}

impl EscrowService {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl escrow_server::Escrow for EscrowService {
    async fn get_bundle(
        &self,
        request: Request<pb::GetBundleRequest>,
    ) -> Result<Response<pb::GetBundleResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "GetBundle", Action::ReadEscrow).await?;
        let id = request.into_inner().proposal_id;
        let result =
            async {
                let exported = self.engine.store().exported_bundle(&id).await?.ok_or_else(
                    || {
                        Status::not_found(format!(
                            "proposal {id} made no escrow bundle: is it an executed escrow-export \
                         proposal? (kagictl quorum show {id})"
                        ))
                    },
                )?;
                call.tenant(&exported.tenant_id);
                Ok(pb::GetBundleResponse {
                    bundle: exported.bundle,
                    digest: exported.digest,
                    tenant_id: exported.tenant_id,
                    created_at: exported.created_at,
                })
            }
            .await;
        call.finish(&id, result).await.map(Response::new)
    }

    async fn get_signer(
        &self,
        request: Request<pb::GetSignerRequest>,
    ) -> Result<Response<pb::GetSignerResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "GetSigner", Action::ReadEscrow).await?;
        let result = async {
            Ok(pb::GetSignerResponse {
                signer: self.engine.escrow_signer()?,
            })
        }
        .await;
        call.finish("", result).await.map(Response::new)
    }

    async fn stage_import(
        &self,
        request: Request<pb::StageImportRequest>,
    ) -> Result<Response<pb::ImportStatus>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "StageImport", Action::StageEscrow)
                .await?;
        let req = request.into_inner();
        let mut resource = String::new();
        let result = async {
            let import = self
                .engine
                .stage_import(&req.bundle, &req.expected_signer, call.principal())
                .await?;
            call.tenant(&import.tenant_id);
            resource = import.digest.clone();
            status(&import)
        }
        .await;
        call.finish(&resource, result).await.map(Response::new)
    }

    async fn get_import(
        &self,
        request: Request<pb::GetImportRequest>,
    ) -> Result<Response<pb::ImportStatus>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "GetImport", Action::ReadEscrow).await?;
        let digest = request.into_inner().bundle_digest;
        let result = async { status(&self.engine.escrow_import(&digest).await?) }.await;
        call.finish(&digest, result).await.map(Response::new)
    }

    async fn submit_escrow_share(
        &self,
        request: Request<pb::SubmitEscrowShareRequest>,
    ) -> Result<Response<pb::ImportStatus>, Status> {
        let call = Call::begin_authorized(
            &self.engine,
            &request,
            "SubmitEscrowShare",
            Action::SubmitEscrowShare,
        )
        .await?;
        let req = request.into_inner();
        // The share is secret: its buffer is wiped when the call ends.
        let share = zeroize::Zeroizing::new(req.share);
        let result = async {
            let import = self
                .engine
                .submit_escrow_share(&req.bundle_digest, &share, call.principal())
                .await?;
            call.tenant(&import.tenant_id);
            status(&import)
        }
        .await;
        // The share itself is never recorded; the digest says which import it went to.
        call.finish(&req.bundle_digest, result)
            .await
            .map(Response::new)
    }
}

/// The protobuf form of an import, with what its bundle says about itself.
fn status(import: &StagedImport) -> Result<pb::ImportStatus, Status> {
    let bundle = Bundle::from_json(&import.bundle)
        .map_err(|e| Status::internal(format!("a staged bundle no longer verifies: {e}")))?;
    Ok(pb::ImportStatus {
        bundle_digest: import.digest.clone(),
        tenant_id: import.tenant_id.clone(),
        tenant_name: import.tenant_name.clone(),
        state: match import.state {
            ImportState::Staged => pb::ImportState::ImportStaged,
            ImportState::Authorised => pb::ImportState::ImportAuthorised,
            ImportState::Imported => pb::ImportState::ImportDone,
            ImportState::Failed => pb::ImportState::ImportFailed,
        } as i32,
        threshold: u32::from(bundle.metadata.threshold),
        custodians: bundle
            .metadata
            .custodians
            .iter()
            .map(|c| c.name.clone())
            .collect(),
        shares_received: import.shares.iter().map(|&i| u32::from(i)).collect(),
        proposal_id: import.proposal_id.clone().unwrap_or_default(),
        staged_at: import.staged_at,
        finished_at: import.finished_at.unwrap_or_default(),
        result: import.result.clone().unwrap_or_default(),
        signer: bundle.signer.clone(),
        source_instance: bundle.metadata.source_instance.clone(),
    })
}
