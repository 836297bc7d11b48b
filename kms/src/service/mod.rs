//! tonic handlers, one file per gRPC service. Each handler begins a [`Call`] (origin and
//! authentication), authorises, validates, calls the [`Engine`](crate::engine::Engine), maps
//! errors to a `Status`, and finishes the call, which waits for its audit record.
//!
//! - [`key_management`] — `kagi.v1.KeyManagement`.
//! - [`crypto`] — `kagi.v1.Crypto`.
//! - [`principals`] — `kagi.v1.PrincipalManagement`.
//! - [`quorum`] — `kagi.v1.Quorum`: proposals and approvals.
//! - [`escrow`] — `kagi.v1.Escrow`: escrow bundles and imports.
//! - [`custodian`] — `kagi.v1.Custodian`: seal status and root key ceremonies.
//! - [`audit`] — `kagi.v1.Audit`: query, verify, export.
//! - [`call`] — one RPC from authentication to its durable audit record.
//! - [`convert`] — model ↔ protobuf conversions.
//! - [`status`] — error → `tonic::Status`.

pub mod audit;
pub mod call;
pub mod convert;
pub mod crypto;
pub mod custodian;
pub mod escrow;
pub mod key_management;
pub mod principals;
pub mod quorum;
pub mod status;

use tonic::{Request, Status};

use crate::auth::policy::{Action, authorize, authorize_role};
use crate::auth::{self, AuthError};
use crate::engine::Engine;
use crate::model::{Key, Principal};
pub use call::Call;

/// Finds the principal behind a request's bearer token.
async fn authenticate<T>(engine: &Engine, request: &Request<T>) -> Result<Principal, Status> {
    let header = request.metadata().get("authorization");
    let presented = match header {
        None => None,
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| Status::unauthenticated("the authorization header is not ASCII"))?;
            let token = text
                .strip_prefix("Bearer ")
                .or_else(|| text.strip_prefix("bearer "))
                .ok_or_else(|| {
                    Status::unauthenticated("the authorization header must be 'Bearer <token>'")
                })?;
            Some(token.trim())
        }
    };
    let result = auth::authenticate(engine.store(), presented).await;
    result.map_err(|err| match err {
        AuthError::Store(e) => status::from_engine(e.into()),
        other => {
            tracing::warn!(
                event = "authentication_failed",
                peer = ?request.remote_addr(),
                reason = %other,
            );
            Status::unauthenticated(other.to_string())
        }
    })
}

/// Resolves a key that `principal` may act on with `action`.
///
/// A tenant-bound principal that names another tenant's key as `TENANT/NAME` is refused before
/// any lookup, so it cannot learn which tenants or key names exist.
async fn authorized_key(
    engine: &Engine,
    call: &Call,
    action: Action,
    reference: &str,
) -> Result<Key, Status> {
    let principal = call.principal();
    authorize_role(principal, action)?;
    if let (Some(own), Some((tenant, _))) =
        (principal.tenant_id.as_deref(), reference.split_once('/'))
        && tenant != own
        && engine.resolve_tenant(own).await?.name != tenant
    {
        // `tenant` is not the principal's own tenant, so this refuses.
        authorize(principal, action, Some(tenant))?;
    }
    let key = engine.resolve_key(reference).await?;
    call.key(&key);
    authorize(principal, action, Some(&key.tenant_id))?;
    Ok(key)
}
