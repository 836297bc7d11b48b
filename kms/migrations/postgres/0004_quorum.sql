-- Dual control: custodians' approval keys, proposals, approvals, lockdowns.

-- Ed25519 public key (hex) that verifies a custodian's approvals.
ALTER TABLE custodians ADD COLUMN signing_key TEXT;

-- A sensitive operation waiting for (or done after) a quorum. `operation` is the canonical JSON
-- of the operation; `digest` what approvers sign.
CREATE TABLE proposals (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    operation    TEXT NOT NULL,
    proposer_id  TEXT NOT NULL REFERENCES principals (id),
    nonce        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    threshold    BIGINT NOT NULL,
    digest       BYTEA NOT NULL,
    state        TEXT NOT NULL,
    finished_at  BIGINT,
    result       TEXT
);

-- One approval per custodian per proposal: the primary key makes a second one count once.
CREATE TABLE approvals (
    proposal_id   TEXT NOT NULL REFERENCES proposals (id),
    principal_id  TEXT NOT NULL REFERENCES principals (id),
    signature     BYTEA NOT NULL,
    approved_at   BIGINT NOT NULL,
    PRIMARY KEY (proposal_id, principal_id)
);

-- Tenants (by id) or every tenant ('*') whose decrypts are refused until a quorum lifts it.
CREATE TABLE lockdowns (
    scope        TEXT PRIMARY KEY,
    reason       TEXT NOT NULL,
    proposal_id  TEXT NOT NULL,
    since        BIGINT NOT NULL
);

-- One signing key, one custodian: an approval names exactly one person.
CREATE UNIQUE INDEX custodians_signing_key ON custodians (signing_key) WHERE signing_key IS NOT NULL;
