//! kagid served in-process on a free loopback port, with the same wiring as the binary.

use std::sync::Arc;

use kagi_kms::audit::AuditConfig;
use kagi_kms::clock::{Clock, SystemClock};
use kagi_kms::crypto::SecretKey;
use kagi_kms::engine::Engine;
use kagi_kms::keyring::Keyring;
use kagi_kms::model::Role;
use kagi_kms::server;
use kagi_kms::store::Store;
use kagi_sdk::Kagi;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::db::{Backend, TestDb};

/// A running server with an admin principal.
pub struct TestServer {
    /// `http://127.0.0.1:PORT` (or `https://localhost:PORT` with TLS).
    pub endpoint: String,
    /// The admin's bearer token.
    pub admin_token: String,
    /// The engine behind the server, for tests that look underneath.
    pub engine: Engine,
    /// The root key's bytes, for tests that check what the store holds (zeros for a server
    /// started sealed, whose root comes from the custodian ceremony).
    pub root: [u8; 32],
    /// The ceremonies of this server.
    pub custody: Arc<kagi_kms::custody::Custody>,
    /// The database (dropped after the server).
    pub db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// A plaintext server on a fresh database of `backend`, unsealed with a random root.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, None, Arc::new(SystemClock)).await
    }

    /// A server with optional TLS and a given clock.
    pub async fn start_with(
        backend: Backend,
        tls: Option<Arc<rustls::ServerConfig>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::start_inner(backend, tls, clock, true, AuditConfig::default()).await
    }

    /// An unsealed server whose audit trail follows `audit`.
    pub async fn start_with_audit(backend: Backend, audit: AuditConfig) -> Self {
        Self::start_inner(backend, None, Arc::new(SystemClock), true, audit).await
    }

    /// A server outside dev mode on an uninitialised store: sealed until a ceremony unseals it.
    pub async fn start_sealed(backend: Backend, clock: Arc<dyn Clock>) -> Self {
        Self::start_inner(backend, None, clock, false, AuditConfig::default()).await
    }

    async fn start_inner(
        backend: Backend,
        tls: Option<Arc<rustls::ServerConfig>>,
        clock: Arc<dyn Clock>,
        unsealed: bool,
        audit: AuditConfig,
    ) -> Self {
        let db = TestDb::new(backend).await;
        let store = Store::open(&db.url).await.expect("open store");
        let keyring = Arc::new(Keyring::sealed(1000));
        let root: [u8; 32] = if unsealed { rand_root() } else { [0; 32] };
        if unsealed {
            keyring.unseal(SecretKey::from_bytes(root));
        }
        let engine = Engine::with_audit(store, keyring, clock, audit).expect("audit starts");
        let (_, token) = engine
            .create_principal("test-admin", Role::Admin, None)
            .await
            .expect("admin");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let endpoint = match tls {
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let served = engine.clone();
        let custody = Arc::new(kagi_kms::custody::Custody::new(engine.clone(), false));
        let ceremonies = custody.clone();
        let task = tokio::spawn(async move {
            server::serve(served, ceremonies, listener, tls, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Self {
            endpoint,
            admin_token: token.expose().to_owned(),
            engine,
            root,
            custody,
            db,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A client authenticated with `token`.
    pub async fn client(&self, token: &str) -> Kagi {
        Kagi::connect(self.endpoint.clone())
            .token(token)
            .build()
            .await
            .expect("connect")
    }

    /// A client authenticated as the admin.
    pub async fn admin(&self) -> Kagi {
        self.client(&self.admin_token).await
    }

    /// Everything the store holds (see [`TestDb::stored_bytes`]).
    pub async fn stored_bytes(&self) -> Vec<u8> {
        self.db.stored_bytes().await
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.engine.store().close().await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn rand_root() -> [u8; 32] {
    kagi_kms::crypto::random::array().expect("OS RNG")
}
