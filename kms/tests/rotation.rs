//! Concurrent rotation: with an expected version exactly one of the racers wins and the rest
//! get ABORTED; without one, each call adds one version and numbers stay contiguous. Run many
//! rounds on every backend.

mod common;

use common::{TestServer, backends};
use futures::future::join_all;
use kagi_sdk::{Kagi, pb};
use tonic::Code;

const RACERS: usize = 8;
const ROUNDS: usize = 25;

async fn rotate(admin: &Kagi, key: &str, expected: u32) -> Result<pb::Key, tonic::Status> {
    admin
        .keys()
        .rotate_key(pb::RotateKeyRequest {
            key: key.into(),
            expected_current_version: expected,
        })
        .await
        .map(|r| r.into_inner().key.unwrap())
}

async fn versions(admin: &Kagi, key: &str) -> Vec<u32> {
    let key = admin
        .keys()
        .get_key(pb::GetKeyRequest { key: key.into() })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    key.versions.iter().map(|v| v.version).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_set_rotation_has_exactly_one_winner() {
    for backend in backends() {
        let server = TestServer::start(backend).await;
        let admin = server.admin().await;
        common::tenant(&admin, "school").await;
        let key = common::key(&admin, "school", "grades").await.id;
        for round in 0..ROUNDS {
            let expected = round as u32 + 1;
            let results = join_all((0..RACERS).map(|_| rotate(&admin, &key, expected))).await;
            let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(winners.len(), 1, "{backend:?} round {round}: {results:?}");
            assert_eq!(winners[0].primary_version, expected + 1);
            for loser in results.iter().filter_map(|r| r.as_ref().err()) {
                assert_eq!(loser.code(), Code::Aborted, "{backend:?}: {loser:?}");
                assert!(loser.message().contains("expected"), "{loser:?}");
            }
        }
        let expected: Vec<u32> = (1..=ROUNDS as u32 + 1).collect();
        assert_eq!(versions(&admin, &key).await, expected, "{backend:?}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unconditional_rotations_each_add_one_contiguous_version() {
    for backend in backends() {
        let server = TestServer::start(backend).await;
        let admin = server.admin().await;
        common::tenant(&admin, "school").await;
        let key = common::key(&admin, "school", "grades").await.id;
        for _ in 0..ROUNDS / 5 {
            let results = join_all((0..RACERS).map(|_| rotate(&admin, &key, 0))).await;
            assert!(
                results.iter().all(Result::is_ok),
                "{backend:?}: {results:?}"
            );
        }
        let total = (ROUNDS / 5) * RACERS + 1;
        let expected: Vec<u32> = (1..=total as u32).collect();
        assert_eq!(versions(&admin, &key).await, expected, "{backend:?}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_expected_version_is_aborted_and_an_unknown_key_not_found() {
    for backend in backends() {
        let server = TestServer::start(backend).await;
        let admin = server.admin().await;
        common::tenant(&admin, "school").await;
        let key = common::key(&admin, "school", "grades").await.id;
        rotate(&admin, &key, 1).await.unwrap();
        assert_eq!(
            rotate(&admin, &key, 1).await.unwrap_err().code(),
            Code::Aborted
        );
        let missing = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            rotate(&admin, &missing, 0).await.unwrap_err().code(),
            Code::NotFound
        );
        server.stop().await;
    }
}
