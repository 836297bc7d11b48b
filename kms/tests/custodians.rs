//! The custodian ceremony against a real kagid (in-process, gRPC over loopback, SQLite and
//! PostgreSQL): init, unseal by every quorum, refusals that name the bad share, lockout and
//! session expiry on an injected clock, rekey with verify-before-commit, and what the store
//! keeps afterwards.

mod common;

use std::sync::Arc;

use common::{Backend, TestServer, backends, contains, ctx};
use kagi_kms::clock::ManualClock;
use kagi_kms::crypto::sharing::{Commitments, ShareRecord};
use kagi_sdk::{Kagi, pb};
use tonic::Code;
use zeroize::Zeroizing;

const START: i64 = 1_800_000_000;

/// One enrolled custodian and the private key only they hold.
struct Holder {
    name: String,
    identity: age::x25519::Identity,
    public_key: String,
    token: String,
    /// Signs this custodian's approvals of proposals.
    signing: ed25519_dalek::SigningKey,
}

/// A sealed server, its clock, and enrolled custodians.
struct Ceremony {
    server: TestServer,
    clock: ManualClock,
    holders: Vec<Holder>,
}

impl Ceremony {
    async fn new(backend: Backend, custodians: usize) -> Self {
        let clock = ManualClock::new(START);
        let server = TestServer::start_sealed(backend, Arc::new(clock.clone())).await;
        let mut ceremony = Self {
            server,
            clock,
            holders: Vec::new(),
        };
        for i in 0..custodians {
            ceremony.enrol(&format!("custodian-{i}")).await;
        }
        ceremony
    }

    async fn enrol(&mut self, name: &str) -> usize {
        let identity = age::x25519::Identity::generate();
        let public_key = identity.to_public().to_string();
        let signing = ed25519_dalek::SigningKey::from_bytes(
            &kagi_kms::crypto::random::array().expect("random"),
        );
        let response = self
            .server
            .admin()
            .await
            .custodians()
            .enroll(pb::EnrollRequest {
                name: name.into(),
                person_name: format!("Person {name}"),
                public_key: public_key.clone(),
                acknowledgement_sha256: vec![7; 32],
                signing_public_key: hex::encode(signing.verifying_key().to_bytes()),
            })
            .await
            .expect("enrol")
            .into_inner();
        assert_eq!(
            response
                .custodian
                .as_ref()
                .unwrap()
                .principal
                .as_ref()
                .unwrap()
                .role,
            pb::Role::Custodian as i32
        );
        self.holders.push(Holder {
            name: name.into(),
            identity,
            public_key,
            token: response.token,
            signing,
        });
        self.holders.len() - 1
    }

    fn keys(&self, holders: &[usize]) -> Vec<String> {
        holders
            .iter()
            .map(|&i| self.holders[i].public_key.clone())
            .collect()
    }

    /// Init with holders `0..n` and threshold `m`; returns each holder's decrypted share.
    async fn init(&self, n: usize, m: u32) -> Vec<Zeroizing<Vec<u8>>> {
        let response = self
            .server
            .admin()
            .await
            .custodians()
            .init(pb::InitRequest {
                custodian_public_keys: self.keys(&(0..n).collect::<Vec<_>>()),
                threshold: m,
            })
            .await
            .expect("init")
            .into_inner();
        assert_eq!(response.generation, 1);
        assert_eq!(response.shares.len(), n);
        self.open(&response.shares)
    }

    /// Decrypts each share with its holder's private key, in holder order of `shares`.
    fn open(&self, shares: &[pb::EncryptedShare]) -> Vec<Zeroizing<Vec<u8>>> {
        shares
            .iter()
            .map(|share| {
                let holder = self
                    .holders
                    .iter()
                    .find(|h| h.public_key == share.public_key)
                    .expect("a share for an enrolled custodian");
                assert_eq!(share.custodian_name, holder.name);
                for other in self
                    .holders
                    .iter()
                    .filter(|h| h.public_key != share.public_key)
                {
                    assert!(age::decrypt(&other.identity, share.armored_age.as_bytes()).is_err());
                }
                Zeroizing::new(
                    age::decrypt(&holder.identity, share.armored_age.as_bytes()).expect("opens"),
                )
            })
            .collect()
    }

