-- Delivery cursors: how far a background worker (the audit webhook) got
-- through audit_events, and which instance holds the lease to move it on,
-- so several instances never deliver at once and a restart resumes where
-- delivery stopped. Times are unix milliseconds.
CREATE TABLE delivery_cursors (
    name        TEXT    NOT NULL PRIMARY KEY,
    position    INTEGER NOT NULL,
    lease_owner TEXT    NOT NULL,
    lease_until INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
