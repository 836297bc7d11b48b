//! Shared test fixtures: a fresh database per test on SQLite and (when
//! `KAGI_TEST_DATABASE_URL` is set) PostgreSQL, and a real kagid served in-process on a free
//! loopback port.

#![allow(dead_code, unused_imports)]

pub mod db;
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