    async fn as_holder(&self, i: usize) -> Kagi {
        self.server.client(&self.holders[i].token).await
    }

    async fn submit(
        &self,
        holder: usize,
        share: &[u8],
    ) -> Result<pb::UnsealResponse, tonic::Status> {
        self.as_holder(holder)
            .await
            .custodians()
            .unseal(pb::UnsealRequest {
                share: share.to_vec(),
                session_id: String::new(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Submits a current share to a rekey, or with `verify` proves a new one.
    async fn rekey(
        &self,
        holder: usize,
        session: &str,
        share: Vec<u8>,
        verify: bool,
    ) -> Result<pb::RekeyResponse, tonic::Status> {
        let mut client = self.as_holder(holder).await.custodians();
        let session_id = session.to_owned();
        let response = if verify {
            client
                .verify_rekey_share(pb::VerifyRekeyShareRequest { session_id, share })
                .await
        } else {
            client
                .submit_rekey_share(pb::SubmitRekeyShareRequest { session_id, share })
                .await
        };
        response.map(|r| r.into_inner())
    }

    async fn status(&self) -> pb::StatusResponse {
        // No token: Status is open to anyone.
        Kagi::connect(self.server.endpoint.clone())
            .build()
            .await
            .unwrap()
            .custodians()
            .status(pb::StatusRequest {})
            .await
            .expect("status")
            .into_inner()
    }

    async fn seal(&self) {
        self.server
            .admin()
            .await
            .custodians()
            .seal(pb::SealRequest {})
            .await
            .expect("seal");
        assert!(self.status().await.sealed);
    }

    async fn cancel(&self) {
        self.server
            .admin()
            .await
            .custodians()
            .cancel_unseal(pb::CancelUnsealRequest {})
            .await
            .expect("cancel");
    }

    /// Unseals with the shares of `holders` (each submitting their own).
    async fn unseal_with(&self, holders: &[usize], shares: &[Zeroizing<Vec<u8>>]) {
        for (k, &h) in holders.iter().enumerate() {
            let response = self.submit(h, &shares[h]).await.expect("valid share");
            if k + 1 < holders.len() {
                let progress = response.progress.expect("progress");
                assert!(response.sealed);
                assert_eq!(progress.submitted as usize, k + 1);
            } else {
                assert!(!response.sealed, "sealed after {holders:?}");
            }
        }
        assert!(!self.status().await.sealed);
    }
}

/// A tenant, a key and a service principal; returns the service client.
async fn tenant_service(server: &TestServer) -> Kagi {
    let admin = server.admin().await;
    let tenant = common::tenant(&admin, "board-a").await;
    common::key(&admin, &tenant, "records").await;
    let token = common::principal(&admin, "svc-a", pb::Role::TenantService, &tenant).await;
    server.client(&token).await
}

async fn encrypt(service: &Kagi, plaintext: &[u8]) -> Vec<u8> {
    service
        .crypto()
        .encrypt(pb::EncryptRequest {
            key_id: "board-a/records".into(),
            plaintext: plaintext.to_vec(),
            context: ctx(&[("pupil", "42")]),
        })
        .await
        .expect("encrypt")
        .into_inner()
        .ciphertext
}

async fn decrypt(service: &Kagi, ciphertext: &[u8]) -> Result<Vec<u8>, tonic::Status> {
    service
        .crypto()
        .decrypt(pb::DecryptRequest {
            ciphertext: ciphertext.to_vec(),
            context: ctx(&[("pupil", "42")]),
        })
        .await
        .map(|r| r.into_inner().plaintext)
}

fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![vec![]];
    }
    (0..n)
        .flat_map(|last| {
            combinations(last, k - 1).into_iter().map(move |mut c| {
                c.push(last);
                c
            })
        })
        .collect()
}

#[tokio::test]
async fn every_quorum_of_three_unseals_and_no_pair_does() {
    for backend in backends() {
        let c = Ceremony::new(backend, 5).await;
        let status = c.status().await;
        assert!(!status.initialised && status.sealed && !status.dev_mode);
        let shares = c.init(5, 3).await;
        let status = c.status().await;
        assert!(status.initialised && status.sealed);
        assert_eq!(
            (status.threshold, status.share_count, status.generation),
            (3, 5, 1)
        );

        // Sealed: key and crypto calls answer UNAVAILABLE with the documented message.
        let err = c
            .server
            .admin()
            .await
            .keys()
            .list_tenants(pb::ListTenantsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert!(
            err.message()
                .contains("kagid is sealed; custodians must unseal it")
        );

        c.unseal_with(&[0, 1, 2], &shares).await;
        let service = tenant_service(&c.server).await;
        let ciphertext = encrypt(&service, b"pupil 42: grade A").await;

        let pairs = combinations(5, 2);
        assert_eq!(pairs.len(), 10);
        c.seal().await;
        assert_eq!(
            decrypt(&service, &ciphertext).await.unwrap_err().code(),
            Code::Unavailable
        );
        for pair in &pairs {
            for &h in pair {
                let r = c.submit(h, &shares[h]).await.unwrap();
                assert!(r.sealed, "two shares {pair:?} must not unseal");
            }
            assert_eq!(c.status().await.unseal.unwrap().submitted, 2);
            c.cancel().await;
            assert!(c.status().await.unseal.is_none());
        }

        let trios = combinations(5, 3);
        assert_eq!(trios.len(), 10);
        for trio in &trios {
            c.unseal_with(trio, &shares).await;
            assert_eq!(
                decrypt(&service, &ciphertext).await.unwrap(),
                b"pupil 42: grade A",
                "after unsealing with {trio:?}"
            );
            c.seal().await;
        }
        c.server.stop().await;
    }
}

#[tokio::test]
async fn bad_shares_are_refused_and_named() {
    for backend in backends() {
        let c = Ceremony::new(backend, 3).await;
        let shares = c.init(3, 2).await;

        // A tampered share: its value no longer lies on the committed polynomial.
        let mut tampered = shares[1].to_vec();
        *tampered.last_mut().unwrap() ^= 0x01;
        let err = c.submit(1, &tampered).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("share 2"), "{}", err.message());
        assert!(err.message().contains("custodian-1"), "{}", err.message());
        assert!(
            c.status().await.unseal.is_none(),
            "a refused share opens no session"
        );

        // Someone else's share.
        let err = c.submit(0, &shares[1]).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(
            err.message()
                .contains("issued to custodian \"custodian-1\"")
        );

        // Not a share at all.
        let err = c.submit(0, b"not a share").await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);

        // A share submitted twice in one session.
        c.submit(0, &shares[0]).await.unwrap();
        let err = c.submit(0, &shares[0]).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains("already submitted"));

        // A share of another initialisation, even with matching index and generation.
        let other = Ceremony::new(backend, 3).await;
        let foreign = other.init(3, 2).await;
        let err = c.submit(1, &foreign[1]).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains("another initialisation"),
            "{}",
            err.message()
        );
        // The same bytes with this store's init id are still refused by the commitments.
        let mut relabelled = foreign[1].to_vec();
        relabelled[5..21].copy_from_slice(&shares[1][5..21]);
        let err = c.submit(1, &relabelled).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("does not match the commitments"));

        // Roles: an admin holds no share; a custodian never touches keys.
        let admin = c.server.admin().await;
        let err = admin
            .custodians()
            .unseal(pb::UnsealRequest {
                share: shares[1].to_vec(),
                session_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        let err = c
            .as_holder(0)
            .await
            .custodians()
            .init(pb::InitRequest {
                custodian_public_keys: c.keys(&[0, 1]),
                threshold: 2,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);

        // The valid second share still completes the session.
        assert!(!c.submit(1, &shares[1]).await.unwrap().sealed);
        let err = c
            .as_holder(0)
            .await
            .keys()
            .list_tenants(pb::ListTenantsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        let err = c.submit(2, &shares[2]).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("already unsealed"));
        other.server.stop().await;
        c.server.stop().await;
    }
}

#[tokio::test]
async fn lockout_after_six_invalid_shares_lifts_after_thirty_minutes() {
    for backend in backends() {
        let c = Ceremony::new(backend, 3).await;
        let shares = c.init(3, 2).await;
        let mut bad = shares[0].to_vec();
        bad[30] ^= 0x80;
        for attempt in 1..=6 {
            let err = c.submit(0, &bad).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "attempt {attempt}");
        }
        // Locked: even a valid share is refused, with the time the lockout ends.
        let err = c.submit(0, &shares[0]).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert!(err.message().contains("refused until"), "{}", err.message());
        assert_eq!(c.status().await.locked_until, START + 30 * 60);
        // The lockout itself is in the audit trail, beside the six refused submissions.
        let store = c.server.engine.store();
        let filter = |operation: &str, outcome: &str| kagi_kms::store::audit::AuditFilter {
            operation: Some(operation.into()),
            outcome: (!outcome.is_empty()).then(|| outcome.to_owned()),
            ..Default::default()
        };
        assert_eq!(
            store
                .audit_query(&filter("LockoutStarted", ""), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .audit_query(&filter("Unseal", "INVALID_ARGUMENT"), 10)
                .await
                .unwrap()
                .len(),
            6
        );

        c.clock.advance(30 * 60 - 1);
        let err = c.submit(0, &shares[0]).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);

        c.clock.advance(1);
        assert_eq!(c.status().await.locked_until, 0);
        c.unseal_with(&[0, 2], &shares).await;
        c.server.stop().await;
    }
}

