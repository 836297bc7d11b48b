//! `kagi.v1.Quorum`: proposals of sensitive operations and their approvals.

use kagi_proto::v1 as pb;
use kagi_proto::v1::quorum_server;
use tonic::{Request, Response, Status};

use super::Call;
use crate::auth::policy::Action;
use crate::engine::Engine;
use crate::model::VersionState;
use crate::quorum::proposal::Operation;
use crate::quorum::{Quorum, QuorumError};
use crate::store::escrow::ImportState;
use crate::store::quorum::{ProposalState, StoredProposal};

/// The `Quorum` service.
#[derive(Debug, Clone)]
pub struct QuorumService {
    engine: Engine,
    quorum: Quorum,
}

impl QuorumService {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self {
            quorum: Quorum::new(engine.clone()),
            engine,
        }
    }

    /// FAILED_PRECONDITION if a retention hold keeps `key_id` from destruction now: refused
    /// when proposed, not only when it would run, so custodians never approve in vain.
    async fn refuse_held(&self, key_id: &str) -> Result<(), Status> {
        if let Some(hold) = self.engine.store().retention_hold(key_id).await?
            && hold.until > self.engine.now()
        {
            return Err(Status::failed_precondition(format!(
                "key {key_id} is under a retention hold until {} ({}): it cannot be scheduled \
                 for destruction before then",
                crate::clock::rfc3339(hold.until),
                hold.reason
            )));
        }
        Ok(())
    }

    /// The operation a request names, with tenants and keys resolved to their ids.
    async fn operation(&self, op: Option<pb::Operation>) -> Result<Operation, Status> {
        use pb::operation::Kind;
        let tenant = |name: String| async move {
            match name.as_str() {
                "" => Ok::<_, Status>(None),
                t => Ok(Some(self.engine.resolve_tenant(t).await?.id)),
            }
        };
        match op.and_then(|o| o.kind) {
            Some(Kind::Lockdown(l)) => {
                if l.reason.trim().is_empty() {
                    return Err(Status::invalid_argument(
                        "a lockdown needs a reason (an incident number or a sentence)",
                    ));
                }
                Ok(Operation::Lockdown {
                    tenant: tenant(l.tenant).await?,
                    reason: l.reason,
                })
            }
            Some(Kind::LiftLockdown(l)) => Ok(Operation::LiftLockdown {
                tenant: tenant(l.tenant).await?,
            }),
            Some(Kind::SetRotationPeriod(r)) => {
                if !(1..=3650).contains(&r.rotation_period_days) {
                    return Err(Status::invalid_argument(
                        "rotation_period_days must be 1 to 3650",
                    ));
                }
                let key = self.engine.resolve_key(&r.key).await?;
                if key.purpose.protects_school_data() && r.rotation_period_days > 365 {
                    // Even a quorum cannot suspend the yearly rule (catalogue K4).
                    return Err(Status::invalid_argument(format!(
                        "key {} protects school data: its rotation period is at most 365 days (catalogue K4)",
                        key.id
                    )));
                }
                Ok(Operation::SetRotationPeriod {
                    key_id: key.id,
                    days: r.rotation_period_days,
                })
            }
            Some(Kind::ScheduleKeyDestruction(d)) => {
                let key = self.engine.resolve_key(&d.key).await?;
                self.refuse_held(&key.id).await?;
                Ok(Operation::ScheduleKeyDestruction {
                    key_id: key.id,
                    waiting_days: waiting_days(d.waiting_days)?,
                })
            }
            Some(Kind::ScheduleTenantDestruction(d)) => {
                let tenant = self.engine.resolve_tenant(&d.tenant).await?;
                for key in self.engine.tenant_keys(&tenant.id).await? {
                    self.refuse_held(&key.id).await?;
                }
                Ok(Operation::ScheduleTenantDestruction {
                    tenant_id: tenant.id,
                    waiting_days: waiting_days(d.waiting_days)?,
                })
            }
            Some(Kind::EscrowExport(e)) => {
                let threshold = u8::try_from(e.threshold)
                    .map_err(|_| Status::invalid_argument("threshold must be at most 255"))?;
                // Checked now, so custodians never approve an export that cannot be made.
                self.engine.escrow_custodians(&e.custodians).await?;
                crate::crypto::sharing::check_parameters(
                    threshold,
                    u8::try_from(e.custodians.len()).unwrap_or(u8::MAX),
                )
                .map_err(|err| Status::invalid_argument(format!("escrow custodians: {err}")))?;
                Ok(Operation::EscrowExport {
                    tenant_id: self.engine.resolve_tenant(&e.tenant).await?.id,
                    custodians: e.custodians,
                    threshold,
                })
            }
            Some(Kind::MarkCompromised(m)) => {
                let key = self.engine.resolve_key(&m.key).await?;
                let version = self
                    .engine
                    .store()
                    .get_version(&key.id, m.version)
                    .await?
                    .ok_or_else(|| {
                        Status::not_found(format!("key {} has no version {}", key.id, m.version))
                    })?;
                if !matches!(
                    version.state,
                    VersionState::Active | VersionState::Deactivated
                ) {
                    return Err(Status::failed_precondition(format!(
                        "version {} of key {} is {}: only an active or deactivated version can \
                         be marked compromised",
                        m.version, key.id, version.state
                    )));
                }
                Ok(Operation::MarkCompromised {
                    key_id: key.id,
                    version: m.version,
                })
            }
            Some(Kind::EscrowImport(e)) => {
                let import = self.engine.escrow_import(&e.bundle_digest).await?;
                if import.state != ImportState::Staged {
                    return Err(Status::failed_precondition(format!(
                        "escrow bundle {} is {}, not waiting for approval",
                        import.digest,
                        import.state.as_str()
                    )));
                }
                Ok(Operation::EscrowImport {
                    bundle_digest: import.digest,
                    tenant_id: import.tenant_id,
                    tenant_name: import.tenant_name,
                })
            }
            None => Err(Status::invalid_argument(
                "operation is required: lockdown, lift_lockdown, set_rotation_period, \
                 schedule_key_destruction, schedule_tenant_destruction, mark_compromised, \
                 escrow_export or escrow_import",
            )),
        }
    }
}

