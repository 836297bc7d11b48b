//! Dual control against a real kagid (in-process, gRPC over loopback, SQLite and PostgreSQL):
//! an operation runs only after a quorum of distinct custodians signs its exact digest; the
//! proposer never approves; one custodian counts once; a signature for one proposal does not
//! approve another; an expired proposal cannot run; racing final approvals run it once.

mod common;

use std::sync::Arc;

use common::{Backend, TestServer, backends, ctx};
use ed25519_dalek::{Signer, SigningKey};
use kagi_kms::clock::ManualClock;
use kagi_sdk::{Kagi, pb};
use tonic::Code;

struct Custodian {
    key: SigningKey,
    client: Kagi,
}

struct Setup {
    server: TestServer,
    clock: ManualClock,
    custodians: Vec<Custodian>,
    service_a: Kagi,
    service_b: Kagi,
    ciphertext_a: Vec<u8>,
    ciphertext_b: Vec<u8>,
}

async fn setup(backend: Backend) -> Setup {
    let clock = ManualClock::new(1_800_000_000);
    let server = TestServer::start_with(backend, None, Arc::new(clock.clone())).await;
    let admin = server.admin().await;
    let mut custodians = Vec::new();
    for i in 0..3 {
        let key = SigningKey::from_bytes(&kagi_kms::crypto::random::array().unwrap());
        let enrolled = admin
            .custodians()
            .enroll(pb::EnrollRequest {
                name: format!("custodian-{i}"),
                person_name: format!("Custodian {i}"),
                public_key: age::x25519::Identity::generate().to_public().to_string(),
                acknowledgement_sha256: vec![3; 32],
                signing_public_key: hex::encode(key.verifying_key().to_bytes()),
            })
            .await
            .unwrap()
            .into_inner();
        custodians.push(Custodian {
            key,
            client: server.client(&enrolled.token).await,
        });
    }
    let mut services = Vec::new();
    let mut ciphertexts = Vec::new();
    for name in ["board-a", "board-b"] {
        let tenant = common::tenant(&admin, name).await;
        common::key(&admin, &tenant, "records").await;
        let token = common::principal(
            &admin,
            &format!("{name}-app"),
            pb::Role::TenantService,
            &tenant,
        )
        .await;
        let client = server.client(&token).await;
        let ciphertext = client
            .crypto()
            .encrypt(pb::EncryptRequest {
                key_id: format!("{name}/records"),
                plaintext: b"grades".to_vec(),
                context: ctx(&[("p", "1")]),
            })
            .await
            .unwrap()
            .into_inner()
            .ciphertext;
        services.push(client);
        ciphertexts.push(ciphertext);
    }
    let service_b = services.pop().unwrap();
    let service_a = services.pop().unwrap();
    let ciphertext_b = ciphertexts.pop().unwrap();
    let ciphertext_a = ciphertexts.pop().unwrap();
    Setup {
        server,
        clock,
        custodians,
        service_a,
        service_b,
        ciphertext_a,
        ciphertext_b,
    }
}

fn lockdown(tenant: &str) -> pb::Operation {
    pb::Operation {
        kind: Some(pb::operation::Kind::Lockdown(pb::Lockdown {
            tenant: tenant.into(),
            reason: "incident 2026-11".into(),
        })),
    }
}

async fn propose(by: &Kagi, operation: pb::Operation, ttl: u32) -> pb::Proposal {
    by.quorum()
        .propose(pb::ProposeRequest {
            operation: Some(operation),
            ttl_seconds: ttl,
        })
        .await
        .unwrap()
        .into_inner()
        .proposal
        .unwrap()
}

fn sign(custodian: &Custodian, proposal: &pb::Proposal) -> Vec<u8> {
    let digest = hex::decode(&proposal.digest).unwrap();
    custodian.key.sign(&digest).to_bytes().to_vec()
}

async fn approve(
    custodian: &Custodian,
    id: &str,
    signature: Vec<u8>,
) -> Result<pb::Proposal, tonic::Status> {
    custodian
        .client
        .quorum()
        .approve(pb::ApproveRequest {
            proposal_id: id.into(),
            signature,
        })
        .await
        .map(|r| r.into_inner().proposal.unwrap())
}

