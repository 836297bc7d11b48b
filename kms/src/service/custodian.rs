//! `kagi.v1.Custodian`: seal status, custodian enrolment and the root key ceremonies.
//!
//! Every call but `Status` is authenticated and authorised; every call is recorded with who,
//! which share index and the progress, never the share itself.

use std::sync::Arc;

use kagi_proto::v1 as pb;
use kagi_proto::v1::custodian_server;
use tonic::{Request, Response, Status};

use super::{Call, convert};
use crate::auth::policy::Action;
use crate::custody::enrol::Enrolment;
use crate::custody::rekey::{RekeyProgress, Stage};
use crate::custody::share_files::EncryptedShare;
use crate::custody::unseal::{Progress, UnsealOutcome};
use crate::custody::{Custody, CustodyError};
use crate::engine::Engine;
use crate::model::Custodian;

/// The `Custodian` service.
#[derive(Debug, Clone)]
pub struct CustodianService {
    engine: Engine,
    custody: Arc<Custody>,
}

impl CustodianService {
    /// A service running ceremonies with `custody` over `engine`.
    pub fn new(engine: Engine, custody: Arc<Custody>) -> Self {
        Self { engine, custody }
    }
}

#[tonic::async_trait]
impl custodian_server::Custodian for CustodianService {
    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let call = Call::anonymous(&self.engine, &request, "Status");
        let status = match self.custody.status().await {
            Ok(status) => status,
            Err(err) => return Err(call.refuse(from_custody(err)).await),
        };
        let config = status.config.as_ref();
        let response = pb::StatusResponse {
            initialised: config.is_some(),
            sealed: status.sealed,
            threshold: config.map_or(0, |c| c.threshold.into()),
            share_count: config.map_or(0, |c| c.share_count.into()),
            generation: config.map_or(0, |c| c.generation),
            unseal: status.unseal.as_ref().map(progress_to_pb),
            locked_until: status.locked_until.unwrap_or(0),
            rekey_in_progress: status.rekey_in_progress,
            dev_mode: status.dev_mode,
        };
        call.finish("", Ok(response)).await.map(Response::new)
    }

    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "Enroll", Action::EnrollCustodian)
                .await?;
        let req = request.into_inner();
        let result = self
            .custody
            .enrol(Enrolment {
                name: &req.name,
                person_name: &req.person_name,
                public_key: &req.public_key,
                acknowledgement_sha256: &req.acknowledgement_sha256,
                signing_public_key: &req.signing_public_key,
            })
            .await
            .map(|(custodian, token)| pb::EnrollResponse {
                custodian: Some(custodian_to_pb(&custodian)),
                token: token.expose().to_owned(),
            })
            .map_err(from_custody);
        call.finish(&req.name, result).await.map(Response::new)
    }

    async fn list_custodians(
        &self,
        request: Request<pb::ListCustodiansRequest>,
    ) -> Result<Response<pb::ListCustodiansResponse>, Status> {
        let call = Call::begin_authorized(
            &self.engine,
            &request,
            "ListCustodians",
            Action::ListCustodians,
        )
        .await?;
        let result = self
            .custody
            .custodians()
            .await
            .map(|all| pb::ListCustodiansResponse {
                custodians: all.iter().map(custodian_to_pb).collect(),
            })
            .map_err(from_custody);
        call.finish("-", result).await.map(Response::new)
    }

    async fn init(
        &self,
        request: Request<pb::InitRequest>,
    ) -> Result<Response<pb::InitResponse>, Status> {
        let call = Call::begin_authorized(&self.engine, &request, "Init", Action::InitRoot).await?;
        let req = request.into_inner();
        let result = self
            .custody
            .init(&req.custodian_public_keys, req.threshold)
            .await
            .map(|dealt| pb::InitResponse {
                generation: dealt.config.generation,
                threshold: dealt.config.threshold.into(),
                shares: dealt.shares.iter().map(share_to_pb).collect(),
            })
            .map_err(from_custody);
        let resource = format!(
            "root: {} of {}",
            req.threshold,
            req.custodian_public_keys.len()
        );
        call.finish(&resource, result).await.map(Response::new)
    }

    async fn unseal(
        &self,
        request: Request<pb::UnsealRequest>,
    ) -> Result<Response<pb::UnsealResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "Unseal", Action::SubmitShare).await?;
        let mut req = request.into_inner();
        // The share is erased when the call ends, whatever happens.
        let share = zeroize::Zeroizing::new(std::mem::take(&mut req.share));
        let session = (!req.session_id.is_empty()).then_some(req.session_id.as_str());
        let result = self
            .custody
            .unseal(call.principal(), &share, session)
            .await
            .map(|outcome| match outcome {
                UnsealOutcome::Progress(p) => pb::UnsealResponse {
                    progress: Some(progress_to_pb(&p)),
                    sealed: true,
                },
                UnsealOutcome::Unsealed => pb::UnsealResponse {
                    progress: None,
                    sealed: false,
                },
            })
            .map_err(from_custody);
        let resource = match &result {
            Ok(pb::UnsealResponse {
                progress: Some(p), ..
            }) => format!(
                "unseal {}: {} of {}",
                p.session_id, p.submitted, p.threshold
            ),
            Ok(_) => "unseal: complete".to_owned(),
            Err(_) => "unseal".to_owned(),
        };
        call.finish(&resource, result).await.map(Response::new)
    }

    async fn cancel_unseal(
        &self,
        request: Request<pb::CancelUnsealRequest>,
    ) -> Result<Response<pb::CancelUnsealResponse>, Status> {
        let call = Call::begin_authorized(&self.engine, &request, "CancelUnseal", Action::SealRoot)
            .await?;
        let cancelled = self.custody.cancel_unseal().await;
        let result = Ok(pb::CancelUnsealResponse {});
        let resource = if cancelled {
            "unseal session"
        } else {
            "no unseal session"
        };
        call.finish(resource, result).await.map(Response::new)
    }

    async fn seal(
        &self,
        request: Request<pb::SealRequest>,
    ) -> Result<Response<pb::SealResponse>, Status> {
        let call = Call::begin_authorized(&self.engine, &request, "Seal", Action::SealRoot).await?;
        let result = self
            .custody
            .seal()
            .await
            .map(|()| pb::SealResponse {})
            .map_err(from_custody);
        call.finish("root", result).await.map(Response::new)
    }

    async fn start_rekey(
        &self,
        request: Request<pb::StartRekeyRequest>,
    ) -> Result<Response<pb::RekeyResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "StartRekey", Action::SealRoot).await?;
        let req = request.into_inner();
        let result = self
            .custody
            .start_rekey(call.principal(), &req.custodian_public_keys, req.threshold)
            .await
            .map(|p| rekey_to_pb(&p))
            .map_err(from_custody);
        call.finish(&rekey_resource(&result), result)
            .await
            .map(Response::new)
    }

    async fn submit_rekey_share(
        &self,
        request: Request<pb::SubmitRekeyShareRequest>,
    ) -> Result<Response<pb::RekeyResponse>, Status> {
        let call = Call::begin_authorized(
            &self.engine,
            &request,
            "SubmitRekeyShare",
            Action::SubmitShare,
        )
        .await?;
        let mut req = request.into_inner();
        // The share is erased when the call ends, whatever happens.
        let share = zeroize::Zeroizing::new(std::mem::take(&mut req.share));
        let result = self
            .custody
            .submit_rekey_share(call.principal(), &req.session_id, &share)
            .await
            .map(|p| rekey_to_pb(&p))
            .map_err(from_custody);
        call.finish(&rekey_resource(&result), result)
            .await
            .map(Response::new)
    }

    async fn verify_rekey_share(
        &self,
        request: Request<pb::VerifyRekeyShareRequest>,
    ) -> Result<Response<pb::RekeyResponse>, Status> {
        let call = Call::begin_authorized(
            &self.engine,
            &request,
            "VerifyRekeyShare",
            Action::SubmitShare,
        )
        .await?;
        let mut req = request.into_inner();
        // The share is erased when the call ends, whatever happens.
        let share = zeroize::Zeroizing::new(std::mem::take(&mut req.share));
        let result = self
            .custody
            .verify_rekey_share(call.principal(), &req.session_id, &share)
            .await
            .map(|p| rekey_to_pb(&p))
            .map_err(from_custody);
        call.finish(&rekey_resource(&result), result)
            .await
            .map(Response::new)
    }

    async fn get_rekey(
        &self,
        request: Request<pb::GetRekeyRequest>,
    ) -> Result<Response<pb::RekeyResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "GetRekey", Action::ListCustodians)
                .await?;
        let result = match self.custody.rekey().await {
            Some(progress) => Ok(rekey_to_pb(&progress)),
            None => Err(Status::not_found(
                "no rekey is in progress on this kagid node",
            )),
        };
        call.finish("rekey", result).await.map(Response::new)
    }

    async fn cancel_rekey(
        &self,
        request: Request<pb::CancelRekeyRequest>,
    ) -> Result<Response<pb::CancelRekeyResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "CancelRekey", Action::SealRoot).await?;
        let cancelled = self.custody.cancel_rekey().await;
        let result = Ok(pb::CancelRekeyResponse {});
        let resource = if cancelled { "rekey" } else { "no rekey" };
        call.finish(resource, result).await.map(Response::new)
    }
}

