//! kagictl against a real kagid: both binaries run as processes, nothing is mocked.
//!
//! One dev-mode kagid serves the whole walk: an operator sets up a tenant, a key and a
//! service principal; the service encrypts and decrypts; the operator rotates and disables
//! the key; and the failures (wrong context, wrong role, bad token) reach the operator as
//! `kagictl: <code>: <message>` on stderr with a non-zero exit; an escrow bundle is checked
//! and staged.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::process::DevKagid as Kagid;
use serde_json::Value;

impl Kagid {
    /// Runs kagictl with `token` and `args`, feeding `stdin`.
    fn kagictl(&self, token: &str, args: &[&str], stdin: &[u8]) -> Run {
        let mut child = self
            .command(token, args)
            .stdin(Stdio::piped())
            .spawn()
            .expect("kagictl starts");
        // A separate thread writes stdin so that a large input cannot deadlock against a
        // full stdout pipe.
        let mut input = child.stdin.take().expect("piped stdin");
        let stdin = stdin.to_vec();
        let writer = std::thread::spawn(move || input.write_all(&stdin));
        let output = child.wait_with_output().expect("kagictl runs");
        // kagictl may exit without reading stdin (e.g. on a usage error): a broken pipe here
        // is expected and harmless.
        let _ = writer.join();
        Run {
            args: args.join(" "),
            code: output.status.code(),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// One finished kagictl run.
struct Run {
    /// The arguments, for failure messages.
    args: String,
    /// Exit code.
    code: Option<i32>,
    /// Raw stdout.
    stdout: Vec<u8>,
    /// Stderr as text.
    stderr: String,
}

impl Run {
    /// Raw stdout, after checking the run succeeded.
    fn bytes(self) -> Vec<u8> {
        assert_eq!(
            self.code,
            Some(0),
            "kagictl {} failed: {}",
            self.args,
            self.stderr
        );
        self.stdout
    }

    /// Stdout as text, after checking the run succeeded.
    fn ok(self) -> String {
        String::from_utf8(self.bytes()).expect("UTF-8 output")
    }

    /// Stdout as JSON, after checking the run succeeded.
    fn json(self) -> Value {
        let args = self.args.clone();
        let text = self.ok();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("kagictl {args}: {e}: {text}"))
    }

    /// Stderr, after checking the run failed with `code` and printed nothing on stdout.
    fn fails(self, code: i32) -> String {
        assert_eq!(
            self.code,
            Some(code),
            "kagictl {} should exit {code}; stderr: {}",
            self.args,
            self.stderr
        );
        assert!(self.stdout.is_empty(), "kagictl {} wrote stdout", self.args);
        self.stderr
    }
}

#[test]
fn operator_and_service_walk_through_kagictl() {
    let kagid = Kagid::start(&["--audit-checkpoint-records", "10"]);
    let admin = kagid.admin_token.clone();

    let service = set_up_tenant_key_and_service(&kagid, &admin);
    let ciphertext = encrypt_and_decrypt_files(&kagid, &service);
    encrypt_and_decrypt_through_pipes(&kagid, &service);
    stream_large_files(&kagid, &service);
    decrypt_kms_ciphertexts(&kagid, &service);
    data_keys(&kagid, &service);
    rotate_and_disable(&kagid, &admin, &service, &ciphertext);
    list_keys_across_pages(&kagid, &admin);
    refuse_wrong_callers(&kagid, &admin);
    refuse_bad_usage(&kagid, &admin);
    revoke_the_service(&kagid, &admin, &service);
    stage_escrow_bundles(&kagid, &admin);
    audit_trail(&kagid, &admin);
}

/// A bundle from another instance that any 2 of 3 escrow custodians open.
fn foreign_bundle() -> kagi_kms::escrow::bundle::Bundle {
    use kagi_kms::escrow::bundle::{self, EscrowCustodian};
    let custodians = ["alice", "bob", "carol"]
        .iter()
        .map(|name| EscrowCustodian {
            name: (*name).into(),
            principal_id: format!("id-{name}"),
            public_key: age::x25519::Identity::generate().to_public().to_string(),
        })
        .collect();
    bundle::seal(
        "54874d35-2935-430a-bb25-d00ed5f2c709",
        "school-1",
        "kagi-elsewhere",
        1_775_035_800,
        vec![],
        custodians,
        2,
        b"not really keys",
        &ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]),
    )
    .expect("a bundle")
}

