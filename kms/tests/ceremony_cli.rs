//! The whole custodian ceremony through the real binaries, outside dev mode: kagid prints the
//! bootstrap admin's token file, custodians make passphrase-protected keys with kagictl, are
//! enrolled, receive age-encrypted shares from `operator init` and unseal with `kagictl unseal`.
//! A restart comes up sealed and another quorum unseals it; old ciphertexts still decrypt.
//! Afterwards kagid's log and the store hold no share and no root key bytes.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use base64::Engine as _;
use common::{Backend, TestDb, backends, contains, ctx};
use kagi_kms::crypto::sharing::{Commitments, ShareRecord};
use kagi_kms::store::Store;
use kagi_sdk::{Kagi, pb};
use serde_json::Value;

const PASSPHRASE: &str = "correct horse battery staple";
const CUSTODIANS: [&str; 3] = ["alice", "bob", "carol"];

/// kagid outside dev mode, on a data directory and database that outlive it.
struct Kagid {
    child: Child,
    endpoint: String,
    stdout: Vec<String>,
}

impl Kagid {
    fn start(dir: &Path, database_url: &str, log: &Path) -> Self {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kagid"));
        clear_kagi_env(&mut command);
        let mut child = command
            .env("KAGI_LOG", "debug")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--database-url", database_url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("kagid starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        let endpoint = loop {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "kagid exited early"
            );
            lines.push(line.trim().to_owned());
            if let Some(endpoint) = line.trim().strip_prefix("export KAGI_ENDPOINT=") {
                break endpoint.to_owned();
            }
        };
        // The bootstrap line, if any, comes before the endpoint; then kagid is serving.
        wait_for_health(&endpoint);
        let _ = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self {
            child,
            endpoint,
            stdout: lines,
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn kagictl(&self, dir: &Path, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kagictl"));
        clear_kagi_env(&mut command);
        command
            .env("KAGI_ENDPOINT", &self.endpoint)
            .current_dir(dir);
        if let Some(token) = token {
            command.env("KAGI_TOKEN", token);
        }
        let out = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("kagictl runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, dir: &Path, token: Option<&str>, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.kagictl(dir, token, args);
        assert_eq!(code, 0, "kagictl {args:?} failed: {stderr}");
        stdout
    }

    fn status(&self, dir: &Path) -> Value {
        serde_json::from_str(&self.ok(dir, None, &["--json", "operator", "status"])).unwrap()
    }

    async fn client(&self, token: &str) -> Kagi {
        Kagi::connect(self.endpoint.clone())
            .token(token)
            .build()
            .await
            .unwrap()
    }
}

impl Drop for Kagid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clear_kagi_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KAGI_") {
            command.env_remove(name);
        }
    }
}

