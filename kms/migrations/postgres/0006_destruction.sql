-- Keys scheduled for destruction (catalogue K9, D1, D2). While a key has a row here its state
-- is 'pending-destruction' and every crypto use is refused; cancelling restores
-- `previous_state`. The scheduler destroys the key's material at `destroy_at`.
CREATE TABLE key_destructions (
    key_id          TEXT PRIMARY KEY REFERENCES keys (id),
    previous_state  TEXT NOT NULL,
    scheduled_at    BIGINT NOT NULL,
    destroy_at      BIGINT NOT NULL,
    proposal_id     TEXT NOT NULL
);
