//! The `escrow_bundles`, `escrow_imports` and `escrow_import_shares` tables.
//!
//! An export's bundle is written in the transaction that executes its proposal; an import moves
//! staged → authorised (in its proposal's transaction) → imported or failed (in the transaction
//! that writes the keys, so a crash leaves either everything or nothing imported).

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::keys::{insert_key_row, insert_version};
use super::{Store, StoreError, unique_violation};
use crate::model::{Key, KeyVersion, Tenant, UnixSeconds};

/// A bundle made by an executed export proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedBundle {
    /// The proposal that made it.
    pub proposal_id: String,
    /// The tenant it carries.
    pub tenant_id: String,
    /// Its digest (hex).
    pub digest: String,
    /// When it was made.
    pub created_at: UnixSeconds,
    /// The bundle file (JSON).
    pub bundle: String,
}

/// Where an import stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportState {
    /// Checked and stored; waiting for an approved EscrowImport proposal.
    Staged,
    /// Approved; collecting escrow shares.
    Authorised,
    /// The keys are in this instance.
    Imported,
    /// Refused after approval (say, different material under the same ids); nothing imported.
    Failed,
}

impl ImportState {
    /// Stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staged => "staged",
            Self::Authorised => "authorised",
            Self::Imported => "imported",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "staged" => Self::Staged,
            "authorised" => Self::Authorised,
            "imported" => Self::Imported,
            "failed" => Self::Failed,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "escrow import state {other:?}"
                )));
            }
        })
    }
}

/// A bundle staged for import, with the shares submitted so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedImport {
    /// The bundle's digest (hex): its identity.
    pub digest: String,
    /// The tenant it carries (id).
    pub tenant_id: String,
    /// The tenant's name in the bundle.
    pub tenant_name: String,
    /// The bundle file (JSON).
    pub bundle: String,
    /// State.
    pub state: ImportState,
    /// The admin who staged it (principal id).
    pub staged_by: String,
    /// When.
    pub staged_at: UnixSeconds,
    /// The proposal that authorised it.
    pub proposal_id: Option<String>,
    /// When it was imported or failed.
    pub finished_at: Option<UnixSeconds>,
    /// What the import did, or why it failed.
    pub result: Option<String>,
    /// Indexes of the shares submitted so far, ascending (empty once finished).
    pub shares: Vec<u8>,
}

/// What an import writes, worked out (and checked against what is already here) beforehand.
#[derive(Debug, Default)]
pub struct ImportPlan {
    /// The tenant, if it does not exist here yet.
    pub tenant: Option<Tenant>,
    /// Keys new to this instance, with all their versions.
    pub keys: Vec<(Key, Vec<KeyVersion>)>,
    /// Versions new to keys that exist here.
    pub versions: Vec<KeyVersion>,
    /// Keys that exist here whose primary version the bundle moves forward: `(key id,
    /// primary version, when it was made)`.
    pub primaries: Vec<(String, u32, UnixSeconds)>,
    /// What the import did, in words, for the record.
    pub summary: String,
}

