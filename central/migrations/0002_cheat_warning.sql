-- Forecourt reference platform, schema version 2: what cheat warning (作弊预警) needs.
-- Portable SQL (SQLite >= 3.35, PostgreSQL >= 12); conventions as in 0001.

-- Bill of lading (提单) keyed in at the gauge console for a drop; 0 = none keyed in,
-- NULL = the collector does not report it (uplink 1.0).
ALTER TABLE deliveries ADD COLUMN bol_volume_20c_ml BIGINT;

-- Device identity and status as the collector read them from the header registers
-- (uplink record kind `state`, stream `states`): one row per reported change.
CREATE TABLE states (
    key            TEXT PRIMARY KEY,
    station_id     TEXT NOT NULL,
    device         TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    device_time    BIGINT NOT NULL,
    serial_number  TEXT NOT NULL,
    software_id    TEXT NOT NULL,
    mainboard_id   TEXT NOT NULL,
    encoder_id     TEXT NOT NULL,
    seal_state     INTEGER NOT NULL,
    device_status  INTEGER NOT NULL,
    collected_at   DOUBLE PRECISION NOT NULL,
    received_at    DOUBLE PRECISION NOT NULL,
    msg_seq        BIGINT NOT NULL,
    digest         TEXT NOT NULL
);
CREATE INDEX states_time ON states (device_time, key);
CREATE INDEX states_station_time ON states (station_id, device_time, key);

-- Data completeness watermark per device (heartbeat `drained_through`, device clock).
ALTER TABLE device_status ADD COLUMN drained_through BIGINT;

-- Posted prices (挂牌价) from the price authority / commerce bureau; station_id '' = all.
CREATE TABLE posted_prices (
    id           TEXT PRIMARY KEY,
    station_id   TEXT NOT NULL,
    grade        TEXT NOT NULL,
    price_fen    BIGINT NOT NULL,
    valid_from   DOUBLE PRECISION NOT NULL,
    body_json    TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    created_by   TEXT NOT NULL,
    UNIQUE (station_id, grade, valid_from)
);
CREATE INDEX posted_prices_time ON posted_prices (valid_from, id);

-- Alerts: the detection instant in device time, the detector that raised it, and the
-- lifecycle (open -> confirmed -> closed) with who changed it.
ALTER TABLE alerts ADD COLUMN as_of DOUBLE PRECISION;
ALTER TABLE alerts ADD COLUMN detector TEXT;
ALTER TABLE alerts ADD COLUMN status_note TEXT;
ALTER TABLE alerts ADD COLUMN status_changed_at DOUBLE PRECISION;
ALTER TABLE alerts ADD COLUMN status_changed_by TEXT;
CREATE INDEX alerts_station_as_of ON alerts (station_id, as_of);

-- How far the detectors have evaluated each station (device clock).
CREATE TABLE detection_progress (
    station_id        TEXT PRIMARY KEY,
    watermark         BIGINT,
    evaluated_through BIGINT,
    updated_at        DOUBLE PRECISION NOT NULL
);
