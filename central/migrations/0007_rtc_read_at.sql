-- Forecourt reference platform, schema version 7: when each device clock in a heartbeat was
-- read (uplink 1.2 `devices[].rtc_read_at`, collector wall clock). The platform compares a
-- station's device clocks with each other (central/detectors/clock.py); clocks read at
-- different instants are compared at one instant with it. NULL: a collector before 1.2.
-- Portable SQL (SQLite >= 3.35, PostgreSQL >= 12); conventions as in 0001.
ALTER TABLE availability_log ADD COLUMN rtc_read_at DOUBLE PRECISION;