#[tonic::async_trait]
impl quorum_server::Quorum for QuorumService {
    async fn propose(
        &self,
        request: Request<pb::ProposeRequest>,
    ) -> Result<Response<pb::ProposalResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "Propose", Action::Propose).await?;
        let req = request.into_inner();
        let mut resource = String::new();
        let result = async {
            let operation = self.operation(req.operation).await?;
            resource = operation.describe();
            let proposal = self
                .quorum
                .propose(call.principal(), operation, req.ttl_seconds)
                .await
                .map_err(from_quorum)?;
            resource = format!("{}: {resource}", proposal.signed.id);
            Ok(response(&proposal))
        }
        .await;
        call.finish(&resource, result).await.map(Response::new)
    }

    async fn approve(
        &self,
        request: Request<pb::ApproveRequest>,
    ) -> Result<Response<pb::ProposalResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "Approve", Action::Approve).await?;
        let req = request.into_inner();
        let result = self
            .quorum
            .approve(call.principal(), &req.proposal_id, &req.signature)
            .await
            .map(|p| response(&p))
            .map_err(from_quorum);
        let result = match result {
            Ok(r) => Ok(self.named(r).await),
            err => err,
        };
        let resource = match &result {
            Ok(r) => {
                let p = r.proposal.as_ref().expect("set");
                format!(
                    "{}: {} of {} approvals, {}",
                    p.id,
                    p.approvals.len(),
                    p.threshold,
                    state_name(p.state)
                )
            }
            Err(_) => req.proposal_id.clone(),
        };
        call.finish(&resource, result).await.map(Response::new)
    }

    async fn get_proposal(
        &self,
        request: Request<pb::GetProposalRequest>,
    ) -> Result<Response<pb::ProposalResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "GetProposal", Action::ReadProposals)
                .await?;
        let id = request.into_inner().proposal_id;
        let result = self
            .quorum
            .get(&id)
            .await
            .map(|p| response(&p))
            .map_err(from_quorum);
        let result = match result {
            Ok(r) => Ok(self.named(r).await),
            err => err,
        };
        call.finish(&id, result).await.map(Response::new)
    }

    async fn list_proposals(
        &self,
        request: Request<pb::ListProposalsRequest>,
    ) -> Result<Response<pb::ListProposalsResponse>, Status> {
        let call = Call::begin_authorized(
            &self.engine,
            &request,
            "ListProposals",
            Action::ReadProposals,
        )
        .await?;
        let pending_only = request.into_inner().pending_only;
        let result = self
            .quorum
            .list(pending_only)
            .await
            .map(|all| pb::ListProposalsResponse {
                proposals: all.iter().map(proposal_to_pb).collect(),
            })
            .map_err(from_quorum);
        let result = match result {
            Ok(mut r) => {
                self.name_approvals(&mut r.proposals).await;
                Ok(r)
            }
            err => err,
        };
        call.finish("", result).await.map(Response::new)
    }

    async fn cancel_proposal(
        &self,
        request: Request<pb::CancelProposalRequest>,
    ) -> Result<Response<pb::ProposalResponse>, Status> {
        let call =
            Call::begin_authorized(&self.engine, &request, "CancelProposal", Action::Propose)
                .await?;
        let id = request.into_inner().proposal_id;
        let result = self
            .quorum
            .cancel(call.principal(), &id)
            .await
            .map(|p| response(&p))
            .map_err(from_quorum);
        call.finish(&id, result).await.map(Response::new)
    }
}

