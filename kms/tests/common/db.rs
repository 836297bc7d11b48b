//! A database of its own for each test: a SQLite file in a temporary directory, or a
//! PostgreSQL database created from `KAGI_TEST_DATABASE_URL` and dropped afterwards.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Environment variable naming the PostgreSQL server for tests.
pub const PG_ENV: &str = "KAGI_TEST_DATABASE_URL";

/// Which database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// SQLite always; PostgreSQL when `KAGI_TEST_DATABASE_URL` is set (else says it was skipped).
pub fn backends() -> Vec<Backend> {
    if std::env::var(PG_ENV).is_ok_and(|v| !v.is_empty()) {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        eprintln!("skipped: the PostgreSQL run of this test ({PG_ENV} is not set)");
        vec![Backend::Sqlite]
    }
}

/// A fresh, empty database, removed on drop.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// The SQLite file, if SQLite.
    pub sqlite_path: Option<std::path::PathBuf>,
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// Creates the database. Panics if PostgreSQL was asked for and cannot be reached.
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join("kagi.db");
                Self {
                    url: format!("sqlite://{}", path.display()),
                    sqlite_path: Some(path),
                    dir,
                    postgres: None,
                }
            }
            Backend::Postgres => {
                let admin_url = std::env::var(PG_ENV).expect("KAGI_TEST_DATABASE_URL");
                let name = format!("kagi_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!("{PG_ENV} is set but PostgreSQL is unreachable: {e}")
                });
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                Self {
                    url: with_database(&admin_url, &name),
                    sqlite_path: None,
                    dir,
                    postgres: Some((admin_url, name)),
                }
            }
        }
    }

    /// Everything the store holds: the SQLite file and its WAL, or every row of every table
    /// of the PostgreSQL database as JSON (where byte columns appear as hex).
    pub async fn stored_bytes(&self) -> Vec<u8> {
        use sqlx::Row;
        if let Some(path) = &self.sqlite_path {
            let mut bytes = std::fs::read(path).unwrap();
            if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
                bytes.extend(wal);
            }
            return bytes;
        }
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        let tables = sqlx::query(
            "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert!(tables.len() >= 5, "the PostgreSQL schema has tables");
        let mut bytes = Vec::new();
        for table in tables {
            let table: String = table.get("t");
            let sql = format!("SELECT row_to_json(t)::text AS j FROM {table} t");
            for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut conn)
                .await
                .unwrap()
            {
                bytes.extend(row.get::<String, _>("j").into_bytes());
            }
        }
        bytes
    }

    /// A directory that lives as long as the database.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside any async context we could block on: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The URL with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}
