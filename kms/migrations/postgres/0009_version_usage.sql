-- Per-version usage (catalogue K5): how many encrypts and decrypts each node made with each key
-- version, and when it last used it. Each node counts in memory and adds its counts here from
-- its scheduler (about once a minute); VersionUsage sums the nodes. Counting began when this
-- table was created: older use is not in it.
CREATE TABLE version_usage (
    key_id        TEXT NOT NULL REFERENCES keys (id),
    version       BIGINT NOT NULL,
    node          TEXT NOT NULL,
    encrypts      BIGINT NOT NULL DEFAULT 0,
    decrypts      BIGINT NOT NULL DEFAULT 0,
    last_used_at  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, version, node)
);