/// The gRPC status of a refused ceremony step.
pub fn from_custody(err: CustodyError) -> Status {
    let message = err.to_string();
    match err {
        CustodyError::InvalidArgument(_) => Status::invalid_argument(message),
        CustodyError::PermissionDenied(_) => Status::permission_denied(message),
        CustodyError::FailedPrecondition(_) => Status::failed_precondition(message),
        CustodyError::LockedOut { .. } => Status::resource_exhausted(message),
        CustodyError::Engine(e) => e.into(),
    }
}

fn progress_to_pb(p: &Progress) -> pb::UnsealProgress {
    pb::UnsealProgress {
        session_id: p.session_id.clone(),
        submitted: p.submitted.into(),
        threshold: p.threshold.into(),
        expires_at: p.expires_at,
    }
}

fn custodian_to_pb(c: &Custodian) -> pb::KeyCustodian {
    pb::KeyCustodian {
        principal: Some(convert::principal(&c.principal)),
        person_name: c.person_name.clone(),
        public_key: c.public_key.clone(),
        acknowledgement_sha256: c.acknowledgement_sha256.to_vec(),
        acknowledged_at: c.acknowledged_at,
        share_index: c.share_index.map_or(0, u32::from),
        signing_public_key: c.signing_key.clone().unwrap_or_default(),
    }
}

