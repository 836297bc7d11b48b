//! `kagictl rewrap` and `ReEncryptBatch` against a real dev-mode kagid: both binaries run as
//! processes, nothing is mocked.
//!
//! The large test wraps 100,000 data keys under version 1 of a key, rotates it, starts
//! `kagictl rewrap`, kills it (SIGKILL) half way, runs it again to the end, and checks that
//! every line is there once, in order, under version 2, and still holds the same data key.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::process::Output;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::ctx;
use common::process::DevKagid as Kagid;
use futures::{StreamExt as _, stream};
use kagi_kms::crypto::ciphertext::Header;
use kagi_sdk::{Kagi, pb};
use serde_json::{Value, json};

/// Wrapped data keys in the large test.
const LINES: usize = 100_000;
/// Distinct data keys under them: line `i` wraps data key `pick(i)`.
const DATA_KEYS: usize = 1000;
/// Every this many lines, a line is decrypted and compared.
const SAMPLE_EVERY: usize = 997;
/// kagictl's limit per call, and its default batch.
const BATCH: usize = 1000;

impl Kagid {
    /// Runs kagictl to its end.
    fn run(&self, token: &str, args: &[&str]) -> Output {
        self.command(token, args).output().expect("kagictl runs")
    }

    /// An SDK connection as `token`.
    async fn connect(&self, token: &str) -> Kagi {
        Kagi::connect(self.endpoint.clone())
            .token(token)
            .build()
            .await
            .expect("a connection to kagid")
    }

    /// The audit records kagid wrote to its file.
    fn audit_events(&self) -> Vec<Value> {
        fs::read_to_string(self.path("audit.jsonl"))
            .expect("the audit file")
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["type"] == "record")
            .map(|line| line["event"].clone())
            .collect()
    }
}

