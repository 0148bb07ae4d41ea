-- Forecourt reference platform, schema version 6: the credit grade (central/credit.py).
-- Portable SQL (SQLite >= 3.35, PostgreSQL >= 12); conventions as in 0001.

-- When an inspector confirmed the alert (platform wall clock, POST /alerts/{id}/status): a
-- closed alert with it was rectified after confirmation (已整改), one without it was dismissed
-- while open (a false alarm). The lifecycle keeps only the last change, so without this
-- column the two closings could not be told apart. Alerts confirmed before this version get
-- their last change's time; one already closed then counts as dismissed (not knowable).
ALTER TABLE alerts ADD COLUMN confirmed_at DOUBLE PRECISION;
UPDATE alerts SET confirmed_at = status_changed_at WHERE status = 'confirmed';
