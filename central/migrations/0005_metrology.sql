-- Forecourt reference platform, schema version 5: the metrology audit (central/metrology.py).
-- Portable SQL (SQLite >= 3.35, PostgreSQL >= 12); conventions as in 0001.

-- Parsed from the record as submitted (body_json keeps it whole): the end of a verification's
-- validity in epoch s (a date: the local midnight after it; a date-time: the instant), the
-- seals found and left as JSON [{"position", "before", "after"}], and the signatories that did
-- not sign (comma-separated, '' = fully signed). NULL on rows stored before this version:
-- the audit treats such a row as stating no validity and no seals.
ALTER TABLE verification_records ADD COLUMN valid_until_epoch DOUBLE PRECISION;
ALTER TABLE verification_records ADD COLUMN seals_json TEXT;
ALTER TABLE verification_records ADD COLUMN signatures_missing TEXT;
CREATE INDEX verification_records_station ON verification_records (station_id, device, performed_at);
CREATE INDEX verification_records_certificate ON verification_records (station_id, certificate_no);
