//! The `proposals`, `approvals` and `lockdowns` tables.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::escrow::ExportedBundle;
use super::{Store, StoreError, destruction, escrow, unique_violation};
use crate::model::UnixSeconds;
use crate::quorum::proposal::{Operation, Signed};

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalState {
    /// Waiting for approvals.
    Pending,
    /// Approved and run.
    Executed,
    /// Withdrawn.
    Cancelled,
    /// Not approved in time.
    Expired,
    /// Approved, but the operation failed.
    Failed,
}

impl ProposalState {
    /// Stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Executed => "executed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "pending" => Self::Pending,
            "executed" => Self::Executed,
            "cancelled" => Self::Cancelled,
            "expired" => Self::Expired,
            "failed" => Self::Failed,
            other => return Err(StoreError::Corrupt(format!("proposal state {other:?}"))),
        })
    }
}

/// A stored proposal with its approvals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProposal {
    /// What was signed.
    pub signed: Signed,
    /// Its digest.
    pub digest: [u8; 32],
    /// State.
    pub state: ProposalState,
    /// When it left `Pending`.
    pub finished_at: Option<UnixSeconds>,
    /// Why it failed.
    pub result: Option<String>,
    /// Approvals, oldest first.
    pub approvals: Vec<StoredApproval>,
}

/// One stored approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApproval {
    /// The approving custodian.
    pub principal_id: String,
    /// Their Ed25519 signature over the proposal's digest.
    pub signature: Vec<u8>,
    /// When.
    pub approved_at: UnixSeconds,
}

const COLUMNS: &str = "id, operation, proposer_id, nonce, created_at, expires_at, threshold, \
     digest, state, finished_at, result";

