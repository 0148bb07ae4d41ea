-- Forecourt reference platform, schema version 7: the API's audit log (central/audit.py).
-- Portable SQL (SQLite >= 3.35, PostgreSQL >= 12); conventions as in 0001.

-- One row per write attempted through the HTTP API: every POST to a write route, accepted
-- or not, including those refused for want of a token (401) or a role (403). Append-only:
-- the platform only ever inserts here (GET /api/v1/audit, admin). `principal` and `role`
-- are '' when no known token was sent; `summary` names what was written (ids, station,
-- counts; at most 500 characters), never the whole body; `body_sha256` is '' when the body
-- was not read (larger than the limit; `body_bytes` is then the declared Content-Length).
CREATE TABLE api_audit (
    id           TEXT PRIMARY KEY,
    at           DOUBLE PRECISION NOT NULL,
    principal    TEXT NOT NULL,
    role         TEXT NOT NULL,
    client       TEXT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    status       INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    station_id   TEXT NOT NULL,
    summary      TEXT NOT NULL,
    body_sha256  TEXT NOT NULL,
    body_bytes   BIGINT NOT NULL
);
CREATE INDEX api_audit_at ON api_audit (at, id);
CREATE INDEX api_audit_principal ON api_audit (principal, at);