impl Store {
    /// The bundle made by export proposal `proposal_id`.
    pub async fn exported_bundle(
        &self,
        proposal_id: &str,
    ) -> Result<Option<ExportedBundle>, StoreError> {
        let row = sqlx::query(
            "SELECT proposal_id, tenant_id, digest, created_at, bundle FROM escrow_bundles \
             WHERE proposal_id = $1",
        )
        .bind(proposal_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ExportedBundle {
                proposal_id: r.try_get("proposal_id")?,
                tenant_id: r.try_get("tenant_id")?,
                digest: r.try_get("digest")?,
                created_at: r.try_get("created_at")?,
                bundle: r.try_get("bundle")?,
            })
        })
        .transpose()
    }

    /// Stages a bundle; staging the same bundle again returns the import as it stands.
    pub async fn stage_import(&self, import: &StagedImport) -> Result<StagedImport, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO escrow_imports (digest, tenant_id, tenant_name, bundle, state, staged_by, \
             staged_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&import.digest)
        .bind(&import.tenant_id)
        .bind(&import.tenant_name)
        .bind(&import.bundle)
        .bind(ImportState::Staged.as_str())
        .bind(&import.staged_by)
        .bind(import.staged_at)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, String::new));
        match inserted {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        self.staged_import(&import.digest)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("escrow import {}", import.digest)))
    }

    /// The import of the bundle with this digest.
    pub async fn staged_import(&self, digest: &str) -> Result<Option<StagedImport>, StoreError> {
        let row = sqlx::query(
            "SELECT digest, tenant_id, tenant_name, bundle, state, staged_by, staged_at, \
             proposal_id, finished_at, result FROM escrow_imports WHERE digest = $1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut import = import_from_row(&row)?;
        import.shares = self
            .staged_shares(digest)
            .await?
            .into_iter()
            .map(|(index, _)| index)
            .collect();
        Ok(Some(import))
    }

    /// Records one sealed share of an authorised import. [`StoreError::AlreadyExists`] if this
    /// share index, or this principal, has submitted already; [`StoreError::Conflict`] if the
    /// import is not collecting shares.
    pub async fn add_staged_share(
        &self,
        digest: &str,
        index: u8,
        principal_id: &str,
        sealed: &[u8],
        now: UnixSeconds,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let state = sqlx::query("SELECT state FROM escrow_imports WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("escrow import {digest}")))?;
        let state = ImportState::parse(&state.try_get::<String, _>("state")?)?;
        if state != ImportState::Authorised {
            return Err(StoreError::Conflict(not_collecting(digest, state)));
        }
        sqlx::query(
            "INSERT INTO escrow_import_shares (digest, share_index, principal_id, submitted_at, \
             sealed) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest)
        .bind(i64::from(index))
        .bind(principal_id)
        .bind(now)
        .bind(sealed)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, || format!("share {index}, or a share from you,")))?;
        tx.commit().await?;
        Ok(())
    }

    /// The sealed shares of an import: `(index, sealed)`, by index.
    pub async fn staged_shares(&self, digest: &str) -> Result<Vec<(u8, Vec<u8>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT share_index, sealed FROM escrow_import_shares WHERE digest = $1 \
             ORDER BY share_index",
        )
        .bind(digest)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let index: i64 = r.try_get("share_index")?;
                let index = u8::try_from(index)
                    .map_err(|_| StoreError::Corrupt(format!("share index {index}")))?;
                Ok((index, r.try_get("sealed")?))
            })
            .collect()
    }

    /// Writes an import's plan and marks it imported, in one transaction, only if it is still
    /// authorised; deletes its shares. Returns false if another node finished it first.
    pub async fn complete_import(
        &self,
        digest: &str,
        plan: &ImportPlan,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if !finish(&mut tx, digest, ImportState::Imported, &plan.summary, now).await? {
            return Ok(false);
        }
        if let Some(tenant) = &plan.tenant {
            sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&tenant.id)
                .bind(&tenant.name)
                .bind(tenant.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| unique_violation(e, || format!("tenant {:?}", tenant.name)))?;
        }
        for (key, versions) in &plan.keys {
            insert_key_row(&mut tx, key).await?;
            for version in versions {
                insert_version(&mut tx, version).await?;
            }
        }
        for version in &plan.versions {
            insert_version(&mut tx, version).await?;
        }
        for (key_id, primary, rotated_at) in &plan.primaries {
            sqlx::query(
                "UPDATE keys SET primary_version = $1, rotated_at = $2, updated_at = $3 \
                 WHERE id = $4 AND primary_version < $1",
            )
            .bind(i64::from(*primary))
            .bind(rotated_at)
            .bind(now)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
            // One active version per key: the primary.
            sqlx::query(
                "UPDATE key_versions SET state = 'deactivated' \
                 WHERE key_id = $1 AND state = 'active' AND version <> $2",
            )
            .bind(key_id)
            .bind(i64::from(*primary))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Marks an authorised import failed with `why` and deletes its shares.
    pub async fn fail_import(
        &self,
        digest: &str,
        why: &str,
        now: UnixSeconds,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        finish(&mut tx, digest, ImportState::Failed, why, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Stores the bundle an export proposal made (inside the proposal's transaction).
pub(super) async fn insert_bundle(
    tx: &mut Transaction<'static, Any>,
    bundle: &ExportedBundle,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO escrow_bundles (proposal_id, tenant_id, digest, created_at, bundle) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&bundle.proposal_id)
    .bind(&bundle.tenant_id)
    .bind(&bundle.digest)
    .bind(bundle.created_at)
    .bind(&bundle.bundle)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves a staged import to authorised (inside the proposal's transaction).
pub(super) async fn authorise(
    tx: &mut Transaction<'static, Any>,
    digest: &str,
    proposal_id: &str,
) -> Result<(), StoreError> {
    let n = sqlx::query(
        "UPDATE escrow_imports SET state = $1, proposal_id = $2 WHERE digest = $3 AND state = $4",
    )
    .bind(ImportState::Authorised.as_str())
    .bind(proposal_id)
    .bind(digest)
    .bind(ImportState::Staged.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(StoreError::Conflict(format!(
            "escrow bundle {digest} is not staged for import (stage it with kagictl escrow \
             stage), or another proposal authorised it already"
        )));
    }
    Ok(())
}

/// Moves an authorised import to `state` and deletes its shares; false if it was not
/// authorised.
async fn finish(
    tx: &mut Transaction<'static, Any>,
    digest: &str,
    state: ImportState,
    result: &str,
    now: UnixSeconds,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE escrow_imports SET state = $1, finished_at = $2, result = $3 \
         WHERE digest = $4 AND state = $5",
    )
    .bind(state.as_str())
    .bind(now)
    .bind(result)
    .bind(digest)
    .bind(ImportState::Authorised.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM escrow_import_shares WHERE digest = $1")
        .bind(digest)
        .execute(&mut **tx)
        .await?;
    Ok(n == 1)
}

fn not_collecting(digest: &str, state: ImportState) -> String {
    match state {
        ImportState::Staged => format!(
            "escrow import {digest} is not approved yet: propose it (kagictl quorum propose \
             escrow-import) and have custodians approve it before shares are submitted"
        ),
        ImportState::Imported => format!("escrow bundle {digest} is already imported"),
        ImportState::Failed => format!(
            "escrow import {digest} failed; see its result (kagictl escrow status), fix the \
             cause and import again with a new bundle"
        ),
        ImportState::Authorised => format!("escrow import {digest} is collecting shares"),
    }
}

fn import_from_row(row: &AnyRow) -> Result<StagedImport, StoreError> {
    Ok(StagedImport {
        digest: row.try_get("digest")?,
        tenant_id: row.try_get("tenant_id")?,
        tenant_name: row.try_get("tenant_name")?,
        bundle: row.try_get("bundle")?,
        state: ImportState::parse(&row.try_get::<String, _>("state")?)?,
        staged_by: row.try_get("staged_by")?,
        staged_at: row.try_get("staged_at")?,
        proposal_id: row.try_get("proposal_id")?,
        finished_at: row.try_get("finished_at")?,
        result: row.try_get("result")?,
        shares: Vec::new(),
    })
}
