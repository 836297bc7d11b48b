//! The store on each backend: migrations, uniqueness, lookups, paging, revocation, and a
//! reopened store that still holds everything.

mod common;

use common::{TestDb, backends};
use kagi_kms::audit::record::{Event, GENESIS, Hash, Record};
use kagi_kms::model::{
    Algorithm, Domain, ImportanceClass, Key, KeyState, KeyVersion, Principal, Purpose, Role,
    Tenant, VersionState,
};
use kagi_kms::store::audit::{AuditRow, MAX_APPEND, PG_STATEMENT_BYTES};
use kagi_kms::store::{Store, StoreError};

fn tenant(name: &str) -> Tenant {
    Tenant {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        created_at: 1_700_000_000,
    }
}

fn key(tenant: &Tenant, name: &str) -> (Key, KeyVersion) {
    let key = Key {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        name: name.into(),
        purpose: Purpose::PersonalInformation,
        class: ImportanceClass::I,
        domain: Domain::Komu,
        algorithm: Algorithm::Aes256GcmHkdfSha256,
        rotation_period_days: 365,
        state: KeyState::Enabled,
        primary_version: 1,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
        rotated_at: 1_700_000_000,
    };
    let version = KeyVersion {
        key_id: key.id.clone(),
        version: 1,
        state: VersionState::Active,
        wrapped_material: vec![1; 61],
        created_at: 1_700_000_000,
    };
    (key, version)
}

#[tokio::test(flavor = "multi_thread")]
async fn records_round_trip_and_names_are_unique() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let store = Store::open(&db.url).await.unwrap();
        let school = tenant("school-1");
        store.insert_tenant(&school).await.unwrap();
        assert!(matches!(
            store.insert_tenant(&tenant("school-1")).await,
            Err(StoreError::AlreadyExists(_))
        ));
        assert_eq!(
            store.find_tenant("school-1").await.unwrap().unwrap(),
            school
        );
        assert_eq!(
            store.find_tenant(&school.id).await.unwrap().unwrap(),
            school
        );
        assert!(store.find_tenant("nobody").await.unwrap().is_none());

        let (grades, v1) = key(&school, "grades");
        store.insert_key(&grades, &v1).await.unwrap();
        let (duplicate, dv1) = key(&school, "grades");
        assert!(matches!(
            store.insert_key(&duplicate, &dv1).await,
            Err(StoreError::AlreadyExists(_))
        ));
        // The failed insert left no orphan version behind.
        assert!(store.list_versions(&duplicate.id).await.unwrap().is_empty());
        assert_eq!(store.get_key(&grades.id).await.unwrap().unwrap(), grades);
        assert_eq!(
            store
                .get_key_by_name(&school.id, "grades")
                .await
                .unwrap()
                .unwrap(),
            grades
        );
        assert_eq!(store.get_version(&grades.id, 1).await.unwrap().unwrap(), v1);

        let rotated = store
            .rotate_key(&grades.id, Some(1), 1_700_000_100, |n| {
                Ok(vec![n as u8; 61])
            })
            .await
            .unwrap();
        assert_eq!(
            (rotated.primary_version, rotated.rotated_at),
            (2, 1_700_000_100)
        );
        let versions = store.list_versions(&grades.id).await.unwrap();
        let states: Vec<_> = versions.iter().map(|v| (v.version, v.state)).collect();
        assert_eq!(
            states,
            vec![(1, VersionState::Deactivated), (2, VersionState::Active)]
        );
        assert_eq!(versions[1].wrapped_material, vec![2; 61]);
        assert!(matches!(
            store
                .rotate_key(&grades.id, Some(1), 0, |_| Ok(vec![]))
                .await,
            Err(StoreError::VersionMismatch {
                expected: 1,
                actual: 2
            })
        ));

        let disabled = store
            .set_key_state(&grades.id, KeyState::Disabled, 5)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(disabled.state, KeyState::Disabled);
        assert!(
            store
                .set_key_state("missing", KeyState::Disabled, 5)
                .await
                .unwrap()
                .is_none()
        );

        // Reopening runs the migrations again (a no-op) and finds everything.
        store.close().await;
        let store = Store::open(&db.url).await.unwrap();
        assert_eq!(
            store.get_key(&grades.id).await.unwrap().unwrap().state,
            KeyState::Disabled
        );
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_page_in_id_order_per_tenant() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let store = Store::open(&db.url).await.unwrap();
        let (a, b) = (tenant("a"), tenant("b"));
        store.insert_tenant(&a).await.unwrap();
        store.insert_tenant(&b).await.unwrap();
        for i in 0..7 {
            let (k, v) = key(&a, &format!("k{i}"));
            store.insert_key(&k, &v).await.unwrap();
        }
        let (kb, vb) = key(&b, "only");
        store.insert_key(&kb, &vb).await.unwrap();

        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let page = store.list_keys(Some(&a.id), &after, 3).await.unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().unwrap().id.clone();
            seen.extend(page.into_iter().map(|k| k.id));
        }
        assert_eq!(seen.len(), 7);
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "pages are in id order without repeats"
        );
        assert_eq!(store.list_keys(None, "", 100).await.unwrap().len(), 8);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn principals_are_found_by_token_hash_and_revoked_once() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let store = Store::open(&db.url).await.unwrap();
        let alice = Principal {
            id: uuid::Uuid::new_v4().to_string(),
            name: "alice".into(),
            role: Role::Auditor,
            tenant_id: None,
            created_at: 10,
            revoked_at: None,
        };
        store.insert_principal(&alice, &[7; 32]).await.unwrap();
        let again = Principal {
            id: uuid::Uuid::new_v4().to_string(),
            ..alice.clone()
        };
        assert!(matches!(
            store.insert_principal(&again, &[8; 32]).await,
            Err(StoreError::AlreadyExists(_))
        ));
        let (found, hash) = store
            .principal_by_token_hash(&[7; 32])
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found, hash), (alice.clone(), vec![7; 32]));
        assert!(
            store
                .principal_by_token_hash(&[9; 32])
                .await
                .unwrap()
                .is_none()
        );

        let revoked = store
            .revoke_principal(&alice.id, 20)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revoked.revoked_at, Some(20));
        // Revoking again keeps the first time; the name is free for a new principal.
        assert_eq!(
            store
                .revoke_principal(&alice.id, 30)
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(20)
        );
        store.insert_principal(&again, &[8; 32]).await.unwrap();
        assert_eq!(
            store.find_principal("alice").await.unwrap().unwrap().id,
            again.id
        );
        assert_eq!(store.list_principals().await.unwrap().len(), 2);
        store.close().await;
    }
}