/// `kagictl escrow stage|status`: a bundle file with one byte changed, or signed by another
/// key than the pinned one, is refused before anything is sent; an intact one stages; the
/// status of a bundle never staged is NotFound.
fn stage_escrow_bundles(kagid: &Kagid, admin: &str) {
    let bundle = foreign_bundle();
    let text = bundle.to_json();
    let digest = hex::encode(bundle.digest());
    let flipped = kagid.path("flipped.json");
    fs::write(&flipped, text.replace("school-1", "school-2")).unwrap();
    let stderr = kagid
        .kagictl(admin, &["escrow", "stage", "--bundle", &flipped], b"")
        .fails(1);
    assert!(
        stderr.starts_with(&format!("kagictl: --bundle {flipped}: "))
            && stderr.contains("signature does not verify")
            && stderr.trim_end().ends_with("nothing was sent"),
        "{stderr}"
    );
    let good = kagid.path("good.json");
    fs::write(&good, &text).unwrap();
    let other = "ab".repeat(32);
    let args = ["escrow", "stage", "--bundle", &good, "--signer", &other];
    let stderr = kagid.kagictl(admin, &args, b"").fails(1);
    assert!(stderr.contains("do not import it"), "{stderr}");

    let unknown = "cd".repeat(32);
    let args = ["escrow", "status", "--bundle-digest", &unknown];
    let stderr = kagid.kagictl(admin, &args, b"").fails(1);
    assert!(stderr.starts_with("kagictl: NotFound: "), "{stderr}");
    assert!(stderr.contains(&unknown), "{stderr}");

    let signer = bundle.signer.clone();
    let args = ["escrow", "stage", "--bundle", &good, "--signer", &signer];
    let stdout = kagid.kagictl(admin, &args, b"").ok();
    assert!(stdout.contains(&digest), "{stdout}");
    assert!(
        stdout.contains("next: kagictl quorum propose escrow-import"),
        "{stdout}"
    );
    let args = ["--json", "escrow", "status", "--bundle-digest", &digest];
    let status = kagid.kagictl(admin, &args, b"").json();
    assert_eq!(status["state"], "staged");
    assert_eq!(status["tenant_name"], "school-1");
    assert_eq!(status["threshold"], 2);
    assert_eq!(status["custodians"][2]["name"], "carol");
    assert_eq!(status["shares_received"], serde_json::json!([]));
}

/// An auditor queries, verifies and exports the trail the walk-through left; a tampered copy
/// fails verification.
fn audit_trail(kagid: &Kagid, admin: &str) {
    let created = kagid
        .kagictl(
            admin,
            &[
                "principal",
                "create",
                "--role",
                "auditor",
                "--name",
                "inspector",
                "--json",
            ],
            b"",
        )
        .json();
    let auditor = created["token"].as_str().unwrap().to_owned();
    // The admin is audited, not an auditor.
    kagid.kagictl(admin, &["audit", "verify"], b"").fails(1);

    let report = kagid.kagictl(&auditor, &["audit", "verify"], b"").ok();
    assert!(report.to_lowercase().contains("ok"), "{report}");
    let lines = kagid
        .kagictl(
            &auditor,
            &[
                "audit",
                "query",
                "--operation",
                "Encrypt",
                "--all",
                "--json",
            ],
            b"",
        )
        .ok();
    assert!(lines.lines().count() >= 1, "{lines}");
    for line in lines.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["type"], "record");
        assert_eq!(record["event"]["operation"], "Encrypt");
    }

    let export = kagid.path("school-1.audit.jsonl");
    kagid
        .kagictl(
            &auditor,
            &["audit", "export", "--tenant", "school-1", "--out", &export],
            b"",
        )
        .ok();
    let exported = fs::read_to_string(&export).unwrap();
    assert!(exported.contains("\"type\":\"checkpoint\""));

    let copy = kagid.path("audit.jsonl");
    kagid
        .kagictl(&auditor, &["audit", "verify", "--file", &copy], b"")
        .ok();
    let tampered = kagid.path("tampered.jsonl");
    let text = fs::read_to_string(&copy).unwrap();
    fs::write(
        &tampered,
        text.replacen("\"outcome\":\"OK\"", "\"outcome\":\"NOT_FOUND\"", 1),
    )
    .unwrap();
    let run = kagid.kagictl(&auditor, &["audit", "verify", "--file", &tampered], b"");
    assert_eq!(run.code, Some(1), "a tampered copy fails: {}", run.stderr);
}

