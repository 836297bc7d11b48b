//! kagi-sdk's envelope encryption against a real kagid: round trips, tenant isolation, key
//! commitment, re-wrapping after rotation, and the data-key cache's limits, each counted in
//! KMS calls on the server side.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, TestServer, backends};
use kagi_sdk::cache::CacheClock;
use kagi_sdk::message::seal::{parse_header, replace_wrapped_keys};
use kagi_sdk::{CacheLimits, Envelope, Error, MessageError, context, pb};
use tonic::Code;

/// A tenant with a key and a service principal, and the envelope of that service.
struct Fixture {
    server: TestServer,
    envelope: Envelope,
    kagi: kagi_sdk::Kagi,
}

async fn fixture(backend: Backend) -> Fixture {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    common::tenant(&admin, "school-a").await;
    common::key(&admin, "school-a", "grades").await;
    let token = common::principal(&admin, "svc-a", pb::Role::TenantService, "school-a").await;
    let kagi = server.client(&token).await;
    Fixture {
        envelope: Envelope::new(kagi.clone()),
        kagi,
        server,
    }
}

/// A cache clock moved by hand.
#[derive(Default)]
struct HandClock {
    start: Option<Instant>,
    offset_ms: AtomicU64,
}

impl HandClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Some(Instant::now()),
            offset_ms: AtomicU64::new(0),
        })
    }

    fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl CacheClock for HandClock {
    fn now(&self) -> Instant {
        self.start.unwrap() + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

fn data_key_calls(server: &TestServer) -> u64 {
    server.engine.calls().get("GenerateDataKey")
}

fn decrypt_calls(server: &TestServer) -> u64 {
    server.engine.calls().get("Decrypt")
}

#[tokio::test(flavor = "multi_thread")]
async fn envelope_round_trips_and_checks_the_expected_context() {
    for backend in backends() {
        let f = fixture(backend).await;
        let ctx = context([("record", "grades"), ("school", "school-a")]);
        for (suite, len) in [
            (kagi_sdk::Suite::default(), 0),
            (kagi_sdk::Suite::ChaCha20Poly1305HkdfSha256Commit, 70_000),
        ] {
            let envelope = f.envelope.clone().with_suite(suite);
            let plaintext = vec![7u8; len];
            let message = envelope
                .encrypt("school-a/grades", &plaintext, &ctx)
                .await
                .unwrap();
            assert_eq!(
                envelope.decrypt(&message, &ctx).await.unwrap().as_slice(),
                &plaintext[..]
            );
            // A subset of the bound context is enough; a pair it lacks is not.
            assert!(
                envelope
                    .decrypt(&message, &context([("record", "grades")]))
                    .await
                    .is_ok()
            );
            let err = envelope
                .decrypt(&message, &context([("record", "health")]))
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::Message(MessageError::ContextMismatch(_))),
                "{err}"
            );
        }
        f.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenant_cannot_decrypt() {
    let f = fixture(Backend::Sqlite).await;
    let admin = f.server.admin().await;
    common::tenant(&admin, "school-b").await;
    let token_b = common::principal(&admin, "svc-b", pb::Role::TenantService, "school-b").await;
    let envelope_b = Envelope::new(f.server.client(&token_b).await);
    let ctx = context([("record", "grades")]);
    let message = f
        .envelope
        .encrypt("school-a/grades", b"pupil 42: A", &ctx)
        .await
        .unwrap();
    match envelope_b.decrypt(&message, &ctx).await.unwrap_err() {
        Error::Status(status) => assert_eq!(status.code(), Code::PermissionDenied),
        other => panic!("expected PERMISSION_DENIED, got {other}"),
    }
    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_crafted_for_two_data_keys_is_rejected() {
    let f = fixture(Backend::Sqlite).await;
    let ctx = context([("record", "grades")]);
    // Two messages, two data keys, same key and context: the wrapped key of the second in the
    // key section of the first is a valid KMS ciphertext that unwraps fine, to the wrong key.
    let first = f
        .envelope
        .encrypt("school-a/grades", b"first", &ctx)
        .await
        .unwrap();
    let second = f
        .envelope
        .encrypt("school-a/grades", b"second", &ctx)
        .await
        .unwrap();
    let parsed = parse_header(&first).unwrap();
    let donor = parse_header(&second).unwrap().header.wrapped_keys;
    let forged = replace_wrapped_keys(&first, &parsed, donor);
    let err = f.envelope.decrypt(&forged, &ctx).await.unwrap_err();
    assert!(
        matches!(err, Error::Message(MessageError::Commitment)),
        "{err}"
    );
    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rewrap_moves_the_data_key_to_the_new_version_without_touching_the_body() {
    for backend in backends() {
        let f = fixture(backend).await;
        let admin = f.server.admin().await;
        let ctx = context([("record", "grades")]);
        let message = f
            .envelope
            .encrypt("school-a/grades", b"pupil 42: A", &ctx)
            .await
            .unwrap();
        admin
            .keys()
            .rotate_key(pb::RotateKeyRequest {
                key: "school-a/grades".into(),
                expected_current_version: 1,
            })
            .await
            .unwrap();
        let rewrapped = f.envelope.rewrap(&message).await.unwrap();
        let (old, new) = (
            parse_header(&message).unwrap(),
            parse_header(&rewrapped).unwrap(),
        );
        let version = |h: &kagi_sdk::message::header::ParsedHeader| {
            let wrapped = &h.header.tenant_wrapped_key().unwrap().bytes;
            kagi_crypto::ciphertext::Header::parse(wrapped)
                .unwrap()
                .0
                .key_version
        };
        assert_eq!((version(&old), version(&new)), (1, 2));
        assert_eq!(
            &message[old.len..],
            &rewrapped[new.len..],
            "the body is untouched"
        );
        assert_eq!(
            old.header.authenticated_bytes(),
            new.header.authenticated_bytes()
        );
        assert_eq!(
            f.envelope
                .decrypt(&rewrapped, &ctx)
                .await
                .unwrap()
                .as_slice(),
            b"pupil 42: A"
        );
        f.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_cache_ten_thousand_records_cost_a_handful_of_kms_calls() {
    for backend in backends() {
        let f = fixture(backend).await;
        let envelope = f.envelope.clone().with_cache(CacheLimits::default());
        let ctx = context([("record", "activity")]);
        let before = data_key_calls(&f.server);
        let mut messages = Vec::new();
        for i in 0..10_000u32 {
            let record = format!("pupil {i}: reading log entry");
            messages.push(
                envelope
                    .encrypt("school-a/grades", record.as_bytes(), &ctx)
                    .await
                    .unwrap(),
            );
        }
        let calls = data_key_calls(&f.server) - before;
        assert!(
            calls <= 2,
            "{calls} GenerateDataKey calls for 10,000 records"
        );
        let decrypts_before = decrypt_calls(&f.server);
        for message in messages.iter().step_by(100) {
            envelope.decrypt(message, &ctx).await.unwrap();
        }
        assert!(
            decrypt_calls(&f.server) - decrypts_before <= 2,
            "decryption reuses the unwrapped key"
        );
        let stats = envelope.cache_stats().unwrap();
        assert_eq!(stats.encrypt_hits + stats.encrypt_misses, 10_000);
        eprintln!("{backend:?}: {calls} GenerateDataKey calls for 10,000 records; {stats:?}");
        f.server.stop().await;
    }
}

/// Encrypts `count` records of `len` bytes and returns how many data keys were fetched.
async fn fetches(
    f: &Fixture,
    envelope: &Envelope,
    count: usize,
    len: usize,
    ctx: &kagi_sdk::Context,
) -> u64 {
    let before = data_key_calls(&f.server);
    for _ in 0..count {
        envelope
            .encrypt("school-a/grades", &vec![1; len], ctx)
            .await
            .unwrap();
    }
    data_key_calls(&f.server) - before
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_limits_are_honoured_exactly() {
    let f = fixture(Backend::Sqlite).await;
    let ctx = context([("record", "grades")]);
    let limits = CacheLimits {
        max_age: Duration::from_secs(3600),
        max_messages: 1 << 20,
        max_bytes: 1 << 40,
        ..CacheLimits::default()
    };

    // max_messages = 10: 25 messages need keys for 1–10, 11–20, 21–25.
    let envelope = f.envelope.clone().with_cache(CacheLimits {
        max_messages: 10,
        ..limits
    });
    assert_eq!(fetches(&f, &envelope, 25, 10, &ctx).await, 3);
    assert_eq!(
        fetches(&f, &envelope, 5, 10, &ctx).await,
        0,
        "messages 26–30 still fit the third key"
    );
    assert_eq!(
        fetches(&f, &envelope, 1, 10, &ctx).await,
        1,
        "message 31 does not"
    );

    // max_bytes = 1000 with 300-byte records: three per key (900), the fourth needs a new one.
    let envelope = f.envelope.clone().with_cache(CacheLimits {
        max_bytes: 1000,
        ..limits
    });
    assert_eq!(fetches(&f, &envelope, 10, 300, &ctx).await, 4);
    let envelope = f.envelope.clone().with_cache(CacheLimits {
        max_bytes: 1000,
        ..limits
    });
    assert_eq!(
        fetches(&f, &envelope, 2, 500, &ctx).await,
        1,
        "exactly max_bytes fits"
    );
    assert_eq!(
        fetches(&f, &envelope, 1, 1, &ctx).await,
        1,
        "one byte more does not"
    );

    // max_age = 60 s: at 59.999 s the key is reused, at 60 s it is not.
    let clock = HandClock::new();
    let envelope = f.envelope.clone().with_cache_clock(
        CacheLimits {
            max_age: Duration::from_secs(60),
            ..limits
        },
        clock.clone(),
    );
    assert_eq!(fetches(&f, &envelope, 1, 10, &ctx).await, 1);
    clock.advance(Duration::from_millis(59_999));
    assert_eq!(fetches(&f, &envelope, 1, 10, &ctx).await, 0);
    clock.advance(Duration::from_millis(1));
    assert_eq!(fetches(&f, &envelope, 1, 10, &ctx).await, 1);

    // Partitioned by context (and key): another context gets its own data key.
    let envelope = f.envelope.clone().with_cache(limits);
    assert_eq!(fetches(&f, &envelope, 3, 10, &ctx).await, 1);
    assert_eq!(
        fetches(&f, &envelope, 3, 10, &context([("record", "health")])).await,
        1
    );
    assert_eq!(fetches(&f, &envelope, 3, 10, &ctx).await, 0);

    // decrypt_ttl = 30 s: the unwrapped key serves until then, then the KMS is asked again.
    let clock = HandClock::new();
    let envelope = f.envelope.clone().with_cache_clock(
        CacheLimits {
            decrypt_ttl: Duration::from_secs(30),
            ..limits
        },
        clock.clone(),
    );
    let message = envelope
        .encrypt("school-a/grades", b"x", &ctx)
        .await
        .unwrap();
    let before = decrypt_calls(&f.server);
    envelope.decrypt(&message, &ctx).await.unwrap();
    clock.advance(Duration::from_millis(29_999));
    envelope.decrypt(&message, &ctx).await.unwrap();
    assert_eq!(decrypt_calls(&f.server) - before, 1);
    clock.advance(Duration::from_millis(1));
    envelope.decrypt(&message, &ctx).await.unwrap();
    assert_eq!(decrypt_calls(&f.server) - before, 2);

    // max_entries = 2: a third partition evicts the oldest.
    let envelope = f.envelope.clone().with_cache(CacheLimits {
        max_entries: 2,
        ..limits
    });
    let (a, b, c) = (
        context([("p", "a")]),
        context([("p", "b")]),
        context([("p", "c")]),
    );
    assert_eq!(
        fetches(&f, &envelope, 1, 1, &a).await + fetches(&f, &envelope, 1, 1, &b).await,
        2
    );
    assert_eq!(fetches(&f, &envelope, 1, 1, &c).await, 1);
    assert_eq!(
        fetches(&f, &envelope, 1, 1, &b).await,
        0,
        "b is still cached"
    );
    assert_eq!(fetches(&f, &envelope, 1, 1, &a).await, 1, "a was evicted");
    assert!(envelope.cache_stats().unwrap().evictions >= 1);

    // Without the cache, every message fetches a key.
    assert_eq!(fetches(&f, &f.envelope, 4, 10, &ctx).await, 4);
    drop(f.kagi);
    f.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unavailable_is_retried_with_backoff_then_reported() {
    let f = fixture(Backend::Sqlite).await;
    let ctx = context([("record", "grades")]);
    f.server.engine.keyring().seal();
    let before = data_key_calls(&f.server);
    let started = Instant::now();
    let err = f
        .envelope
        .encrypt("school-a/grades", b"x", &ctx)
        .await
        .unwrap_err();
    match err {
        Error::Status(status) => {
            assert_eq!(status.code(), Code::Unavailable);
            assert!(status.message().contains("sealed"), "{status:?}");
        }
        other => panic!("expected UNAVAILABLE, got {other}"),
    }
    assert_eq!(
        data_key_calls(&f.server) - before,
        1 + kagi_sdk::client::RETRIES as u64
    );
    // 50 + 100 + 200 + 400 ms of backoff at least.
    assert!(started.elapsed() >= Duration::from_millis(750));
    f.server.stop().await;
}
