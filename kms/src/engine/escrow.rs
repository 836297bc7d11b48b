//! Escrow export and import (catalogue K6, B2, D3): the engine side of [`crate::escrow`].
//!
//! Export: when an `EscrowExport` proposal reaches its quorum, [`Engine::export_bundle`] seals
//! every version of the tenant's keys into a bundle signed by this instance.
//! Import: an admin stages a bundle ([`Engine::stage_import`]); a quorum approves an
//! `EscrowImport` proposal; then each escrow custodian submits the share they opened locally
//! ([`Engine::submit_escrow_share`]). The M-th valid share rebuilds the escrow key, and the
//! keys are written in one transaction, keeping their ids and version numbers so that every
//! old ciphertext decrypts here. Nothing is written before that, and nothing at all if any
//! key here holds other material under the same id.

use super::keys::owner;
use super::{Engine, EngineError};
use crate::crypto::SecretKey;
use crate::crypto::sharing::ShareRecord;
use crate::escrow::bundle::{self, Bundle, EscrowCustodian, EscrowError, KeySummary};
use crate::escrow::payload::{self, KeyEntry, Manifest, Payload, TenantEntry};
use crate::model::{Key, KeyState, KeyVersion, Principal, Tenant};
use crate::store::escrow::{ExportedBundle, ImportPlan, ImportState, StagedImport};

/// Keys read per page while exporting.
const PAGE: u32 = 1000;

impl From<EscrowError> for EngineError {
    fn from(err: EscrowError) -> Self {
        match err {
            EscrowError::NotEnoughShares { .. } => EngineError::FailedPrecondition(err.to_string()),
            EscrowError::Crypto(why) => {
                tracing::error!(event = "escrow_crypto_failure", error = %why);
                EngineError::Internal("a cryptographic operation failed".into())
            }
            other => EngineError::InvalidArgument(other.to_string()),
        }
    }
}