/// `count` linked audit rows after `prev`, each with a large body (about 1 KiB), so that a
/// full batch is far larger than one PostgreSQL statement budget.
fn audit_rows(node: &str, mut prev: (u64, Hash), count: usize) -> Vec<AuditRow> {
    (0..count)
        .map(|i| {
            let event = Event {
                time_ms: 1_700_000_000_000 + i as i64,
                node: node.into(),
                operation: "Encrypt".into(),
                outcome: "OK".into(),
                resource: Some("r".repeat(1000)),
                ..Event::default()
            };
            let record = Record::link(node, prev, &event);
            prev = (record.seq, record.hash);
            AuditRow::new(record, &event)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_audit_batch_is_stored_whole_or_not_at_all() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let store = Store::open(&db.url).await.unwrap();
        let node = "node-a";
        let first = audit_rows(node, (0, GENESIS), MAX_APPEND);
        let size: usize = first
            .iter()
            .map(|r| r.record.body.as_ref().unwrap().len())
            .sum();
        assert!(
            size > 10 * PG_STATEMENT_BYTES,
            "the batch must span many statements"
        );
        store.append_audit(node, None, &first).await.unwrap();
        let head = (MAX_APPEND as u64, first.last().unwrap().record.hash);
        assert_eq!(store.audit_head(node).await.unwrap(), Some(head));
        let stored = store.audit_range(node, 1, MAX_APPEND as u64).await.unwrap();
        assert_eq!(
            stored, first,
            "{backend:?}: every row back, in order, unchanged"
        );

        // Another writer takes a sequence number in the middle of the next batch: the batch
        // collides late (in a later statement on PostgreSQL), and none of it may remain.
        let next = audit_rows(node, head, MAX_APPEND);
        let intruder = &next[150];
        let before = (intruder.record.seq - 1, next[149].record.hash);
        store
            .append_audit(node, Some(before), std::slice::from_ref(intruder))
            .await
            .unwrap();
        let err = store
            .append_audit(node, Some(head), &next)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{backend:?}: {err}");
        let all = store
            .audit_range(node, 1, 2 * MAX_APPEND as u64)
            .await
            .unwrap();
        assert_eq!(
            all.len(),
            MAX_APPEND + 1,
            "{backend:?}: the failed batch left rows"
        );
        store.close().await;
    }
}
