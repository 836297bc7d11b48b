//! The connection to kagid: endpoint, token, TLS and deadlines.

use std::fmt;
use std::time::Duration;

use kagi_proto::v1::audit_client::AuditClient;
use kagi_proto::v1::crypto_client::CryptoClient;
use kagi_proto::v1::custodian_client::CustodianClient;
use kagi_proto::v1::escrow_client::EscrowClient;
use kagi_proto::v1::key_management_client::KeyManagementClient;
use kagi_proto::v1::principal_management_client::PrincipalManagementClient;
use kagi_proto::v1::quorum_client::QuorumClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::Error;

/// How many times a call is retried on `UNAVAILABLE` or `RESOURCE_EXHAUSTED`.
pub const RETRIES: usize = 4;

/// Deadline of each call unless the builder sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// TLS settings for an `https://` endpoint.
#[derive(Clone, Default)]
pub struct Tls {
    /// PEM CA certificates that issued kagid's certificate.
    pub ca_pem: Vec<u8>,
    /// PEM client certificate chain and key, for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Server name to verify, when it differs from the endpoint's host.
    pub domain: Option<String>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("client_identity", &self.identity.is_some())
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Kagi`] connection.
pub struct KagiBuilder {
    endpoint: String,
    token: Option<String>,
    tls: Option<Tls>,
    timeout: Duration,
}

impl fmt::Debug for KagiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KagiBuilder")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl KagiBuilder {
    /// The bearer token sent with every call.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// TLS settings (needed for `https://` endpoints).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The deadline of each call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects. The channel is reused by every client handed out.
    pub async fn build(self) -> Result<Kagi, Error> {
        let bad = |reason: String| Error::Endpoint {
            endpoint: self.endpoint.clone(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| bad(e.to_string()))?
            .timeout(self.timeout)
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        if self.tls.is_some() && !self.endpoint.starts_with("https:") {
            // tonic would ignore the TLS settings and send the token in the clear.
            return Err(bad(
                "TLS settings were given, so the endpoint must start with https://".into(),
            ));
        }
        if let Some(tls) = &self.tls {
            let mut config =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            if let Some(domain) = &tls.domain {
                config = config.domain_name(domain.clone());
            }
            endpoint = endpoint.tls_config(config)?;
        } else if self.endpoint.starts_with("https:") {
            return Err(bad(
                "an https endpoint needs TLS settings (the CA certificate)".into(),
            ));
        }
        let token = match self.token {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| Error::Token)?,
            ),
            None => None,
        };
        let channel = endpoint.connect().await?;
        Ok(Kagi {
            channel,
            auth: BearerToken(token),
        })
    }
}

/// An authenticated connection to kagid. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Kagi {
    channel: Channel,
    auth: BearerToken,
}

impl fmt::Debug for Kagi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kagi").finish_non_exhaustive()
    }
}

/// A generated client whose calls carry the bearer token.
pub type Authed = InterceptedService<Channel, BearerToken>;

impl Kagi {
    /// Starts building a connection to `endpoint` (`http://HOST:PORT` or `https://…`).
    pub fn connect(endpoint: impl Into<String>) -> KagiBuilder {
        KagiBuilder {
            endpoint: endpoint.into(),
            token: None,
            tls: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Tenants and keys.
    pub fn keys(&self) -> KeyManagementClient<Authed> {
        KeyManagementClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// Encrypt, decrypt, data keys, re-encrypt.
    pub fn crypto(&self) -> CryptoClient<Authed> {
        CryptoClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// Principals and tokens.
    pub fn principals(&self) -> PrincipalManagementClient<Authed> {
        PrincipalManagementClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The root key's custodians and their ceremonies (status, init, unseal, seal, rekey).
    pub fn custodians(&self) -> CustodianClient<Authed> {
        CustodianClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// Proposals and their approvals (dual control).
    pub fn quorum(&self) -> QuorumClient<Authed> {
        QuorumClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// Escrow bundles and imports.
    pub fn escrow(&self) -> EscrowClient<Authed> {
        EscrowClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The audit trail: query, verify, export.
    pub fn audit(&self) -> AuditClient<Authed> {
        AuditClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// Runs `call`, retrying with exponential backoff while kagid answers `UNAVAILABLE` or
    /// `RESOURCE_EXHAUSTED` (at most [`RETRIES`] retries). Each attempt has the client's deadline.
    pub async fn retry<T, F, Fut>(&self, mut call: F) -> Result<T, tonic::Status>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let mut delay = Duration::from_millis(50);
        for _ in 0..RETRIES {
            match call().await {
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                    ) =>
                {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
        call().await
    }

    /// The underlying channel, for other gRPC clients (health, reflection).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// Adds `authorization: Bearer …` to every call.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}
