-- Failed sign-in attempts per account and per source address, in fixed
-- windows, shared by every instance. Keys are SHA-256 hashes.
CREATE TABLE throttles (
    throttle_key TEXT   NOT NULL PRIMARY KEY,
    count        BIGINT NOT NULL,
    window_end   BIGINT NOT NULL
);
CREATE INDEX throttles_window_end ON throttles (window_end);
