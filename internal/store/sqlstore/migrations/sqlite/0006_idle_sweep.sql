-- The sweep finds idle-expired families through idle_sweep_at, not
-- idle_expires_at. Every refresh moves idle_expires_at, and with it an
-- entry of its index: more pages written to the WAL at every refresh (3.2
-- frames a refresh before, 2.6 after, docs/BENCHMARKS.md, session 14).
-- idle_sweep_at is set with the family and left alone by rotations; the
-- sweep looks at a family once its idle_sweep_at has passed and, if the
-- family is still in use, moves idle_sweep_at up to its idle_expires_at.
-- Keep in step with ../postgres/0006_idle_sweep.sql.

ALTER TABLE families ADD COLUMN idle_sweep_at INTEGER NOT NULL DEFAULT 0;
UPDATE families SET idle_sweep_at = idle_expires_at;
DROP INDEX families_idle_expires_at;
CREATE INDEX families_idle_sweep_at ON families (offline, idle_sweep_at);
