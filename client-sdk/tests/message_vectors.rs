//! The test vectors of the envelope message format v1 (`docs/vectors/message-v1.json`,
//! described in `docs/message-format.md`): every vector must open to its plaintext, and sealing
//! its inputs again must reproduce the message byte for byte. The vectors never change
//! (catalogue K10); a failure here means the format changed.
//!
//! The vectors were made by the ignored test `generate_vectors` below, which writes the file
//! only when it does not exist yet:
//! `cargo test -p kagi-sdk --test message_vectors -- --ignored generate_vectors`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kagi_crypto::SecretKey;
use kagi_crypto::context::EncryptionContext;
use kagi_sdk::message::header::{Header, MAGIC, VERSION_1};
use kagi_sdk::message::seal::{open_message, parse_header, seal_message};
use kagi_sdk::message::suite::MessageKeys;
use kagi_sdk::message::{BodyMode, MessageError, Suite, WrappedDataKey, WrappedKeyKind};
use serde_json::{Value, json};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors/message-v1.json")
}

fn load() -> Vec<Value> {
    let text = std::fs::read_to_string(vectors_path()).expect("docs/vectors/message-v1.json");
    let value: Value = serde_json::from_str(&text).expect("the vectors are JSON");
    value.as_array().expect("an array of vectors").clone()
}

fn hex_of(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is a string")),
    )
    .unwrap_or_else(|e| panic!("{field} is hex: {e}"))
}

fn array_of<const N: usize>(v: &Value, field: &str) -> [u8; N] {
    hex_of(v, field)
        .try_into()
        .unwrap_or_else(|_| panic!("{field} is {N} bytes"))
}

fn suite_named(name: &str) -> Suite {
    match name {
        "AES-256-GCM-HKDF-SHA256-COMMIT" => Suite::Aes256GcmHkdfSha256Commit,
        "CHACHA20-POLY1305-HKDF-SHA256-COMMIT" => Suite::ChaCha20Poly1305HkdfSha256Commit,
        other => panic!("unknown suite {other}"),
    }
}

fn kind_named(name: &str) -> WrappedKeyKind {
    match name {
        "tenant" => WrappedKeyKind::Tenant,
        "escrow" => WrappedKeyKind::Escrow,
        other => panic!("unknown wrapped key kind {other}"),
    }
}

/// The header a vector's inputs describe (commitment zero: sealing computes it).
fn header_of(v: &Value) -> Header {
    let body = match v["body_mode"].as_str().unwrap() {
        "single" => BodyMode::Single,
        "framed" => BodyMode::Framed {
            frame_size: v["frame_size"].as_u64().unwrap() as u32,
        },
        other => panic!("unknown body mode {other}"),
    };
    let context = v["context"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()));
    Header {
        suite: suite_named(v["suite"].as_str().unwrap()),
        body,
        message_id: array_of(v, "message_id"),
        tenant_id: v["tenant_id"].as_str().unwrap().to_owned(),
        key_id: array_of(v, "key_id"),
        context: EncryptionContext::new(context).unwrap(),
        commitment: [0; 32],
        wrapped_keys: v["wrapped_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| WrappedDataKey {
                kind: kind_named(k["kind"].as_str().unwrap()),
                bytes: hex_of(k, "bytes"),
            })
            .collect(),
    }
}

#[test]
fn every_vector_opens_to_its_plaintext() {
    let vectors = load();
    assert!(vectors.len() >= 5, "at least five vectors");
    for v in &vectors {
        let name = v["description"].as_str().unwrap();
        let message = hex_of(v, "message");
        let key = SecretKey::from_bytes(array_of(v, "data_key"));
        let parsed = parse_header(&message).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = Header {
            commitment: array_of(v, "commitment"),
            ..header_of(v)
        };
        assert_eq!(parsed.header, expected, "{name}: header fields");
        let plaintext =
            open_message(&key, &parsed, &message).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(plaintext.as_slice(), hex_of(v, "plaintext"), "{name}");
        // Another data key is refused by the commitment, before any decryption.
        let wrong = SecretKey::from_bytes([0xee; 32]);
        assert_eq!(
            open_message(&wrong, &parsed, &message).unwrap_err(),
            MessageError::Commitment,
            "{name}"
        );
    }
}

