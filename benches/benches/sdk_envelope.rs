//! The SDK's message layer (envelope format v1, docs/message-format.md) without a server:
//! sealing and opening 1 KiB records and a 64 MiB framed message, for both algorithm suites.
//!
//! With the data-key cache on, encrypting a record makes no KMS call, so its cost is what is
//! measured here: a fresh random message id from the OS, the HKDF-SHA-256 derivation of the
//! message key and the key commitment, the header (and its tag) and one AEAD frame. Opening
//! parses the header, checks the commitment and the header tag, and opens the frame. The
//! 64 MiB message is what `Envelope::encrypt_stream` and `decrypt_stream` do to a 64 MiB file
//! between their reads and writes (64 KiB frames).
//!
//! Run with `cargo bench -p kagi-benches --bench sdk_envelope`; docs/performance.md records
//! the figures.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kagi_crypto::SecretKey;
use kagi_crypto::context::EncryptionContext;
use kagi_sdk::Suite;
use kagi_sdk::message::seal::{open_message, parse_header, seal_message};
use kagi_sdk::message::{BodyMode, Header, WrappedDataKey, WrappedKeyKind};

/// A typical record.
const RECORD: usize = 1024;
/// The stream size the issue asks for.
const STREAM: usize = 64 << 20;
/// The default frame size of streams.
const FRAME: u32 = 64 * 1024;

const SUITES: [(Suite, &str); 2] = [
    (Suite::Aes256GcmHkdfSha256Commit, "aes-256-gcm"),
    (Suite::ChaCha20Poly1305HkdfSha256Commit, "chacha20-poly1305"),
];

fn data_key() -> SecretKey {
    SecretKey::from_bytes(core::array::from_fn(|i| i as u8))
}

/// A header as `Envelope` makes it: a two-pair context and one wrapped data key of the size
/// kagid returns (a KMS ciphertext of a 32-byte key: 68 + 32 + 16 bytes).
fn header(suite: Suite, body: BodyMode) -> Header {
    Header {
        suite,
        body,
        message_id: [0; 32],
        tenant_id: "0f8e9d2c-1b3a-4c5d-8e7f-60a1b2c3d4e5".into(),
        key_id: [0x5a; 16],
        context: EncryptionContext::new([
            ("school".to_owned(), "tokyo-01".to_owned()),
            ("record".to_owned(), "grades".to_owned()),
        ])
        .expect("a small context is valid"),
        commitment: [0; 32],
        wrapped_keys: vec![WrappedDataKey {
            kind: WrappedKeyKind::Tenant,
            bytes: vec![0x4b; 116],
        }],
    }
}

/// A copy of `template` with a fresh random message id, as every new message gets.
fn fresh(template: &Header) -> Header {
    Header {
        message_id: kagi_crypto::random::array().expect("the OS RNG works"),
        ..template.clone()
    }
}

/// Sealing and opening one record (single-shot body).
fn record(c: &mut Criterion) {
    let key = data_key();
    let plaintext = vec![0x42u8; RECORD];
    let mut group = c.benchmark_group("record_1k");
    group.throughput(Throughput::Bytes(RECORD as u64));
    for (suite, name) in SUITES {
        let template = header(suite, BodyMode::Single);
        group.bench_function(BenchmarkId::new("seal", name), |b| {
            b.iter(|| seal_message(&key, fresh(&template), black_box(&plaintext)).expect("seals"));
        });
        let message = seal_message(&key, fresh(&template), &plaintext).expect("seals");
        group.bench_function(BenchmarkId::new("open", name), |b| {
            b.iter(|| {
                let parsed = parse_header(black_box(&message)).expect("well-formed");
                open_message(&key, &parsed, &message).expect("authentic")
            });
        });
    }
    group.finish();
}

/// Sealing and opening a 64 MiB framed message in 64 KiB frames.
fn stream(c: &mut Criterion) {
    let key = data_key();
    let plaintext = vec![0x42u8; STREAM];
    let mut group = c.benchmark_group("stream_64m");
    group
        .throughput(Throughput::Bytes(STREAM as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (suite, name) in SUITES {
        let template = header(suite, BodyMode::Framed { frame_size: FRAME });
        group.bench_function(BenchmarkId::new("seal", name), |b| {
            b.iter(|| seal_message(&key, fresh(&template), black_box(&plaintext)).expect("seals"));
        });
        let message = seal_message(&key, fresh(&template), &plaintext).expect("seals");
        group.bench_function(BenchmarkId::new("open", name), |b| {
            b.iter(|| {
                let parsed = parse_header(black_box(&message)).expect("well-formed");
                open_message(&key, &parsed, &message).expect("authentic")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, record, stream);
criterion_main!(benches);
