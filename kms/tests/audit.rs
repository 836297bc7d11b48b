//! The audit trail against a real kagid (in-process, gRPC over loopback, SQLite and PostgreSQL):
//! tampering with the store or the JSONL copy is found and the first bad record named; an
//! unwritable trail makes calls fail closed; the trail holds no secret used by the calls.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::{Backend, TestServer, backends, contains, ctx};
use kagi_kms::audit::AuditConfig;
use kagi_kms::audit::record::{Event, Line, Record};
use kagi_kms::audit::sinks::{SinkConfig, SinkTarget};
use kagi_kms::audit::verify::{Options, verify_jsonl};
use kagi_sdk::{Kagi, pb};
use sqlx::Row;
use tonic::Code;

const PLAINTEXT: &[u8] = b"pupil 42 scored 97 in mathematics";
const CONTEXT_VALUE: &str = "pupil-secret-4242";

/// A server with a small checkpoint interval (and optionally a JSONL copy), a tenant, a key,
/// and an auditor.
struct Trail {
    server: TestServer,
    service: Kagi,
    service_token: String,
    auditor: Kagi,
    auditor_token: String,
    jsonl: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl Trail {
    async fn new(backend: Backend, sinks: Vec<SinkConfig>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = sinks.iter().find_map(|s| match &s.target {
            SinkTarget::File { path, .. } => Some(path.clone()),
            _ => None,
        });
        let config = AuditConfig {
            checkpoint_records: 5,
            sinks,
            ..AuditConfig::default()
        };
        let server = TestServer::start_with_audit(backend, config).await;
        let admin = server.admin().await;
        let tenant = common::tenant(&admin, "board").await;
        common::key(&admin, &tenant, "records").await;
        let service_token =
            common::principal(&admin, "app", pb::Role::TenantService, &tenant).await;
        let auditor_token = common::principal(&admin, "inspector", pb::Role::Auditor, "").await;
        Self {
            service: server.client(&service_token).await,
            auditor: server.client(&auditor_token).await,
            service_token,
            auditor_token,
            server,
            jsonl,
            _dir: dir,
        }
    }

    /// `n` encrypt and decrypt calls.
    async fn traffic(&self, n: usize) {
        for _ in 0..n {
            let ciphertext = self
                .service
                .crypto()
                .encrypt(pb::EncryptRequest {
                    key_id: "board/records".into(),
                    plaintext: PLAINTEXT.to_vec(),
                    context: ctx(&[("pupil", CONTEXT_VALUE)]),
                })
                .await
                .unwrap()
                .into_inner()
                .ciphertext;
            self.service
                .crypto()
                .decrypt(pb::DecryptRequest {
                    ciphertext,
                    context: ctx(&[("pupil", CONTEXT_VALUE)]),
                })
                .await
                .unwrap();
        }
    }

    async fn verify(&self) -> pb::VerifyResponse {
        self.auditor
            .audit()
            .verify(pb::VerifyRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    fn node(&self) -> String {
        self.server.engine.audit().node().to_owned()
    }

    async fn rows(&self) -> Vec<Record> {
        self.server
            .engine
            .store()
            .audit_range(&self.node(), 1, u64::MAX >> 1)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.record)
            .collect()
    }

    async fn sql(&self, sql: String) {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(self.server.engine.store().pool())
            .await
            .unwrap();
    }

    /// Rewrites records `from..` of the chain as an attacker with database access but without
    /// the root would: new digests and hashes, the old MACs left in place.
    async fn rechain(&self, mut records: Vec<Record>, from: usize) {
        for i in from..records.len() {
            let prev = if i == 0 {
                (0, [0; 32])
            } else {
                (records[i - 1].seq, records[i - 1].hash)
            };
            let event: Event = records[i].event().unwrap();
            let relinked = Record::link(&records[i].node, prev, &event);
            records[i].prev_hash = relinked.prev_hash;
            records[i].digest = relinked.digest;
            records[i].hash = relinked.hash;
            records[i].body = relinked.body;
            self.write(&records[i]).await;
        }
    }

    async fn write(&self, r: &Record) {
        let sqlite = self.server.db_is_sqlite();
        sqlx::query(
            "UPDATE audit_records SET body = $1, prev_hash = $2, digest = $3, hash = $4 \
             WHERE node = $5 AND seq = $6",
        )
        .bind(r.body.clone().unwrap())
        .bind(r.prev_hash.to_vec())
        .bind(r.digest.to_vec())
        .bind(r.hash.to_vec())
        .bind(&r.node)
        .bind(r.seq as i64)
        .execute(self.server.engine.store().pool())
        .await
        .unwrap();
        let _ = sqlite;
    }
}

/// A byte-string literal for SQL.
fn bytes(sqlite: bool, b: &[u8]) -> String {
    if sqlite {
        format!("X'{}'", hex::encode(b))
    } else {
        format!("'\\x{}'::bytea", hex::encode(b))
    }
}

trait SqliteFlag {
    fn db_is_sqlite(&self) -> bool;
}

impl SqliteFlag for TestServer {
    fn db_is_sqlite(&self) -> bool {
        self.db.sqlite_path.is_some()
    }
}

fn file_sink(dir: &Path, required: bool) -> SinkConfig {
    SinkConfig {
        target: SinkTarget::File {
            path: dir.join("audit.jsonl"),
            max_bytes: 0,
            keep: 1,
        },
        required,
        queue_lines: 10_000,
        timeout: Duration::from_secs(5),
    }
}

/// Each kind of tampering, applied to a fresh trail in the database.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// An event edited (outcome turned into a failure), the chain recomputed after it.
    Modify,
    /// A record deleted from the middle.
    Delete,
    /// A forged record inserted in the middle, later records renumbered and rechained.
    Insert,
    /// Two records swapped.
    Reorder,
    /// The newest records cut off (a signed checkpoint still names them).
    Truncate,
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_with_the_store_is_found_at_the_first_bad_record() {
    for backend in backends() {
        // An untouched trail verifies, with MACs and signatures.
        let trail = Trail::new(backend, vec![]).await;
        trail.traffic(10).await;
        let report = trail.verify().await;
        assert!(report.ok, "{report:?}");
        assert!(report.macs_checked && report.checkpoints >= 4, "{report:?}");
        assert!(report.records >= 20);
        trail.server.stop().await;

        for tamper in [
            Tamper::Modify,
            Tamper::Delete,
            Tamper::Insert,
            Tamper::Reorder,
            Tamper::Truncate,
        ] {
            let trail = Trail::new(backend, vec![]).await;
            trail.traffic(10).await;
            let records = trail.rows().await;
            let node = trail.node();
            let k = 8usize; // index; the record's seq is k + 1
            let seq = records[k].seq;
            let expected = match tamper {
                Tamper::Modify => {
                    let mut edited = records.clone();
                    let mut event = edited[k].event().unwrap();
                    event.outcome = "PERMISSION_DENIED".into();
                    edited[k].body = Some(event.canonical_json());
                    trail.rechain(edited, k).await;
                    seq
                }
                Tamper::Delete => {
                    trail
                        .sql(format!(
                            "DELETE FROM audit_records WHERE node = '{node}' AND seq = {seq}"
                        ))
                        .await;
                    seq
                }
                Tamper::Insert => {
                    // Renumber from the top down so the primary key never collides.
                    for r in records[k..].iter().rev() {
                        trail
                            .sql(format!(
                                "UPDATE audit_records SET seq = seq + 1 WHERE node = '{node}' AND seq = {}",
                                r.seq
                            ))
                            .await;
                    }
                    let mut forged_event = records[k].event().unwrap();
                    forged_event.operation = "ListTenants".into();
                    let forged = Record::link(
                        &node,
                        (records[k - 1].seq, records[k - 1].hash),
                        &forged_event,
                    );
                    let event = forged_event.clone();
                    sqlx::query(
                        "INSERT INTO audit_records (node, seq, time_ms, tenant_id, principal_id, \
                         key_id, operation, outcome, body, prev_hash, digest, hash, mac) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)",
                    )
                    .bind(&node)
                    .bind(forged.seq as i64)
                    .bind(event.time_ms)
                    .bind(event.tenant.clone())
                    .bind(event.principal.clone())
                    .bind(event.key_id.clone())
                    .bind(event.operation.clone())
                    .bind(event.outcome.clone())
                    .bind(forged.body.clone().unwrap())
                    .bind(forged.prev_hash.to_vec())
                    .bind(forged.digest.to_vec())
                    .bind(forged.hash.to_vec())
                    .execute(trail.server.engine.store().pool())
                    .await
                    .unwrap();
                    let mut all = trail.rows().await;
                    all.sort_by_key(|r| r.seq);
                    trail.rechain(all, k + 1).await;
                    seq
                }
                Tamper::Reorder => {
                    let (a, b) = (&records[k], &records[k + 1]);
                    let sqlite = trail.server.db_is_sqlite();
                    for (target, source) in [(a, b), (b, a)] {
                        trail
                            .sql(format!(
                                "UPDATE audit_records SET body = '{}', digest = {}, hash = {}, prev_hash = {} \
                                 WHERE node = '{node}' AND seq = {}",
                                source.body.clone().unwrap().replace('\'', "''"),
                                bytes(sqlite, &source.digest),
                                bytes(sqlite, &source.hash),
                                bytes(sqlite, &source.prev_hash),
                                target.seq
                            ))
                            .await;
                    }
                    seq
                }
                Tamper::Truncate => {
                    // Cut everything after the record before the last checkpoint.
                    let report = trail.verify().await;
                    let checkpoint = report.heads[0].last_checkpoint_seq;
                    assert!(checkpoint >= 10, "{report:?}");
                    let keep = checkpoint - 2;
                    trail
                        .sql(format!(
                            "DELETE FROM audit_records WHERE node = '{node}' AND seq > {keep}"
                        ))
                        .await;
                    keep + 1
                }
            };
            let report = trail.verify().await;
            assert!(!report.ok, "{backend:?} {tamper:?} went unnoticed");
            assert_eq!(
                (report.first_bad_node.as_str(), report.first_bad_seq),
                (node.as_str(), expected),
                "{backend:?} {tamper:?}: {}",
                report.problem
            );
            trail.server.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_with_the_jsonl_copy_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let trail = Trail::new(Backend::Sqlite, vec![file_sink(dir.path(), true)]).await;
    trail.traffic(10).await;
    let path = trail.jsonl.clone().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let public_key = trail
        .server
        .engine
        .keyring()
        .unsealed()
        .unwrap()
        .audit_public_key();
    let options = || Options {
        public_key: Some(public_key),
        mac_key: None,
        partial_start: false,
    };
    let check = |lines: &[String]| verify_jsonl(lines.join("\n").as_bytes(), options()).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let report = check(&lines);
    assert!(report.ok(), "{report:?}");
    assert!(report.checkpoints >= 4);

    let index_of = |seq: u64| {
        lines
            .iter()
            .position(|l| {
                matches!(serde_json::from_str::<Line>(l).unwrap(), Line::Record { seq: s, .. } if s == seq)
            })
            .unwrap()
    };
    // Modify an event.
    let mut modified = lines.clone();
    let i = index_of(7);
    modified[i] = modified[i].replace("\"outcome\":\"OK\"", "\"outcome\":\"NOT_FOUND\"");
    assert_eq!(check(&modified).first_bad.unwrap().seq, 7);
    // Delete a record.
    let mut deleted = lines.clone();
    deleted.remove(index_of(7));
    assert_eq!(check(&deleted).first_bad.unwrap().seq, 7);
    // Insert a copy of another record.
    let mut inserted = lines.clone();
    inserted.insert(index_of(7), lines[index_of(3)].clone());
    let bad = check(&inserted).first_bad.unwrap();
    assert!(bad.seq == 3 || bad.seq == 7, "{bad:?}");
    // Reorder two records.
    let mut reordered = lines.clone();
    let (a, b) = (index_of(7), index_of(8));
    reordered.swap(a, b);
    assert_eq!(check(&reordered).first_bad.unwrap().seq, 7);
    // Truncate the tail: the copy ends before the server's newest checkpoint.
    let server_heads = trail.verify().await.heads;
    let last_checkpoint = server_heads[0].last_checkpoint_seq;
    let cut = index_of(last_checkpoint - 1);
    let truncated: Vec<String> = lines[..cut].to_vec();
    let report = check(&truncated);
    let copy_end = report.nodes[0].last_seq;
    assert!(
        copy_end < last_checkpoint,
        "a truncated copy ends at {copy_end}, before the server's checkpoint {last_checkpoint}"
    );
    trail.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_trail_fails_calls_closed() {
    for backend in backends() {
        let trail = Trail::new(backend, vec![]).await;
        trail.traffic(1).await;
        trail
            .sql("ALTER TABLE audit_records RENAME TO audit_records_away".into())
            .await;
        let err = trail
            .service
            .crypto()
            .encrypt(pb::EncryptRequest {
                key_id: "board/records".into(),
                plaintext: PLAINTEXT.to_vec(),
                context: HashMap::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(err.message().contains("audit"), "{}", err.message());
        let health = tonic_health::pb::health_client::HealthClient::new(
            trail.server.admin().await.channel(),
        );
        let mut serving = true;
        for _ in 0..40 {
            let status = health
                .clone()
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            if status == tonic_health::pb::health_check_response::ServingStatus::NotServing as i32 {
                serving = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            !serving,
            "kagid reports NOT_SERVING while its trail is unwritable"
        );
        trail
            .sql("ALTER TABLE audit_records_away RENAME TO audit_records".into())
            .await;
        // Calls are refused until a probe has written a record again (within seconds).
        let mut recovered = false;
        for _ in 0..50 {
            if trail.server.engine.audit().healthy() {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(recovered, "the trail recovers once its table is back");
        trail.traffic(1).await;
        assert!(trail.verify().await.ok);
        trail.server.stop().await;
    }

    // A required sink that cannot write (a full disk) fails calls; a best-effort one does not.
    let full = |required| SinkConfig {
        target: SinkTarget::File {
            path: "/dev/full".into(),
            max_bytes: 0,
            keep: 0,
        },
        required,
        queue_lines: 100,
        timeout: Duration::from_secs(2),
    };
    let trail = Trail::new(Backend::Sqlite, vec![]).await;
    drop(trail);
    let server = TestServer::start_with_audit(
        Backend::Sqlite,
        AuditConfig {
            sinks: vec![full(true)],
            ..AuditConfig::default()
        },
    )
    .await;
    let err = server
        .admin()
        .await
        .keys()
        .create_tenant(pb::CreateTenantRequest { name: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    server.stop().await;
    let server = TestServer::start_with_audit(
        Backend::Sqlite,
        AuditConfig {
            sinks: vec![full(false)],
            ..AuditConfig::default()
        },
    )
    .await;
    common::tenant(&server.admin().await, "y").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_recorded_and_the_trail_holds_no_secret() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let trail = Trail::new(backend, vec![file_sink(dir.path(), true)]).await;
        trail.traffic(3).await;
        let data_key = trail
            .service
            .crypto()
            .generate_data_key(pb::GenerateDataKeyRequest {
                key_id: "board/records".into(),
                context: ctx(&[("pupil", CONTEXT_VALUE)]),
                spec: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .plaintext_key;
        // A bad ciphertext, a sealed node, a missing token.
        let err = trail
            .service
            .crypto()
            .decrypt(pb::DecryptRequest {
                ciphertext: b"garbage".to_vec(),
                context: HashMap::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let anonymous = Kagi::connect(trail.server.endpoint.clone())
            .build()
            .await
            .unwrap();
        let err = anonymous
            .keys()
            .list_tenants(pb::ListTenantsRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        trail.server.engine.keyring().seal();
        let err = trail
            .service
            .crypto()
            .encrypt(pb::EncryptRequest {
                key_id: "board/records".into(),
                plaintext: PLAINTEXT.to_vec(),
                context: HashMap::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);

        let query = |operation: &str, outcome: &str| pb::QueryRequest {
            operation: operation.into(),
            outcome: outcome.into(),
            ..Default::default()
        };
        for (operation, outcome) in [
            ("Decrypt", "INVALID_ARGUMENT"),
            ("ListTenants", "UNAUTHENTICATED"),
            ("Encrypt", "UNAVAILABLE"),
        ] {
            let mut stream = trail
                .auditor
                .audit()
                .query(query(operation, outcome))
                .await
                .unwrap()
                .into_inner();
            let mut found = 0;
            while let Some(chunk) = stream.message().await.unwrap() {
                found += chunk.lines.len();
            }
            assert_eq!(found, 1, "{operation} {outcome}");
        }

        // Nothing secret in the store or the JSONL copy: no plaintext, context value, token or
        // data key, raw or encoded.
        let mut everything = trail.server.stored_bytes().await;
        everything.extend(std::fs::read(dir.path().join("audit.jsonl")).unwrap());
        assert!(contains(&everything, b"\"pupil\":\"hmac-sha256:"));
        let b64 = base64::engine::general_purpose::STANDARD;
        for secret in [
            PLAINTEXT.to_vec(),
            CONTEXT_VALUE.as_bytes().to_vec(),
            trail.service_token.as_bytes().to_vec(),
            trail.auditor_token.as_bytes().to_vec(),
            trail.server.admin_token.as_bytes().to_vec(),
            data_key.clone(),
            hex::encode(&data_key).into_bytes(),
            b64.encode(&data_key).into_bytes(),
            b64.encode(PLAINTEXT).into_bytes(),
        ] {
            assert!(
                !contains(&everything, &secret),
                "a secret is in the audit trail"
            );
        }
        let rows = sqlx::query("SELECT COUNT(*) AS n FROM audit_records")
            .fetch_one(trail.server.engine.store().pool())
            .await
            .unwrap();
        assert!(rows.get::<i64, _>("n") >= 10);
        trail.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pruning_keeps_the_chain_verifiable() {
    for backend in backends() {
        let trail = Trail::new(backend, vec![]).await;
        trail.traffic(5).await;
        let engine = &trail.server.engine;
        let node = trail.node();
        let (head, _) = engine.store().audit_head(&node).await.unwrap().unwrap();
        let now_ms = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 1)
            * 1000;
        let deleted = kagi_kms::audit::retention::prune(
            engine.store(),
            engine.keyring(),
            &node,
            now_ms,
            now_ms,
        )
        .await
        .unwrap();
        assert_eq!(deleted, head);
        trail.traffic(2).await;
        let report = trail.verify().await;
        assert!(report.ok, "{report:?}");
        assert_eq!(report.heads[0].first_seq, head + 1);
        // The first kept record must still hang on the signed retention start.
        let first = engine
            .store()
            .audit_range(&node, head + 1, head + 1)
            .await
            .unwrap()
            .remove(0)
            .record;
        trail
            .sql(format!(
                "UPDATE audit_records SET prev_hash = {} WHERE node = '{node}' AND seq = {}",
                bytes(trail.server.db_is_sqlite(), &[7; 32]),
                first.seq
            ))
            .await;
        let report = trail.verify().await;
        assert_eq!(report.first_bad_seq, head + 1, "{}", report.problem);
        trail.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_sharing_a_database_keep_chains_of_their_own() {
    for backend in backends() {
        let trail = Trail::new(backend, vec![]).await;
        // A second kagid node on the same database, writing under its own node name.
        let store = kagi_kms::store::Store::open(&trail.server.db.url)
            .await
            .unwrap();
        let keyring = std::sync::Arc::new(kagi_kms::keyring::Keyring::sealed(10));
        keyring.unseal(kagi_kms::crypto::SecretKey::from_bytes(trail.server.root));
        let other = kagi_kms::engine::Engine::with_audit(
            store,
            keyring,
            std::sync::Arc::new(kagi_kms::clock::SystemClock),
            AuditConfig {
                node: "node-b".into(),
                checkpoint_records: 3,
                ..AuditConfig::default()
            },
        )
        .unwrap();
        let writes = (0..12).map(|i| {
            let other = other.clone();
            async move {
                other
                    .audit_internal("Probe", format!("write {i} from node-b"))
                    .await
            }
        });
        let (_, ()) = tokio::join!(futures::future::join_all(writes), trail.traffic(6));
        let report = trail.verify().await;
        assert!(report.ok, "{report:?}");
        let nodes: Vec<&str> = report.heads.iter().map(|h| h.node.as_str()).collect();
        assert!(
            nodes.contains(&"node-b") && nodes.contains(&trail.node().as_str()),
            "{nodes:?}"
        );
        let b = report.heads.iter().find(|h| h.node == "node-b").unwrap();
        assert_eq!((b.first_seq, b.last_seq), (1, 12));
        assert!(b.last_checkpoint_seq >= 9);
        other.store().close().await;

        // A record misfiled in the filter columns (hidden from a tenant's queries) is found.
        let node = trail.node();
        trail
            .sql(format!(
                "UPDATE audit_records SET tenant_id = 'someone-else' WHERE node = '{node}' AND seq = 5"
            ))
            .await;
        let report = trail.verify().await;
        assert_eq!(
            (report.first_bad_node.as_str(), report.first_bad_seq),
            (node.as_str(), 5)
        );
        assert!(
            report.problem.contains("filter columns"),
            "{}",
            report.problem
        );
        trail.server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_shows_one_tenant_and_proves_its_chain() {
    let trail = Trail::new(Backend::Sqlite, vec![]).await;
    let admin = trail.server.admin().await;
    let other_tenant = common::tenant(&admin, "other-board").await;
    common::key(&admin, &other_tenant, "records").await;
    trail.traffic(4).await;
    let tenant_id = trail
        .server
        .engine
        .resolve_tenant("board")
        .await
        .unwrap()
        .id;
    let mut stream = trail
        .auditor
        .audit()
        .export(pb::ExportRequest {
            tenant: "board".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut lines = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        lines.extend(chunk.lines);
    }
    let (mut shown, mut redacted, mut checkpoints) = (0, 0, 0);
    for line in &lines {
        match serde_json::from_str::<Line>(line).unwrap() {
            Line::Record {
                event: Some(event), ..
            } => {
                assert_eq!(
                    event.tenant.as_deref(),
                    Some(tenant_id.as_str()),
                    "{event:?}"
                );
                shown += 1;
            }
            Line::Record { event: None, .. } => redacted += 1,
            Line::Checkpoint(_) => checkpoints += 1,
        }
    }
    assert!(shown >= 8, "the tenant's encrypt and decrypt records");
    assert!(
        redacted >= 1,
        "the other tenant's records in the same stretch are redacted"
    );
    assert!(checkpoints >= 1);
    let exported = lines.join("\n");
    assert!(
        !exported.contains(&other_tenant),
        "nothing names the other tenant"
    );
    let public_key = trail
        .server
        .engine
        .keyring()
        .unsealed()
        .unwrap()
        .audit_public_key();
    let report = verify_jsonl(
        exported.as_bytes(),
        Options {
            public_key: Some(public_key),
            mac_key: None,
            partial_start: true,
        },
    )
    .unwrap();
    assert!(report.ok() && report.signatures_checked, "{report:?}");
    trail.server.stop().await;
}