#[tokio::test]
async fn an_abandoned_session_expires_after_fifteen_idle_minutes() {
    for backend in backends() {
        let c = Ceremony::new(backend, 3).await;
        let shares = c.init(3, 3).await;
        let first = c.submit(0, &shares[0]).await.unwrap().progress.unwrap();
        assert_eq!(first.expires_at, START + 15 * 60);

        // Progress keeps it alive: 14 minutes later the second share joins it.
        c.clock.advance(14 * 60);
        let second = c.submit(1, &shares[1]).await.unwrap().progress.unwrap();
        assert_eq!(second.session_id, first.session_id);
        assert_eq!(second.submitted, 2);

        // 15 idle minutes end it, and its shares are gone.
        c.clock.advance(15 * 60);
        assert!(c.status().await.unseal.is_none());
        let err = c
            .as_holder(2)
            .await
            .custodians()
            .unseal(pb::UnsealRequest {
                share: shares[2].to_vec(),
                session_id: first.session_id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("not in progress"));
        let fresh = c.submit(2, &shares[2]).await.unwrap();
        let progress = fresh.progress.unwrap();
        assert!(fresh.sealed);
        assert_eq!(progress.submitted, 1, "a new session starts from nothing");
        assert_ne!(progress.session_id, first.session_id);
        c.server.stop().await;
    }
}

#[tokio::test]
async fn rekey_three_of_five_to_two_of_three_with_a_new_custodian() {
    for backend in backends() {
        let mut c = Ceremony::new(backend, 5).await;
        let old = c.init(5, 3).await;
        c.unseal_with(&[0, 1, 2], &old).await;
        let service = tenant_service(&c.server).await;
        let ciphertext = encrypt(&service, b"record kept across rekeys").await;

        let newcomer = c.enrol("custodian-new").await;
        let new_set = [0, 1, newcomer];
        let admin = c.server.admin().await;
        let started = admin
            .custodians()
            .start_rekey(pb::StartRekeyRequest {
                custodian_public_keys: c.keys(&new_set),
                threshold: 2,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(started.stage, pb::RekeyStage::Collecting as i32);
        let session = started.session_id.clone();

        let submit = |holder: usize, share: Vec<u8>| c.rekey(holder, &session, share, false);
        let err = c
            .rekey(newcomer, &session, old[0].to_vec(), true)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "no new shares yet");
        assert_eq!(submit(2, old[2].to_vec()).await.unwrap().submitted, 1);
        assert_eq!(submit(3, old[3].to_vec()).await.unwrap().submitted, 2);
        let made = submit(4, old[4].to_vec()).await.unwrap();
        assert_eq!(made.stage, pb::RekeyStage::Verifying as i32);
        assert_eq!((made.new_generation, made.new_threshold), (2, 2));
        assert_eq!(made.new_shares.len(), 3);
        let fresh = c.open(&made.new_shares);
        let fresh_of = |holder: usize| {
            let key = &c.holders[holder].public_key;
            let at = made
                .new_shares
                .iter()
                .position(|s| &s.public_key == key)
                .unwrap();
            fresh[at].to_vec()
        };

        // Before the commit the old shares still unseal.
        c.seal().await;
        c.unseal_with(&[2, 3, 4], &old).await;
        assert_eq!(c.status().await.generation, 1);

        let verify = |holder: usize, share: Vec<u8>| c.rekey(holder, &session, share, true);
        // A current share is not a new one.
        let err = verify(0, old[0].to_vec()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("NEW share"), "{}", err.message());
        // A new share proven by someone else than its holder is refused.
        let err = verify(1, fresh_of(newcomer)).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        let one = verify(newcomer, fresh_of(newcomer)).await.unwrap();
        assert_eq!(
            (one.stage, one.verified),
            (pb::RekeyStage::Verifying as i32, 1)
        );
        let done = verify(0, fresh_of(0)).await.unwrap();
        assert_eq!(done.stage, pb::RekeyStage::Completed as i32);
        assert_eq!(done.verified, 2);

        let status = c.status().await;
        assert_eq!(
            (status.generation, status.threshold, status.share_count),
            (2, 2, 3)
        );
        assert!(!status.rekey_in_progress);
        let listed = admin
            .custodians()
            .list_custodians(pb::ListCustodiansRequest {})
            .await
            .unwrap()
            .into_inner()
            .custodians;
        let holds = |name: &str| {
            listed
                .iter()
                .find(|x| x.principal.as_ref().unwrap().name == name)
                .unwrap()
                .share_index
        };
        assert_eq!(holds("custodian-2"), 0, "left the set");
        assert_ne!(holds("custodian-new"), 0);

        // Old shares are refused with a clear message; new ones unseal; old data decrypts.
        c.seal().await;
        let err = c.submit(0, &old[0]).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains("generation 1") && err.message().contains("generation 2"),
            "{}",
            err.message()
        );
        let err = c.submit(2, &old[2]).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(c.submit(1, &fresh_of(1)).await.unwrap().sealed);
        assert!(
            !c.submit(newcomer, &fresh_of(newcomer))
                .await
                .unwrap()
                .sealed
        );
        assert_eq!(
            decrypt(&service, &ciphertext).await.unwrap(),
            b"record kept across rekeys"
        );
        c.server.stop().await;
    }
}

#[tokio::test]
async fn init_is_checked_and_runs_once() {
    for backend in backends() {
        let c = Ceremony::new(backend, 3).await;
        let admin = c.server.admin().await;
        let init = |keys: Vec<String>, threshold: u32| {
            let admin = admin.clone();
            async move {
                admin
                    .custodians()
                    .init(pb::InitRequest {
                        custodian_public_keys: keys,
                        threshold,
                    })
                    .await
            }
        };
        for threshold in [0, 1, 4] {
            let err = init(c.keys(&[0, 1, 2]), threshold).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "threshold {threshold}");
        }
        let err = init(c.keys(&[0, 0, 1]), 2).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("twice"));
        let stranger = age::x25519::Identity::generate().to_public().to_string();
        let err = init(vec![stranger, c.holders[0].public_key.clone()], 2)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("enrol"));
        let err = init(vec!["not-a-key".into(), "x".into()], 2)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);

        // Custodians come only from enrolment, with an acknowledgement of duties.
        let err = admin
            .principals()
            .create_principal(pb::CreatePrincipalRequest {
                name: "sneaky".into(),
                role: pb::Role::Custodian as i32,
                tenant: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let err = admin
            .custodians()
            .enroll(pb::EnrollRequest {
                name: "no-ack".into(),
                person_name: "No Ack".into(),
                public_key: age::x25519::Identity::generate().to_public().to_string(),
                acknowledgement_sha256: vec![],
                signing_public_key: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("acknowledgement"));

        c.init(3, 2).await;
        let err = init(c.keys(&[0, 1, 2]), 2).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("already initialised"));
        c.server.stop().await;
    }
}