/// A tenant, a key in it, and a tenant-service principal of it: (key id, service token).
async fn tenant_key_and_service(admin: &Kagi, keys: &[&str]) -> (Vec<String>, String) {
    admin
        .keys()
        .create_tenant(pb::CreateTenantRequest {
            name: "school-1".into(),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for name in keys {
        let key = admin
            .keys()
            .create_key(pb::CreateKeyRequest {
                tenant: "school-1".into(),
                name: (*name).into(),
                purpose: pb::Purpose::LearningRecord as i32,
                importance_class: pb::ImportanceClass::ClassIi as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .key
            .unwrap();
        ids.push(key.id);
    }
    let token = admin
        .principals()
        .create_principal(pb::CreatePrincipalRequest {
            name: "rewrap-job".into(),
            role: pb::Role::TenantService as i32,
            tenant: "school-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    (ids, token)
}

/// `n` data keys of `key` under `context`: (plaintext, wrapped).
async fn data_keys(
    kagi: &Kagi,
    key: &str,
    context: &HashMap<String, String>,
    n: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    stream::iter(0..n)
        .map(|_| {
            let mut crypto = kagi.crypto();
            let request = pb::GenerateDataKeyRequest {
                key_id: key.to_owned(),
                context: context.clone(),
                spec: 0,
            };
            async move {
                let made = crypto
                    .generate_data_key(request)
                    .await
                    .unwrap()
                    .into_inner();
                (made.plaintext_key, made.wrapped_key)
            }
        })
        .buffered(16)
        .collect()
        .await
}

/// The data key line `i` wraps: a fixed pseudo-random choice, so that lines out of order
/// would decrypt to other keys.
fn pick(i: usize) -> usize {
    // splitmix64
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) % DATA_KEYS as u64) as usize
}

/// The new ciphertext of a batch item, or its error.
fn answer(result: &pb::ReEncryptResult) -> Result<&pb::ReEncryptResponse, &pb::ReEncryptError> {
    use pb::re_encrypt_result::Result as Answer;
    match result.result.as_ref().expect("an answer") {
        Answer::Ok(done) => Ok(done),
        Answer::Error(error) => Err(error),
    }
}

/// Complete lines of a file (a partial last line is not counted).
fn complete_lines(path: &str) -> usize {
    fs::read(path).map_or(0, |bytes| bytes.iter().filter(|b| **b == b'\n').count())
}

/// The key id and version a base64 KMS ciphertext names.
fn header(line: &str) -> (String, u32) {
    let bytes = BASE64.decode(line).expect("base64");
    let (header, _) = Header::parse(&bytes).expect("a KMS ciphertext");
    (uuid_text(header.key_id), header.key_version)
}

fn uuid_text(bytes: [u8; 16]) -> String {
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

async fn decrypt(kagi: &Kagi, ciphertext: &str, context: &HashMap<String, String>) -> Vec<u8> {
    kagi.crypto()
        .decrypt(pb::DecryptRequest {
            ciphertext: BASE64.decode(ciphertext).unwrap(),
            context: context.clone(),
        })
        .await
        .expect("decrypts")
        .into_inner()
        .plaintext
}

/// Stdout as JSON, after checking the exit code.
fn json_of(output: &Output, code: i32) -> Value {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&output.stdout));
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_rewrap_of_100k_data_keys_resumes_without_repeating_a_line() {
    let kagid = Kagid::start(&[]);
    let admin = kagid.connect(&kagid.admin_token).await;
    let (ids, token) = tenant_key_and_service(&admin, &["grades"]).await;
    let key = ids[0].clone();
    let service = kagid.connect(&token).await;
    let context = ctx(&[("record", "grades")]);

    // 1,000 data keys, then 100,000 fresh wrappings of them under version 1: each
    // ReEncryptBatch item seals its data key again, with a new salt and nonce.
    let setup = Instant::now();
    let keys = data_keys(&service, &key, &context, DATA_KEYS).await;
    let generated = setup.elapsed();
    let indexes: Vec<usize> = (0..LINES).collect();
    let batches: Vec<Vec<Vec<u8>>> = stream::iter(indexes.chunks(BATCH))
        .map(|chunk| {
            let items = chunk
                .iter()
                .map(|&i| pb::ReEncryptRequest {
                    ciphertext: keys[pick(i)].1.clone(),
                    source_context: context.clone(),
                    destination_key_id: String::new(),
                    destination_context: context.clone(),
                })
                .collect();
            let mut crypto = service.crypto();
            async move {
                let response = crypto
                    .re_encrypt_batch(pb::ReEncryptBatchRequest { items })
                    .await
                    .expect("a batch")
                    .into_inner();
                response
                    .results
                    .iter()
                    .map(|r| {
                        let done = answer(r).expect("re-encrypted");
                        assert_eq!(done.key_version, 1);
                        done.ciphertext.clone()
                    })
                    .collect()
            }
        })
        .buffered(2)
        .collect()
        .await;
    let input: Vec<String> = batches
        .into_iter()
        .flatten()
        .map(|c| BASE64.encode(c))
        .collect();
    assert_eq!(input.len(), LINES);
    eprintln!(
        "setup: {DATA_KEYS} data keys in {generated:.1?}, {LINES} wrapped keys in {:.1?}",
        setup.elapsed()
    );
    let in_path = kagid.path("wrapped.txt");
    let out_path = kagid.path("rewrapped.txt");
    fs::write(&in_path, input.join("\n") + "\n").unwrap();

    let rotated = admin
        .keys()
        .rotate_key(pb::RotateKeyRequest {
            key: key.clone(),
            expected_current_version: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(rotated.primary_version, 2);

    // The first run, killed once half the lines are out.
    let args = [
        "rewrap",
        "--in",
        &in_path,
        "--out",
        &out_path,
        "--context",
        "record=grades",
    ];
    let started = Instant::now();
    let mut first = kagid.command(&token, &args).spawn().unwrap();
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if let Some(status) = first.try_wait().unwrap() {
            let mut stderr = String::new();
            first
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("kagictl rewrap ended ({status}) before it could be killed: {stderr}");
        }
        if complete_lines(&out_path) >= LINES / 2 {
            first.kill().unwrap();
            first.wait().unwrap();
            break;
        }
    }
    let killed_after = started.elapsed();
    let done = complete_lines(&out_path);
    assert!(
        (LINES / 2..LINES).contains(&done),
        "{done} lines at the kill"
    );
    // A kill in the middle of a write leaves part of a line: make sure there is one.
    let mut out = fs::OpenOptions::new().append(true).open(&out_path).unwrap();
    out.write_all(b"S0cBAQ").unwrap();
    drop(out);

    // The second run: skips exactly the lines done, does the rest.
    let resumed = Instant::now();
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let summary = json_of(&kagid.run(&token, &json_args), 0);
    let resumed_in = resumed.elapsed();
    assert_eq!(summary["skipped"], done as u64, "{summary}");
    assert_eq!(summary["rewrapped"], (LINES - done) as u64, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["failed_total"], 0, "{summary}");
    assert!(!std::path::Path::new(&format!("{out_path}.failed")).exists());
    eprintln!(
        "rewrap: killed after {killed_after:.1?} at {done} lines; resumed run did {} lines in \
         {resumed_in:.1?}",
        LINES - done
    );

    // Every line once, in order, under version 2 of the key.
    let text = fs::read_to_string(&out_path).unwrap();
    assert!(text.ends_with('\n'));
    let output: Vec<&str> = text.lines().collect();
    assert_eq!(output.len(), LINES);
    for (i, line) in output.iter().enumerate() {
        assert_eq!(header(line), (key.clone(), 2), "line {}", i + 1);
        assert_ne!(*line, input[i], "line {} was copied, not re-wrapped", i + 1);
    }
    // Same data keys, line by line (a sample), as the originals.
    for i in (0..LINES).step_by(SAMPLE_EVERY) {
        let expected = &keys[pick(i)].0;
        assert_eq!(
            &decrypt(&service, output[i], &context).await,
            expected,
            "line {}",
            i + 1
        );
        assert_eq!(
            &decrypt(&service, &input[i], &context).await,
            expected,
            "line {}",
            i + 1
        );
    }

    // kagid's audit trail: one record per batch call, naming its count. The rewrap runs
    // re-wrapped every line, plus at most the batches in flight at the kill (whose answers
    // never reached the output), so nothing written was re-wrapped twice.
    let to_v2 = format!(" to {key} v2 x");
    let mut calls = 0;
    let mut rewrapped = 0;
    for event in kagid.audit_events() {
        if event["operation"] != "ReEncryptBatch" {
            continue;
        }
        let resource = event["resource"].as_str().unwrap_or_default();
        if !resource.contains(&to_v2) {
            continue;
        }
        assert_eq!(event["outcome"], "OK", "{event}");
        assert_eq!(event["key_id"], key.as_str());
        assert_eq!(event["key_version"], 2);
        assert!(
            event["context"]["record"]
                .as_str()
                .unwrap()
                .starts_with("hmac-sha256:")
        );
        let count: usize = resource
            .split(" items: ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {resource:?}"));
        calls += 1;
        rewrapped += count;
    }
    assert!(
        (LINES..=LINES + 2 * BATCH).contains(&rewrapped),
        "{rewrapped} items re-wrapped in {calls} calls"
    );
    eprintln!("audit: {calls} ReEncryptBatch calls re-wrapped {rewrapped} items");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_keep_their_fields_and_failures_go_to_their_own_file() {
    let kagid = Kagid::start(&[]);
    let admin = kagid.connect(&kagid.admin_token).await;
    let (ids, token) = tenant_key_and_service(&admin, &["grades", "grades-2027"]).await;
    let (old_key, new_key) = (ids[0].clone(), ids[1].clone());
    let service = kagid.connect(&token).await;
    let default = ctx(&[("record", "default")]);
    let own = ctx(&[("record", "r1")]);
    let [one] = data_keys(&service, &old_key, &own, 1)
        .await
        .try_into()
        .unwrap();
    let made = data_keys(&service, &old_key, &default, 3).await;
    let b64 = |c: &[u8]| BASE64.encode(c);

    // Too many items for one call.
    let items = vec![pb::ReEncryptRequest::default(); 1001];
    let refused = service
        .crypto()
        .re_encrypt_batch(pb::ReEncryptBatchRequest { items })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("at most 1000 items"),
        "{refused:?}"
    );

    // A failed item answers as ReEncrypt would.
    let wrong = pb::ReEncryptRequest {
        ciphertext: made[1].1.clone(),
        source_context: ctx(&[("record", "wrong")]),
        destination_key_id: "school-1/grades-2027".into(),
        destination_context: ctx(&[("record", "wrong")]),
    };
    let single = service
        .crypto()
        .re_encrypt(wrong.clone())
        .await
        .unwrap_err();
    let batch = service
        .crypto()
        .re_encrypt_batch(pb::ReEncryptBatchRequest {
            items: vec![wrong, pb::ReEncryptRequest::default()],
        })
        .await
        .unwrap()
        .into_inner();
    let error = answer(&batch.results[0]).unwrap_err();
    assert_eq!(
        error.code,
        kagi_kms::service::call::code_name(single.code())
    );
    assert_eq!(error.message, single.message());
    assert!(
        answer(&batch.results[1]).is_err(),
        "an empty ciphertext fails on its own"
    );

    let lines = [
        json!({"id": "a", "ciphertext": b64(&one.1), "context": {"record": "r1"}}).to_string(),
        json!({"id": 2, "ciphertext": b64(&made[0].1)}).to_string(),
        json!({"id": "c", "ciphertext": b64(&made[1].1), "context": {"record": "wrong"}})
            .to_string(),
        "not json".to_owned(),
        json!({"id": 5, "ciphertext": b64(&made[2].1), "extra": [1, 2]}).to_string(),
    ];
    let in_path = kagid.path("keys.jsonl");
    let out_path = kagid.path("keys.out.jsonl");
    fs::write(&in_path, lines.join("\n")).unwrap(); // no final newline
    let args = [
        "rewrap",
        "--json-lines",
        "--in",
        &in_path,
        "--out",
        &out_path,
        "--to-key",
        "school-1/grades-2027",
        "--context",
        "record=default",
        "--batch",
        "2",
        "--json",
    ];
    let summary = json_of(&kagid.run(&token, &args), 1);
    assert_eq!(summary["rewrapped"], 3, "{summary}");
    assert_eq!(summary["failed"], 2, "{summary}");
    assert_eq!(summary["skipped"], 0, "{summary}");
    assert_eq!(summary["failed_total"], 2, "{summary}");

    let out: Vec<Value> = fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids_out: Vec<&Value> = out.iter().map(|o| &o["id"]).collect();
    assert_eq!(ids_out, [&json!("a"), &json!(2), &json!(5)]);
    assert_eq!(out[0]["context"], json!({"record": "r1"}));
    assert_eq!(out[2]["extra"], json!([1, 2]));
    for line in &out {
        assert_eq!(
            header(line["ciphertext"].as_str().unwrap()),
            (new_key.clone(), 1)
        );
    }
    let plaintext = decrypt(&service, out[0]["ciphertext"].as_str().unwrap(), &own).await;
    assert_eq!(plaintext, one.0);

    let failed: Vec<Value> = fs::read_to_string(format!("{out_path}.failed"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["line"], 3);
    assert_eq!(failed[0]["id"], "c");
    assert_eq!(failed[0]["error"]["code"], error.code.as_str());
    assert_eq!(failed[0]["error"]["message"], error.message.as_str());
    assert_eq!(failed[1]["line"], 4);
    assert_eq!(failed[1]["input"], "not json");
    assert_eq!(failed[1]["error"]["code"], "INVALID_ARGUMENT");

    // Run again: everything was done, the failures stay listed, and it still fails.
    let again = json_of(&kagid.run(&token, &args), 1);
    assert_eq!(again["skipped"], 5, "{again}");
    assert_eq!(again["rewrapped"], 0, "{again}");
    assert_eq!(again["failed_total"], 2, "{again}");
    assert_eq!(fs::read_to_string(&out_path).unwrap().lines().count(), 3);

    // A wrong --context fails every line of the first batch: nothing is written.
    let plain = kagid.path("plain.txt");
    let plain_out = kagid.path("plain.out");
    let wrapped: Vec<String> = made.iter().map(|(_, w)| b64(w)).collect();
    fs::write(&plain, wrapped.join("\n") + "\n").unwrap();
    let run = kagid.run(
        &token,
        &[
            "rewrap",
            "--in",
            &plain,
            "--out",
            &plain_out,
            "--context",
            "record=oops",
        ],
    );
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("every line of the first batch failed"),
        "{stderr}"
    );
    assert_eq!(fs::read(&plain_out).unwrap(), b"");
    assert!(!std::path::Path::new(&format!("{plain_out}.failed")).exists());
    // The right one re-wraps them, under the same key's new version after a rotation.
    admin
        .keys()
        .rotate_key(pb::RotateKeyRequest {
            key: old_key.clone(),
            expected_current_version: 0,
        })
        .await
        .unwrap();
    let run = kagid.run(
        &token,
        &[
            "rewrap",
            "--in",
            &plain,
            "--out",
            &plain_out,
            "--context",
            "record=default",
        ],
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("re-wrapped") && stdout.contains('3'),
        "{stdout}"
    );
    let rewrapped = fs::read_to_string(&plain_out).unwrap();
    let rewrapped: Vec<&str> = rewrapped.lines().collect();
    assert_eq!(rewrapped.len(), 3);
    for (line, (plaintext, _)) in rewrapped.iter().zip(&made) {
        assert_eq!(header(line), (old_key.clone(), 2));
        assert_eq!(&decrypt(&service, line, &default).await, plaintext);
    }
}
