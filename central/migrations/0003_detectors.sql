-- Forecourt reference platform, schema version 3: detector status remarks.
-- Portable SQL (SQLite >= 3.35, PostgreSQL >= 12); conventions as in 0001.

-- What the detectors could not do at the last evaluation (e.g. no posted price for a grade,
-- no bill of lading reported, a device's data incomplete), as a JSON list of
-- {"detector", "message", ...}; and which devices the watermark left out and why.
ALTER TABLE detection_progress ADD COLUMN notes_json TEXT;
ALTER TABLE detection_progress ADD COLUMN excluded_json TEXT;