/// Tenant, key and tenant-service principal; returns the service's token.
fn set_up_tenant_key_and_service(kagid: &Kagid, admin: &str) -> String {
    let tenant = kagid
        .kagictl(admin, &["tenant", "create", "school-1"], b"")
        .ok();
    assert!(tenant.contains("school-1"), "{tenant}");
    let tenants = kagid
        .kagictl(admin, &["tenant", "list", "--json"], b"")
        .json();
    assert_eq!(tenants["tenants"][0]["name"], "school-1");

    let create_key = [
        "key",
        "create",
        "--tenant",
        "school-1",
        "--name",
        "grades",
        "--purpose",
        "learning-record",
        "--class",
        "II",
        "--json",
    ];
    let key = kagid.kagictl(admin, &create_key, b"").json();
    assert_eq!(key["purpose"], "learning-record");
    assert_eq!(key["class"], "II");
    assert_eq!(key["domain"], "gakushu", "the default for learning records");
    assert_eq!(key["primary_version"], 1);
    assert_rfc3339(&key["created_at"]);

    let created = kagid
        .kagictl(
            admin,
            &[
                "principal",
                "create",
                "--tenant",
                "school-1",
                "--role",
                "tenant-service",
                "--name",
                "grades-app",
                "--json",
            ],
            b"",
        )
        .json();
    assert_eq!(created["principal"]["role"], "tenant-service");
    let token = created["token"].as_str().expect("a token").to_owned();
    assert!(token.starts_with("kagi_"), "{token}");

    // Human mode: an export line to paste, and the warning that it is the only chance.
    let auditor = kagid
        .kagictl(
            admin,
            &[
                "principal",
                "create",
                "--role",
                "auditor",
                "--name",
                "audit",
            ],
            b"",
        )
        .ok();
    assert!(
        auditor
            .lines()
            .any(|l| l.starts_with("export KAGI_TOKEN=kagi_")),
        "{auditor}"
    );
    assert!(auditor.contains("shown once"), "{auditor}");
    token
}

