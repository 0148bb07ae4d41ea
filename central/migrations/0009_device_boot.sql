-- Forecourt reference platform, schema version 9: which collector boot reported a device.
-- Portable SQL (SQLite >= 3.35, PostgreSQL >= 12); conventions as in 0001.

-- A restarted collector has not read its devices yet: the previous boot's reports must not
-- show them on line beside the new boot's collector (central/stations.py). Rows written
-- before this version have no boot (NULL) and count as the current one's.
ALTER TABLE device_status ADD COLUMN boot_id TEXT;
