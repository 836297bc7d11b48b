-- Escrow (catalogue K6, B2, D3). A bundle made by an executed EscrowExport proposal; its key
-- material is encrypted under an escrow key that only M of its escrow custodians can rebuild.
CREATE TABLE escrow_bundles (
    proposal_id  TEXT PRIMARY KEY REFERENCES proposals (id),
    tenant_id    TEXT NOT NULL,
    digest       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    bundle       TEXT NOT NULL
);

-- A bundle staged for import, by digest: staged, then authorised by an executed EscrowImport
-- proposal, then imported (or failed) when its escrow custodians have brought M shares.
CREATE TABLE escrow_imports (
    digest       TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    tenant_name  TEXT NOT NULL,
    bundle       TEXT NOT NULL,
    state        TEXT NOT NULL,
    staged_by    TEXT NOT NULL,
    staged_at    BIGINT NOT NULL,
    proposal_id  TEXT,
    finished_at  BIGINT,
    result       TEXT
);

-- Shares submitted to an authorised import, sealed under a key derived from the root (a
-- stolen database shows none), deleted when the import finishes.
CREATE TABLE escrow_import_shares (
    digest        TEXT NOT NULL REFERENCES escrow_imports (digest),
    share_index   INTEGER NOT NULL,
    principal_id  TEXT NOT NULL,
    submitted_at  BIGINT NOT NULL,
    sealed        BYTEA NOT NULL,
    PRIMARY KEY (digest, share_index),
    UNIQUE (digest, principal_id)
);
