//! End to end: the real kagid binary in dev mode on a free loopback port, driven through the
//! real client, on SQLite and (when configured) PostgreSQL.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{Backend, TestDb, backends, ctx};
use kagi_sdk::{Kagi, pb};
use tonic::Code;

/// A kagid child process, killed on drop.
struct Kagid {
    child: Child,
    endpoint: String,
    token: String,
}

impl Kagid {
    fn start(data_dir: &Path, database_url: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kagid"))
            .args(["--dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--database-url", database_url])
            .env("KAGI_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kagid");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut endpoint, mut token) = (None, None);
        while endpoint.is_none() || token.is_none() {
            let line = lines
                .next()
                .expect("kagid printed its export lines")
                .unwrap();
            if let Some(v) = line.strip_prefix("export KAGI_ENDPOINT=") {
                endpoint = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("export KAGI_TOKEN=") {
                token = Some(v.to_owned());
            }
        }
        Self {
            child,
            endpoint: endpoint.unwrap(),
            token: token.unwrap(),
        }
    }

    async fn client(&self, token: &str) -> Kagi {
        // kagid prints its endpoint once it listens, so the first connect succeeds.
        Kagi::connect(self.endpoint.clone())
            .token(token)
            .build()
            .await
            .expect("connect")
    }
}

impl Drop for Kagid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn full_key_lifecycle_through_the_real_binary() {
    for backend in backends() {
        lifecycle(backend).await;
    }
}

async fn lifecycle(backend: Backend) {
    let db = TestDb::new(backend).await;
    let data_dir = db.dir().join("dev");
    let kagid = Kagid::start(&data_dir, &db.url);
    let admin = kagid.client(&kagid.token).await;

    let tenant = common::tenant(&admin, "school-1").await;
    let key = common::key(&admin, &tenant, "grades").await;
    assert_eq!(key.primary_version, 1);
    let service_token =
        common::principal(&admin, "grades-app", pb::Role::TenantService, "school-1").await;
    let service = kagid.client(&service_token).await;
    let context = ctx(&[("record", "grades"), ("school", "school-1")]);

    // Encrypt and decrypt; the key is named by TENANT/NAME, the response gives its id.
    let encrypted = service
        .crypto()
        .encrypt(pb::EncryptRequest {
            key_id: "school-1/grades".into(),
            plaintext: b"pupil 42: A".to_vec(),
            context: context.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (encrypted.key_id.as_str(), encrypted.key_version),
        (key.id.as_str(), 1)
    );
    let old_ciphertext = encrypted.ciphertext;
    let decrypted = decrypt(&service, &old_ciphertext, &context).await.unwrap();
    assert_eq!(
        (decrypted.plaintext.as_slice(), decrypted.key_version),
        (&b"pupil 42: A"[..], 1)
    );

    // Rotate; the old ciphertext still decrypts, new ones use version 2.
    let rotated = admin
        .keys()
        .rotate_key(pb::RotateKeyRequest {
            key: key.id.clone(),
            expected_current_version: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(rotated.primary_version, 2);
    assert_eq!(rotated.versions.len(), 2);
    assert_eq!(
        decrypt(&service, &old_ciphertext, &context)
            .await
            .unwrap()
            .key_version,
        1
    );

    // A data key: its plaintext is what the wrapped form decrypts to.
    let data_key = service
        .crypto()
        .generate_data_key(pb::GenerateDataKeyRequest {
            key_id: key.id.clone(),
            context: context.clone(),
            spec: pb::DataKeySpec::Aes256 as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(data_key.plaintext_key.len(), 32);
    assert_eq!(data_key.key_version, 2);
    let unwrapped = decrypt(&service, &data_key.wrapped_key, &context)
        .await
        .unwrap();
    assert_eq!(unwrapped.plaintext, data_key.plaintext_key);
    let without = service
        .crypto()
        .generate_data_key_without_plaintext(pb::GenerateDataKeyRequest {
            key_id: key.id.clone(),
            context: context.clone(),
            spec: pb::DataKeySpec::Chacha20Poly1305256 as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        decrypt(&service, &without.wrapped_key, &context)
            .await
            .unwrap()
            .plaintext
            .len(),
        32
    );

    // Re-encrypt the version-1 ciphertext to version 2, with a new context.
    let new_context = ctx(&[("record", "grades-2027")]);
    let re = service
        .crypto()
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext: old_ciphertext.clone(),
            source_context: context.clone(),
            destination_key_id: String::new(),
            destination_context: new_context.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((re.source_key_version, re.key_version), (1, 2));
    let again = decrypt(&service, &re.ciphertext, &new_context)
        .await
        .unwrap();
    assert_eq!(
        (again.plaintext.as_slice(), again.key_version),
        (&b"pupil 42: A"[..], 2)
    );

    // Disable: every crypto call fails with FAILED_PRECONDITION; enable restores.
    admin
        .keys()
        .disable_key(pb::DisableKeyRequest {
            key: key.id.clone(),
        })
        .await
        .unwrap();
    let status = decrypt(&service, &old_ciphertext, &context)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("disabled"), "{status:?}");
    let status = service
        .crypto()
        .encrypt(pb::EncryptRequest {
            key_id: key.id.clone(),
            plaintext: b"x".to_vec(),
            context: context.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    admin
        .keys()
        .enable_key(pb::EnableKeyRequest {
            key: key.id.clone(),
        })
        .await
        .unwrap();
    decrypt(&service, &old_ciphertext, &context).await.unwrap();

    // Restart on the same data: same admin token, old ciphertexts still decrypt.
    drop(service);
    drop(admin);
    let first_token = kagid.token.clone();
    drop(kagid);
    let kagid = Kagid::start(&data_dir, &db.url);
    assert_eq!(
        kagid.token, first_token,
        "dev mode keeps its admin token across restarts"
    );
    let service = kagid.client(&service_token).await;
    assert_eq!(
        decrypt(&service, &old_ciphertext, &context)
            .await
            .unwrap()
            .plaintext,
        b"pupil 42: A"
    );
    check_dev_files(&data_dir);
}

async fn decrypt(
    client: &Kagi,
    ciphertext: &[u8],
    context: &std::collections::HashMap<String, String>,
) -> Result<pb::DecryptResponse, tonic::Status> {
    client
        .crypto()
        .decrypt(pb::DecryptRequest {
            ciphertext: ciphertext.to_vec(),
            context: context.clone(),
        })
        .await
        .map(|r| r.into_inner())
}

/// The dev root key and admin token are readable by their owner only.
fn check_dev_files(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for name in [kagi_kms::dev::ROOT_FILE, kagi_kms::dev::TOKEN_FILE] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {mode:o}");
    }
}