async fn decrypt(service: &Kagi, ciphertext: &[u8]) -> Result<Vec<u8>, tonic::Status> {
    service
        .crypto()
        .decrypt(pb::DecryptRequest {
            ciphertext: ciphertext.to_vec(),
            context: ctx(&[("p", "1")]),
        })
        .await
        .map(|r| r.into_inner().plaintext)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operation_runs_only_after_a_quorum_of_other_custodians() {
    for backend in backends() {
        let s = setup(backend).await;
        let [c0, c1, c2] = &s.custodians[..] else {
            unreachable!()
        };
        let admin = s.server.admin().await;

        // Proposed by custodian 0: the threshold is 2 (no custodian threshold yet).
        let proposal = propose(&c0.client, lockdown("board-a"), 0).await;
        assert_eq!(proposal.threshold, 2);
        assert_eq!(proposal.state, pb::ProposalState::Pending as i32);
        assert!(proposal.description.contains("lock down tenant"));
        let id = proposal.id.clone();

        // The proposer never approves; an admin cannot approve at all.
        let err = approve(c0, &id, sign(c0, &proposal)).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        let err = admin
            .quorum()
            .approve(pb::ApproveRequest {
                proposal_id: id.clone(),
                signature: vec![0; 64],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);

        // A signature over another proposal's digest does not approve this one.
        let other = propose(&admin, lockdown("board-b"), 0).await;
        let err = approve(c1, &id, sign(c1, &other)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        // Nor does another custodian's signature.
        let err = approve(c1, &id, sign(c2, &proposal)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);

        // One approval: still pending, decrypts still work.
        let after_one = approve(c1, &id, sign(c1, &proposal)).await.unwrap();
        assert_eq!(after_one.approvals.len(), 1);
        assert_eq!(after_one.state, pb::ProposalState::Pending as i32);
        // The same custodian again counts once.
        let err = approve(c1, &id, sign(c1, &proposal)).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        let still = s
            .server
            .admin()
            .await
            .quorum()
            .get_proposal(pb::GetProposalRequest {
                proposal_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .proposal
            .unwrap();
        assert_eq!(still.approvals.len(), 1);
        assert_eq!(
            decrypt(&s.service_a, &s.ciphertext_a).await.unwrap(),
            b"grades"
        );

        // The second distinct custodian: it runs.
        let executed = approve(c2, &id, sign(c2, &proposal)).await.unwrap();
        assert_eq!(executed.state, pb::ProposalState::Executed as i32);
        assert_eq!(executed.approvals.len(), 2);
        assert!(
            executed
                .approvals
                .iter()
                .all(|a| a.principal_name.starts_with("custodian-"))
        );
        let err = decrypt(&s.service_a, &s.ciphertext_a).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("locked down"), "{}", err.message());
        assert_eq!(
            decrypt(&s.service_b, &s.ciphertext_b).await.unwrap(),
            b"grades"
        );
        // A finished proposal takes no more approvals.
        let err = approve(c0, &id, sign(c0, &proposal)).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);

        // Plaintext data keys and re-encryption are refused too; encryption is not.
        let data_key = s
            .service_a
            .crypto()
            .generate_data_key(pb::GenerateDataKeyRequest {
                key_id: "board-a/records".into(),
                context: ctx(&[("p", "1")]),
                spec: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(data_key.code(), Code::FailedPrecondition);
        s.service_a
            .crypto()
            .generate_data_key_without_plaintext(pb::GenerateDataKeyRequest {
                key_id: "board-a/records".into(),
                context: ctx(&[("p", "1")]),
                spec: 0,
            })
            .await
            .unwrap();
        s.service_a
            .crypto()
            .encrypt(pb::EncryptRequest {
                key_id: "board-a/records".into(),
                plaintext: b"new".to_vec(),
                context: ctx(&[("p", "1")]),
            })
            .await
            .unwrap();
        // The K4 yearly rule holds even for a quorum.
        let err = admin
            .quorum()
            .propose(pb::ProposeRequest {
                operation: Some(pb::Operation {
                    kind: Some(pb::operation::Kind::SetRotationPeriod(
                        pb::SetRotationPeriod {
                            key: "board-a/records".into(),
                            rotation_period_days: 400,
                        },
                    )),
                }),
                ttl_seconds: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);

        // Lifting needs a quorum too.
        let lift = propose(
            &admin,
            pb::Operation {
                kind: Some(pb::operation::Kind::LiftLockdown(pb::LiftLockdown {
                    tenant: "board-a".into(),
                })),
            },
            0,
        )
        .await;
        approve(c0, &lift.id, sign(c0, &lift)).await.unwrap();
        approve(c2, &lift.id, sign(c2, &lift)).await.unwrap();
        assert_eq!(
            decrypt(&s.service_a, &s.ciphertext_a).await.unwrap(),
            b"grades"
        );

        // Every step is in the audit trail.
        let store = s.server.engine.store();
        for (operation, at_least) in [("Propose", 3), ("Approve", 5), ("ProposalExecuted", 2)] {
            let filter = kagi_kms::store::audit::AuditFilter {
                operation: Some(operation.into()),
                ..Default::default()
            };
            let n = store.audit_query(&filter, 100).await.unwrap().len();
            assert!(n >= at_least, "{operation}: {n}");
        }
        s.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_proposal_cannot_run() {
    let s = setup(Backend::Sqlite).await;
    let [c0, c1, c2] = &s.custodians[..] else {
        unreachable!()
    };
    let proposal = propose(&c0.client, lockdown(""), 60).await;
    approve(c1, &proposal.id, sign(c1, &proposal))
        .await
        .unwrap();
    s.clock.advance(61);
    let err = approve(c2, &proposal.id, sign(c2, &proposal))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("expired"), "{}", err.message());
    assert_eq!(
        decrypt(&s.service_a, &s.ciphertext_a).await.unwrap(),
        b"grades"
    );
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_final_approvals_run_the_operation_once() {
    for backend in backends() {
        let s = setup(backend).await;
        let admin = s.server.admin().await;
        for round in 0..5 {
            let proposal = propose(
                &admin,
                pb::Operation {
                    kind: Some(pb::operation::Kind::SetRotationPeriod(
                        pb::SetRotationPeriod {
                            key: "board-a/records".into(),
                            rotation_period_days: 100 + round,
                        },
                    )),
                },
                0,
            )
            .await;
            let [c0, c1, c2] = &s.custodians[..] else {
                unreachable!()
            };
            approve(c0, &proposal.id, sign(c0, &proposal))
                .await
                .unwrap();
            let (a, b) = tokio::join!(
                approve(c1, &proposal.id, sign(c1, &proposal)),
                approve(c2, &proposal.id, sign(c2, &proposal)),
            );
            let succeeded = [&a, &b].iter().filter(|r| r.is_ok()).count();
            assert!(succeeded >= 1, "{a:?} {b:?}");
            let key = admin
                .keys()
                .get_key(pb::GetKeyRequest {
                    key: "board-a/records".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .key
                .unwrap();
            assert_eq!(key.rotation_period_days, 100 + round);
            let filter = kagi_kms::store::audit::AuditFilter {
                operation: Some("ProposalExecuted".into()),
                ..Default::default()
            };
            let executed = s
                .server
                .engine
                .store()
                .audit_query(&filter, 100)
                .await
                .unwrap();
            let mine = executed
                .iter()
                .filter(|r| {
                    r.record
                        .body
                        .as_deref()
                        .unwrap_or("")
                        .contains(&proposal.id)
                })
                .count();
            assert_eq!(mine, 1, "round {round}: the operation ran once");
        }
        s.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn approvals_written_into_the_store_count_for_nothing() {
    for backend in backends() {
        let s = setup(backend).await;
        let admin = s.server.admin().await;
        let proposal = propose(&admin, lockdown("board-a"), 0).await;
        let c2 = &s.custodians[2];
        let c2_key = hex::encode(c2.key.verifying_key().to_bytes());
        let others: Vec<String> = admin
            .custodians()
            .list_custodians(pb::ListCustodiansRequest {})
            .await
            .unwrap()
            .into_inner()
            .custodians
            .into_iter()
            .filter(|c| c.signing_public_key != c2_key)
            .map(|c| c.principal.unwrap().id)
            .collect();
        assert_eq!(others.len(), 2);
        // Someone with database access adds two "approvals" without valid signatures.
        for id in &others {
            sqlx::query(
                "INSERT INTO approvals (proposal_id, principal_id, signature, approved_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&proposal.id)
            .bind(id)
            .bind(vec![0u8; 64])
            .bind(1_800_000_000i64)
            .execute(s.server.engine.store().pool())
            .await
            .unwrap();
        }
        let after = approve(c2, &proposal.id, sign(c2, &proposal))
            .await
            .unwrap();
        assert_eq!(
            after.state,
            pb::ProposalState::Pending as i32,
            "forged rows did not count"
        );
        assert_eq!(
            decrypt(&s.service_a, &s.ciphertext_a).await.unwrap(),
            b"grades"
        );
        s.server.stop().await;
    }
}

fn destroy_key(key: &str, waiting_days: u32) -> pb::Operation {
    pb::Operation {
        kind: Some(pb::operation::Kind::ScheduleKeyDestruction(
            pb::ScheduleKeyDestruction {
                key: key.into(),
                waiting_days,
            },
        )),
    }
}

async fn key_state(admin: &Kagi, key: &str) -> pb::KeyState {
    let key = admin
        .keys()
        .get_key(pb::GetKeyRequest { key: key.into() })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    pb::KeyState::try_from(key.state).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destruction_proposed_by_an_admin_waits_for_a_quorum_and_can_be_cancelled() {
    for backend in backends() {
        let s = setup(backend).await;
        let [c0, c1, c2] = &s.custodians[..] else {
            unreachable!()
        };
        let admin = s.server.admin().await;

        // The waiting period is bounded (K9: 7 to 30 days).
        let err = admin
            .quorum()
            .propose(pb::ProposeRequest {
                operation: Some(destroy_key("board-a/records", 3)),
                ttl_seconds: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

        let proposal = propose(&admin, destroy_key("board-a/records", 7), 0).await;
        assert!(
            proposal.description.to_lowercase().contains("destroy key"),
            "{}",
            proposal.description
        );
        // An admin never approves, and one custodian is not a quorum.
        let err = admin
            .quorum()
            .approve(pb::ApproveRequest {
                proposal_id: proposal.id.clone(),
                signature: vec![0; 64],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        approve(c0, &proposal.id, sign(c0, &proposal))
            .await
            .unwrap();
        assert_eq!(
            key_state(&admin, "board-a/records").await,
            pb::KeyState::Enabled
        );
        assert_eq!(
            decrypt(&s.service_a, &s.ciphertext_a).await.unwrap(),
            b"grades"
        );

        // The second custodian: the key is pending destruction and refuses every use.
        let executed = approve(c2, &proposal.id, sign(c2, &proposal))
            .await
            .unwrap();
        assert_eq!(executed.state, pb::ProposalState::Executed as i32);
        assert_eq!(
            key_state(&admin, "board-a/records").await,
            pb::KeyState::PendingDestruction
        );
        let err = decrypt(&s.service_a, &s.ciphertext_a).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(
            err.message().contains("pending destruction"),
            "{}",
            err.message()
        );
        let err = s
            .service_a
            .crypto()
            .encrypt(pb::EncryptRequest {
                key_id: "board-a/records".into(),
                plaintext: b"new".to_vec(),
                context: ctx(&[("p", "1")]),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        // Neither enabling nor rotating takes a key out of pending destruction.
        let err = admin
            .keys()
            .enable_key(pb::EnableKeyRequest {
                key: "board-a/records".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        let err = admin
            .keys()
            .rotate_key(pb::RotateKeyRequest {
                key: "board-a/records".into(),
                expected_current_version: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        // A second schedule of the same key fails when it runs, and says why.
        let again = propose(&admin, destroy_key("board-a/records", 7), 0).await;
        approve(c0, &again.id, sign(c0, &again)).await.unwrap();
        let failed = approve(c1, &again.id, sign(c1, &again)).await.unwrap();
        assert_eq!(failed.state, pb::ProposalState::Failed as i32);
        assert!(
            failed.result.contains("already pending destruction"),
            "{}",
            failed.result
        );

        // Cancelling restores the key; the other tenant never noticed.
        assert_eq!(
            decrypt(&s.service_b, &s.ciphertext_b).await.unwrap(),
            b"grades"
        );
        admin
            .keys()
            .cancel_key_destruction(pb::CancelKeyDestructionRequest {
                key: "board-a/records".into(),
            })
            .await
            .unwrap();
        assert_eq!(
            decrypt(&s.service_a, &s.ciphertext_a).await.unwrap(),
            b"grades"
        );
        let err = admin
            .keys()
            .cancel_key_destruction(pb::CancelKeyDestructionRequest {
                key: "board-a/records".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);

        // A whole tenant: every key of board-b.
        let tenant = propose(
            &c0.client,
            pb::Operation {
                kind: Some(pb::operation::Kind::ScheduleTenantDestruction(
                    pb::ScheduleTenantDestruction {
                        tenant: "board-b".into(),
                        waiting_days: 0,
                    },
                )),
            },
            0,
        )
        .await;
        approve(c1, &tenant.id, sign(c1, &tenant)).await.unwrap();
        approve(c2, &tenant.id, sign(c2, &tenant)).await.unwrap();
        let err = decrypt(&s.service_b, &s.ciphertext_b).await.unwrap_err();
        assert!(err.message().contains("pending destruction"), "{err:?}");
        let key_b = admin
            .keys()
            .get_key(pb::GetKeyRequest {
                key: "board-b/records".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .key
            .unwrap();
        assert_eq!(key_b.state, pb::KeyState::PendingDestruction as i32);
        let store = s.server.engine.store();
        let destruction = store.destruction(&key_b.id).await.unwrap().unwrap();
        // The default waiting period is 30 days.
        assert_eq!(
            destruction.destroy_at - destruction.scheduled_at,
            30 * 86_400
        );
        s.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compromised_version_only_re_encrypts_and_the_key_moves_on() {
    for backend in backends() {
        let s = setup(backend).await;
        let [c0, c1, _] = &s.custodians[..] else {
            unreachable!()
        };
        let admin = s.server.admin().await;
        let mark = |version: u32| pb::Operation {
            kind: Some(pb::operation::Kind::MarkCompromised(pb::MarkCompromised {
                key: "board-a/records".into(),
                version,
            })),
        };
        let err = admin
            .quorum()
            .propose(pb::ProposeRequest {
                operation: Some(mark(9)),
                ttl_seconds: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");

        // Version 1, the primary, is marked compromised: the key rotates at once.
        let proposal = propose(&admin, mark(1), 0).await;
        assert!(proposal.description.contains("COMPROMISED"), "{proposal:?}");
        approve(c0, &proposal.id, sign(c0, &proposal))
            .await
            .unwrap();
        let done = approve(c1, &proposal.id, sign(c1, &proposal))
            .await
            .unwrap();
        assert_eq!(done.state, pb::ProposalState::Executed as i32, "{done:?}");
        let key = admin
            .keys()
            .get_key(pb::GetKeyRequest {
                key: "board-a/records".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .key
            .unwrap();
        assert_eq!(key.primary_version, 2);
        let states: Vec<i32> = key.versions.iter().map(|v| v.state).collect();
        assert_eq!(
            states,
            vec![
                pb::VersionState::VersionCompromised as i32,
                pb::VersionState::Active as i32
            ]
        );

        // Old data no longer decrypts for use, but re-encrypts to the new version, flagged.
        let err = decrypt(&s.service_a, &s.ciphertext_a).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("compromised"), "{err:?}");
        let moved = s
            .service_a
            .crypto()
            .re_encrypt(pb::ReEncryptRequest {
                ciphertext: s.ciphertext_a.clone(),
                source_context: ctx(&[("p", "1")]),
                destination_key_id: "board-a/records".into(),
                destination_context: ctx(&[("p", "1")]),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(moved.key_version, 2);
        assert_eq!(
            decrypt(&s.service_a, &moved.ciphertext).await.unwrap(),
            b"grades"
        );
        let store = s.server.engine.store();
        let flagged = kagi_kms::store::audit::AuditFilter {
            operation: Some("CompromisedVersionUsed".into()),
            ..Default::default()
        };
        assert_eq!(store.audit_query(&flagged, 10).await.unwrap().len(), 1);
        let rotated = kagi_kms::store::audit::AuditFilter {
            operation: Some("KeyRotated".into()),
            ..Default::default()
        };
        let rows = store.audit_query(&rotated, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].tenant_id.as_deref(), Some(key.tenant_id.as_str()));
        // A compromised version cannot be marked again.
        let err = admin
            .quorum()
            .propose(pb::ProposeRequest {
                operation: Some(mark(1)),
                ttl_seconds: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        s.server.stop().await;
    }
}
