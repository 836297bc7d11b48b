//! Escrow end to end, on real kagid instances over gRPC (SQLite and PostgreSQL): a tenant's keys
//! exported from instance 1 with a quorum's approval, instance 1 wiped, and the bundle
//! recovered into a fresh instance 2 (another root, other approving custodians) with the escrow
//! custodians' shares, where every old ciphertext decrypts. And the refusals: a bundle with one
//! byte changed, a share of another bundle, a share brought by the wrong custodian, fewer than
//! M shares, and other material under the same ids all import nothing.

mod common;

use std::sync::Arc;

use common::{Backend, TestServer, backends, ctx};
use kagi_kms::escrow::bundle::{self, Bundle};
use kagi_kms::model::{Key, KeyVersion, Tenant};
use kagi_sdk::{Kagi, pb};
use tonic::Code;

/// A person with an age identity (for escrow shares) and a signing key (for approvals).
struct Person {
    name: String,
    identity: age::x25519::Identity,
}

/// A custodian enrolled on one instance.
type Enrolled = common::Approver;

fn person(name: &str) -> Person {
    Person {
        name: name.into(),
        identity: age::x25519::Identity::generate(),
    }
}

async fn enrol(server: &TestServer, who: &Person) -> Enrolled {
    let public = who.identity.to_public().to_string();
    common::enrol_approver(server, &who.name, &public).await
}

