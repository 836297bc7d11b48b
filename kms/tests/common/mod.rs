//! Shared test fixtures: a fresh database per test on SQLite and (when
//! `KAGI_TEST_DATABASE_URL` is set) PostgreSQL, and a real kagid served in-process on a free
//! loopback port.

#![allow(dead_code, unused_imports)]

pub mod db;
pub mod process;
pub mod server;

pub use db::{Backend, TestDb, backends};
pub use server::TestServer;

use std::collections::HashMap;

use kagi_sdk::{Kagi, pb};

/// A context map from pairs.
pub fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Creates a tenant as admin and returns its id.
pub async fn tenant(admin: &Kagi, name: &str) -> String {
    let response = admin
        .keys()
        .create_tenant(pb::CreateTenantRequest { name: name.into() })
        .await
        .expect("create tenant");
    response.into_inner().tenant.unwrap().id
}

/// Creates a learning-record key as admin and returns it.
pub async fn key(admin: &Kagi, tenant: &str, name: &str) -> pb::Key {
    admin
        .keys()
        .create_key(pb::CreateKeyRequest {
            tenant: tenant.into(),
            name: name.into(),
            purpose: pb::Purpose::LearningRecord as i32,
            importance_class: pb::ImportanceClass::ClassIi as i32,
            ..Default::default()
        })
        .await
        .expect("create key")
        .into_inner()
        .key
        .unwrap()
}

/// Creates a principal as admin and returns its token.
pub async fn principal(admin: &Kagi, name: &str, role: pb::Role, tenant: &str) -> String {
    admin
        .principals()
        .create_principal(pb::CreatePrincipalRequest {
            name: name.into(),
            role: role as i32,
            tenant: tenant.into(),
        })
        .await
        .expect("create principal")
        .into_inner()
        .token
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A custodian enrolled on a test server, with the Ed25519 key their approvals are signed with.
pub struct Approver {
    /// Signs approvals.
    pub key: ed25519_dalek::SigningKey,
    /// Authenticated as this custodian.
    pub client: Kagi,
}

/// Enrols custodian `name` (age recipient `age_public`) with a fresh signing key.
pub async fn enrol_approver(server: &TestServer, name: &str, age_public: &str) -> Approver {
    let key = ed25519_dalek::SigningKey::from_bytes(&kagi_kms::crypto::random::array().unwrap());
    let enrolled = server
        .admin()
        .await
        .custodians()
        .enroll(pb::EnrollRequest {
            name: name.into(),
            person_name: name.to_uppercase(),
            public_key: age_public.into(),
            acknowledgement_sha256: vec![7; 32],
            signing_public_key: hex::encode(key.verifying_key().to_bytes()),
        })
        .await
        .expect("enrol")
        .into_inner();
    Approver {
        key,
        client: server.client(&enrolled.token).await,
    }
}

/// Approves `proposal` by each of `approvers` in turn; the proposal after the last approval.
pub async fn approve_all(proposal: &pb::Proposal, approvers: &[&Approver]) -> pb::Proposal {
    use ed25519_dalek::Signer as _;
    let digest = hex::decode(&proposal.digest).unwrap();
    let mut last = None;
    for approver in approvers {
        last = approver
            .client
            .quorum()
            .approve(pb::ApproveRequest {
                proposal_id: proposal.id.clone(),
                signature: approver.key.sign(&digest).to_bytes().to_vec(),
            })
            .await
            .expect("approve")
            .into_inner()
            .proposal;
    }
    last.expect("at least one approver")
}

/// Decrypts `ciphertext` with context `pairs`.
pub async fn decrypt(
    service: &Kagi,
    ciphertext: &[u8],
    pairs: &[(&str, &str)],
) -> Result<Vec<u8>, tonic::Status> {
    service
        .crypto()
        .decrypt(pb::DecryptRequest {
            ciphertext: ciphertext.to_vec(),
            context: ctx(pairs),
        })
        .await
        .map(|r| r.into_inner().plaintext)
}