fn share_to_pb(s: &EncryptedShare) -> pb::EncryptedShare {
    pb::EncryptedShare {
        index: s.index.into(),
        custodian_name: s.custodian_name.clone(),
        public_key: s.public_key.clone(),
        armored_age: s.armored_age.clone(),
    }
}

fn rekey_to_pb(p: &RekeyProgress) -> pb::RekeyResponse {
    let stage = match p.stage {
        Stage::Collecting => pb::RekeyStage::Collecting,
        Stage::Verifying => pb::RekeyStage::Verifying,
        Stage::Completed => pb::RekeyStage::Completed,
    };
    pb::RekeyResponse {
        session_id: p.session_id.clone(),
        stage: stage as i32,
        submitted: p.submitted.into(),
        threshold: p.threshold.into(),
        verified: p.verified.into(),
        new_threshold: p.new_threshold.into(),
        new_generation: p.new_generation,
        new_shares: p.new_shares.iter().map(share_to_pb).collect(),
        expires_at: p.expires_at,
    }
}

/// What the audit line says about a rekey step: session, stage and progress.
fn rekey_resource(result: &Result<pb::RekeyResponse, Status>) -> String {
    match result {
        Ok(r) => format!(
            "rekey {} stage {}: {} of {} current, {} of {} new",
            r.session_id, r.stage, r.submitted, r.threshold, r.verified, r.new_threshold
        ),
        Err(_) => "rekey".to_owned(),
    }
}