async fn propose(admin: &Kagi, kind: pb::operation::Kind) -> pb::Proposal {
    admin
        .quorum()
        .propose(pb::ProposeRequest {
            operation: Some(pb::Operation { kind: Some(kind) }),
            ttl_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .proposal
        .unwrap()
}

async fn approve(proposal: &pb::Proposal, approvers: &[&Enrolled]) -> pb::Proposal {
    common::approve_all(proposal, approvers).await
}

/// Exports tenant `board-a` from `server` for `custodians` (2 of them needed); the bundle.
async fn export(
    server: &TestServer,
    approvers: &[&Enrolled],
    custodians: &[&Person],
) -> pb::GetBundleResponse {
    let admin = server.admin().await;
    let proposal = propose(
        &admin,
        pb::operation::Kind::EscrowExport(pb::EscrowExport {
            tenant: "board-a".into(),
            custodians: custodians.iter().map(|p| p.name.clone()).collect(),
            threshold: 2,
        }),
    )
    .await;
    assert!(proposal.description.contains("EXPORT"), "{proposal:?}");
    let done = approve(&proposal, approvers).await;
    assert_eq!(done.state, pb::ProposalState::Executed as i32, "{done:?}");
    admin
        .escrow()
        .get_bundle(pb::GetBundleRequest {
            proposal_id: proposal.id,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Stages `bundle` on `server` and has `approvers` approve its import.
async fn stage_and_approve(
    server: &TestServer,
    bundle: &str,
    signer: &str,
    approvers: &[&Enrolled],
) -> pb::ImportStatus {
    let admin = server.admin().await;
    let staged = admin
        .escrow()
        .stage_import(pb::StageImportRequest {
            bundle: bundle.into(),
            expected_signer: signer.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(staged.state, pb::ImportState::ImportStaged as i32);
    let proposal = propose(
        &admin,
        pb::operation::Kind::EscrowImport(pb::EscrowImport {
            bundle_digest: staged.bundle_digest.clone(),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(
        approve(&proposal, approvers).await.state,
        pb::ProposalState::Executed as i32
    );
    status(server, &staged.bundle_digest).await
}

async fn status(server: &TestServer, digest: &str) -> pb::ImportStatus {
    server
        .admin()
        .await
        .escrow()
        .get_import(pb::GetImportRequest {
            bundle_digest: digest.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// `custodian`'s share of `bundle`, opened with their identity, as kagictl submits it.
fn share_of(bundle: &str, custodian: &Person) -> Vec<u8> {
    let bundle = Bundle::from_json(bundle).unwrap();
    let record = bundle::open_share(&bundle, &custodian.identity, &custodian.name).unwrap();
    record.encode().to_vec()
}

async fn submit(
    by: &Enrolled,
    digest: &str,
    share: Vec<u8>,
) -> Result<pb::ImportStatus, tonic::Status> {
    by.client
        .escrow()
        .submit_escrow_share(pb::SubmitEscrowShareRequest {
            bundle_digest: digest.into(),
            share,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn encrypt(service: &Kagi, key: &str, plaintext: &str) -> Vec<u8> {
    service
        .crypto()
        .encrypt(pb::EncryptRequest {
            key_id: key.into(),
            plaintext: plaintext.as_bytes().to_vec(),
            context: ctx(&[("pupil", "42")]),
        })
        .await
        .unwrap()
        .into_inner()
        .ciphertext
}

async fn decrypt(service: &Kagi, ciphertext: &[u8]) -> Result<Vec<u8>, tonic::Status> {
    common::decrypt(service, ciphertext, &[("pupil", "42")]).await
}

/// A tenant service of `board-a` on `server`.
async fn service(server: &TestServer) -> Kagi {
    let admin = server.admin().await;
    let token = common::principal(&admin, "board-a-app", pb::Role::TenantService, "board-a").await;
    server.client(&token).await
}

/// Instance 1: tenant `board-a` with two keys, one rotated, and ciphertexts under every
/// version; three approving custodians, who are also the escrow custodians.
struct Source {
    server: TestServer,
    approvers: Vec<Enrolled>,
    ciphertexts: Vec<(Vec<u8>, String)>,
}

async fn source(backend: Backend, people: &[Person]) -> Source {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let mut approvers = Vec::new();
    for p in people {
        approvers.push(enrol(&server, p).await);
    }
    common::tenant(&admin, "board-a").await;
    common::key(&admin, "board-a", "grades").await;
    common::key(&admin, "board-a", "activity").await;
    let app = service(&server).await;
    let mut ciphertexts = Vec::new();
    for (key, text) in [("board-a/grades", "math A"), ("board-a/activity", "club")] {
        ciphertexts.push((encrypt(&app, key, text).await, text.to_owned()));
    }
    admin
        .keys()
        .rotate_key(pb::RotateKeyRequest {
            key: "board-a/grades".into(),
            expected_current_version: 0,
        })
        .await
        .unwrap();
    ciphertexts.push((
        encrypt(&app, "board-a/grades", "science B").await,
        "science B".into(),
    ));
    Source {
        server,
        approvers,
        ciphertexts,
    }
}

/// Initialises a sealed `server` with its root split 2 of 3 among `people` (enrolled as
/// `custodians`), and unseals it with the first two shares.
async fn initialise(server: &TestServer, people: &[Person], custodians: &[Enrolled]) {
    let response = server
        .admin()
        .await
        .custodians()
        .init(pb::InitRequest {
            custodian_public_keys: people
                .iter()
                .map(|p| p.identity.to_public().to_string())
                .collect(),
            threshold: 2,
        })
        .await
        .unwrap()
        .into_inner();
    for share in response.shares.iter().take(2) {
        let i = people
            .iter()
            .position(|p| p.identity.to_public().to_string() == share.public_key)
            .unwrap();
        let plain = age::decrypt(&people[i].identity, share.armored_age.as_bytes()).unwrap();
        custodians[i]
            .client
            .custodians()
            .unseal(pb::UnsealRequest {
                share: plain,
                session_id: String::new(),
            })
            .await
            .unwrap();
    }
    assert!(!server.engine.keyring().is_sealed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_recovered_from_escrow_into_another_instance_decrypts_everything() {
    for backend in backends() {
        let people = [person("alice"), person("bob"), person("carol")];
        let src = source(backend, &people).await;
        let [alice1, bob1, _] = &src.approvers[..] else {
            unreachable!()
        };
        let all: Vec<&Person> = people.iter().collect();
        let exported = export(&src.server, &[alice1, bob1], &all).await;
        // A second export of the same keys: another bundle, other shares, the same material.
        let second = export(&src.server, &[alice1, bob1], &all).await;
        let signer = src
            .server
            .admin()
            .await
            .escrow()
            .get_signer(pb::GetSignerRequest {})
            .await
            .unwrap()
            .into_inner()
            .signer;
        let ciphertexts = src.ciphertexts.clone();
        // Instance 1 and its database are gone.
        src.server.stop().await;

        // Instance 2 is initialised by its own custodians: its root is split 2 of 3 among
        // dave, erin and frank, two of whom unseal it and approve its proposals. The escrow
        // custodians are enrolled there under their names, with the same age keys.
        let target =
            TestServer::start_sealed(backend, Arc::new(kagi_kms::clock::SystemClock)).await;
        let root_people = [person("dave"), person("erin"), person("frank")];
        let mut root_custodians = Vec::new();
        for p in &root_people {
            root_custodians.push(enrol(&target, p).await);
        }
        initialise(&target, &root_people, &root_custodians).await;
        let [dave, erin, _] = &root_custodians[..] else {
            unreachable!()
        };
        let alice = enrol(&target, &people[0]).await;
        let bob = enrol(&target, &people[1]).await;
        let carol = enrol(&target, &people[2]).await;

        let digest = exported.digest.clone();
        // Nothing is accepted before the import is approved.
        let early = target
            .admin()
            .await
            .escrow()
            .stage_import(pb::StageImportRequest {
                bundle: exported.bundle.clone(),
                expected_signer: signer.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(early.bundle_digest, digest);
        let err = submit(&alice, &digest, share_of(&exported.bundle, &people[0]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        // The escrow custodians hold no share of instance 2's root: they cannot approve there.
        let import = propose(
            &target.admin().await,
            pb::operation::Kind::EscrowImport(pb::EscrowImport {
                bundle_digest: digest.clone(),
                ..Default::default()
            }),
        )
        .await;
        let err = alice
            .client
            .quorum()
            .approve(pb::ApproveRequest {
                proposal_id: import.id.clone(),
                signature: vec![0; 64],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(err.message().contains("holds no share"), "{err:?}");
        approve(&import, &[dave, erin]).await;
        let status = self::status(&target, &digest).await;
        assert_eq!(status.state, pb::ImportState::ImportAuthorised as i32);
        assert_eq!(status.threshold, 2);

        // A share of the other bundle is refused and not counted.
        let err = submit(&alice, &digest, share_of(&second.bundle, &people[0]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("another") || err.message().contains("not of bundle"));
        // Carol's share brought by bob is refused: each custodian brings their own.
        let err = submit(&bob, &digest, share_of(&exported.bundle, &people[2]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

        // One share of two: nothing is imported yet.
        let one = submit(&alice, &digest, share_of(&exported.bundle, &people[0]))
            .await
            .unwrap();
        assert_eq!(one.shares_received, vec![1]);
        assert_eq!(one.state, pb::ImportState::ImportAuthorised as i32);
        let err = target
            .admin()
            .await
            .keys()
            .get_key(pb::GetKeyRequest {
                key: "board-a/grades".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        // The same share again counts once.
        let err = submit(&alice, &digest, share_of(&exported.bundle, &people[0]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

        // The second custodian: the keys are here, with their ids and versions.
        let done = submit(&carol, &digest, share_of(&exported.bundle, &people[2]))
            .await
            .unwrap();
        assert_eq!(
            done.state,
            pb::ImportState::ImportDone as i32,
            "{}",
            done.result
        );
        assert!(done.shares_received.is_empty(), "shares are deleted");
        let app = service(&target).await;
        for (ciphertext, plaintext) in &ciphertexts {
            assert_eq!(
                decrypt(&app, ciphertext).await.unwrap(),
                plaintext.as_bytes()
            );
        }
        // New data encrypts under the recovered primary version.
        let fresh = encrypt(&app, "board-a/grades", "art C").await;
        assert_eq!(decrypt(&app, &fresh).await.unwrap(), b"art C");

        // The other bundle holds the same material: importing it changes nothing.
        let again = stage_and_approve(&target, &second.bundle, &signer, &[dave, erin]).await;
        submit(
            &alice,
            &again.bundle_digest,
            share_of(&second.bundle, &people[0]),
        )
        .await
        .unwrap();
        let twice = submit(
            &bob,
            &again.bundle_digest,
            share_of(&second.bundle, &people[1]),
        )
        .await
        .unwrap();
        assert_eq!(twice.state, pb::ImportState::ImportDone as i32);
        assert!(
            twice.result.contains("0 versions imported"),
            "{}",
            twice.result
        );
        for (ciphertext, plaintext) in &ciphertexts {
            assert_eq!(
                decrypt(&app, ciphertext).await.unwrap(),
                plaintext.as_bytes()
            );
        }
        // Staging an imported bundle again reports it as imported.
        let restaged = target
            .admin()
            .await
            .escrow()
            .stage_import(pb::StageImportRequest {
                bundle: exported.bundle.clone(),
                expected_signer: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(restaged.state, pb::ImportState::ImportDone as i32);

        // Every step is in the target's audit trail, and no share or key is.
        let store = target.engine.store();
        for operation in ["StageImport", "SubmitEscrowShare", "EscrowImported"] {
            let filter = kagi_kms::store::audit::AuditFilter {
                operation: Some(operation.into()),
                ..Default::default()
            };
            assert!(
                !store.audit_query(&filter, 100).await.unwrap().is_empty(),
                "{operation}"
            );
        }
        target.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_bundle_or_a_wrong_signer_is_refused_at_staging() {
    let people = [person("alice"), person("bob")];
    let src = source(Backend::Sqlite, &people).await;
    let approvers: Vec<&Enrolled> = src.approvers.iter().collect();
    let all: Vec<&Person> = people.iter().collect();
    let exported = export(&src.server, &approvers, &all).await;
    let admin = src.server.admin().await;
    let stage = |bundle: String, signer: &str| {
        let admin = admin.clone();
        let signer = signer.to_owned();
        async move {
            admin
                .escrow()
                .stage_import(pb::StageImportRequest {
                    bundle,
                    expected_signer: signer,
                })
                .await
        }
    };

    // One byte changed anywhere in the signed part: the tenant's name, the payload, a share.
    let text = exported.bundle.clone();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    let payload = parsed["payload"].as_str().unwrap();
    // Within the second line of the armour: base64 only, no JSON escapes.
    let armored = &parsed["shares"][0]["armored_age"].as_str().unwrap()[40..60];
    for (field, value) in [
        ("tenant_name", "board-a"),
        ("payload", payload),
        ("share", armored),
    ] {
        let at = text.find(value).unwrap() + value.len() / 2;
        let mut bytes = text.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        let err = stage(changed, "").await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().contains("signature") || err.message().contains("damaged"),
            "{field}: {}",
            err.message()
        );
    }
    // Signed by another key than the one the importer pins.
    let err = stage(text.clone(), &"ab".repeat(32)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("not by the source instance"),
        "{err:?}"
    );
    // Not a bundle at all.
    let err = stage("{}".into(), "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // An export naming one custodian twice is refused before anyone approves it.
    let err = admin
        .quorum()
        .propose(pb::ProposeRequest {
            operation: Some(pb::Operation {
                kind: Some(pb::operation::Kind::EscrowExport(pb::EscrowExport {
                    tenant: "board-a".into(),
                    custodians: vec!["alice".into(), "alice".into()],
                    threshold: 2,
                })),
            }),
            ttl_seconds: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("named twice"), "{err:?}");
    // Nothing was staged by any of these.
    let err = admin
        .escrow()
        .get_import(pb::GetImportRequest {
            bundle_digest: exported.digest.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    src.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn other_material_under_the_same_ids_fails_the_import_and_imports_nothing() {
    let people = [person("alice"), person("bob")];
    let src = source(Backend::Sqlite, &people).await;
    let approvers: Vec<&Enrolled> = src.approvers.iter().collect();
    let all: Vec<&Person> = people.iter().collect();
    let exported = export(&src.server, &approvers, &all).await;
    src.server.stop().await;

    // The target already holds the tenant and the first key under the same ids, with other
    // material (as if an unrelated bundle had been forged or mixed up).
    let target = TestServer::start(Backend::Sqlite).await;
    let alice = enrol(&target, &people[0]).await;
    let bob = enrol(&target, &people[1]).await;
    let dave = enrol(&target, &person("dave")).await;
    let bundle = Bundle::from_json(&exported.bundle).unwrap();
    let meta = &bundle.metadata;
    let store = target.engine.store();
    store
        .insert_tenant(&Tenant {
            id: meta.tenant_id.clone(),
            name: meta.tenant_name.clone(),
            created_at: 1,
        })
        .await
        .unwrap();
    let first = &meta.keys[0];
    let key = Key {
        id: first.key_id.clone(),
        tenant_id: meta.tenant_id.clone(),
        name: first.name.clone(),
        purpose: kagi_kms::model::Purpose::LearningRecord,
        class: kagi_kms::model::ImportanceClass::Ii,
        domain: kagi_kms::model::Domain::Gakushu,
        algorithm: kagi_kms::model::Algorithm::Aes256GcmHkdfSha256,
        rotation_period_days: 365,
        state: kagi_kms::model::KeyState::Enabled,
        primary_version: 1,
        created_at: 1,
        updated_at: 1,
        rotated_at: 1,
    };
    let owner = kagi_kms::keyring::VersionOwner {
        tenant_id: &key.tenant_id,
        key_id: &key.id,
    };
    let wrapped = target
        .engine
        .keyring()
        .unsealed()
        .unwrap()
        .new_version(owner, 1)
        .unwrap();
    let version = KeyVersion {
        key_id: key.id.clone(),
        version: 1,
        state: kagi_kms::model::VersionState::Active,
        wrapped_material: wrapped,
        created_at: 1,
    };
    store.insert_key(&key, &version).await.unwrap();

    let status = stage_and_approve(&target, &exported.bundle, "", &[&alice, &dave]).await;
    submit(
        &alice,
        &status.bundle_digest,
        share_of(&exported.bundle, &people[0]),
    )
    .await
    .unwrap();
    let err = submit(
        &bob,
        &status.bundle_digest,
        share_of(&exported.bundle, &people[1]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("different material"), "{err:?}");
    assert!(err.message().contains("nothing was imported"), "{err:?}");
    let failed = self::status(&target, &status.bundle_digest).await;
    assert_eq!(failed.state, pb::ImportState::ImportFailed as i32);
    // Nothing of the bundle arrived: the second key is absent, the first unchanged.
    let second = &meta.keys[1];
    assert!(store.get_key(&second.key_id).await.unwrap().is_none());
    let versions = store.list_versions(&first.key_id).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].wrapped_material, version.wrapped_material);
    target.stop().await;
}