/// File round trip with a context; a wrong context is refused. Returns the ciphertext file.
fn encrypt_and_decrypt_files(kagid: &Kagid, service: &str) -> String {
    let plaintext = b"pupil 42: reading A, arithmetic B\n";
    fs::write(kagid.path("record.txt"), plaintext).unwrap();
    let (input, sealed, opened) = (
        kagid.path("record.txt"),
        kagid.path("record.kagi"),
        kagid.path("record.out"),
    );
    let encrypt = [
        "encrypt",
        "--key",
        "school-1/grades",
        "--context",
        "record=grades",
        "--context",
        "year=2026",
        "--in",
        &input,
        "--out",
        &sealed,
    ];
    assert_eq!(kagid.kagictl(service, &encrypt, b"").ok(), "");
    let ciphertext = fs::read(&sealed).unwrap();
    assert_eq!(&ciphertext[..2], b"KE", "an envelope message");
    assert!(ciphertext.len() > plaintext.len());
    assert!(!contains(&ciphertext, b"pupil 42"));

    let decrypt = [
        "decrypt",
        "--context",
        "year=2026",
        "--context",
        "record=grades",
        "--in",
        &sealed,
        "--out",
        &opened,
    ];
    kagid.kagictl(service, &decrypt, b"").ok();
    assert_eq!(fs::read(&opened).unwrap(), plaintext);

    // With --json: the key, the version that wrapped the data key, the bytes written.
    let mut json = decrypt.to_vec();
    json.push("--json");
    let view = kagid.kagictl(service, &json, b"").json();
    assert_eq!(view["format"], "envelope");
    assert_eq!(view["key_version"], 1);
    assert_eq!(view["bytes"], plaintext.len());
    let mut json = encrypt.to_vec();
    json.push("--json");
    let view = kagid.kagictl(service, &json, b"").json();
    assert_eq!(view["bytes"], fs::read(&sealed).unwrap().len());
    assert_eq!(view["key_id"].as_str().unwrap().len(), 36, "{view}");

    // A pair the message does not have, or a different value, is refused before any output.
    for pair in ["record=attendance", "term=1"] {
        let wrong = [
            "decrypt",
            "--context",
            pair,
            "--in",
            &sealed,
            "--out",
            &kagid.path("never-written"),
        ];
        let stderr = kagid.kagictl(service, &wrong, b"").fails(1);
        assert!(
            stderr.starts_with("kagictl: ") && stderr.contains("context"),
            "{stderr}"
        );
        assert!(!Path::new(&kagid.path("never-written")).exists());
    }
    assert_no_temporary_files(kagid);
    sealed
}

/// `--in - --out -` in both directions, past the 64 KiB that kagid's Encrypt takes.
fn encrypt_and_decrypt_through_pipes(kagid: &Kagid, service: &str) {
    let plaintext = b"through a pipe\x00\xff binary too";
    let encrypt = [
        "encrypt",
        "--key",
        "school-1/grades",
        "--in",
        "-",
        "--out",
        "-",
    ];
    let ciphertext = kagid.kagictl(service, &encrypt, plaintext).bytes();
    assert!(!contains(&ciphertext, b"through a pipe"));

    let decrypt = ["decrypt", "--in", "-", "--out", "-"];
    let opened = kagid.kagictl(service, &decrypt, &ciphertext).bytes();
    assert_eq!(opened, plaintext);

    let big = pseudo_random(64 * 1024 * 3 + 17, 1);
    let ciphertext = kagid.kagictl(service, &encrypt, &big).bytes();
    let opened = kagid.kagictl(service, &decrypt, &ciphertext).bytes();
    assert!(opened == big, "a 192 KiB pipe round trip");

    // Neither "KE" nor "KG": refused.
    let stderr = kagid.kagictl(service, &decrypt, b"hello").fails(1);
    assert!(stderr.contains("not a Kagi ciphertext"), "{stderr}");
}

