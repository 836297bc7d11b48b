//! The KMS's cryptographic hot path, without gRPC or storage: sealing and opening the KMS
//! ciphertext (format v1, docs/ciphertext-format.md) and wrapping and unwrapping a tenant key
//! version under the root's wrapping key.
//!
//! Run with `cargo bench -p kagi-benches --bench kms_crypto`; docs/performance.md records the
//! figures.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kagi_kms::crypto::SecretKey;
use kagi_kms::crypto::ciphertext::{Header, open, seal};
use kagi_kms::crypto::context::EncryptionContext;
use kagi_kms::crypto::wrap::{self, VersionIdentity};

/// Plaintext sizes: a typical record (1 KiB) and the largest a single Encrypt takes (64 KiB).
const SIZES: &[usize] = &[1024, 64 * 1024];

const KEY_ID: [u8; 16] = [0x5a; 16];

fn version_key() -> SecretKey {
    SecretKey::from_bytes(core::array::from_fn(|i| i as u8))
}

fn context() -> EncryptionContext {
    EncryptionContext::new([
        ("school".to_owned(), "tokyo-01".to_owned()),
        ("record".to_owned(), "grades".to_owned()),
    ])
    .expect("a small context is valid")
}

fn identity() -> VersionIdentity<'static> {
    VersionIdentity {
        tenant_id: "0f8e9d2c-1b3a-4c5d-8e7f-60a1b2c3d4e5",
        key_id: "5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a",
        version: 2,
    }
}

/// What Encrypt does once it holds the version key: a fresh random salt and nonce from the
/// OS, the HKDF-SHA-256 message key, and AES-256-GCM over the plaintext.
fn ciphertext_seal(c: &mut Criterion) {
    let key = version_key();
    let ctx = context();
    let mut group = c.benchmark_group("ciphertext_seal");
    for &size in SIZES {
        let plaintext = vec![0x42u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &plaintext, |b, pt| {
            b.iter(|| {
                let header = Header::random(KEY_ID, 2).expect("the OS RNG works");
                seal(&key, black_box(&header), &ctx, black_box(pt))
            });
        });
    }
    group.finish();
}

/// What Decrypt does once it holds the version key: parse the header, derive the message key,
/// authenticate and decrypt.
fn ciphertext_open(c: &mut Criterion) {
    let key = version_key();
    let ctx = context();
    let mut group = c.benchmark_group("ciphertext_open");
    for &size in SIZES {
        let header = Header::random(KEY_ID, 2).expect("the OS RNG works");
        let ciphertext = seal(&key, &header, &ctx, &vec![0x42u8; size]);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &ciphertext, |b, ct| {
            b.iter(|| {
                let (header, body) = Header::parse(black_box(ct)).expect("well-formed");
                open(&key, &header, body, &ctx).expect("authentic")
            });
        });
    }
    group.finish();
}

/// Wrapping a new version key for storage (RotateKey, CreateKey), and unwrapping a stored one
/// (a key-cache miss).
fn version_key_wrap(c: &mut Criterion) {
    let wrapping_key = SecretKey::from_bytes([7; 32]);
    let key = version_key();
    c.bench_function("version_key_wrap", |b| {
        b.iter(|| {
            wrap::wrap(&wrapping_key, black_box(identity()), &key).expect("the OS RNG works")
        });
    });
    let wrapped = wrap::wrap(&wrapping_key, identity(), &key).expect("the OS RNG works");
    c.bench_function("version_key_unwrap", |b| {
        b.iter(|| wrap::unwrap(&wrapping_key, identity(), black_box(&wrapped)).expect("authentic"));
    });
}

criterion_group!(benches, ciphertext_seal, ciphertext_open, version_key_wrap);
criterion_main!(benches);
