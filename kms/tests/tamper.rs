//! Bad ciphertexts and tampered storage: every failure is a clear status, never a panic, and
//! the store never holds a key, token or plaintext in the clear.

mod common;

use std::collections::HashMap;

use common::{Backend, TestServer, backends, contains, ctx};
use kagi_kms::crypto::wrap::{self, VersionIdentity};
use kagi_kms::crypto::{SecretKey, derive};
use kagi_sdk::{Kagi, pb};
use tonic::Code;

async fn encrypt(
    client: &Kagi,
    key: &str,
    plaintext: &[u8],
    context: &HashMap<String, String>,
) -> Result<Vec<u8>, tonic::Status> {
    client
        .crypto()
        .encrypt(pb::EncryptRequest {
            key_id: key.into(),
            plaintext: plaintext.to_vec(),
            context: context.clone(),
        })
        .await
        .map(|r| r.into_inner().ciphertext)
}

async fn decrypt(
    client: &Kagi,
    ciphertext: &[u8],
    context: &HashMap<String, String>,
) -> Result<Vec<u8>, tonic::Status> {
    client
        .crypto()
        .decrypt(pb::DecryptRequest {
            ciphertext: ciphertext.to_vec(),
            context: context.clone(),
        })
        .await
        .map(|r| r.into_inner().plaintext)
}

/// A server with tenants A and B, a key each, and a service principal for A.
struct World {
    server: TestServer,
    admin: Kagi,
    service_a: Kagi,
    service_a_token: String,
    service_b: Kagi,
    key_a: String,
    key_b: String,
}