/// A multi-MiB file in both suites and two frame sizes; a damaged file leaves --out as it was.
fn stream_large_files(kagid: &Kagid, service: &str) {
    let plaintext = pseudo_random(5 << 20, 2);
    fs::write(kagid.path("big.bin"), &plaintext).unwrap();
    let (input, sealed, opened) = (
        kagid.path("big.bin"),
        kagid.path("big.kagi"),
        kagid.path("big.out"),
    );
    for (suite, frame_size, suite_byte) in [
        ("aes-256-gcm", "65536", 0x01),
        ("chacha20-poly1305", "4096", 0x02),
    ] {
        let encrypt = [
            "encrypt",
            "--key",
            "school-1/grades",
            "--context",
            "file=big",
            "--suite",
            suite,
            "--frame-size",
            frame_size,
            "--in",
            &input,
            "--out",
            &sealed,
        ];
        kagid.kagictl(service, &encrypt, b"").ok();
        let ciphertext = fs::read(&sealed).unwrap();
        assert_eq!(ciphertext[3], suite_byte, "the suite in the header");
        let frame: u32 = frame_size.parse().unwrap();
        assert_eq!(ciphertext[5..9], frame.to_be_bytes(), "the frame size");
        let frames = (plaintext.len() as u32).div_ceil(frame) as usize;
        assert!(ciphertext.len() > plaintext.len() + frames * 21);

        let decrypt = [
            "decrypt",
            "--context",
            "file=big",
            "--in",
            &sealed,
            "--out",
            &opened,
        ];
        kagid.kagictl(service, &decrypt, b"").ok();
        assert!(
            fs::read(&opened).unwrap() == plaintext,
            "{suite} round trip"
        );
    }

    // Truncated or modified in the middle: decrypt fails, and an existing --out keeps its
    // bytes (the verified frames before the damage went to a temporary file, now removed).
    let ciphertext = fs::read(&sealed).unwrap();
    let mut flipped = ciphertext.clone();
    flipped[ciphertext.len() / 2] ^= 0x01;
    for damaged in [&ciphertext[..ciphertext.len() - 1], &flipped[..]] {
        fs::write(kagid.path("damaged.kagi"), damaged).unwrap();
        fs::write(&opened, b"keep me").unwrap();
        let decrypt = [
            "decrypt",
            "--context",
            "file=big",
            "--in",
            &kagid.path("damaged.kagi"),
            "--out",
            &opened,
        ];
        let stderr = kagid.kagictl(service, &decrypt, b"").fails(1);
        assert!(
            stderr.contains("truncated") || stderr.contains("authentication failed"),
            "{stderr}"
        );
        assert_eq!(fs::read(&opened).unwrap(), b"keep me");
        let fresh = [
            "decrypt",
            "--context",
            "file=big",
            "--in",
            &kagid.path("damaged.kagi"),
            "--out",
            &kagid.path("never-written"),
        ];
        kagid.kagictl(service, &fresh, b"").fails(1);
        assert!(!Path::new(&kagid.path("never-written")).exists());
    }
    assert_no_temporary_files(kagid);
}

/// Files made by earlier kagictl versions (a KMS ciphertext from kagid's Encrypt, "KG") still
/// decrypt, through kagid, with exactly their context.
fn decrypt_kms_ciphertexts(kagid: &Kagid, service: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ciphertext = runtime.block_on(async {
        let kagi = kagi_sdk::Kagi::connect(kagid.endpoint.clone())
            .token(service)
            .build()
            .await
            .expect("connect");
        kagi.crypto()
            .encrypt(kagi_sdk::pb::EncryptRequest {
                key_id: "school-1/grades".into(),
                plaintext: b"an old kagictl file".to_vec(),
                context: [("record".to_owned(), "grades".to_owned())].into(),
            })
            .await
            .expect("Encrypt")
            .into_inner()
            .ciphertext
    });
    assert_eq!(&ciphertext[..2], b"KG");
    fs::write(kagid.path("old.kagi"), &ciphertext).unwrap();
    let (sealed, opened) = (kagid.path("old.kagi"), kagid.path("old.out"));
    let decrypt = [
        "decrypt",
        "--context",
        "record=grades",
        "--in",
        &sealed,
        "--out",
        &opened,
        "--json",
    ];
    let view = kagid.kagictl(service, &decrypt, b"").json();
    assert_eq!(view["format"], "kms");
    assert_eq!(view["key_version"], 1);
    assert_eq!(fs::read(&opened).unwrap(), b"an old kagictl file");
    let piped = [
        "decrypt",
        "--context",
        "record=grades",
        "--in",
        "-",
        "--out",
        "-",
    ];
    let opened = kagid.kagictl(service, &piped, &ciphertext).bytes();
    assert_eq!(opened, b"an old kagictl file");

    // kagid checks the context of a KMS ciphertext: all of it, exactly.
    let wrong = [
        "decrypt",
        "--in",
        &sealed,
        "--out",
        &kagid.path("never-written"),
    ];
    let stderr = kagid.kagictl(service, &wrong, b"").fails(1);
    assert!(
        stderr.starts_with("kagictl: InvalidArgument: ") && stderr.contains("context"),
        "{stderr}"
    );
    assert!(!Path::new(&kagid.path("never-written")).exists());

    // Longer than any KMS ciphertext: refused without a call.
    let mut long = ciphertext.clone();
    long.resize(64 * 1024 + 85, 0);
    let stderr = kagid.kagictl(service, &piped, &long).fails(1);
    assert!(stderr.contains("longer than any"), "{stderr}");
}