#[tokio::test]
async fn the_store_keeps_no_share_and_no_root_key() {
    for backend in backends() {
        let c = Ceremony::new(backend, 3).await;
        let shares = c.init(3, 2).await;
        c.unseal_with(&[0, 2], &shares).await;
        let service = tenant_service(&c.server).await;
        encrypt(&service, b"some record").await;

        // The test recovers the root itself, from the shares and the stored commitments.
        let config = c
            .server
            .engine
            .store()
            .seal_config()
            .await
            .unwrap()
            .unwrap();
        let records: Vec<ShareRecord> = shares
            .iter()
            .map(|s| ShareRecord::parse(s).unwrap())
            .collect();
        let commitments = Commitments::decode(&config.commitments).unwrap();
        let values: Vec<_> = records.iter().map(|r| r.share.clone()).collect();
        let root = commitments
            .combine(&values[..2])
            .unwrap()
            .root_key(&config.init_id);

        let stored = c.server.stored_bytes().await;
        let mut secrets: Vec<Vec<u8>> = vec![root.expose().to_vec()];
        for share in &shares {
            secrets.push(share.to_vec());
            secrets.push(share[27..].to_vec());
        }
        for secret in &secrets {
            assert!(!contains(&stored, secret), "raw secret bytes in the store");
            assert!(
                !contains(&stored, hex::encode(secret).as_bytes()),
                "hex secret in the store"
            );
        }
        // The scan does see the seal configuration: its public commitments are there.
        let commitments_as_stored = match backend {
            Backend::Sqlite => config.commitments.clone(),
            Backend::Postgres => hex::encode(&config.commitments).into_bytes(),
        };
        assert!(contains(&stored, &commitments_as_stored));
        c.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn once_initialised_only_share_holders_approve_proposals() {
    async fn approve(
        c: &Ceremony,
        holder: usize,
        proposal: &pb::Proposal,
    ) -> Result<pb::Proposal, tonic::Status> {
        use ed25519_dalek::Signer as _;
        let digest = hex::decode(&proposal.digest).unwrap();
        let signature = c.holders[holder].signing.sign(&digest).to_bytes().to_vec();
        c.as_holder(holder)
            .await
            .quorum()
            .approve(pb::ApproveRequest {
                proposal_id: proposal.id.clone(),
                signature,
            })
            .await
            .map(|r| r.into_inner().proposal.unwrap())
    }
    for backend in backends() {
        // Holders 0-2 get shares; holder 3 is enrolled (by one admin) but holds none.
        let c = Ceremony::new(backend, 4).await;
        let shares = c.init(3, 2).await;
        c.unseal_with(&[0, 1], &shares).await;
        let proposal = c
            .server
            .admin()
            .await
            .quorum()
            .propose(pb::ProposeRequest {
                operation: Some(pb::Operation {
                    kind: Some(pb::operation::Kind::Lockdown(pb::Lockdown {
                        tenant: String::new(),
                        reason: "drill".into(),
                    })),
                }),
                ttl_seconds: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .proposal
            .unwrap();
        let err = approve(&c, 3, &proposal).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(
            err.message().contains("holds no share"),
            "{}",
            err.message()
        );
        assert_eq!(
            approve(&c, 0, &proposal).await.unwrap().state,
            pb::ProposalState::Pending as i32
        );
        assert_eq!(
            approve(&c, 2, &proposal).await.unwrap().state,
            pb::ProposalState::Executed as i32
        );
        c.server.stop().await;
    }
}
