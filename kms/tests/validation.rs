//! Bad input gets a clear status a person can act on: names, enums, limits, paging, tokens.

mod common;

use common::{TestServer, backends};
use kagi_sdk::{Kagi, pb};
use tonic::Code;

fn create_key(tenant: &str, name: &str, purpose: pb::Purpose, days: u32) -> pb::CreateKeyRequest {
    pb::CreateKeyRequest {
        tenant: tenant.into(),
        name: name.into(),
        purpose: purpose as i32,
        importance_class: pb::ImportanceClass::ClassIii as i32,
        rotation_period_days: days,
        ..Default::default()
    }
}

async fn code_and_message<T>(result: Result<tonic::Response<T>, tonic::Status>) -> (Code, String) {
    let status = result.err().expect("the call must fail");
    (status.code(), status.message().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_periods_follow_the_yearly_rule() {
    for backend in backends() {
        let server = TestServer::start(backend).await;
        let admin = server.admin().await;
        common::tenant(&admin, "school").await;
        let mut keys = admin.keys();
        for purpose in [
            pb::Purpose::PersonalInformation,
            pb::Purpose::LearningRecord,
            pb::Purpose::SchoolAdministration,
        ] {
            let (code, message) = code_and_message(
                keys.create_key(create_key("school", "k", purpose, 366))
                    .await,
            )
            .await;
            assert_eq!(code, Code::InvalidArgument, "{purpose:?}");
            assert!(
                message.contains("365") && message.contains("K4"),
                "{message}"
            );
        }
        let yearly = keys
            .create_key(create_key(
                "school",
                "yearly",
                pb::Purpose::LearningRecord,
                365,
            ))
            .await
            .unwrap();
        let yearly = yearly.into_inner().key.unwrap();
        assert_eq!(yearly.rotation_period_days, 365);
        assert_eq!(yearly.next_rotation_at, yearly.created_at + 365 * 86_400);
        let default = keys
            .create_key(create_key(
                "school",
                "default",
                pb::Purpose::PersonalInformation,
                0,
            ))
            .await
            .unwrap();
        assert_eq!(default.into_inner().key.unwrap().rotation_period_days, 365);
        // Keys that protect no school data may rotate less often, within reason.
        keys.create_key(create_key("school", "other", pb::Purpose::Other, 730))
            .await
            .unwrap();
        let (code, _) = code_and_message(
            keys.create_key(create_key("school", "o2", pb::Purpose::Other, 5000))
                .await,
        )
        .await;
        assert_eq!(code, Code::InvalidArgument);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_invalid_arguments() {
    for backend in backends() {
        let server = TestServer::start(backend).await;
        let admin = server.admin().await;
        common::tenant(&admin, "school").await;
        let mut keys = admin.keys();

        for name in [
            "",
            "has space",
            "ümlaut",
            &"x".repeat(65),
            "0b5e8d8a-4c3e-4f5a-9d6e-2a1b3c4d5e6f",
        ] {
            let (code, message) = code_and_message(
                keys.create_tenant(pb::CreateTenantRequest { name: name.into() })
                    .await,
            )
            .await;
            assert_eq!(code, Code::InvalidArgument, "{name:?}");
            assert!(message.contains("tenant name"), "{message}");
        }
        let (code, _) = code_and_message(
            keys.create_tenant(pb::CreateTenantRequest {
                name: "school".into(),
            })
            .await,
        )
        .await;
        assert_eq!(code, Code::AlreadyExists);

        let mut no_purpose = create_key("school", "k", pb::Purpose::Unspecified, 0);
        let (code, message) = code_and_message(keys.create_key(no_purpose.clone()).await).await;
        assert_eq!(
            (code, message.contains("purpose")),
            (Code::InvalidArgument, true),
            "{message}"
        );
        no_purpose.purpose = 99;
        assert_eq!(
            code_and_message(keys.create_key(no_purpose).await).await.0,
            Code::InvalidArgument
        );
        let mut no_class = create_key("school", "k", pb::Purpose::Other, 0);
        no_class.importance_class = 0;
        assert_eq!(
            code_and_message(keys.create_key(no_class).await).await.0,
            Code::InvalidArgument
        );
        let (code, _) = code_and_message(
            keys.create_key(create_key("nowhere", "k", pb::Purpose::Other, 0))
                .await,
        )
        .await;
        assert_eq!(code, Code::NotFound);

        for reference in [
            "",
            "not-a-key",
            "school/missing",
            "00000000-0000-4000-8000-000000000000",
        ] {
            let code = code_and_message(
                keys.get_key(pb::GetKeyRequest {
                    key: reference.into(),
                })
                .await,
            )
            .await
            .0;
            let expected = if reference.is_empty() || reference == "not-a-key" {
                Code::InvalidArgument
            } else {
                Code::NotFound
            };
            assert_eq!(code, expected, "{reference:?}");
        }

        let page = |size, token: &str| pb::ListKeysRequest {
            tenant: String::new(),
            page_size: size,
            page_token: token.into(),
        };
        assert_eq!(
            code_and_message(keys.list_keys(page(1001, "")).await)
                .await
                .0,
            Code::InvalidArgument
        );
        assert_eq!(
            code_and_message(keys.list_keys(page(10, "garbage")).await)
                .await
                .0,
            Code::InvalidArgument
        );

        let mut principals = admin.principals();
        let service_without_tenant = pb::CreatePrincipalRequest {
            name: "svc".into(),
            role: pb::Role::TenantService as i32,
            tenant: String::new(),
        };
        let (code, message) =
            code_and_message(principals.create_principal(service_without_tenant).await).await;
        assert_eq!(
            (code, message.contains("needs a tenant")),
            (Code::InvalidArgument, true),
            "{message}"
        );
        let admin_with_tenant = pb::CreatePrincipalRequest {
            name: "adm".into(),
            role: pb::Role::Admin as i32,
            tenant: "school".into(),
        };
        assert_eq!(
            code_and_message(principals.create_principal(admin_with_tenant).await)
                .await
                .0,
            Code::InvalidArgument
        );
        let no_role = pb::CreatePrincipalRequest {
            name: "x".into(),
            role: 0,
            tenant: String::new(),
        };
        assert_eq!(
            code_and_message(principals.create_principal(no_role).await)
                .await
                .0,
            Code::InvalidArgument
        );
        let missing = pb::RevokePrincipalRequest {
            principal: "nobody".into(),
        };
        assert_eq!(
            code_and_message(principals.revoke_principal(missing).await)
                .await
                .0,
            Code::NotFound
        );

        let context: std::collections::HashMap<_, _> =
            (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        common::key(&admin, "school", "grades").await;
        let token = common::principal(&admin, "svc-1", pb::Role::TenantService, "school").await;
        let service = server.client(&token).await;
        let too_many = pb::EncryptRequest {
            key_id: "school/grades".into(),
            plaintext: vec![1],
            context,
        };
        let (code, message) = code_and_message(service.crypto().encrypt(too_many).await).await;
        assert_eq!(
            (code, message.contains("encryption context")),
            (Code::InvalidArgument, true),
            "{message}"
        );
        let huge = pb::DecryptRequest {
            ciphertext: vec![0; 70_000],
            context: Default::default(),
        };
        assert_eq!(
            code_and_message(service.crypto().decrypt(huge).await)
                .await
                .0,
            Code::InvalidArgument
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_cannot_probe_other_tenants_by_name() {
    for backend in backends() {
        let server = TestServer::start(backend).await;
        let admin = server.admin().await;
        common::tenant(&admin, "school-a").await;
        common::tenant(&admin, "school-b").await;
        common::key(&admin, "school-b", "grades").await;
        let token = common::principal(&admin, "svc-a", pb::Role::TenantService, "school-a").await;
        let service = server.client(&token).await;
        // An existing key, a missing key and a missing tenant all look the same.
        for reference in [
            "school-b/grades",
            "school-b/missing",
            "no-such-school/grades",
        ] {
            let request = pb::EncryptRequest {
                key_id: reference.into(),
                plaintext: vec![1],
                context: Default::default(),
            };
            let (code, _) = code_and_message(service.crypto().encrypt(request).await).await;
            assert_eq!(code, Code::PermissionDenied, "{reference}");
        }
        // Its own tenant, by name: a missing key is simply not found.
        let request = pb::EncryptRequest {
            key_id: "school-a/missing".into(),
            plaintext: vec![1],
            context: Default::default(),
        };
        assert_eq!(
            code_and_message(service.crypto().encrypt(request).await)
                .await
                .0,
            Code::NotFound
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_checked_before_anything_else() {
    let server = TestServer::start(common::Backend::Sqlite).await;
    let bad_tokens = [
        "",
        "kagi_short",
        "Basic abc",
        "kagi_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ];
    for token in bad_tokens {
        let client = Kagi::connect(server.endpoint.clone())
            .token(token)
            .build()
            .await
            .unwrap();
        let (code, message) =
            code_and_message(client.keys().list_tenants(pb::ListTenantsRequest {}).await).await;
        assert_eq!(code, Code::Unauthenticated, "{token:?}");
        assert!(
            token.len() < 8 || !message.contains(token),
            "the token must not be echoed: {message}"
        );
    }
    server.stop().await;
}
