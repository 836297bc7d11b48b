//! The `audit_records` and `audit_checkpoints` tables. A chain's head is its newest record.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Row};

use super::{Backend, Store, StoreError, unique_violation};
use crate::audit::checkpoint::{Checkpoint, Kind};
use crate::audit::record::{Event, Hash, Record};

/// Most records in one append (13 parameters each: 2,600 stays far below every backend's
/// limit). The writer's batches are at most this large.
pub const MAX_APPEND: usize = 200;

/// Most bytes (estimated) of one audit INSERT sent to PostgreSQL. sqlx 0.9 does not set
/// `TCP_NODELAY` on its sockets, and a statement larger than the socket's send buffer (16 KiB
/// at first on Linux) leaves in two writes: the second then waits, under Nagle's algorithm, for
/// the server's delayed ACK of the first, about 40 ms per batch (measured: see
/// docs/performance.md). Statements under this size leave in one write.
pub const PG_STATEMENT_BYTES: usize = 12 * 1024;

const RECORD_COLUMNS: &str = "node, seq, time_ms, tenant_id, principal_id, key_id, operation, \
     outcome, body, prev_hash, digest, hash, mac";

/// Splits `rows` into runs whose INSERT is estimated at most `budget` bytes (a single row is
/// never split, however large).
fn statement_chunks(rows: &[AuditRow], budget: usize) -> Vec<&[AuditRow]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let size = row.wire_size();
        if i > start && bytes + size > budget {
            chunks.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    chunks.push(&rows[start..]);
    chunks
}

/// One multi-row INSERT of `rows`.
fn insert_records(rows: &[AuditRow]) -> sqlx::query::Query<'static, Any, AnyArguments> {
    // `$n` placeholders written out: sqlx's QueryBuilder emits `?` under the Any driver, which
    // PostgreSQL refuses.
    let values: Vec<String> = (0..rows.len())
        .map(|i| {
            let n = i * 13;
            let marks: Vec<String> = (1..=13).map(|k| format!("${}", n + k)).collect();
            format!("({})", marks.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO audit_records ({RECORD_COLUMNS}) VALUES {}",
        values.join(", ")
    );
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in rows {
        let r = &row.record;
        insert = insert
            .bind(r.node.clone())
            .bind(seq_value(r.seq))
            .bind(row.time_ms)
            .bind(row.tenant_id.clone())
            .bind(row.principal_id.clone())
            .bind(row.key_id.clone())
            .bind(row.operation.clone())
            .bind(row.outcome.clone())
            .bind(r.body.clone().unwrap_or_default())
            .bind(r.prev_hash.to_vec())
            .bind(r.digest.to_vec())
            .bind(r.hash.to_vec())
            .bind(r.mac.map(|m| m.to_vec()));
    }
    insert
}

/// A stored record with the columns that repeat parts of its event for filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// The record.
    pub record: Record,
    /// Filter columns, as stored.
    pub time_ms: i64,
    /// Tenant column.
    pub tenant_id: Option<String>,
    /// Principal column.
    pub principal_id: Option<String>,
    /// Key column.
    pub key_id: Option<String>,
    /// Operation column.
    pub operation: String,
    /// Outcome column.
    pub outcome: String,
}

impl AuditRow {
    /// The row for `record`, whose event is `event`.
    pub fn new(record: Record, event: &Event) -> Self {
        Self {
            record,
            time_ms: event.time_ms,
            tenant_id: event.tenant.clone(),
            principal_id: event.principal.clone(),
            key_id: event.key_id.clone(),
            operation: event.operation.clone(),
            outcome: event.outcome.clone(),
        }
    }

    /// About how many bytes this row adds to an INSERT on the wire: its values, 13 parameter
    /// headers and its `($n, …)` text.
    fn wire_size(&self) -> usize {
        let text = |v: &Option<String>| v.as_ref().map_or(0, String::len);
        let r = &self.record;
        r.node.len()
            + r.body.as_ref().map_or(0, String::len)
            + text(&self.tenant_id)
            + text(&self.principal_id)
            + text(&self.key_id)
            + self.operation.len()
            + self.outcome.len()
            + 8 * 2
            + 32 * 4
            + 13 * 4
            + 13 * 6
    }

    /// Whether the filter columns say what the body says (a mismatch hides or misfiles a record
    /// in queries, so verification reports it).
    pub fn columns_match_body(&self) -> bool {
        self.record
            .event()
            .is_some_and(|e| AuditRow::new(self.record.clone(), &e) == *self)
    }
}

/// Filters of an audit query (all optional).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// From (inclusive), Unix ms.
    pub from_ms: Option<i64>,
    /// To (exclusive), Unix ms.
    pub to_ms: Option<i64>,
    /// Tenant id.
    pub tenant_id: Option<String>,
    /// Principal id.
    pub principal_id: Option<String>,
    /// Key id.
    pub key_id: Option<String>,
    /// Operation name.
    pub operation: Option<String>,
    /// `OK`, `FAILED` or a code name.
    pub outcome: Option<String>,
    /// Start after this `(time_ms, node, seq)`.
    pub after: Option<(i64, String, u64)>,
}

