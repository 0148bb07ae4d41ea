-- Forecourt reference platform (市级监管平台), schema version 1.
-- Portable SQL: runs unchanged on SQLite (>= 3.35) and PostgreSQL (>= 12).
-- Conventions: volumes in mL, money in fen, levels in µm, temperatures in m°C (all BIGINT);
-- device times are integer epoch seconds (device clock); wall-clock times (received_at,
-- sent_at, collected_at) are DOUBLE PRECISION epoch seconds. No auto-increment columns:
-- data rows are keyed by their idempotency key, other rows by an application-made id.
-- Booleans are SMALLINT 0/1 so both engines return the same type.

-- Station registry (站点台账), imported from the fleet ledger CSV.
CREATE TABLE stations (
    station_id   TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    town         TEXT NOT NULL,
    ownership    TEXT NOT NULL,
    active       SMALLINT NOT NULL DEFAULT 1,
    extra_json   TEXT NOT NULL DEFAULT '{}',
    imported_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE station_tanks (
    station_id  TEXT NOT NULL,
    tank        INTEGER NOT NULL,
    grade       TEXT NOT NULL,
    nominal_m3  INTEGER NOT NULL,
    PRIMARY KEY (station_id, tank)
);

CREATE TABLE station_nozzles (
    station_id  TEXT NOT NULL,
    dispenser   INTEGER NOT NULL,
    nozzle      INTEGER NOT NULL,
    tank        INTEGER NOT NULL,
    PRIMARY KEY (station_id, dispenser, nozzle)
);

-- Collector state per station, from heartbeat and online messages.
CREATE TABLE collector_status (
    station_id        TEXT PRIMARY KEY,
    online            SMALLINT NOT NULL,
    boot_id           TEXT,
    collector_version TEXT,
    backlog           BIGINT,
    status_msg_seq    BIGINT NOT NULL,
    status_sent_at    DOUBLE PRECISION NOT NULL,
    last_heartbeat_at DOUBLE PRECISION,
    last_seen_at      DOUBLE PRECISION NOT NULL,
    changed_at        DOUBLE PRECISION NOT NULL
);

-- Per-device comms state as the collector last reported it (heartbeat).
CREATE TABLE device_status (
    station_id   TEXT NOT NULL,
    device       TEXT NOT NULL,
    online       SMALLINT NOT NULL,
    device_time  DOUBLE PRECISION,
    last_ok_at   DOUBLE PRECISION,
    failures     BIGINT NOT NULL,
    error        TEXT,
    reported_at  DOUBLE PRECISION NOT NULL,
    msg_seq      BIGINT NOT NULL,
    PRIMARY KEY (station_id, device)
);

-- Availability log: one row per status observation, for on-line ratios (在线率).
-- device '' is the collector itself (online message or heartbeat arrival).
CREATE TABLE availability_log (
    station_id   TEXT NOT NULL,
    device       TEXT NOT NULL,
    received_at  DOUBLE PRECISION NOT NULL,
    sent_at      DOUBLE PRECISION NOT NULL,
    msg_seq      BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    online       SMALLINT NOT NULL,
    device_time  DOUBLE PRECISION,
    boot_id      TEXT
);
CREATE INDEX availability_log_station_time ON availability_log (station_id, received_at);

-- Every authenticated message processed, for replay detection and audit.
CREATE TABLE ingest_messages (
    station_id   TEXT NOT NULL,
    msg_seq      BIGINT NOT NULL,
    type         TEXT NOT NULL,
    device       TEXT,
    sent_at      DOUBLE PRECISION NOT NULL,
    received_at  DOUBLE PRECISION NOT NULL,
    digest       TEXT NOT NULL,
    records      INTEGER NOT NULL,
    PRIMARY KEY (station_id, msg_seq)
);

-- Persistent ingest counters (accepted, duplicates, rejected:<reason>, ...).
-- station_id '' collects what cannot be attributed to a registered station.
CREATE TABLE ingest_counters (
    station_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       BIGINT NOT NULL,
    PRIMARY KEY (station_id, name)
);

-- Log of rejected messages and records (never stored as data).
CREATE TABLE ingest_rejections (
    id              TEXT PRIMARY KEY,
    received_at     DOUBLE PRECISION NOT NULL,
    topic           TEXT NOT NULL,
    station_id      TEXT NOT NULL,
    scope           TEXT NOT NULL,
    record_key      TEXT,
    reason          TEXT NOT NULL,
    detail          TEXT NOT NULL,
    payload_sha256  TEXT NOT NULL,
    payload_excerpt TEXT NOT NULL
);
CREATE INDEX ingest_rejections_time ON ingest_rejections (received_at, id);
CREATE INDEX ingest_rejections_station_time ON ingest_rejections (station_id, received_at, id);

-- The platform's own message counter per station (msg_seq of its acks).
CREATE TABLE ack_counters (
    station_id  TEXT PRIMARY KEY,
    msg_seq     BIGINT NOT NULL
);

-- Data streams. `key` is the uplink idempotency key; `digest` is the SHA-256 of the
-- record's canonical form without collected_at, to tell a true duplicate from a conflict.
CREATE TABLE transactions (
    key               TEXT PRIMARY KEY,
    station_id        TEXT NOT NULL,
    device            TEXT NOT NULL,
    seq               INTEGER NOT NULL,
    nozzle            INTEGER NOT NULL,
    grade             TEXT NOT NULL,
    tank              INTEGER NOT NULL,
    start_time        BIGINT NOT NULL,
    end_time          BIGINT NOT NULL,
    volume_ml         BIGINT NOT NULL,
    amount_fen        BIGINT NOT NULL,
    unit_price_fen    BIGINT NOT NULL,
    volume_total_ml   BIGINT NOT NULL,
    amount_total_fen  BIGINT NOT NULL,
    collected_at      DOUBLE PRECISION NOT NULL,
    received_at       DOUBLE PRECISION NOT NULL,
    msg_seq           BIGINT NOT NULL,
    digest            TEXT NOT NULL
);
CREATE INDEX transactions_time ON transactions (end_time, key);
CREATE INDEX transactions_station_time ON transactions (station_id, end_time, key);
CREATE INDEX transactions_station_tank_time ON transactions (station_id, tank, end_time);
CREATE INDEX transactions_nozzle_time ON transactions (station_id, device, nozzle, start_time);

CREATE TABLE inventory (
    key               TEXT PRIMARY KEY,
    station_id        TEXT NOT NULL,
    device            TEXT NOT NULL,
    seq               INTEGER NOT NULL,
    tank              INTEGER NOT NULL,
    device_time       BIGINT NOT NULL,
    product_level_um  BIGINT NOT NULL,
    water_level_um    BIGINT NOT NULL,
    temperature_mc    BIGINT NOT NULL,
    gross_volume_ml   BIGINT NOT NULL,
    volume_20c_ml     BIGINT NOT NULL,
    ullage_ml         BIGINT NOT NULL,
    water_volume_ml   BIGINT NOT NULL,
    collected_at      DOUBLE PRECISION NOT NULL,
    received_at       DOUBLE PRECISION NOT NULL,
    msg_seq           BIGINT NOT NULL,
    digest            TEXT NOT NULL
);
CREATE INDEX inventory_time ON inventory (device_time, key);
CREATE INDEX inventory_station_time ON inventory (station_id, device_time, key);
CREATE INDEX inventory_station_tank_time ON inventory (station_id, tank, device_time);

CREATE TABLE deliveries (
    key                    TEXT PRIMARY KEY,
    station_id             TEXT NOT NULL,
    device                 TEXT NOT NULL,
    seq                    INTEGER NOT NULL,
    tank                   INTEGER NOT NULL,
    start_time             BIGINT NOT NULL,
    end_time               BIGINT NOT NULL,
    start_gross_volume_ml  BIGINT NOT NULL,
    start_volume_20c_ml    BIGINT NOT NULL,
    end_gross_volume_ml    BIGINT NOT NULL,
    end_volume_20c_ml      BIGINT NOT NULL,
    start_temperature_mc   BIGINT NOT NULL,
    end_temperature_mc     BIGINT NOT NULL,
    start_level_um         BIGINT NOT NULL,
    end_level_um           BIGINT NOT NULL,
    collected_at           DOUBLE PRECISION NOT NULL,
    received_at            DOUBLE PRECISION NOT NULL,
    msg_seq                BIGINT NOT NULL,
    digest                 TEXT NOT NULL
);
CREATE INDEX deliveries_time ON deliveries (end_time, key);
CREATE INDEX deliveries_station_time ON deliveries (station_id, end_time, key);

CREATE TABLE events (
    key           TEXT PRIMARY KEY,
    station_id    TEXT NOT NULL,
    device        TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    code          INTEGER NOT NULL,
    unit          INTEGER NOT NULL,
    device_time   BIGINT NOT NULL,
    value_old_e4  BIGINT NOT NULL,
    value_new_e4  BIGINT NOT NULL,
    collected_at  DOUBLE PRECISION NOT NULL,
    received_at   DOUBLE PRECISION NOT NULL,
    msg_seq       BIGINT NOT NULL,
    digest        TEXT NOT NULL
);
CREATE INDEX events_time ON events (device_time, key);
CREATE INDEX events_station_time ON events (station_id, device_time, key);

-- Alerts (预警). Detectors come in a later issue; `dedup_key` lets a detector raise an
-- alert idempotently.
CREATE TABLE alerts (
    id             TEXT PRIMARY KEY,
    station_id     TEXT NOT NULL,
    kind           TEXT NOT NULL,
    severity       TEXT NOT NULL,
    raised_at      DOUBLE PRECISION NOT NULL,
    device         TEXT,
    nozzle         INTEGER,
    tank           INTEGER,
    title          TEXT NOT NULL,
    detail         TEXT NOT NULL,
    evidence_json  TEXT NOT NULL,
    status         TEXT NOT NULL,
    dedup_key      TEXT UNIQUE,
    created_at     DOUBLE PRECISION NOT NULL
);
CREATE INDEX alerts_time ON alerts (raised_at, id);
CREATE INDEX alerts_station_time ON alerts (station_id, raised_at, id);

-- Inputs from other departments (税务 and 计量), stored now, used by later detectors.
CREATE TABLE tax_declarations (
    id                  TEXT PRIMARY KEY,
    station_id          TEXT NOT NULL,
    period_start        TEXT NOT NULL,
    period_end          TEXT NOT NULL,
    period_start_epoch  BIGINT NOT NULL,
    grade               TEXT,
    declared_volume_ml  BIGINT,
    declared_sales_fen  BIGINT NOT NULL,
    declared_tax_fen    BIGINT,
    reference           TEXT,
    body_json           TEXT NOT NULL,
    created_at          DOUBLE PRECISION NOT NULL,
    created_by          TEXT NOT NULL,
    UNIQUE (station_id, reference)
);
CREATE INDEX tax_declarations_time ON tax_declarations (period_start_epoch, id);

CREATE TABLE verification_records (
    id                TEXT PRIMARY KEY,
    station_id        TEXT NOT NULL,
    device            TEXT NOT NULL,
    nozzle            INTEGER,
    tank              INTEGER,
    kind              TEXT NOT NULL,
    performed_at      DOUBLE PRECISION NOT NULL,
    valid_until       TEXT,
    result            TEXT,
    certificate_no    TEXT,
    organisation      TEXT NOT NULL,
    fully_signed      SMALLINT NOT NULL,
    body_json         TEXT NOT NULL,
    created_at        DOUBLE PRECISION NOT NULL,
    created_by        TEXT NOT NULL
);
CREATE INDEX verification_records_time ON verification_records (performed_at, id);