/// Bytes that do not compress and differ by `seed` (xorshift64*).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15 ^ seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// No `.NAME.kagictl-….tmp` file was left in the test's directory.
fn assert_no_temporary_files(kagid: &Kagid) {
    let left: Vec<String> = fs::read_dir(kagid.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".kagictl-"))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

/// `datakey` in both output modes prints a 256-bit key.
fn data_keys(kagid: &Kagid, service: &str) {
    let human = kagid
        .kagictl(
            service,
            &["datakey", "--key", "school-1/grades", "--context", "file=1"],
            b"",
        )
        .ok();
    let line = human
        .lines()
        .find(|l| l.starts_with("plaintext key"))
        .unwrap_or_else(|| panic!("no plaintext key line: {human}"));
    let encoded = line.split_whitespace().last().unwrap();
    assert_eq!(BASE64.decode(encoded).unwrap().len(), 32, "{human}");
    assert!(human.contains("wrapped key"), "{human}");

    let json = kagid
        .kagictl(
            service,
            &[
                "datakey",
                "--key",
                "school-1/grades",
                "--spec",
                "chacha20-poly1305",
                "--json",
            ],
            b"",
        )
        .json();
    let key = BASE64
        .decode(json["plaintext_key"].as_str().unwrap())
        .unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(json["key_version"], 1);
}

/// Rotation keeps old ciphertexts readable; a disabled key refuses to encrypt.
fn rotate_and_disable(kagid: &Kagid, admin: &str, service: &str, ciphertext: &str) {
    let rotate = [
        "key",
        "rotate",
        "school-1/grades",
        "--expected-version",
        "1",
    ];
    kagid.kagictl(admin, &rotate, b"").ok();
    // The same compare-and-set again loses: version 1 is no longer the primary.
    let stderr = kagid.kagictl(admin, &rotate, b"").fails(1);
    assert!(stderr.starts_with("kagictl: Aborted: "), "{stderr}");

    let shown = kagid
        .kagictl(admin, &["key", "show", "school-1/grades"], b"")
        .ok();
    assert!(shown.contains("primary version  2"), "{shown}");
    let shown = kagid
        .kagictl(admin, &["key", "show", "school-1/grades", "--json"], b"")
        .json();
    assert_eq!(shown["primary_version"], 2);
    assert_eq!(shown["versions"][0]["state"], "deactivated");
    assert_eq!(shown["versions"][1]["state"], "active");

    let old = [
        "decrypt",
        "--context",
        "record=grades",
        "--context",
        "year=2026",
        "--in",
        ciphertext,
        "--out",
        "-",
    ];
    let opened = kagid.kagictl(service, &old, b"").bytes();
    assert!(contains(&opened, b"pupil 42"), "version 1 still decrypts");

    let disabled = kagid
        .kagictl(admin, &["key", "disable", "school-1/grades", "--json"], b"")
        .json();
    assert_eq!(disabled["state"], "disabled");
    let encrypt = [
        "encrypt",
        "--key",
        "school-1/grades",
        "--in",
        "-",
        "--out",
        "-",
    ];
    let stderr = kagid.kagictl(service, &encrypt, b"data").fails(1);
    assert!(
        stderr.starts_with("kagictl: FailedPrecondition: ") && stderr.contains("disabled"),
        "{stderr}"
    );
    kagid
        .kagictl(admin, &["key", "enable", "school-1/grades"], b"")
        .ok();
    kagid.kagictl(service, &encrypt, b"data").bytes();
}