impl Store {
    /// The head `(seq, hash)` of `node`'s chain, if it has records: its newest record.
    pub async fn audit_head(&self, node: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, hash FROM audit_records WHERE node = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(node)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((seq_column(&r, "seq")?, hash_column(&r, "hash")?)))
            .transpose()
    }

    /// Appends `rows` (consecutive, linked after `expected`) to `node`'s chain, all or nothing.
    /// The `(node, seq)` primary key is the compare-and-set: if another process wrote under
    /// the same node name since `expected` was read, the insert collides and nothing is written
    /// ([`StoreError::Conflict`]).
    ///
    /// A batch that fits one statement is ONE multi-row INSERT, atomic on its own: one round
    /// trip and one commit. On PostgreSQL a larger batch is split into statements of at most
    /// [`PG_STATEMENT_BYTES`] inside one transaction (see there for why).
    pub async fn append_audit(
        &self,
        node: &str,
        expected: Option<(u64, Hash)>,
        rows: &[AuditRow],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        if rows.len() > MAX_APPEND {
            return Err(StoreError::Corrupt(format!(
                "an audit batch of {} records exceeds {MAX_APPEND}",
                rows.len()
            )));
        }
        debug_assert_eq!(rows[0].record.seq, expected.map_or(1, |(seq, _)| seq + 1));
        let conflict = |e: sqlx::Error| match unique_violation(e, String::new) {
            StoreError::AlreadyExists(_) => StoreError::Conflict(format!(
                "the audit chain of node {node} moved: another kagid writes under the same node name"
            )),
            other => other,
        };
        let budget = match self.backend {
            Backend::Sqlite => usize::MAX,
            Backend::Postgres => PG_STATEMENT_BYTES,
        };
        let chunks = statement_chunks(rows, budget);
        if let [only] = chunks.as_slice() {
            insert_records(only)
                .execute(&self.pool)
                .await
                .map_err(conflict)?;
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in chunks {
            insert_records(chunk)
                .execute(&mut *tx)
                .await
                .map_err(conflict)?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a signed checkpoint.
    pub async fn insert_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_checkpoint_row(&mut conn, checkpoint).await
    }

    /// Every checkpoint, by node and seq.
    pub async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT node, kind, seq, head_hash, time_ms, public_key, signature \
             FROM audit_checkpoints ORDER BY node, seq, kind",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(Checkpoint {
                    node: r.try_get("node")?,
                    kind: Kind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("checkpoint kind {kind:?}")))?,
                    seq: seq_column(r, "seq")?,
                    head_hash: hex::encode(r.try_get::<Vec<u8>, _>("head_hash")?),
                    time_ms: r.try_get("time_ms")?,
                    public_key: hex::encode(r.try_get::<Vec<u8>, _>("public_key")?),
                    signature: hex::encode(r.try_get::<Vec<u8>, _>("signature")?),
                })
            })
            .collect()
    }

    /// Up to `limit` records in chain order (node, seq), after `after`, for verification.
    pub async fn audit_scan(
        &self,
        after: Option<(&str, u64)>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let (node, seq) = after.unwrap_or(("", 0));
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM audit_records WHERE node > $1 OR (node = $1 AND seq > $2) \
             ORDER BY node, seq LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(node)
            .bind(seq_value(seq))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_from).collect()
    }

    /// Records matching `filter`, by (time, node, seq), at most `limit`.
    pub async fn audit_query(
        &self,
        filter: &AuditFilter,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        enum Param {
            Int(i64),
            Text(String),
        }
        let mut clauses = vec!["1 = 1".to_owned()];
        let mut params: Vec<Param> = Vec::new();
        let mark = |p: Param, params: &mut Vec<Param>| {
            params.push(p);
            format!("${}", params.len())
        };
        if let Some(from) = filter.from_ms {
            clauses.push(format!(
                "time_ms >= {}",
                mark(Param::Int(from), &mut params)
            ));
        }
        if let Some(to) = filter.to_ms {
            clauses.push(format!("time_ms < {}", mark(Param::Int(to), &mut params)));
        }
        for (column, value) in [
            ("tenant_id", &filter.tenant_id),
            ("principal_id", &filter.principal_id),
            ("key_id", &filter.key_id),
            ("operation", &filter.operation),
        ] {
            if let Some(value) = value {
                clauses.push(format!(
                    "{column} = {}",
                    mark(Param::Text(value.clone()), &mut params)
                ));
            }
        }
        match filter.outcome.as_deref() {
            None => {}
            Some("FAILED") => clauses.push("outcome <> 'OK'".to_owned()),
            Some(code) => {
                clauses.push(format!(
                    "outcome = {}",
                    mark(Param::Text(code.to_owned()), &mut params)
                ));
            }
        }
        if let Some((time, node, seq)) = &filter.after {
            let t = mark(Param::Int(*time), &mut params);
            let n = mark(Param::Text(node.clone()), &mut params);
            let s = mark(Param::Int(seq_value(*seq)), &mut params);
            clauses.push(format!(
                "(time_ms > {t} OR (time_ms = {t} AND (node > {n} OR (node = {n} AND seq > {s}))))"
            ));
        }
        let limit_mark = mark(Param::Int(i64::from(limit)), &mut params);
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM audit_records WHERE {} ORDER BY time_ms, node, seq LIMIT {limit_mark}",
            clauses.join(" AND ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for param in params {
            query = match param {
                Param::Int(v) => query.bind(v),
                Param::Text(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(row_from).collect()
    }

    /// Records `first_seq..=last_seq` of `node`'s chain, in order: the stretch an export proves.
    pub async fn audit_range(
        &self,
        node: &str,
        first_seq: u64,
        last_seq: u64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM audit_records WHERE node = $1 AND seq >= $2 AND seq <= $3 \
             ORDER BY seq"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(node)
            .bind(seq_value(first_seq))
            .bind(seq_value(last_seq))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_from).collect()
    }

    /// The newest record of `node` older than `before_ms`, if any.
    pub async fn audit_last_before(
        &self,
        node: &str,
        before_ms: i64,
    ) -> Result<Option<AuditRow>, StoreError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM audit_records WHERE node = $1 AND time_ms < $2 \
             ORDER BY seq DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(node)
            .bind(before_ms)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(row_from).transpose()
    }

    /// Stores `start` (a retention-start checkpoint at seq S) and deletes `start.node`'s
    /// records up to S and its checkpoints before S, in one transaction.
    pub async fn prune_audit(&self, start: &Checkpoint) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        insert_checkpoint_row(&mut tx, start).await?;
        let deleted = sqlx::query("DELETE FROM audit_records WHERE node = $1 AND seq <= $2")
            .bind(&start.node)
            .bind(seq_value(start.seq))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM audit_checkpoints WHERE node = $1 AND seq < $2")
            .bind(&start.node)
            .bind(seq_value(start.seq))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Every node with records, and its head.
    pub async fn audit_heads(&self) -> Result<Vec<(String, u64, Hash)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.node, r.seq, r.hash FROM audit_records r \
             WHERE r.seq = (SELECT MAX(seq) FROM audit_records m WHERE m.node = r.node) ORDER BY r.node",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("node")?,
                    seq_column(r, "seq")?,
                    hash_column(r, "hash")?,
                ))
            })
            .collect()
    }
}

