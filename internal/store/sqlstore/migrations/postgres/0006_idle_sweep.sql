-- The sweep finds idle-expired families through idle_sweep_at, not
-- idle_expires_at. Every refresh moves idle_expires_at, and an UPDATE of
-- an indexed column is never a HOT update: each refresh wrote new entries
-- into every index of the table (docs/BENCHMARKS.md, session 14).
-- idle_sweep_at is set with the family and left alone by rotations; the
-- sweep looks at a family once its idle_sweep_at has passed and, if the
-- family is still in use, moves idle_sweep_at up to its idle_expires_at.
-- With no indexed column changed, a refresh's UPDATE can be HOT when the
-- row's page has room for the new version: families pages are filled to
-- 80 % (new pages; existing ones as autovacuum frees them).
-- Keep in step with ../sqlite/0006_idle_sweep.sql.

ALTER TABLE families ADD COLUMN idle_sweep_at BIGINT NOT NULL DEFAULT 0;
UPDATE families SET idle_sweep_at = idle_expires_at;
DROP INDEX families_idle_expires_at;
CREATE INDEX families_idle_sweep_at ON families (offline, idle_sweep_at);
ALTER TABLE families SET (fillfactor = 80);