/// `key list` follows next_page_token: with one key per page it still lists them all.
fn list_keys_across_pages(kagid: &Kagid, admin: &str) {
    for name in ["attendance", "timetable"] {
        let args = [
            "key",
            "create",
            "--tenant",
            "school-1",
            "--name",
            name,
            "--purpose",
            "school-administration",
            "--class",
            "III",
            "--domain",
            "komu",
            "--rotation-days",
            "90",
        ];
        kagid.kagictl(admin, &args, b"").ok();
    }
    let listed = kagid
        .kagictl(admin, &["key", "list", "--json", "--page-size", "1"], b"")
        .json();
    let mut names: Vec<&str> = listed["keys"]
        .as_array()
        .expect("a keys array")
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["attendance", "grades", "timetable"]);

    let table = kagid
        .kagictl(admin, &["key", "list", "--tenant", "school-1"], b"")
        .ok();
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ID ") && header.contains("NEXT ROTATION"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 4, "{table}");
}

/// Admins cannot use keys; unknown tokens are refused without being echoed.
fn refuse_wrong_callers(kagid: &Kagid, admin: &str) {
    let encrypt = [
        "encrypt",
        "--key",
        "school-1/grades",
        "--in",
        "-",
        "--out",
        "-",
    ];
    let stderr = kagid.kagictl(admin, &encrypt, b"data").fails(1);
    assert!(
        stderr.starts_with("kagictl: PermissionDenied: "),
        "{stderr}"
    );

    let bad = "kagi_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for args in [&["tenant", "list"][..], &["key", "list", "--json"][..]] {
        let stderr = kagid.kagictl(bad, args, b"").fails(1);
        assert!(stderr.starts_with("kagictl: Unauthenticated: "), "{stderr}");
        assert!(!stderr.contains("AAAAAAAAAA"), "the token leaked: {stderr}");
    }
}

/// Mistakes on the command line exit 2 before anything is sent.
fn refuse_bad_usage(kagid: &Kagid, admin: &str) {
    let bad_class = [
        "key",
        "create",
        "--tenant",
        "school-1",
        "--name",
        "x",
        "--purpose",
        "other",
        "--class",
        "V",
    ];
    kagid.kagictl(admin, &bad_class, b"").fails(2);
    let no_tenant = [
        "principal",
        "create",
        "--role",
        "tenant-service",
        "--name",
        "x",
    ];
    kagid.kagictl(admin, &no_tenant, b"").fails(2);
    for bad in [["--frame-size", "1000"], ["--suite", "des"]] {
        let mut encrypt = vec!["encrypt", "--key", "school-1/grades", "--in", "-"];
        encrypt.extend(["--out", "-"]);
        encrypt.extend(bad);
        let stderr = kagid.kagictl(admin, &encrypt, b"").fails(2);
        assert!(stderr.contains(bad[0]), "{stderr}");
    }
    let stderr = kagid.kagictl("", &["tenant", "list"], b"").fails(2);
    assert!(stderr.contains("KAGI_TOKEN"), "{stderr}");
}

/// A revoked principal's token stops working at once.
fn revoke_the_service(kagid: &Kagid, admin: &str, service: &str) {
    let revoked = kagid
        .kagictl(admin, &["principal", "revoke", "grades-app", "--json"], b"")
        .json();
    assert_rfc3339(&revoked["revoked_at"]);
    let principals = kagid
        .kagictl(admin, &["principal", "list", "--json"], b"")
        .json();
    let listed = principals["principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "grades-app")
        .expect("revoked principals are listed");
    assert_eq!(listed["revoked_at"], revoked["revoked_at"]);

    let encrypt = [
        "encrypt",
        "--key",
        "school-1/grades",
        "--in",
        "-",
        "--out",
        "-",
    ];
    let stderr = kagid.kagictl(service, &encrypt, b"data").fails(1);
    assert!(stderr.starts_with("kagictl: Unauthenticated: "), "{stderr}");
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Checks a JSON time has the shape `YYYY-MM-DDTHH:MM:SSZ`.
fn assert_rfc3339(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let shape: String = text
        .chars()
        .map(|c| if c.is_ascii_digit() { 'd' } else { c })
        .collect();
    assert_eq!(shape, "dddd-dd-ddTdd:dd:ddZ", "{text}");
}
