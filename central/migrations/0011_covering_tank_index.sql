-- Forecourt reference platform, schema version 11: the transactions' per-tank index covers
-- the reconciliation's read. Portable SQL (SQLite >= 3.35, PostgreSQL >= 12); conventions
-- as in 0001.

-- GET /reconciliation and the monthly balance (central/reconciliation.py `station_inputs`)
-- read every transaction of a station with its tank, end time, volume and grade. With the
-- last two in the index the rows come from the index alone, with no look-up in the table:
-- in the banner's 180 days that load of the 46 stations took 8.5 s instead of 10.9 s on
-- SQLite, and ingest did not measurably slow (docs/performance.md). Same key prefix as
-- before, so the queries that used the old index use this one. (The same for the inventory
-- readings would need their storage key in the index: it made every insert ≈ 8 µs dearer,
-- more than it would save.)
DROP INDEX transactions_station_tank_time;
CREATE INDEX transactions_station_tank_time
    ON transactions (station_id, tank, end_time, volume_ml, grade);
