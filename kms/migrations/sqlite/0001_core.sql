-- Tenants, keys, key versions and principals. Times are Unix seconds (UTC).
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE keys (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    name                 TEXT NOT NULL,
    purpose              TEXT NOT NULL,
    importance_class     TEXT NOT NULL,
    domain               TEXT NOT NULL,
    algorithm            TEXT NOT NULL,
    rotation_period_days BIGINT NOT NULL,
    state                TEXT NOT NULL,
    primary_version      BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    rotated_at           BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

-- Only wrapped material is stored: AES-256-GCM under the root's wrapping key, bound to
-- (tenant, key, version).
CREATE TABLE key_versions (
    key_id            TEXT NOT NULL REFERENCES keys (id),
    version           BIGINT NOT NULL,
    state             TEXT NOT NULL,
    wrapped_material  BLOB NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (key_id, version)
);

-- Tokens are stored only as SHA-256 hashes.
CREATE TABLE principals (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    tenant_id   TEXT REFERENCES tenants (id),
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE UNIQUE INDEX principals_active_name ON principals (name) WHERE revoked_at IS NULL;