impl Engine {
    /// The named enrolled custodians as escrow custodians (name, principal, age key). Unknown
    /// or revoked names are refused, so a proposal names only people who can open a share.
    pub async fn escrow_custodians(
        &self,
        names: &[String],
    ) -> Result<Vec<EscrowCustodian>, EngineError> {
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(EngineError::InvalidArgument(format!(
                "escrow custodian {twice:?} is named twice: each custodian holds one share"
            )));
        }
        let enrolled = self.store.list_custodians().await?;
        names
            .iter()
            .map(|name| {
                let custodian = enrolled
                    .iter()
                    .find(|c| c.principal.name == *name && c.principal.revoked_at.is_none())
                    .ok_or_else(|| {
                        EngineError::InvalidArgument(format!(
                            "{name:?} is not an enrolled, active custodian: escrow shares go only \
                             to enrolled custodians (kagictl custodian list)"
                        ))
                    })?;
                Ok(EscrowCustodian {
                    name: name.clone(),
                    principal_id: custodian.principal.id.clone(),
                    public_key: custodian.public_key.clone(),
                })
            })
            .collect()
    }

    /// Seals every version of every key of `tenant_id` into a bundle for `custodian_names`,
    /// any `threshold` of whom can open it; for export proposal `proposal_id`.
    pub async fn export_bundle(
        &self,
        proposal_id: &str,
        tenant_id: &str,
        custodian_names: &[String],
        threshold: u8,
    ) -> Result<ExportedBundle, EngineError> {
        let keyring = self.keyring.unsealed()?;
        let tenant = self.resolve_tenant(tenant_id).await?;
        let custodians = self.escrow_custodians(custodian_names).await?;
        let mut manifest = Manifest {
            tenant: TenantEntry::new(&tenant),
            keys: Vec::new(),
        };
        let mut summaries = Vec::new();
        let mut version_keys = Vec::new();
        // Destroyed keys have no material left to carry (and must not come back).
        let keys = self.tenant_keys(&tenant.id).await?;
        for key in keys.iter().filter(|k| k.state != KeyState::Destroyed) {
            let versions = self.store.list_versions(&key.id).await?;
            for version in &versions {
                version_keys.push(keyring.export_version(owner(key), version)?);
            }
            summaries.push(KeySummary {
                key_id: key.id.clone(),
                name: key.name.clone(),
                versions: versions.iter().map(|v| v.version).collect(),
            });
            manifest.keys.push(KeyEntry::new(key, &versions));
        }
        if manifest.keys.is_empty() {
            return Err(EngineError::FailedPrecondition(format!(
                "tenant {} has no keys to export",
                tenant.name
            )));
        }
        let bytes = payload::encode(&manifest, &version_keys)?;
        let now = self.now();
        let bundle = bundle::seal(
            &tenant.id,
            &tenant.name,
            &self.instance_name().await?,
            now,
            summaries,
            custodians,
            threshold,
            &bytes,
            keyring.escrow_signer(),
        )?;
        Ok(ExportedBundle {
            proposal_id: proposal_id.to_owned(),
            tenant_id: tenant.id,
            digest: hex::encode(bundle.digest()),
            created_at: now,
            bundle: bundle.to_json(),
        })
    }

    /// This instance's escrow signing key (hex): the key an importer pins.
    pub fn escrow_signer(&self) -> Result<String, EngineError> {
        let keyring = self.keyring.unsealed()?;
        Ok(hex::encode(
            keyring.escrow_signer().verifying_key().to_bytes(),
        ))
    }

    /// Checks a bundle (structure, signature, and the signer if `expected_signer` is given)
    /// and stages it for import by `admin`. Staging the same bundle again is harmless.
    pub async fn stage_import(
        &self,
        json: &str,
        expected_signer: &str,
        admin: &Principal,
    ) -> Result<StagedImport, EngineError> {
        self.keyring.unsealed()?;
        let bundle = Bundle::from_json(json)?;
        if !expected_signer.is_empty() {
            bundle.check_signer(expected_signer)?;
        }
        let staged = StagedImport {
            digest: hex::encode(bundle.digest()),
            tenant_id: bundle.metadata.tenant_id.clone(),
            tenant_name: bundle.metadata.tenant_name.clone(),
            bundle: bundle.to_json(),
            state: ImportState::Staged,
            staged_by: admin.id.clone(),
            staged_at: self.now(),
            proposal_id: None,
            finished_at: None,
            result: None,
            shares: Vec::new(),
        };
        Ok(self.store.stage_import(&staged).await?)
    }

    /// The import of the bundle with digest `digest`.
    pub async fn escrow_import(&self, digest: &str) -> Result<StagedImport, EngineError> {
        self.store
            .staged_import(&digest.to_ascii_lowercase())
            .await?
            .ok_or_else(|| {
                EngineError::NotFound(format!(
                    "no escrow bundle with digest {digest} is staged here (kagictl escrow stage)"
                ))
            })
    }

    /// Takes one escrow share from `custodian`, who must be the custodian the bundle gave that
    /// share to (by name). At the bundle's threshold the import runs.
    pub async fn submit_escrow_share(
        &self,
        digest: &str,
        share: &[u8],
        custodian: &Principal,
    ) -> Result<StagedImport, EngineError> {
        let keyring = self.keyring.unsealed()?;
        let import = self.escrow_import(digest).await?;
        let bundle = Bundle::from_json(&import.bundle)?;
        let record = ShareRecord::parse(share).map_err(|e| {
            EngineError::InvalidArgument(format!("the share is not an escrow share record: {e}"))
        })?;
        bundle.check_share(&record)?;
        let index = record.share.index();
        let holder = bundle.shares.iter().find(|s| s.index == index);
        if holder.is_none_or(|s| s.custodian_name != custodian.name) {
            return Err(EngineError::PermissionDenied(format!(
                "share {index} of this bundle belongs to {}, not to {:?}: each escrow custodian \
                 submits their own share, signed in as themselves",
                holder.map_or("nobody", |s| s.custodian_name.as_str()),
                custodian.name
            )));
        }
        let sealed = keyring.seal_staged_share(import.digest.as_bytes(), &record.encode())?;
        let now = self.now();
        self.store
            .add_staged_share(&import.digest, index, &custodian.id, &sealed, now)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::AlreadyExists(_) => {
                    EngineError::FailedPrecondition(format!(
                        "share {index} (or another share from {}) was already submitted: each \
                         escrow custodian counts once",
                        custodian.name
                    ))
                }
                other => other.into(),
            })?;
        drop(keyring);
        self.import_if_complete(&import.digest, &bundle).await?;
        self.escrow_import(&import.digest).await
    }

    /// Opens the bundle and imports it if enough shares are in; otherwise does nothing.
    async fn import_if_complete(&self, digest: &str, bundle: &Bundle) -> Result<(), EngineError> {
        let keyring = self.keyring.unsealed()?;
        let sealed = self.store.staged_shares(digest).await?;
        if sealed.len() < usize::from(bundle.metadata.threshold) {
            return Ok(());
        }
        let mut records = Vec::with_capacity(sealed.len());
        for (_, bytes) in &sealed {
            let plain = keyring.open_staged_share(digest.as_bytes(), bytes)?;
            records.push(ShareRecord::parse(&plain).map_err(|e| {
                EngineError::Internal(format!("a staged escrow share does not parse: {e}"))
            })?);
        }
        let opened = bundle.open(&records)?;
        let payload = payload::decode(&opened)?;
        drop(keyring);
        let now = self.now();
        match self.import_plan(&payload).await {
            Ok(plan) => {
                if self.store.complete_import(digest, &plan, now).await? {
                    self.audit_internal("EscrowImported", format!("{digest}: {}", plan.summary))
                        .await;
                }
                Ok(())
            }
            Err(EngineError::FailedPrecondition(why)) => {
                self.store.fail_import(digest, &why, now).await?;
                self.audit_internal("EscrowImportFailed", format!("{digest}: {why}"))
                    .await;
                Err(EngineError::FailedPrecondition(format!(
                    "{why}; nothing was imported"
                )))
            }
            Err(other) => Err(other),
        }
    }

    /// Works out what an import writes, refusing (FAILED_PRECONDITION) if this instance holds
    /// other material, another tenant or another key under the bundle's ids or names.
    async fn import_plan(&self, payload: &Payload) -> Result<ImportPlan, EngineError> {
        let keyring = self.keyring.unsealed()?;
        let manifest = &payload.manifest;
        let refuse = |why: String| Err(EngineError::FailedPrecondition(why));
        let mut plan = ImportPlan::default();
        let tenant_id = &manifest.tenant.id;
        match self.store.find_tenant(&manifest.tenant.name).await? {
            Some(t) if t.id != *tenant_id => {
                return refuse(format!(
                    "this instance has another tenant named {:?} (id {})",
                    t.name, t.id
                ));
            }
            Some(_) => {}
            None => {
                if self.store.find_tenant(tenant_id).await?.is_none() {
                    plan.tenant = Some(Tenant {
                        id: tenant_id.clone(),
                        name: manifest.tenant.name.clone(),
                        created_at: manifest.tenant.created_at,
                    });
                }
            }
        }
        let now = self.now();
        let mut keys = payload.version_keys.iter();
        let (mut same, mut added) = (0, 0);
        for entry in &manifest.keys {
            let key = entry.to_key(tenant_id, now)?;
            let material: Vec<&SecretKey> = keys.by_ref().take(entry.versions.len()).collect();
            let existing = self.store.get_key(&key.id).await?;
            if let Some(here) = &existing
                && here.state == KeyState::Destroyed
            {
                return refuse(format!(
                    "key {} was destroyed here: a destroyed key is never brought back",
                    key.id
                ));
            }
            if let Some(here) = &existing
                && here.tenant_id != key.tenant_id
            {
                return refuse(format!(
                    "key {} belongs to another tenant here ({})",
                    key.id, here.tenant_id
                ));
            }
            if existing.is_none()
                && let Some(named) = self.store.get_key_by_name(tenant_id, &key.name).await?
            {
                return refuse(format!(
                    "tenant {} here already has a key named {:?} with another id ({})",
                    manifest.tenant.name, key.name, named.id
                ));
            }
            let stored = match &existing {
                Some(_) => self.store.list_versions(&key.id).await?,
                None => Vec::new(),
            };
            let mut new_versions = Vec::new();
            for (version, secret) in entry.versions.iter().zip(material) {
                if let Some(here) = stored.iter().find(|v| v.version == version.version) {
                    if !keyring.holds(owner(&key), here, secret)? {
                        return refuse(format!(
                            "key {} version {} holds different material here: this instance's \
                             keys under these ids are not the bundle's",
                            key.id, version.version
                        ));
                    }
                    same += 1;
                    continue;
                }
                new_versions.push(KeyVersion {
                    key_id: key.id.clone(),
                    version: version.version,
                    state: version.state()?,
                    wrapped_material: keyring.import_version(
                        owner(&key),
                        version.version,
                        secret,
                    )?,
                    created_at: version.created_at,
                });
                added += 1;
            }
            match existing {
                None => plan.keys.push((key, new_versions)),
                Some(here) => {
                    if key.primary_version > here.primary_version {
                        plan.primaries
                            .push((key.id.clone(), key.primary_version, key.rotated_at));
                    }
                    plan.versions.extend(new_versions);
                }
            }
        }
        plan.summary = format!(
            "tenant {} ({}): {} keys, {added} versions imported, {same} already here",
            manifest.tenant.name,
            tenant_id,
            manifest.keys.len()
        );
        Ok(plan)
    }

    /// Every key of a tenant, by id.
    pub async fn tenant_keys(&self, tenant_id: &str) -> Result<Vec<Key>, EngineError> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map_or("", |k: &Key| k.id.as_str()).to_owned();
            let page = self.store.list_keys(Some(tenant_id), &after, PAGE).await?;
            let done = page.len() < PAGE as usize;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// How bundles name this instance: its initialisation id, or "dev" for a dev-mode root.
    pub(crate) async fn instance_name(&self) -> Result<String, EngineError> {
        Ok(match self.store.seal_config().await? {
            Some(config) => format!("kagi:{}", hex::encode(config.init_id)),
            None => "kagi:dev".into(),
        })
    }
}
