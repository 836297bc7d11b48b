//! Destruction carried out, on a real kagid (in-process, gRPC over loopback, SQLite and
//! PostgreSQL) with an injected clock: a retention hold keeps a key from being scheduled; a
//! scheduled key is destroyed by the scheduler only when its waiting period has ended; then its
//! material is gone from the store, every old ciphertext fails naming the date, and the signed
//! destruction record verifies while a modified copy does not.

mod common;

use std::sync::Arc;

use common::{TestServer, backends, ctx};
use kagi_kms::clock::ManualClock;
use kagi_kms::destruction::record::Record;
use kagi_sdk::{Kagi, pb};
use tonic::Code;

const START: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

async fn approver(server: &TestServer, name: &str) -> common::Approver {
    let public = age::x25519::Identity::generate().to_public().to_string();
    common::enrol_approver(server, name, &public).await
}

fn destroy(key: &str, waiting_days: u32) -> pb::ProposeRequest {
    pb::ProposeRequest {
        operation: Some(pb::Operation {
            kind: Some(pb::operation::Kind::ScheduleKeyDestruction(
                pb::ScheduleKeyDestruction {
                    key: key.into(),
                    waiting_days,
                },
            )),
        }),
        ttl_seconds: 0,
    }
}

async fn encrypt(service: &Kagi, text: &str) -> Vec<u8> {
    service
        .crypto()
        .encrypt(pb::EncryptRequest {
            key_id: "board-a/grades".into(),
            plaintext: text.as_bytes().to_vec(),
            context: ctx(&[("pupil", "7")]),
        })
        .await
        .unwrap()
        .into_inner()
        .ciphertext
}