fn wait_for_health(endpoint: &str) {
    let addr = endpoint.trim_start_matches("http://");
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("kagid does not accept connections on {addr}");
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Opens a custodian's passphrase-protected key file the way the `age` tool would.
fn identity(key_file: &Path) -> age::x25519::Identity {
    let armored = fs::read(key_file).unwrap();
    let scrypt = age::scrypt::Identity::new(SecretString::from(PASSPHRASE.to_owned()));
    let text = String::from_utf8(age::decrypt(&scrypt, &armored).unwrap()).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("an age identity");
    age::x25519::Identity::from_str(line).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ceremony_restart_and_unseal_through_the_binaries() {
    for backend in backends() {
        ceremony(backend).await;
    }
}

async fn ceremony(backend: Backend) {
    let db = TestDb::new(backend).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = dir.join("kagid.log");
    fs::write(dir.join("passphrase"), format!("{PASSPHRASE}\n")).unwrap();
    fs::write(
        dir.join("duties.txt"),
        "I accept the duties of a key custodian.\n",
    )
    .unwrap();

    let kagid = Kagid::start(dir, &db.url, &log);
    let token_file = dir.join("data/bootstrap-admin.token");
    assert!(
        kagid
            .stdout
            .iter()
            .any(|l| l.contains("bootstrap-admin.token")),
        "{:?}",
        kagid.stdout
    );
    assert_eq!(mode(&token_file), 0o600);
    let admin = fs::read_to_string(&token_file).unwrap().trim().to_owned();
    let status = kagid.status(dir);
    assert_eq!(
        (status["initialised"].as_bool(), status["sealed"].as_bool()),
        (Some(false), Some(true))
    );

    // Each custodian makes a key pair; the admin enrols them and initialises 2 of 3.
    let mut tokens: HashMap<&str, String> = HashMap::new();
    for name in CUSTODIANS {
        kagid.ok(
            dir,
            None,
            &[
                "custodian",
                "keygen",
                "--out",
                &format!("{name}.key"),
                "--passphrase-file",
                "passphrase",
                "--work-factor",
                "10",
            ],
        );
        assert_eq!(mode(&dir.join(format!("{name}.key"))), 0o600);
        let enrolled: Value = serde_json::from_str(&kagid.ok(
            dir,
            Some(&admin),
            &[
                "--json",
                "custodian",
                "enroll",
                "--name",
                name,
                "--person",
                &format!("Person {name}"),
                "--public-key",
                &format!("{name}.pub"),
                "--acknowledgement",
                "duties.txt",
            ],
        ))
        .unwrap();
        tokens.insert(name, enrolled["token"].as_str().unwrap().to_owned());
    }
    kagid.ok(
        dir,
        Some(&admin),
        &[
            "operator",
            "init",
            "--custodians",
            "alice.pub,bob.pub,carol.pub",
            "--threshold",
            "2",
            "--out-dir",
            "shares",
        ],
    );
    let share_file = |name: &str| -> PathBuf {
        let found = fs::read_dir(dir.join("shares"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(&format!("-{name}.age")))
            .unwrap_or_else(|| panic!("a share file for {name}"));
        assert_eq!(mode(&found), 0o600);
        found
    };
    let unseal = |kagid: &Kagid, name: &str| {
        kagid.ok(
            dir,
            Some(&tokens[name]),
            &[
                "unseal",
                "--share",
                share_file(name).to_str().unwrap(),
                "--identity",
                &format!("{name}.key"),
                "--passphrase-file",
                "passphrase",
            ],
        )
    };
    // An admin's unseal is refused: only custodians hold shares.
    let (code, _, stderr) = kagid.kagictl(
        dir,
        Some(&admin),
        &[
            "unseal",
            "--share",
            share_file("alice").to_str().unwrap(),
            "--identity",
            "alice.key",
            "--passphrase-file",
            "passphrase",
        ],
    );
    assert_ne!(code, 0);
    assert!(stderr.to_lowercase().contains("custodian"), "{stderr}");
    unseal(&kagid, "alice");
    assert_eq!(kagid.status(dir)["sealed"].as_bool(), Some(true));
    unseal(&kagid, "carol");
    assert_eq!(kagid.status(dir)["sealed"].as_bool(), Some(false));

    // Data under the unsealed root.
    let admin_client = kagid.client(&admin).await;
    let tenant = common::tenant(&admin_client, "board").await;
    common::key(&admin_client, &tenant, "records").await;
    let service = common::principal(&admin_client, "app", pb::Role::TenantService, &tenant).await;
    let encrypt_request = pb::EncryptRequest {
        key_id: "board/records".into(),
        plaintext: b"pupil 7: attendance".to_vec(),
        context: ctx(&[("pupil", "7")]),
    };
    let ciphertext = kagid
        .client(&service)
        .await
        .crypto()
        .encrypt(encrypt_request.clone())
        .await
        .unwrap()
        .into_inner()
        .ciphertext;
    kagid.stop();

    // A restart comes up sealed, writes no new bootstrap token, and refuses crypto calls.
    let kagid = Kagid::start(dir, &db.url, &log);
    assert!(
        !kagid.stdout.iter().any(|l| l.contains("bootstrap")),
        "{:?}",
        kagid.stdout
    );
    let status = kagid.status(dir);
    assert_eq!(
        (status["initialised"].as_bool(), status["sealed"].as_bool()),
        (Some(true), Some(true))
    );
    let err = kagid
        .client(&service)
        .await
        .crypto()
        .encrypt(encrypt_request)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains("sealed"), "{}", err.message());
    unseal(&kagid, "bob");
    unseal(&kagid, "carol");
    assert_eq!(kagid.status(dir)["sealed"].as_bool(), Some(false));
    let plaintext = kagid
        .client(&service)
        .await
        .crypto()
        .decrypt(pb::DecryptRequest {
            ciphertext: ciphertext.clone(),
            context: ctx(&[("pupil", "7")]),
        })
        .await
        .unwrap()
        .into_inner()
        .plaintext;
    assert_eq!(plaintext, b"pupil 7: attendance");
    kagid.stop();

    // No share, no scalar and no root key in the log or the store, in any common encoding.
    let shares: Vec<Vec<u8>> = CUSTODIANS
        .iter()
        .map(|name| {
            let file = fs::read(share_file(name)).unwrap();
            age::decrypt(&identity(&dir.join(format!("{name}.key"))), &file).unwrap()
        })
        .collect();
    let store = Store::open(&db.url).await.unwrap();
    let config = store.seal_config().await.unwrap().unwrap();
    let values: Vec<_> = shares
        .iter()
        .map(|s| ShareRecord::parse(s).unwrap().share)
        .collect();
    let root = Commitments::decode(&config.commitments)
        .unwrap()
        .combine(&values[1..])
        .unwrap()
        .root_key(&config.init_id);
    store.close().await;
    let mut secrets = vec![root.expose().to_vec()];
    for share in &shares {
        secrets.push(share.clone());
        secrets.push(share[27..].to_vec());
    }
    for name in CUSTODIANS {
        let secret_key = identity(&dir.join(format!("{name}.key")));
        secrets.push(secret_key.to_string().expose_secret().as_bytes().to_vec());
    }
    let log_text = fs::read(&log).unwrap();
    assert!(
        contains(&log_text, b"unseal_share_accepted"),
        "the log records submissions"
    );
    let stored = db.stored_bytes().await;
    for secret in &secrets {
        for encoded in [
            secret.clone(),
            hex::encode(secret).into_bytes(),
            base64::engine::general_purpose::STANDARD
                .encode(secret)
                .into_bytes(),
        ] {
            assert!(!contains(&log_text, &encoded), "a secret is in kagid's log");
            assert!(!contains(&stored, &encoded), "a secret is in the store");
        }
    }
    assert!(
        !contains(&log_text, admin.as_bytes()),
        "the admin token is in kagid's log"
    );
}
