//! `kagi.v1.PrincipalManagement`: principals and their tokens.

use kagi_proto::v1 as pb;
use kagi_proto::v1::principal_management_server::PrincipalManagement;
use tonic::{Request, Response, Status};

use super::{Call, convert};
use crate::auth::policy::{Action, authorize};
use crate::engine::Engine;

/// The `PrincipalManagement` service.
#[derive(Debug, Clone)]
pub struct PrincipalService {
    engine: Engine,
}

impl PrincipalService {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl PrincipalManagement for PrincipalService {
    async fn create_principal(
        &self,
        request: Request<pb::CreatePrincipalRequest>,
    ) -> Result<Response<pb::CreatePrincipalResponse>, Status> {
        let call = Call::begin(&self.engine, &request, "CreatePrincipal").await?;
        let principal = call.principal().clone();
        let req = request.into_inner();
        let result = async {
            authorize(&principal, Action::ManagePrincipal, None)?;
            let role = convert::role_from_pb(req.role)?;
            let tenant = match req.tenant.as_str() {
                "" => None,
                t => Some(self.engine.resolve_tenant(t).await?),
            };
            let (created, token) = self
                .engine
                .create_principal(&req.name, role, tenant.as_ref())
                .await?;
            Ok(pb::CreatePrincipalResponse {
                principal: Some(convert::principal(&created)),
                token: token.expose().to_owned(),
            })
        }
        .await;
        call.finish(&req.name, result).await.map(Response::new)
    }

    async fn list_principals(
        &self,
        request: Request<pb::ListPrincipalsRequest>,
    ) -> Result<Response<pb::ListPrincipalsResponse>, Status> {
        let call = Call::begin(&self.engine, &request, "ListPrincipals").await?;
        let principal = call.principal().clone();
        let result = async {
            authorize(&principal, Action::ListPrincipals, None)?;
            let all = self.engine.list_principals().await?;
            Ok(pb::ListPrincipalsResponse {
                principals: all.iter().map(convert::principal).collect(),
            })
        }
        .await;
        call.finish("", result).await.map(Response::new)
    }

    async fn revoke_principal(
        &self,
        request: Request<pb::RevokePrincipalRequest>,
    ) -> Result<Response<pb::RevokePrincipalResponse>, Status> {
        let call = Call::begin(&self.engine, &request, "RevokePrincipal").await?;
        let principal = call.principal().clone();
        let target = request.into_inner().principal;
        let result = async {
            authorize(&principal, Action::ManagePrincipal, None)?;
            let revoked = self.engine.revoke_principal(&target).await?;
            Ok(pb::RevokePrincipalResponse {
                principal: Some(convert::principal(&revoked)),
            })
        }
        .await;
        call.finish(&target, result).await.map(Response::new)
    }
}
