-- Forecourt reference platform, schema version 4: the 以销核税 comparison (central/tax.py).
-- Portable SQL (SQLite >= 3.35, PostgreSQL >= 12); conventions as in 0001.

-- The exclusive end of a declaration's period (epoch s): local midnight after its last day
-- for a period given as dates, the instant itself for one given as date-times. NULL on rows
-- stored before this version (central/tax.py derives it from period_end then).
ALTER TABLE tax_declarations ADD COLUMN period_end_epoch BIGINT;
CREATE INDEX tax_declarations_station_period ON tax_declarations (station_id, period_start_epoch);
