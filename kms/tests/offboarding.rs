//! Off-boarding a tenant end to end (catalogue D3, D4), with kagictl (run as a process) against
//! a real kagid (in-process, gRPC over loopback, SQLite and PostgreSQL) on an injected clock:
//! `kagictl tenant offboard` proposes the escrow export and the destruction and revokes the
//! tenant's services; a quorum approves; the bundle opens with the escrow custodians' shares;
//! at the date the scheduler destroys every key; what remains of the tenant is tombstones,
//! signed destruction records and audit entries.

mod common;

use std::sync::Arc;

use common::{TestServer, backends, ctx};
use kagi_kms::clock::ManualClock;
use kagi_kms::destruction::record::Record;
use kagi_kms::escrow::bundle::{self, Bundle};
use kagi_sdk::pb;
use serde_json::Value;
use tonic::Code;

const START: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

/// Runs kagictl with `--json` against `endpoint` as `token`; its JSON output.
fn kagictl(endpoint: &str, token: &str, args: &[String]) -> Value {
    let mut all = vec!["--json"];
    all.extend(args.iter().map(String::as_str));
    let output = common::process::kagictl(endpoint, token, &all, &std::env::temp_dir())
        .output()
        .expect("kagictl runs");
    assert!(
        output.status.success(),
        "kagictl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// [`kagictl`] as `server`'s admin, on a blocking thread (the server runs on this runtime).
async fn run_kagictl(server: &TestServer, args: &[&str]) -> Value {
    let (endpoint, token) = (server.endpoint.clone(), server.admin_token.clone());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || kagictl(&endpoint, &token, &args))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_offboarded_leaves_tombstones_records_and_audit_entries_only() {
    for backend in backends() {
        let clock = ManualClock::new(START);
        let server = TestServer::start_with(backend, None, Arc::new(clock.clone())).await;
        let admin = server.admin().await;
        let people: Vec<(String, age::x25519::Identity)> = ["alice", "bob"]
            .iter()
            .map(|n| ((*n).to_owned(), age::x25519::Identity::generate()))
            .collect();
        let mut approvers = Vec::new();
        for (name, identity) in &people {
            let public = identity.to_public().to_string();
            approvers.push(common::enrol_approver(&server, name, &public).await);
        }
        let tenant = common::tenant(&admin, "board-z").await;
        common::key(&admin, &tenant, "grades").await;
        common::key(&admin, &tenant, "activity").await;
        let token =
            common::principal(&admin, "board-z-app", pb::Role::TenantService, &tenant).await;
        let app = server.client(&token).await;
        let ciphertext = app
            .crypto()
            .encrypt(pb::EncryptRequest {
                key_id: "board-z/grades".into(),
                plaintext: b"final grades".to_vec(),
                context: ctx(&[("pupil", "1")]),
            })
            .await
            .unwrap()
            .into_inner()
            .ciphertext;
        let store = server.engine.store();
        let mut materials = Vec::new();
        for key in store.list_keys(Some(&tenant), "", 100).await.unwrap() {
            for version in store.list_versions(&key.id).await.unwrap() {
                materials.push(version.wrapped_material);
            }
        }

        // Start: two proposals, and the tenant's service is revoked at once.
        let started = run_kagictl(
            &server,
            &[
                "tenant",
                "offboard",
                "board-z",
                "--escrow-custodians",
                "alice,bob",
                "--threshold",
                "2",
                "--waiting-days",
                "7",
            ],
        )
        .await;
        assert_eq!(
            started["revoked_principals"],
            serde_json::json!(["board-z-app"])
        );
        let ids: Vec<String> = started["proposals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 2);
        let status = run_kagictl(&server, &["tenant", "offboard-status", "board-z"]).await;
        assert_eq!(status["stage"], "awaiting-approval", "{status}");
        let err = app
            .crypto()
            .encrypt(pb::EncryptRequest {
                key_id: "board-z/grades".into(),
                plaintext: b"x".to_vec(),
                context: ctx(&[("pupil", "1")]),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

        // The quorum approves both: the export runs and every key is suspended.
        let refs: Vec<&common::Approver> = approvers.iter().collect();
        for id in &ids {
            let proposal = admin
                .quorum()
                .get_proposal(pb::GetProposalRequest {
                    proposal_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .proposal
                .unwrap();
            let done = common::approve_all(&proposal, &refs).await;
            assert_eq!(done.state, pb::ProposalState::Executed as i32, "{done:?}");
        }
        let status = run_kagictl(&server, &["tenant", "offboard-status", "board-z"]).await;
        assert_eq!(status["stage"], "suspended", "{status}");
        assert_eq!(status["keys_pending_destruction"], 2);

        // The customer's copy: the bundle opens with the escrow custodians' shares.
        let exported = admin
            .escrow()
            .get_bundle(pb::GetBundleRequest {
                proposal_id: ids[0].clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let bundle = Bundle::from_json(&exported.bundle).unwrap();
        let shares: Vec<_> = people
            .iter()
            .map(|(name, identity)| bundle::open_share(&bundle, identity, name).unwrap())
            .collect();
        let payload = bundle.open(&shares).unwrap();
        let payload = kagi_kms::escrow::payload::decode(&payload).unwrap();
        assert_eq!(payload.manifest.keys.len(), 2);

        // At the date the scheduler destroys every key.
        clock.advance(7 * DAY);
        kagi_kms::scheduler::tick(&server.engine).await;
        let status = run_kagictl(&server, &["tenant", "offboard-status", "board-z"]).await;
        assert_eq!(status["stage"], "destroyed", "{status}");
        assert_eq!(status["active_principals"], 0);

        // Left: tombstones, records, audit entries. Gone: material and stored bundles.
        let stored = server.stored_bytes().await;
        for material in &materials {
            assert!(
                !common::contains(&stored, material)
                    && !common::contains(&stored, &hex::encode(material).into_bytes()),
                "{backend:?}: material of the tenant is still stored"
            );
        }
        for key in store.list_keys(Some(&tenant), "", 100).await.unwrap() {
            assert_eq!(key.state.as_str(), "destroyed");
            let record = store.destruction_record(&key.id).await.unwrap().unwrap();
            Record::from_json(&record).unwrap();
        }
        let err = admin
            .escrow()
            .get_bundle(pb::GetBundleRequest {
                proposal_id: ids[0].clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        // Even a new service of the tenant reads nothing: the keys were destroyed.
        let token =
            common::principal(&admin, "board-z-late", pb::Role::TenantService, &tenant).await;
        let late = server.client(&token).await;
        let err = common::decrypt(&late, &ciphertext, &[("pupil", "1")])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("was destroyed on"), "{err:?}");
        let filter = kagi_kms::store::audit::AuditFilter {
            operation: Some("KeyDestroyed".into()),
            tenant_id: Some(tenant.clone()),
            ..Default::default()
        };
        assert_eq!(store.audit_query(&filter, 10).await.unwrap().len(), 2);
        server.stop().await;
    }
}
