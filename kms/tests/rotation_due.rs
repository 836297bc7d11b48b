//! Rotation when due (catalogue K4) and per-version usage (K5), on a real kagid (in-process,
//! gRPC over loopback, SQLite and PostgreSQL) with an injected clock: keys are rotated by the
//! scheduler and by `RotateDue` exactly when their period has passed and not a second before;
//! two concurrent runs rotate each key once; a dry run changes nothing; old ciphertexts still
//! decrypt; the period limit is enforced; usage counts reach `VersionUsage` and are not counted
//! twice by a flush. Also `kagictl rotate --due` and `kagictl usage` against the same server.

mod common;

use std::sync::Arc;

use common::{TestServer, backends, ctx};
use kagi_kms::clock::ManualClock;
use kagi_kms::scheduler::{self, Jobs};
use kagi_sdk::{Kagi, pb};
use tonic::Code;

const START: i64 = 1_800_000_000;
const DAY: i64 = 86_400;
const YEAR: i64 = 365 * DAY;
/// The keys that rotate: one enabled with the default period, one with 365 days asked for,
/// one disabled (disabled keys rotate too).
const KEYS: [&str; 3] = ["board-a/grades", "board-a/reports", "board-a/archive"];

async fn create_key(
    admin: &Kagi,
    name: &str,
    purpose: pb::Purpose,
    days: u32,
) -> Result<pb::Key, tonic::Status> {
    admin
        .keys()
        .create_key(pb::CreateKeyRequest {
            tenant: "board-a".into(),
            name: name.into(),
            purpose: purpose as i32,
            importance_class: pb::ImportanceClass::ClassIi as i32,
            rotation_period_days: days,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().key.unwrap())
}

async fn get_key(admin: &Kagi, key: &str) -> pb::Key {
    admin
        .keys()
        .get_key(pb::GetKeyRequest { key: key.into() })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap()
}

/// Every key's version numbers.
async fn versions(admin: &Kagi) -> Vec<Vec<u32>> {
    let mut all = Vec::new();
    for key in KEYS {
        let key = get_key(admin, key).await;
        all.push(key.versions.iter().map(|v| v.version).collect());
    }
    all
}

async fn rotate_due(admin: &Kagi, dry_run: bool) -> pb::RotateDueResponse {
    admin
        .keys()
        .rotate_due(pb::RotateDueRequest {
            tenant: "board-a".into(),
            dry_run,
        })
        .await
        .unwrap()
        .into_inner()
}

fn names(keys: &[pb::RotatedKey]) -> Vec<String> {
    let mut names: Vec<String> = keys
        .iter()
        .map(|k| format!("{}/{}", k.tenant_name, k.name))
        .collect();
    names.sort();
    names
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    keys.sort();
    keys
}

async fn encrypt(app: &Kagi, text: &str) -> (Vec<u8>, u32) {
    let response = app
        .crypto()
        .encrypt(pb::EncryptRequest {
            key_id: "board-a/grades".into(),
            plaintext: text.as_bytes().to_vec(),
            context: ctx(&[("pupil", "7")]),
        })
        .await
        .unwrap()
        .into_inner();
    (response.ciphertext, response.key_version)
}

async fn decrypt(app: &Kagi, ciphertext: &[u8]) -> Vec<u8> {
    common::decrypt(app, ciphertext, &[("pupil", "7")])
        .await
        .unwrap()
}

/// (version, encrypts, decrypts, last_used_at) of every version of grades.
async fn usage(client: &Kagi) -> Vec<(u32, u64, u64, i64)> {
    client
        .keys()
        .version_usage(pb::VersionUsageRequest {
            key: "board-a/grades".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .versions
        .iter()
        .map(|v| (v.version, v.encrypts, v.decrypts, v.last_used_at))
        .collect()
}

/// Operations of every audit record this node wrote, in order.
async fn audited(server: &TestServer) -> Vec<kagi_kms::audit::record::Event> {
    let store = server.engine.store();
    let node = server.engine.audit().node();
    let head = store
        .audit_head(node)
        .await
        .unwrap()
        .map_or(0, |(seq, _)| seq);
    store
        .audit_range(node, 1, head)
        .await
        .unwrap()
        .iter()
        .filter_map(|row| row.record.event())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn due_keys_rotate_once_when_due_and_usage_is_counted() {
    for backend in backends() {
        let clock = ManualClock::new(START);
        let server = TestServer::start_with(backend, None, Arc::new(clock.clone())).await;
        let admin = server.admin().await;
        let tenant = common::tenant(&admin, "board-a").await;
        let grades = create_key(&admin, "grades", pb::Purpose::LearningRecord, 0)
            .await
            .unwrap();
        assert_eq!(grades.rotation_period_days, 365);
        assert_eq!(grades.next_rotation_at, START + YEAR);
        create_key(&admin, "reports", pb::Purpose::PersonalInformation, 365)
            .await
            .unwrap();
        create_key(&admin, "archive", pb::Purpose::LearningRecord, 365)
            .await
            .unwrap();
        admin
            .keys()
            .disable_key(pb::DisableKeyRequest {
                key: "board-a/archive".into(),
            })
            .await
            .unwrap();

        // The period limit (K4): a learning-record key may not wait 400 days.
        let err = create_key(&admin, "slow", pb::Purpose::LearningRecord, 400)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("365"), "{err:?}");

        // Usage: two encrypts and one decrypt under version 1, counted after a flush.
        let token =
            common::principal(&admin, "board-a-app", pb::Role::TenantService, &tenant).await;
        let app = server.client(&token).await;
        let (old, version) = encrypt(&app, "v1 data").await;
        assert_eq!(version, 1);
        encrypt(&app, "more v1 data").await;
        assert_eq!(decrypt(&app, &old).await, b"v1 data");
        scheduler::tick(&server.engine).await;
        assert_eq!(usage(&admin).await, vec![(1, 2, 1, START)], "{backend:?}");

        // One second before the date: nothing is due, for the scheduler or the RPC.
        clock.advance(YEAR - 1);
        scheduler::tick(&server.engine).await;
        let report = rotate_due(&admin, false).await;
        assert!(report.rotated.is_empty(), "{backend:?}: {report:?}");
        assert_eq!((report.checked, report.not_due), (3, 3));
        assert_eq!(versions(&admin).await, vec![vec![1]; 3]);

        // At the date: a dry run lists all three and changes nothing; a tick with the rotation
        // scheduler off changes nothing either.
        clock.advance(1);
        let report = rotate_due(&admin, true).await;
        assert!(report.dry_run);
        assert_eq!(names(&report.rotated), sorted(&KEYS), "{backend:?}");
        assert!(
            report
                .rotated
                .iter()
                .all(|k| k.from_version == 1 && k.to_version == 2 && k.due_at == START + YEAR)
        );
        assert_eq!((report.checked, report.not_due), (3, 0));
        scheduler::tick_with(&server.engine, Jobs { rotation: false }).await;
        assert_eq!(versions(&admin).await, vec![vec![1]; 3], "{backend:?}");

        // The scheduler rotates each due key once, the disabled one too.
        scheduler::tick(&server.engine).await;
        assert_eq!(versions(&admin).await, vec![vec![1, 2]; 3], "{backend:?}");
        scheduler::tick(&server.engine).await;
        assert_eq!(versions(&admin).await, vec![vec![1, 2]; 3], "{backend:?}");
        let key = get_key(&admin, "board-a/archive").await;
        assert_eq!(key.state, pb::KeyState::Disabled as i32);
        assert_eq!(key.next_rotation_at, START + 2 * YEAR);

        // New data goes under version 2; the old ciphertext still decrypts. These counts are
        // not flushed yet: VersionUsage adds this node's unflushed counts.
        let (_, version) = encrypt(&app, "v2 data").await;
        assert_eq!(version, 2);
        assert_eq!(decrypt(&app, &old).await, b"v1 data");
        let now = START + YEAR;
        let expected = vec![(1, 2, 2, now), (2, 1, 0, now)];
        assert_eq!(usage(&admin).await, expected, "{backend:?}");
        scheduler::tick(&server.engine).await;
        assert_eq!(usage(&admin).await, expected, "{backend:?}: flushed once");
        let auditor = common::principal(&admin, "auditor", pb::Role::Auditor, "").await;
        assert_eq!(usage(&server.client(&auditor).await).await, expected);

        // A year later, RotateDue by RPC: not a second early; then two concurrent calls
        // rotate each key exactly once between them.
        clock.advance(YEAR - 1);
        let report = rotate_due(&admin, false).await;
        assert!(report.rotated.is_empty(), "{backend:?}: {report:?}");
        clock.advance(1);
        let (a, b) = tokio::join!(rotate_due(&admin, false), rotate_due(&admin, false));
        assert!(a.failed.is_empty() && b.failed.is_empty(), "{a:?} {b:?}");
        let mut both = a.rotated.clone();
        both.extend(b.rotated.clone());
        assert_eq!(names(&both), sorted(&KEYS), "{backend:?}: {a:?} {b:?}");
        assert!(
            both.iter()
                .all(|k| k.from_version == 2 && k.to_version == 3)
        );
        for other in a.already_rotated.iter().chain(&b.already_rotated) {
            assert_eq!(other.to_version, 3, "{other:?}");
        }
        assert_eq!(
            versions(&admin).await,
            vec![vec![1, 2, 3]; 3],
            "{backend:?}"
        );
        assert_eq!(decrypt(&app, &old).await, b"v1 data");
        let report = rotate_due(&admin, false).await;
        assert!(report.rotated.is_empty() && report.not_due == 3);

        // Every rotation is audited once, with its key; every RotateDue call is audited.
        let events = audited(&server).await;
        let rotations: Vec<_> = events
            .iter()
            .filter(|e| e.operation == "KeyRotated")
            .collect();
        assert_eq!(rotations.len(), 6, "{backend:?}");
        assert!(rotations.iter().all(|e| e.protocol == "internal"
            && e.tenant.as_deref() == Some(tenant.as_str())
            && e.key_id.is_some()
            && e.key_version.is_some()));
        let calls = events.iter().filter(|e| e.operation == "RotateDue").count();
        assert_eq!(calls, 6, "{backend:?}");

        // kagictl against the same server.
        kagictl_rotate_and_usage(&server, &admin, &clock).await;
        server.stop().await;
    }
}

/// `kagictl rotate --due` (dry run, then for real) and `kagictl usage`, as processes.
async fn kagictl_rotate_and_usage(server: &TestServer, admin: &Kagi, clock: &ManualClock) {
    clock.advance(YEAR);
    let dry = kagictl(
        server,
        &[
            "rotate",
            "--due",
            "--dry-run",
            "--tenant",
            "board-a",
            "--json",
        ],
    )
    .await;
    assert_eq!(dry.0, Some(0), "{dry:?}");
    let report: serde_json::Value = serde_json::from_str(&dry.1).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["rotated"].as_array().unwrap().len(), 3, "{report}");
    assert_eq!(report["rotated"][0]["from_version"], 3);
    assert_eq!(versions(admin).await, vec![vec![1, 2, 3]; 3]);

    let run = kagictl(server, &["rotate", "--due"]).await;
    assert_eq!(run.0, Some(0), "{run:?}");
    assert!(
        run.1.starts_with("rotated 3 keys (3 checked, 0 not due)"),
        "{run:?}"
    );
    assert!(run.1.contains("grades"), "{run:?}");
    assert_eq!(versions(admin).await, vec![vec![1, 2, 3, 4]; 3]);

    let usage = kagictl(server, &["usage", "board-a/grades", "--json"]).await;
    assert_eq!(usage.0, Some(0), "{usage:?}");
    let usage: serde_json::Value = serde_json::from_str(&usage.1).unwrap();
    assert_eq!(usage["versions"].as_array().unwrap().len(), 4);
    assert_eq!(usage["versions"][0]["encrypts"], 2);
    assert_eq!(usage["versions"][0]["decrypts"], 3);
    assert_eq!(
        usage["versions"][3]["last_used_at"],
        serde_json::Value::Null
    );

    let usage_error = kagictl(server, &["rotate"]).await;
    assert_eq!(usage_error.0, Some(2), "{usage_error:?}");
}

/// Runs kagictl as the admin: (exit code, stdout, stderr).
async fn kagictl(server: &TestServer, args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kagictl"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KAGI_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .env("KAGI_ENDPOINT", &server.endpoint)
        .env("KAGI_TOKEN", &server.admin_token);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("kagictl runs");
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}