async fn world(backend: Backend) -> World {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    common::tenant(&admin, "tenant-a").await;
    common::tenant(&admin, "tenant-b").await;
    let key_a = common::key(&admin, "tenant-a", "records").await.id;
    let key_b = common::key(&admin, "tenant-b", "records").await.id;
    let service_a_token =
        common::principal(&admin, "svc-a", pb::Role::TenantService, "tenant-a").await;
    let service_b_token =
        common::principal(&admin, "svc-b", pb::Role::TenantService, "tenant-b").await;
    let service_a = server.client(&service_a_token).await;
    let service_b = server.client(&service_b_token).await;
    World {
        server,
        admin,
        service_a,
        service_a_token,
        service_b,
        key_a,
        key_b,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_ciphertexts_fail_with_clear_statuses() {
    for backend in backends() {
        let w = world(backend).await;
        let context = ctx(&[("record", "grades"), ("pupil-ref", "p-0042")]);
        let ciphertext = encrypt(&w.service_a, &w.key_a, b"grades: 5, 4, 5", &context)
            .await
            .unwrap();

        // A different context.
        let status = decrypt(&w.service_a, &ciphertext, &ctx(&[("record", "grades")]))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("encryption context"),
            "{status:?}"
        );

        // Every single bit flipped, anywhere.
        for bit in 0..ciphertext.len() * 8 {
            let mut bad = ciphertext.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let status = decrypt(&w.service_a, &bad, &context).await.unwrap_err();
            // Flips in the key id or version name an absent key or version; all others fail
            // parsing or authentication.
            let allowed = if (4 * 8..24 * 8).contains(&bit) {
                Code::NotFound
            } else {
                Code::InvalidArgument
            };
            assert_eq!(status.code(), allowed, "{backend:?} bit {bit}: {status:?}");
        }

        // Every truncation.
        for len in 0..ciphertext.len() {
            let status = decrypt(&w.service_a, &ciphertext[..len], &context)
                .await
                .unwrap_err();
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{backend:?} length {len}: {status:?}"
            );
        }

        // Another tenant's principal, presenting tenant A's ciphertext.
        let status = decrypt(&w.service_b, &ciphertext, &context)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(status.message().contains("another tenant"), "{status:?}");

        // Garbage and an oversized plaintext.
        let status = decrypt(&w.service_a, b"definitely not a ciphertext", &context)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = encrypt(&w.service_a, &w.key_a, &vec![0; 64 * 1024 + 1], &context)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("65536") && status.message().contains("GenerateDataKey"),
            "{status:?}"
        );
        encrypt(&w.service_a, &w.key_a, &vec![0; 64 * 1024], &context)
            .await
            .unwrap();

        // The server is still healthy after all that.
        assert_eq!(
            decrypt(&w.service_a, &ciphertext, &context).await.unwrap(),
            b"grades: 5, 4, 5"
        );
        w.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_row_copied_onto_another_key_fails_to_unwrap() {
    for backend in backends() {
        let w = world(backend).await;
        let context = ctx(&[]);
        // A second key of tenant A whose version 1 gets key A's wrapped material.
        let victim = common::key(&w.admin, "tenant-a", "victim").await.id;
        encrypt(&w.service_a, &victim, b"warm the cache", &context)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE key_versions SET wrapped_material = \
             (SELECT wrapped_material FROM key_versions WHERE key_id = $1 AND version = 1) \
             WHERE key_id = $2 AND version = 1",
        )
        .bind(&w.key_a)
        .bind(&victim)
        .execute(w.server.engine.store().pool())
        .await
        .unwrap();
        let status = encrypt(&w.service_a, &victim, b"x", &context)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        assert!(status.message().contains("does not unwrap"), "{status:?}");
        // The source key is untouched.
        encrypt(&w.service_a, &w.key_a, b"x", &context)
            .await
            .unwrap();
        // Same for a row copied onto another tenant's key.
        sqlx::query(
            "UPDATE key_versions SET wrapped_material = \
             (SELECT wrapped_material FROM key_versions WHERE key_id = $1 AND version = 1) \
             WHERE key_id = $2 AND version = 1",
        )
        .bind(&w.key_a)
        .bind(&w.key_b)
        .execute(w.server.engine.store().pool())
        .await
        .unwrap();
        let status = encrypt(&w.service_b, &w.key_b, b"x", &context)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        w.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_never_holds_keys_tokens_or_plaintext() {
    for backend in backends() {
        let w = world(backend).await;
        let context = ctx(&[("record", "grades")]);
        let plaintext = b"pupil 0042 grades: mathematics 5".to_vec();
        let ciphertext = encrypt(&w.service_a, &w.key_a, &plaintext, &context)
            .await
            .unwrap();
        w.admin
            .keys()
            .rotate_key(pb::RotateKeyRequest {
                key: w.key_a.clone(),
                expected_current_version: 0,
            })
            .await
            .unwrap();
        let data_key = w
            .service_a
            .crypto()
            .generate_data_key(pb::GenerateDataKeyRequest {
                key_id: w.key_a.clone(),
                context: context.clone(),
                spec: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            decrypt(&w.service_a, &ciphertext, &context).await.unwrap(),
            plaintext
        );

        // Every secret the test can name: version keys (unwrapped here with the root), the data
        // key, both tokens, the plaintext.
        let mut secrets: Vec<Vec<u8>> = version_keys(&w).await;
        assert_eq!(secrets.len(), 3, "key A has 2 versions, key B 1");
        secrets.push(data_key.plaintext_key.clone());
        secrets.push(w.server.admin_token.clone().into_bytes());
        secrets.push(w.service_a_token.clone().into_bytes());
        secrets.push(plaintext.clone());
        secrets.push(w.server.root.to_vec());

        let stored = w.server.stored_bytes().await;
        assert!(
            stored.len() > 1000,
            "the scan read the store ({} bytes)",
            stored.len()
        );
        for secret in &secrets {
            assert!(
                !contains(&stored, secret),
                "{backend:?}: a secret is stored in the clear"
            );
            assert!(
                !contains(&stored, hex::encode(secret).as_bytes()),
                "{backend:?}: a secret is stored as hex"
            );
        }
        // The scan can see what it looks for: wrapped material is in there.
        let material = w
            .server
            .engine
            .store()
            .list_versions(&w.key_a)
            .await
            .unwrap()[0]
            .wrapped_material
            .clone();
        assert!(
            contains(&stored, &material) || contains(&stored, hex::encode(&material).as_bytes())
        );
        w.server.stop().await;
    }
}

/// The plaintext version keys of both keys, unwrapped with the test's copy of the root.
async fn version_keys(w: &World) -> Vec<Vec<u8>> {
    let wrapping = derive::wrapping_key(&SecretKey::from_bytes(w.server.root));
    let mut keys = Vec::new();
    for key_id in [&w.key_a, &w.key_b] {
        let key = w
            .server
            .engine
            .store()
            .get_key(key_id)
            .await
            .unwrap()
            .unwrap();
        for version in w.server.engine.store().list_versions(key_id).await.unwrap() {
            let identity = VersionIdentity {
                tenant_id: &key.tenant_id,
                key_id,
                version: version.version,
            };
            let plain = wrap::unwrap(&wrapping, identity, &version.wrapped_material).unwrap();
            keys.push(plain.expose().to_vec());
        }
    }
    keys
}
