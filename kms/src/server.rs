//! Wiring: the gRPC services, health and reflection on one listener, with or without TLS.
//!
//! While the keyring is sealed, `KeyManagement` and `Crypto` answer every call with
//! `UNAVAILABLE` (checked and audited in `service::call`); `Custodian` (status and ceremonies)
//! and `PrincipalManagement` stay open.

use std::future::Future;
use std::sync::Arc;

use kagi_proto::v1::audit_server::AuditServer;
use kagi_proto::v1::crypto_server::CryptoServer;
use kagi_proto::v1::custodian_server::CustodianServer;
use kagi_proto::v1::escrow_server::EscrowServer;
use kagi_proto::v1::key_management_server::KeyManagementServer;
use kagi_proto::v1::principal_management_server::PrincipalManagementServer;
use kagi_proto::v1::quorum_server::QuorumServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

use crate::custody::Custody;
use crate::engine::Engine;
use crate::service::audit::AuditService;
use crate::service::crypto::CryptoService;
use crate::service::custodian::CustodianService;
use crate::service::escrow::EscrowService;
use crate::service::key_management::KeyManagementService;
use crate::service::principals::PrincipalService;
use crate::service::quorum::QuorumService;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed.
    #[error("gRPC transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not be built.
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serves every Kagi service on `listener` until `shutdown` completes. `custody` runs this
/// node's ceremonies over the same engine.
pub async fn serve(
    engine: Engine,
    custody: Arc<Custody>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<KeyManagementServer<KeyManagementService>>()
        .await;
    health.set_serving::<CryptoServer<CryptoService>>().await;
    health
        .set_serving::<PrincipalManagementServer<PrincipalService>>()
        .await;
    health
        .set_serving::<CustodianServer<CustodianService>>()
        .await;
    health.set_serving::<AuditServer<AuditService>>().await;
    health.set_serving::<QuorumServer<QuorumService>>().await;
    health.set_serving::<EscrowServer<EscrowService>>().await;
    // kagid reports NOT_SERVING while its audit trail cannot be written (calls fail closed).
    let watched = engine.clone();
    let reporter = health.clone();
    tokio::spawn(async move {
        let mut serving = true;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let healthy = watched.audit().healthy();
            if healthy != serving {
                serving = healthy;
                let status = if healthy {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                reporter.set_service_status("", status).await;
            }
        }
    });
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kagi_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(KeyManagementServer::new(KeyManagementService::new(
            engine.clone(),
        )))
        .add_service(CryptoServer::new(CryptoService::new(engine.clone())))
        .add_service(AuditServer::new(AuditService::new(engine.clone())))
        .add_service(QuorumServer::new(QuorumService::new(engine.clone())))
        .add_service(EscrowServer::new(EscrowService::new(engine.clone())))
        .add_service(CustodianServer::new(CustodianService::new(
            engine.clone(),
            custody,
        )))
        .add_service(PrincipalManagementServer::new(PrincipalService::new(
            engine,
        )));
    match tls {
        None => {
            router
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(listener).map(|accepted| {
                        accepted.inspect(|tcp| {
                            // Small gRPC responses must not wait for a delayed ACK (Nagle).
                            let _ = tcp.set_nodelay(true);
                        })
                    }),
                    shutdown,
                )
                .await?
        }
        Some(config) => {
            router
                .serve_with_incoming_shutdown(crate::tls::incoming(listener, config), shutdown)
                .await?
        }
    }
    Ok(())
}