#[test]
fn sealing_the_inputs_reproduces_every_vector() {
    for v in &load() {
        let name = v["description"].as_str().unwrap();
        let key = SecretKey::from_bytes(array_of(v, "data_key"));
        let sealed = seal_message(&key, header_of(v), &hex_of(v, "plaintext")).unwrap();
        assert_eq!(
            hex::encode(&sealed),
            v["message"].as_str().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn the_intermediate_values_are_the_documented_derivation() {
    for v in &load() {
        let name = v["description"].as_str().unwrap();
        let header = header_of(v);
        let key = SecretKey::from_bytes(array_of(v, "data_key"));
        let suite_id = [header.suite.id()];
        assert_eq!(
            v["suite_id"].as_u64(),
            Some(u64::from(header.suite.id())),
            "{name}"
        );
        let message_key = kagi_crypto::derive::expand(
            Some(&header.message_id),
            &key,
            &[b"kagi/v1/envelope-key", &suite_id],
        );
        assert_eq!(
            hex::encode(message_key.expose()),
            v["message_key"].as_str().unwrap(),
            "{name}"
        );
        let keys = MessageKeys::derive(header.suite, &key, &header.message_id);
        assert_eq!(
            hex::encode(keys.commitment),
            v["commitment"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            hex::encode(header.context.encode()),
            v["encoded_context"].as_str().unwrap(),
            "{name}"
        );
        let message = hex_of(v, "message");
        assert_eq!(&message[..2], MAGIC);
        assert_eq!(message[2], VERSION_1);
    }
}

/// The fixed inputs of the vectors.
fn inputs() -> Vec<Value> {
    let aes = "AES-256-GCM-HKDF-SHA256-COMMIT";
    let chacha = "CHACHA20-POLY1305-HKDF-SHA256-COMMIT";
    let tenant = |byte: u8| json!({"kind": "tenant", "bytes": hex::encode([byte; 116])});
    let counting = |len: usize| hex::encode((0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let seq = |start: u8| hex::encode((0..32).map(|i| start.wrapping_add(i)).collect::<Vec<_>>());
    vec![
        json!({
            "description": "single-shot, AES-256-GCM, empty plaintext, empty context",
            "suite": aes, "body_mode": "single", "frame_size": 0,
            "data_key": seq(0x00), "message_id": seq(0x40),
            "tenant_id": "0b7f3c9e-4a61-4d2b-9c1e-5f0a8d3b2c71",
            "key_id": "0123456789abcdef0123456789abcdef",
            "context": {},
            "wrapped_keys": [tenant(0xa5)],
            "plaintext": "",
        }),
        json!({
            "description": "single-shot, AES-256-GCM, UTF-8 plaintext \"生徒の成績: 5\"",
            "suite": aes, "body_mode": "single", "frame_size": 0,
            "data_key": seq(0x20), "message_id": seq(0x60),
            "tenant_id": "0b7f3c9e-4a61-4d2b-9c1e-5f0a8d3b2c71",
            "key_id": "0123456789abcdef0123456789abcdef",
            "context": {"school": "tokyo-01", "record": "grades"},
            "wrapped_keys": [tenant(0xa5)],
            "plaintext": hex::encode("生徒の成績: 5"),
        }),
        json!({
            "description": "single-shot, ChaCha20-Poly1305, non-ASCII context key",
            "suite": chacha, "body_mode": "single", "frame_size": 0,
            "data_key": seq(0x80), "message_id": seq(0xa0),
            "tenant_id": "school-board-7",
            "key_id": "fedcba9876543210fedcba9876543210",
            "context": {"学校": "東京第一", "record": "activity"},
            "wrapped_keys": [tenant(0x5a)],
            "plaintext": hex::encode("Kagi envelope message, format v1"),
        }),
        json!({
            "description": "framed (1024), AES-256-GCM, 2500 bytes: two regular frames and a \
                            final frame of 452 bytes; tenant and escrow wrapped keys",
            "suite": aes, "body_mode": "framed", "frame_size": 1024,
            "data_key": seq(0xc0), "message_id": seq(0xe0),
            "tenant_id": "0b7f3c9e-4a61-4d2b-9c1e-5f0a8d3b2c71",
            "key_id": "0123456789abcdef0123456789abcdef",
            "context": {"school": "tokyo-01", "stream": "export-2026"},
            "wrapped_keys": [
                tenant(0xa5),
                {"kind": "escrow", "bytes": hex::encode([0x3c; 48])},
            ],
            "plaintext": counting(2500),
        }),
        json!({
            "description": "framed (1024), ChaCha20-Poly1305, exactly 2048 bytes: two regular \
                            frames and an empty final frame",
            "suite": chacha, "body_mode": "framed", "frame_size": 1024,
            "data_key": seq(0x11), "message_id": seq(0x51),
            "tenant_id": "school-board-7",
            "key_id": "fedcba9876543210fedcba9876543210",
            "context": {"school": "osaka-03"},
            "wrapped_keys": [tenant(0x5a)],
            "plaintext": counting(2048),
        }),
        json!({
            "description": "framed (1024), AES-256-GCM, empty plaintext: one empty final frame",
            "suite": aes, "body_mode": "framed", "frame_size": 1024,
            "data_key": seq(0x91), "message_id": seq(0xd1),
            "tenant_id": "0b7f3c9e-4a61-4d2b-9c1e-5f0a8d3b2c71",
            "key_id": "0123456789abcdef0123456789abcdef",
            "context": {"school": "tokyo-01"},
            "wrapped_keys": [tenant(0xa5)],
            "plaintext": "",
        }),
    ]
}

/// Writes `docs/vectors/message-v1.json` from [`inputs`] if it does not exist. Never
/// overwrites: published vectors do not change.
#[test]
#[ignore = "run by hand, once, to create the vectors file"]
fn generate_vectors() {
    let path = vectors_path();
    assert!(
        !path.exists(),
        "{} exists; vectors never change (delete it only to restart an unpublished format)",
        path.display()
    );
    let vectors: Vec<Value> = inputs()
        .into_iter()
        .map(|mut v| {
            let header = header_of(&v);
            let key = SecretKey::from_bytes(array_of(&v, "data_key"));
            let suite_id = [header.suite.id()];
            let message_key = kagi_crypto::derive::expand(
                Some(&header.message_id),
                &key,
                &[b"kagi/v1/envelope-key", &suite_id],
            );
            let keys = MessageKeys::derive(header.suite, &key, &header.message_id);
            let encoded_context = hex::encode(header.context.encode());
            let message = seal_message(&key, header, &hex_of(&v, "plaintext")).unwrap();
            let fields = v.as_object_mut().unwrap();
            fields.insert("suite_id".into(), json!(suite_id[0]));
            fields.insert("encoded_context".into(), json!(encoded_context));
            fields.insert(
                "message_key".into(),
                json!(hex::encode(message_key.expose())),
            );
            fields.insert("commitment".into(), json!(hex::encode(keys.commitment)));
            fields.insert("message".into(), json!(hex::encode(message)));
            v
        })
        .collect();
    // A stable field order makes the file easy to read and diff.
    let order = [
        "description",
        "suite",
        "suite_id",
        "body_mode",
        "frame_size",
        "data_key",
        "message_id",
        "tenant_id",
        "key_id",
        "context",
        "encoded_context",
        "wrapped_keys",
        "plaintext",
        "message_key",
        "commitment",
        "message",
    ];
    let mut text = String::from("[\n");
    for (i, v) in vectors.iter().enumerate() {
        let fields: BTreeMap<&str, &Value> = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        assert_eq!(fields.len(), order.len());
        text.push_str("  {\n");
        for (j, name) in order.iter().enumerate() {
            let value = serde_json::to_string(fields[name]).unwrap();
            let comma = if j + 1 < order.len() { "," } else { "" };
            text.push_str(&format!("    \"{name}\": {value}{comma}\n"));
        }
        text.push_str(if i + 1 < vectors.len() {
            "  },\n"
        } else {
            "  }\n"
        });
    }
    text.push_str("]\n");
    std::fs::write(&path, text).unwrap();
}