/// A destruction's waiting period: 0 means the default of 30 days; else 7 to 30 (catalogue D1
/// gives time to notice a mistake or an abuse and cancel).
fn waiting_days(days: u32) -> Result<u32, Status> {
    match days {
        0 => Ok(DEFAULT_WAITING_DAYS),
        7..=30 => Ok(days),
        d => Err(Status::invalid_argument(format!(
            "waiting_days {d} is outside 7 to 30 (0 means the default, 30)"
        ))),
    }
}

/// Waiting period of a destruction when the request gives none.
pub const DEFAULT_WAITING_DAYS: u32 = 30;

/// The gRPC status of a refused step.
pub fn from_quorum(err: QuorumError) -> Status {
    let message = err.to_string();
    match err {
        QuorumError::InvalidArgument(_) => Status::invalid_argument(message),
        QuorumError::PermissionDenied(_) => Status::permission_denied(message),
        QuorumError::NotFound(_) => Status::not_found(message),
        QuorumError::FailedPrecondition(_) => Status::failed_precondition(message),
        QuorumError::Engine(e) => e.into(),
    }
}

fn response(p: &StoredProposal) -> pb::ProposalResponse {
    pb::ProposalResponse {
        proposal: Some(proposal_to_pb(p)),
    }
}

impl QuorumService {
    /// Fills in approvers' names, so approvers see people, not ids.
    async fn named(&self, mut response: pb::ProposalResponse) -> pb::ProposalResponse {
        if let Some(p) = response.proposal.as_mut() {
            self.name_approvals(std::slice::from_mut(p)).await;
        }
        response
    }

    async fn name_approvals(&self, proposals: &mut [pb::Proposal]) {
        let Ok(principals) = self.engine.list_principals().await else {
            return;
        };
        for approval in proposals.iter_mut().flat_map(|p| p.approvals.iter_mut()) {
            if let Some(p) = principals.iter().find(|p| p.id == approval.principal_id) {
                approval.principal_name = p.name.clone();
            }
        }
    }
}

/// A stored proposal as protobuf; tenants and keys appear by id.
pub fn proposal_to_pb(p: &StoredProposal) -> pb::Proposal {
    let state = match p.state {
        ProposalState::Pending => pb::ProposalState::Pending,
        ProposalState::Executed => pb::ProposalState::Executed,
        ProposalState::Cancelled => pb::ProposalState::Cancelled,
        ProposalState::Expired => pb::ProposalState::Expired,
        ProposalState::Failed => pb::ProposalState::Failed,
    };
    pb::Proposal {
        id: p.signed.id.clone(),
        operation: Some(p.signed.operation.to_pb()),
        description: p.signed.operation.describe(),
        proposer_id: p.signed.proposer_id.clone(),
        digest: hex::encode(p.digest),
        created_at: p.signed.created_at,
        expires_at: p.signed.expires_at,
        threshold: p.signed.threshold,
        state: state as i32,
        approvals: p
            .approvals
            .iter()
            .map(|a| pb::Approval {
                principal_id: a.principal_id.clone(),
                principal_name: String::new(),
                approved_at: a.approved_at,
            })
            .collect(),
        finished_at: p.finished_at.unwrap_or(0),
        result: p.result.clone().unwrap_or_default(),
        nonce: p.signed.nonce.clone(),
    }
}

fn state_name(state: i32) -> &'static str {
    match pb::ProposalState::try_from(state) {
        Ok(pb::ProposalState::Pending) => "pending",
        Ok(pb::ProposalState::Executed) => "executed",
        Ok(pb::ProposalState::Cancelled) => "cancelled",
        Ok(pb::ProposalState::Expired) => "expired",
        Ok(pb::ProposalState::Failed) => "failed",
        _ => "unknown",
    }
}
