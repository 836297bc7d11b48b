//! TLS 1.3 and mutual TLS, with real certificates (made by rcgen) over loopback.

mod common;

use std::sync::Arc;

use common::{Backend, TestServer};
use kagi_kms::clock::SystemClock;
use kagi_kms::tls::{TlsFiles, server_config};
use kagi_sdk::{Kagi, Tls, pb};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;

/// A CA, and PEM certificates + keys issued by it.
struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca = params.self_signed(&key).unwrap();
        Self {
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `name`.
    fn issue(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A TLS server; with `client_ca`, mutual TLS.
async fn tls_server(pki: &Pki, client_ca: Option<&Pki>) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pki.issue("localhost");
    std::fs::write(dir.path().join("server.pem"), cert).unwrap();
    std::fs::write(dir.path().join("server.key"), key).unwrap();
    let client_ca = client_ca.map(|ca| {
        let path = dir.path().join("client-ca.pem");
        std::fs::write(&path, &ca.ca_pem).unwrap();
        path
    });
    let files = TlsFiles {
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server.key"),
        client_ca,
    };
    let config = server_config(&files).expect("TLS config");
    (
        TestServer::start_with(Backend::Sqlite, Some(config), Arc::new(SystemClock)).await,
        dir,
    )
}

async fn list_tenants(server: &TestServer, tls: Option<Tls>) -> Result<(), String> {
    let mut builder = Kagi::connect(server.endpoint.clone()).token(server.admin_token.clone());
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    let client = builder.build().await.map_err(|e| e.to_string())?;
    client
        .keys()
        .list_tenants(pb::ListTenantsRequest {})
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_serves_clients_that_trust_the_ca() {
    let pki = Pki::new("Kagi test CA");
    let (server, _dir) = tls_server(&pki, None).await;
    let tls = Tls {
        ca_pem: pki.ca_pem.clone().into_bytes(),
        ..Default::default()
    };
    list_tenants(&server, Some(tls)).await.expect("TLS call");

    let stranger = Pki::new("Other CA");
    let untrusting = Tls {
        ca_pem: stranger.ca_pem.into_bytes(),
        ..Default::default()
    };
    assert!(
        list_tenants(&server, Some(untrusting)).await.is_err(),
        "a client must not trust an unknown server"
    );
    let plain = server.endpoint.replace("https://", "http://");
    let client = Kagi::connect(plain)
        .token(server.admin_token.clone())
        .build()
        .await;
    let refused = match client {
        Err(_) => true,
        Ok(c) => c
            .keys()
            .list_tenants(pb::ListTenantsRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "plaintext gRPC to a TLS port must fail");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let server_pki = Pki::new("Kagi server CA");
    let client_pki = Pki::new("Kagi client CA");
    let (server, _dir) = tls_server(&server_pki, Some(&client_pki)).await;
    let ca_pem = server_pki.ca_pem.clone().into_bytes();

    let (cert, key) = client_pki.issue("grades-app");
    let with_identity = Tls {
        ca_pem: ca_pem.clone(),
        identity: Some((cert.into_bytes(), key.into_bytes())),
        domain: None,
    };
    list_tenants(&server, Some(with_identity))
        .await
        .expect("mTLS call with a valid client certificate");
    // The audit record names the protocol and the client certificate (catalogue L2).
    let node = server.engine.audit().node();
    let (seq, _) = server
        .engine
        .store()
        .audit_head(node)
        .await
        .unwrap()
        .unwrap();
    let record = server
        .engine
        .store()
        .audit_range(node, seq, seq)
        .await
        .unwrap();
    let event = record[0].record.event().unwrap();
    assert_eq!(event.operation, "ListTenants");
    assert_eq!(event.protocol, "grpc+tls");
    assert!(
        event
            .tls_identity
            .as_deref()
            .is_some_and(|id| id.starts_with("sha256:")),
        "{event:?}"
    );

    let without = Tls {
        ca_pem: ca_pem.clone(),
        ..Default::default()
    };
    assert!(
        list_tenants(&server, Some(without)).await.is_err(),
        "no client certificate must be refused"
    );

    let rogue = Pki::new("Rogue CA");
    let (cert, key) = rogue.issue("grades-app");
    let rogue_identity = Tls {
        ca_pem,
        identity: Some((cert.into_bytes(), key.into_bytes())),
        domain: None,
    };
    assert!(
        list_tenants(&server, Some(rogue_identity)).await.is_err(),
        "a certificate from another CA must be refused"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_tls_1_3_is_offered() {
    let pki = Pki::new("Kagi test CA");
    let (server, _dir) = tls_server(&pki, None).await;
    let port = server
        .endpoint
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    assert!(
        handshake(&pki, port, &rustls::version::TLS12)
            .await
            .is_err(),
        "TLS 1.2 must be refused"
    );
    handshake(&pki, port, &rustls::version::TLS13)
        .await
        .expect("TLS 1.3 handshake");
    server.stop().await;
}

/// A raw handshake restricted to one protocol version.
async fn handshake(
    pki: &Pki,
    port: u16,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<(), std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map(drop)
}
