-- Destruction carried out (catalogue K9, D1, D2). A key's schedule row stays, with the time its
-- material was destroyed; the key and version rows stay as tombstones without material.
ALTER TABLE key_destructions ADD COLUMN destroyed_at BIGINT;

-- Retention holds: no destruction of the key may be scheduled or carried out before `until`
-- (records kept as long as the law requires, catalogue K9).
CREATE TABLE retention_holds (
    key_id  TEXT PRIMARY KEY REFERENCES keys (id),
    until   BIGINT NOT NULL,
    reason  TEXT NOT NULL,
    set_by  TEXT NOT NULL,
    set_at  BIGINT NOT NULL
);

-- The signed destruction record of each destroyed key (JSON, see docs/lifecycle.md).
CREATE TABLE destruction_records (
    key_id        TEXT PRIMARY KEY REFERENCES keys (id),
    tenant_id     TEXT NOT NULL,
    destroyed_at  BIGINT NOT NULL,
    record        TEXT NOT NULL
);
