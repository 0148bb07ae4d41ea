-- Forecourt reference platform, schema version 10: when a tax declaration was filed.
-- Portable SQL (SQLite >= 3.35, PostgreSQL >= 12); conventions as in 0001.

-- The declaration's `declared_at` (epoch s): a grade left out of a period's declarations is
-- judged missing only a grace after the latest of them was filed (central/tax.py
-- FILING_GRACE_S), so that a filing posted one grade at a time is not judged half-way.
-- NULL when the body gives none, and on rows stored before this version (the period's end
-- stands in for it then).
ALTER TABLE tax_declarations ADD COLUMN declared_at_epoch BIGINT;
