-- A chain's head is its newest record: appends are single INSERTs whose (node, seq) primary key
-- is the compare-and-set, so the separate head table is gone.
DROP TABLE audit_heads;