async fn insert_checkpoint_row(
    conn: &mut sqlx::AnyConnection,
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("checkpoint {what} is not hex"));
    sqlx::query(
        "INSERT INTO audit_checkpoints (node, kind, seq, head_hash, time_ms, public_key, signature) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&checkpoint.node)
    .bind(checkpoint.kind.as_str())
    .bind(seq_value(checkpoint.seq))
    .bind(hex::decode(&checkpoint.head_hash).map_err(|_| bad("head"))?)
    .bind(checkpoint.time_ms)
    .bind(hex::decode(&checkpoint.public_key).map_err(|_| bad("key"))?)
    .bind(hex::decode(&checkpoint.signature).map_err(|_| bad("signature"))?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn row_from(row: &AnyRow) -> Result<AuditRow, StoreError> {
    let mac: Option<Vec<u8>> = row.try_get("mac")?;
    Ok(AuditRow {
        record: Record {
            node: row.try_get("node")?,
            seq: seq_column(row, "seq")?,
            prev_hash: hash_column(row, "prev_hash")?,
            digest: hash_column(row, "digest")?,
            hash: hash_column(row, "hash")?,
            mac: mac
                .map(|m| {
                    m.try_into()
                        .map_err(|_| StoreError::Corrupt("mac is not 32 bytes".into()))
                })
                .transpose()?,
            body: Some(row.try_get("body")?),
        },
        time_ms: row.try_get("time_ms")?,
        tenant_id: row.try_get("tenant_id")?,
        principal_id: row.try_get("principal_id")?,
        key_id: row.try_get("key_id")?,
        operation: row.try_get("operation")?,
        outcome: row.try_get("outcome")?,
    })
}

fn hash_column(row: &AnyRow, column: &str) -> Result<Hash, StoreError> {
    let bytes: Vec<u8> = row.try_get(column)?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{column} is not 32 bytes")))
}

fn seq_column(row: &AnyRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value}")))
}

fn seq_value(seq: u64) -> i64 {
    i64::try_from(seq).expect("sequence numbers stay below 2^63")
}