async fn decrypt(service: &Kagi, ciphertext: &[u8]) -> Result<Vec<u8>, tonic::Status> {
    common::decrypt(service, ciphertext, &[("pupil", "7")]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destroyed_key_leaves_no_material_and_a_verifiable_record() {
    for backend in backends() {
        let clock = ManualClock::new(START);
        let server = TestServer::start_with(backend, None, Arc::new(clock.clone())).await;
        let admin = server.admin().await;
        let alice = approver(&server, "alice").await;
        let bob = approver(&server, "bob").await;
        let tenant = common::tenant(&admin, "board-a").await;
        common::key(&admin, &tenant, "grades").await;
        common::key(&admin, &tenant, "archive").await;
        let token =
            common::principal(&admin, "board-a-app", pb::Role::TenantService, &tenant).await;
        let app = server.client(&token).await;
        let mut ciphertexts = vec![encrypt(&app, "v1 data").await];
        admin
            .keys()
            .rotate_key(pb::RotateKeyRequest {
                key: "board-a/grades".into(),
                expected_current_version: 0,
            })
            .await
            .unwrap();
        ciphertexts.push(encrypt(&app, "v2 data").await);

        // A key under a retention hold cannot be scheduled; a hold never shortens.
        admin
            .keys()
            .set_retention_hold(pb::SetRetentionHoldRequest {
                key: "board-a/archive".into(),
                until: START + 400 * DAY,
                reason: "school records are kept 5 years".into(),
            })
            .await
            .unwrap();
        let err = admin
            .keys()
            .set_retention_hold(pb::SetRetentionHoldRequest {
                key: "board-a/archive".into(),
                until: START + 10 * DAY,
                reason: "shorter".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        let err = admin
            .quorum()
            .propose(destroy("board-a/archive", 7))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains("retention hold"), "{err:?}");

        // Schedule grades: a quorum approves; the key is pending for 7 days.
        let store = server.engine.store();
        let key_id = store
            .get_key_by_name(&tenant, "grades")
            .await
            .unwrap()
            .unwrap()
            .id;
        let materials: Vec<Vec<u8>> = store
            .list_versions(&key_id)
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.wrapped_material)
            .collect();
        assert_eq!(materials.len(), 2);
        let stored = server.stored_bytes().await;
        for material in &materials {
            assert!(
                common::contains(&stored, &hex::encode(material).into_bytes())
                    || common::contains(&stored, material),
                "{backend:?}: the scan sees the material before destruction"
            );
        }
        let proposal = admin
            .quorum()
            .propose(destroy("board-a/grades", 7))
            .await
            .unwrap()
            .into_inner()
            .proposal
            .unwrap();
        common::approve_all(&proposal, &[&alice, &bob]).await;

        // Not before the date.
        clock.advance(7 * DAY - 1);
        kagi_kms::scheduler::tick(&server.engine).await;
        let err = decrypt(&app, &ciphertexts[0]).await.unwrap_err();
        assert!(err.message().contains("pending destruction"), "{err:?}");

        // At the date: destroyed, once.
        clock.advance(1);
        let destroyed = server.engine.destroy_due().await.unwrap();
        assert_eq!(destroyed, vec![key_id.clone()]);
        assert!(server.engine.destroy_due().await.unwrap().is_empty());
        kagi_kms::scheduler::tick(&server.engine).await;

        // The material is gone from the store, and with it every old ciphertext.
        let stored = server.stored_bytes().await;
        for material in &materials {
            assert!(
                !common::contains(&stored, &hex::encode(material).into_bytes())
                    && !common::contains(&stored, material),
                "{backend:?}: destroyed material is still in the store"
            );
        }
        for version in store.list_versions(&key_id).await.unwrap() {
            assert!(version.wrapped_material.is_empty());
            assert_eq!(version.state.as_str(), "destroyed");
        }
        let when = kagi_kms::clock::rfc3339(START + 7 * DAY);
        for ciphertext in &ciphertexts {
            let err = decrypt(&app, ciphertext).await.unwrap_err();
            assert_eq!(err.code(), Code::FailedPrecondition);
            assert!(
                err.message().contains(&format!("was destroyed on {when}")),
                "{err:?}"
            );
        }
        let err = admin
            .keys()
            .cancel_key_destruction(pb::CancelKeyDestructionRequest {
                key: "board-a/grades".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        let key = admin
            .keys()
            .get_key(pb::GetKeyRequest {
                key: "board-a/grades".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .key
            .unwrap();
        assert_eq!(key.state, pb::KeyState::Destroyed as i32);

        // The record verifies with the instance's audit key; a modified copy does not.
        let response = admin
            .keys()
            .get_destruction_record(pb::GetDestructionRecordRequest {
                key: "board-a/grades".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let record = Record::from_json(&response.record).unwrap();
        let audit_key = server
            .engine
            .keyring()
            .unsealed()
            .unwrap()
            .audit_public_key();
        record
            .verify_signer(&hex::encode(audit_key.to_bytes()))
            .unwrap();
        assert_eq!(record.key_id, key_id);
        assert_eq!(record.versions.len(), 2);
        let mut approvers = record.approved_by.clone();
        approvers.sort();
        assert_eq!(approvers, vec!["alice", "bob"]);
        assert_eq!(record.requested_by, "test-admin");
        assert_eq!(record.destroyed_at, START + 7 * DAY);
        assert!(response.text.contains("消去日時"), "{}", response.text);
        let forged = response.record.replace("\"bob\"", "\"mallory\"");
        assert!(Record::from_json(&forged).is_err());

        // The other key is untouched, and the destruction is in the audit trail.
        assert_eq!(
            store
                .get_key_by_name(&tenant, "archive")
                .await
                .unwrap()
                .unwrap()
                .state
                .as_str(),
            "enabled"
        );
        let filter = kagi_kms::store::audit::AuditFilter {
            operation: Some("KeyDestroyed".into()),
            ..Default::default()
        };
        assert_eq!(store.audit_query(&filter, 10).await.unwrap().len(), 1);
        server.stop().await;
    }
}
