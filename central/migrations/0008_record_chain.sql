-- Forecourt reference platform, schema version 8: tamper evidence (central/chain.py).
-- Portable SQL (SQLite >= 3.35, PostgreSQL >= 12); conventions as in 0001.

-- Each station's stored records, hash-chained in the order ingest stored them:
-- chain_hash = SHA-256(previous chain_hash hex + "\n" + stream + "\n" + key + "\n" + digest),
-- the first link's previous hash 64 zeros (docs/platform-api.md "Tamper evidence").
-- `digest` is the record's digest over its stored fields (as central.checks.record_digest
-- computes it). Appended in the transaction that stores the records; never updated.
-- Records stored before this migration are not chained (`verify-chain` reports them).
CREATE TABLE record_chain (
    station_id  TEXT NOT NULL,
    position    BIGINT NOT NULL,
    stream      TEXT NOT NULL,
    key         TEXT NOT NULL,
    digest      TEXT NOT NULL,
    chain_hash  TEXT NOT NULL,
    PRIMARY KEY (station_id, position)
);

-- The head of each station's chain: the last position (0 = empty) and its chain_hash.
-- Ingest takes this row's lock first (upsert … RETURNING), so two platform instances on one
-- database append to a station's chain one after the other.
CREATE TABLE chain_heads (
    station_id  TEXT PRIMARY KEY,
    position    BIGINT NOT NULL,
    head        TEXT NOT NULL
);
