//! The one mapping from engine errors to gRPC statuses.

use tonic::Status;

use crate::auth::policy::Denied;
use crate::engine::EngineError;

/// The gRPC status for an engine error; the message is safe to show the caller.
pub fn from_engine(err: EngineError) -> Status {
    let message = err.to_string();
    match err {
        EngineError::InvalidArgument(_) => Status::invalid_argument(message),
        EngineError::NotFound(_) => Status::not_found(message),
        EngineError::AlreadyExists(_) => Status::already_exists(message),
        EngineError::FailedPrecondition(_) => Status::failed_precondition(message),
        EngineError::PermissionDenied(_) => Status::permission_denied(message),
        EngineError::Aborted(_) => Status::aborted(message),
        EngineError::Sealed | EngineError::Unavailable => Status::unavailable(message),
        EngineError::Internal(_) => Status::internal(message),
    }
}

impl From<EngineError> for Status {
    fn from(err: EngineError) -> Self {
        from_engine(err)
    }
}

impl From<crate::store::StoreError> for Status {
    fn from(err: crate::store::StoreError) -> Self {
        from_engine(err.into())
    }
}

impl From<Denied> for Status {
    fn from(denied: Denied) -> Self {
        Status::permission_denied(denied.0)
    }
}