impl Store {
    /// Records a new pending proposal.
    pub async fn insert_proposal(&self, signed: &Signed) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO proposals (id, kind, operation, proposer_id, nonce, created_at, expires_at, \
             threshold, digest, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&signed.id)
        .bind(signed.operation.kind())
        .bind(serde_json::to_string(&signed.operation).expect("an operation serializes"))
        .bind(&signed.proposer_id)
        .bind(&signed.nonce)
        .bind(signed.created_at)
        .bind(signed.expires_at)
        .bind(i64::from(signed.threshold))
        .bind(signed.digest().to_vec())
        .bind(ProposalState::Pending.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A proposal with its approvals.
    pub async fn proposal(&self, id: &str) -> Result<Option<StoredProposal>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM proposals WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.with_approvals(proposal_from(&row)?).await?)),
            None => Ok(None),
        }
    }

    /// Proposals, newest first (pending ones only if asked).
    pub async fn proposals(&self, pending_only: bool) -> Result<Vec<StoredProposal>, StoreError> {
        let filter = if pending_only {
            "WHERE state = 'pending'"
        } else {
            ""
        };
        let sql = format!("SELECT {COLUMNS} FROM proposals {filter} ORDER BY created_at DESC, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.with_approvals(proposal_from(row)?).await?);
        }
        Ok(out)
    }

    async fn with_approvals(&self, mut p: StoredProposal) -> Result<StoredProposal, StoreError> {
        let rows = sqlx::query(
            "SELECT principal_id, signature, approved_at FROM approvals WHERE proposal_id = $1 \
             ORDER BY approved_at, principal_id",
        )
        .bind(&p.signed.id)
        .fetch_all(&self.pool)
        .await?;
        p.approvals = rows
            .iter()
            .map(|r| {
                Ok(StoredApproval {
                    principal_id: r.try_get("principal_id")?,
                    signature: r.try_get("signature")?,
                    approved_at: r.try_get("approved_at")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(p)
    }

    /// Records an approval; [`StoreError::AlreadyExists`] if this principal approved already.
    pub async fn insert_approval(
        &self,
        proposal_id: &str,
        principal_id: &str,
        signature: &[u8],
        now: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO approvals (proposal_id, principal_id, signature, approved_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(proposal_id)
        .bind(principal_id)
        .bind(signature)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, || "an approval by this custodian".into()))?;
        Ok(())
    }

    /// Moves a pending proposal to `state` (compare-and-set); false if it was not pending.
    pub async fn finish_proposal(
        &self,
        id: &str,
        state: ProposalState,
        result: Option<&str>,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE proposals SET state = $1, finished_at = $2, result = $3 \
             WHERE id = $4 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(now)
        .bind(result)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Runs an approved operation and marks its proposal executed, in one transaction, only if
    /// the proposal is still pending: of two racing final approvals, one runs it. Returns false
    /// if another got there first. An export's bundle is made beforehand (it needs the
    /// keyring) and passed in as `bundle`, so that it is stored exactly when the proposal runs.
    pub async fn execute_proposal(
        &self,
        id: &str,
        operation: &Operation,
        bundle: Option<&ExportedBundle>,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE proposals SET state = 'executed', finished_at = $1 WHERE id = $2 AND state = 'pending'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed != 1 {
            return Ok(false);
        }
        match operation {
            Operation::Lockdown { tenant, reason } => {
                let scope = tenant.as_deref().unwrap_or("*");
                sqlx::query("DELETE FROM lockdowns WHERE scope = $1")
                    .bind(scope)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO lockdowns (scope, reason, proposal_id, since) VALUES ($1, $2, $3, $4)",
                )
                .bind(scope)
                .bind(reason)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Operation::LiftLockdown { tenant } => {
                let lifted = sqlx::query("DELETE FROM lockdowns WHERE scope = $1")
                    .bind(tenant.as_deref().unwrap_or("*"))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if lifted == 0 {
                    return Err(StoreError::Conflict("no such lockdown is in force".into()));
                }
            }
            Operation::SetRotationPeriod { key_id, days } => {
                let n = sqlx::query(
                    "UPDATE keys SET rotation_period_days = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(i64::from(*days))
                .bind(now)
                .bind(key_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n != 1 {
                    return Err(StoreError::NotFound(format!("key {key_id}")));
                }
            }
            Operation::ScheduleKeyDestruction {
                key_id,
                waiting_days,
            } => {
                let at = destroy_at(now, *waiting_days);
                destruction::schedule(&mut tx, std::slice::from_ref(key_id), id, now, at).await?;
            }
            Operation::ScheduleTenantDestruction {
                tenant_id,
                waiting_days,
            } => {
                let keys = destruction::schedulable_keys(&mut tx, tenant_id).await?;
                if keys.is_empty() {
                    return Err(StoreError::Conflict(format!(
                        "tenant {tenant_id} has no key left to schedule for destruction"
                    )));
                }
                let at = destroy_at(now, *waiting_days);
                destruction::schedule(&mut tx, &keys, id, now, at).await?;
            }
            Operation::EscrowExport { .. } => {
                let bundle = bundle.ok_or_else(|| {
                    StoreError::Conflict("the escrow bundle could not be made".into())
                })?;
                escrow::insert_bundle(&mut tx, bundle).await?;
            }
            Operation::MarkCompromised { key_id, version } => {
                let n = sqlx::query(
                    "UPDATE key_versions SET state = 'compromised' WHERE key_id = $1 \
                     AND version = $2 AND state IN ('active', 'deactivated')",
                )
                .bind(key_id)
                .bind(i64::from(*version))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n != 1 {
                    return Err(StoreError::Conflict(format!(
                        "version {version} of key {key_id} is not active or deactivated: \
                         already compromised, destroyed, or missing"
                    )));
                }
            }
            Operation::EscrowImport { bundle_digest, .. } => {
                escrow::authorise(&mut tx, bundle_digest, id).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Every lockdown in force: `(scope, reason, since)`, scope a tenant id or `*`.
    pub async fn lockdowns(&self) -> Result<Vec<(String, String, UnixSeconds)>, StoreError> {
        let rows = sqlx::query("SELECT scope, reason, since FROM lockdowns ORDER BY scope")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("scope")?,
                    r.try_get("reason")?,
                    r.try_get("since")?,
                ))
            })
            .collect()
    }

    /// The lockdown in force for `tenant_id` (its own, or the global one): `(reason, since)`.
    pub async fn lockdown(
        &self,
        tenant_id: &str,
    ) -> Result<Option<(String, UnixSeconds)>, StoreError> {
        let row = sqlx::query(
            "SELECT reason, since FROM lockdowns WHERE scope = $1 OR scope = '*' \
             ORDER BY scope DESC LIMIT 1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("reason")?, r.try_get("since")?)))
            .transpose()
    }
}

fn proposal_from(row: &AnyRow) -> Result<StoredProposal, StoreError> {
    let operation: String = row.try_get("operation")?;
    let threshold: i64 = row.try_get("threshold")?;
    let digest: Vec<u8> = row.try_get("digest")?;
    let state: String = row.try_get("state")?;
    Ok(StoredProposal {
        signed: Signed {
            id: row.try_get("id")?,
            operation: serde_json::from_str(&operation)
                .map_err(|e| StoreError::Corrupt(format!("proposal operation: {e}")))?,
            proposer_id: row.try_get("proposer_id")?,
            nonce: row.try_get("nonce")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            threshold: u32::try_from(threshold)
                .map_err(|_| StoreError::Corrupt(format!("threshold {threshold}")))?,
        },
        digest: digest
            .try_into()
            .map_err(|_| StoreError::Corrupt("proposal digest is not 32 bytes".into()))?,
        state: ProposalState::parse(&state)?,
        finished_at: row.try_get("finished_at")?,
        result: row.try_get("result")?,
        approvals: Vec::new(),
    })
}

/// When a destruction scheduled at `now` with a waiting period of `days` happens.
fn destroy_at(now: UnixSeconds, days: u32) -> UnixSeconds {
    now + i64::from(days) * 86_400
}
