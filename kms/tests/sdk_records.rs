//! kagi-sdk's field-level record encryption ([`RecordCipher`]) against a real kagid: round
//! trips with clear lookup fields, fields bound to their record and their name, and the class
//! rule of catalogue T2 (checked before any data key is fetched), on SQLite and (when
//! configured) PostgreSQL.

mod common;

use std::collections::BTreeMap;

use common::{Backend, TestServer, backends};
use kagi_sdk::{DataClass, Envelope, Error, MessageError, RecordCipher, RecordError, context, pb};
use serde::{Deserialize, Serialize};

/// A synthetic pupil record (made-up data, catalogue T5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pupil {
    pupil_id: String,
    school_code: String,
    name: String,
    address: String,
    birth_date: String,
    grades: BTreeMap<String, u8>,
    activity: Vec<String>,
}

fn pupil(id: &str, name: &str) -> Pupil {
    Pupil {
        pupil_id: id.into(),
        school_code: "13-0001".into(),
        name: name.into(),
        address: "東京都架空区試験町1-2-3".into(),
        birth_date: "2014-04-02".into(),
        grades: [("国語".to_owned(), 5), ("算数".to_owned(), 4)].into(),
        activity: vec!["図書委員".into(), "合唱コンクール".into()],
    }
}

/// A tenant with a class I personal-information key, a class II learning-record key, and a
/// service principal.
struct Fixture {
    server: TestServer,
    admin: kagi_sdk::Kagi,
    envelope: Envelope,
}

async fn fixture(backend: Backend) -> Fixture {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    common::tenant(&admin, "school-1").await;
    admin
        .keys()
        .create_key(pb::CreateKeyRequest {
            tenant: "school-1".into(),
            name: "personal".into(),
            purpose: pb::Purpose::PersonalInformation as i32,
            importance_class: pb::ImportanceClass::ClassI as i32,
            ..Default::default()
        })
        .await
        .expect("create the personal-information key");
    // common::key makes a class II learning-record key.
    let learning = common::key(&admin, "school-1", "learning").await;
    assert_eq!(
        learning.importance_class,
        pb::ImportanceClass::ClassIi as i32
    );
    let token = common::principal(&admin, "svc-1", pb::Role::TenantService, "school-1").await;
    let envelope = Envelope::new(server.client(&token).await);
    Fixture {
        server,
        admin,
        envelope,
    }
}

/// The example's rules: personal information under the class I key, learning records under
/// the class II key.
fn records(envelope: &Envelope) -> RecordCipher {
    RecordCipher::new(envelope.clone())
        .field("name", "school-1/personal", DataClass::I)
        .field("address", "school-1/personal", DataClass::I)
        .field("birth_date", "school-1/personal", DataClass::I)
        .field("grades", "school-1/learning", DataClass::Ii)
        .field("activity", "school-1/learning", DataClass::Ii)
}

fn calls(server: &TestServer, operation: &str) -> u64 {
    server.engine.calls().get(operation)
}

