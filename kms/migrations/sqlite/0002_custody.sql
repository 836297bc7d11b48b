-- The sealed root of trust: custodians and the public half of the root key's sharing.
-- No share and no root key is ever stored: only the Feldman commitments (public), a check value
-- derived from the root, and which share index was issued to which custodian.

-- Custodians (catalogue K6, K8): a principal with role 'custodian', its age X25519 public key,
-- the person's name and their signed acknowledgement of duties.
CREATE TABLE custodians (
    principal_id            TEXT PRIMARY KEY REFERENCES principals (id),
    person_name             TEXT NOT NULL,
    public_key              TEXT NOT NULL UNIQUE,
    acknowledgement_sha256  BLOB NOT NULL,
    acknowledged_at         BIGINT NOT NULL
);

-- One row (id = 1) once Init has run. generation advances with each completed rekey.
CREATE TABLE seal_config (
    id              BIGINT PRIMARY KEY CHECK (id = 1),
    init_id         BLOB NOT NULL,
    generation      BIGINT NOT NULL,
    threshold       BIGINT NOT NULL,
    share_count     BIGINT NOT NULL,
    commitments     BLOB NOT NULL,
    root_check      BLOB NOT NULL,
    initialised_at  BIGINT NOT NULL,
    changed_at      BIGINT NOT NULL
);

-- Which custodian holds which share index in which generation.
CREATE TABLE custodian_shares (
    generation    BIGINT NOT NULL,
    share_index   BIGINT NOT NULL,
    principal_id  TEXT NOT NULL REFERENCES principals (id),
    PRIMARY KEY (generation, share_index),
    UNIQUE (generation, principal_id)
);
