-- The audit trail: one hash chain per kagid node. `body` is the event's canonical JSON, the only
-- authoritative copy; the other event columns repeat some of its fields for filtering and are
-- checked against it by verification.
CREATE TABLE audit_records (
    node          TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    time_ms       BIGINT NOT NULL,
    tenant_id     TEXT,
    principal_id  TEXT,
    key_id        TEXT,
    operation     TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    body          TEXT NOT NULL,
    prev_hash     BYTEA NOT NULL,
    digest        BYTEA NOT NULL,
    hash          BYTEA NOT NULL,
    mac           BYTEA,
    PRIMARY KEY (node, seq)
);
CREATE INDEX audit_records_time ON audit_records (time_ms);
CREATE INDEX audit_records_tenant ON audit_records (tenant_id, time_ms);
CREATE INDEX audit_records_principal ON audit_records (principal_id, time_ms);

-- The head of each node's chain, moved by compare-and-set in the transaction that appends.
CREATE TABLE audit_heads (
    node  TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  BYTEA NOT NULL
);

-- Signed checkpoints (public).
CREATE TABLE audit_checkpoints (
    node        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    head_hash   BYTEA NOT NULL,
    time_ms     BIGINT NOT NULL,
    public_key  BYTEA NOT NULL,
    signature   BYTEA NOT NULL,
    PRIMARY KEY (node, kind, seq)
);