/// The error inside a field failure.
fn field_error(err: &Error) -> (&str, &Error) {
    match err {
        Error::Record(RecordError::Field { field, source }) => (field, source),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_round_trip_with_lookup_fields_in_clear() {
    for backend in backends() {
        let f = fixture(backend).await;
        let records = records(&f.envelope);
        let ctx = context([("school", "13-0001"), ("table", "pupils")]);
        let original = pupil("p-0001", "山田 花子");

        let stored = records.encrypt(&original, "p-0001", &ctx).await.unwrap();
        assert_eq!(stored["pupil_id"], "p-0001", "{backend:?}");
        assert_eq!(stored["school_code"], "13-0001", "{backend:?}");
        for field in ["name", "address", "birth_date", "grades", "activity"] {
            let text = stored[field]
                .as_str()
                .expect("an encrypted field is a string");
            assert!(text.starts_with("kagi:v1:"), "{field}: {text}");
        }
        let text = stored.to_string();
        for secret in ["山田", "架空区", "2014-04-02", "国語", "図書委員"] {
            assert!(!text.contains(secret), "{secret} is visible: {text}");
        }
        // One data key per encrypted field: every field has its own context.
        assert_eq!(calls(&f.server, "GenerateDataKey"), 5, "{backend:?}");

        let back: Pupil = records.decrypt(&stored, "p-0001", &ctx).await.unwrap();
        assert_eq!(back, original, "{backend:?}");

        // The caller's context is bound too.
        let other = context([("school", "13-0002"), ("table", "pupils")]);
        let err = records
            .decrypt::<Pupil>(&stored, "p-0001", &other)
            .await
            .unwrap_err();
        let (_, source) = field_error(&err);
        assert!(
            matches!(source, Error::Message(MessageError::ContextMismatch(k)) if k == "school"),
            "{err}"
        );
        f.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_field_copied_from_another_record_fails() {
    for backend in backends() {
        let f = fixture(backend).await;
        let records = records(&f.envelope);
        let ctx = context([("school", "13-0001")]);
        let a = records
            .encrypt(&pupil("p-0001", "山田 花子"), "p-0001", &ctx)
            .await
            .unwrap();
        let mut b = records
            .encrypt(&pupil("p-0002", "佐藤 健"), "p-0002", &ctx)
            .await
            .unwrap();
        b["name"] = a["name"].clone();
        let err = records
            .decrypt::<Pupil>(&b, "p-0002", &ctx)
            .await
            .unwrap_err();
        let (field, source) = field_error(&err);
        assert_eq!(field, "name", "{backend:?}");
        assert!(
            matches!(source, Error::Message(MessageError::ContextMismatch(k)) if k == "kagi:record"),
            "{err}"
        );
        assert!(err.to_string().contains("kagi:record"), "{err}");

        // A whole record presented under another id fails the same way.
        assert!(records.decrypt::<Pupil>(&a, "p-0002", &ctx).await.is_err());
        f.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fields_swapped_within_a_record_fail() {
    for backend in backends() {
        let f = fixture(backend).await;
        let records = records(&f.envelope);
        let ctx = context([("school", "13-0001")]);
        let mut stored = records
            .encrypt(&pupil("p-0001", "山田 花子"), "p-0001", &ctx)
            .await
            .unwrap();
        let name = stored["name"].clone();
        stored["name"] = stored["address"].clone();
        stored["address"] = name;
        let err = records
            .decrypt::<Pupil>(&stored, "p-0001", &ctx)
            .await
            .unwrap_err();
        let (_, source) = field_error(&err);
        assert!(
            matches!(source, Error::Message(MessageError::ContextMismatch(k)) if k == "kagi:field"),
            "{err}"
        );

        // Same key, same class, same record: swapping learning fields fails too.
        let mut stored = records
            .encrypt(&pupil("p-0001", "山田 花子"), "p-0001", &ctx)
            .await
            .unwrap();
        let grades = stored["grades"].clone();
        stored["grades"] = stored["activity"].clone();
        stored["activity"] = grades;
        assert!(
            records
                .decrypt::<Pupil>(&stored, "p-0001", &ctx)
                .await
                .is_err()
        );

        // A clear value where an encrypted one belongs is refused, not passed through.
        let mut stored = records
            .encrypt(&pupil("p-0001", "山田 花子"), "p-0001", &ctx)
            .await
            .unwrap();
        stored["grades"] = serde_json::json!({"国語": 1});
        let err = records
            .decrypt::<Pupil>(&stored, "p-0001", &ctx)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Record(RecordError::NotEncrypted(f)) if f == "grades"),
            "{err}"
        );
        f.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn class_i_data_under_a_class_ii_key_is_refused_before_any_encryption() {
    for backend in backends() {
        let f = fixture(backend).await;
        // The misconfiguration: the pupil's name (class I) under the learning key (class II).
        let records = RecordCipher::new(f.envelope.clone())
            .field("address", "school-1/personal", DataClass::I)
            .field("name", "school-1/learning", DataClass::I);
        let ctx = context([("school", "13-0001")]);
        let err = records
            .encrypt(&pupil("p-0001", "山田 花子"), "p-0001", &ctx)
            .await
            .unwrap_err();
        match &err {
            Error::Record(RecordError::ClassTooLow {
                field,
                key,
                data_class,
                key_class,
            }) => {
                assert_eq!(field, "name");
                assert_eq!(key, "school-1/learning");
                assert_eq!((*data_class, *key_class), (DataClass::I, DataClass::Ii));
            }
            other => panic!("expected ClassTooLow, got {other:?}"),
        }
        let message = err.to_string();
        for part in ["\"name\"", "class I data", "of class II", "catalogue T2"] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        // Refused before any field, even the allowed one, was encrypted.
        assert_eq!(calls(&f.server, "GenerateDataKey"), 0, "{backend:?}");
        assert_eq!(calls(&f.server, "Encrypt"), 0, "{backend:?}");
        // check_classes finds it without a record.
        assert!(matches!(
            records.check_classes().await,
            Err(Error::Record(RecordError::ClassTooLow { .. }))
        ));
        f.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn less_important_data_under_a_more_important_key_works_and_classes_are_cached() {
    for backend in backends() {
        let f = fixture(backend).await;
        // Class III data (the activity record) under the class I key.
        let records = RecordCipher::new(f.envelope.clone())
            .field("activity", "school-1/personal", DataClass::Iii)
            .field("grades", "school-1/learning", DataClass::Ii);
        records.check_classes().await.unwrap();
        let ctx = context([("school", "13-0001")]);
        for i in 0..3 {
            let id = format!("p-{i:04}");
            let original = pupil(&id, "山田 花子");
            let stored = records.encrypt(&original, &id, &ctx).await.unwrap();
            assert_eq!(
                stored["name"], "山田 花子",
                "a field without a rule stays clear"
            );
            let back: Pupil = records.decrypt(&stored, &id, &ctx).await.unwrap();
            assert_eq!(back, original, "{backend:?}");
        }
        // One GetKey per key reference, however many records.
        assert_eq!(calls(&f.server, "GetKey"), 2, "{backend:?}");
        f.server.stop().await;
    }
}

/// The tenant-key version that wrapped the data key of an encrypted field.
fn wrapping_version(stored: &serde_json::Value, field: &str) -> u32 {
    use base64::Engine as _;
    let text = stored[field].as_str().unwrap();
    let message = base64::engine::general_purpose::STANDARD
        .decode(text.strip_prefix("kagi:v1:").unwrap())
        .unwrap();
    let parsed = kagi_sdk::message::seal::parse_header(&message).unwrap();
    let wrapped = &parsed.header.tenant_wrapped_key().unwrap().bytes;
    kagi_crypto::ciphertext::Header::parse(wrapped)
        .unwrap()
        .0
        .key_version
}

#[tokio::test(flavor = "multi_thread")]
async fn rewrap_moves_every_field_to_the_current_key_version() {
    for backend in backends() {
        let f = fixture(backend).await;
        let records = records(&f.envelope);
        let ctx = context([("school", "13-0001")]);
        let original = pupil("p-0001", "山田 花子");
        let stored = records.encrypt(&original, "p-0001", &ctx).await.unwrap();
        f.admin
            .keys()
            .rotate_key(pb::RotateKeyRequest {
                key: "school-1/personal".into(),
                expected_current_version: 1,
            })
            .await
            .unwrap();

        let rewrapped = records.rewrap(&stored).await.unwrap();
        for field in ["name", "address", "birth_date"] {
            assert_eq!(wrapping_version(&stored, field), 1);
            assert_eq!(wrapping_version(&rewrapped, field), 2, "{field}");
        }
        // The learning key was not rotated: its fields stay on version 1.
        assert_eq!(wrapping_version(&rewrapped, "grades"), 1);
        assert_eq!(rewrapped["pupil_id"], "p-0001");
        let back: Pupil = records.decrypt(&rewrapped, "p-0001", &ctx).await.unwrap();
        assert_eq!(back, original, "{backend:?}");
        // Re-wrapping keeps the binding: the rewrapped fields still belong to p-0001 only.
        assert!(
            records
                .decrypt::<Pupil>(&rewrapped, "p-0002", &ctx)
                .await
                .is_err()
        );
        f.server.stop().await;
    }
}
