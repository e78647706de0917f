-- Sender-constrained tokens and client assertions (issue 7): per-client
-- DPoP requirement and private_key_jwt key set, dpop_jkt on authorization
-- requests and codes, and the shared replay cache of DPoP proof and client
-- assertion jtis. Keep in step with ../postgres/0003_sender_constraints.sql.

ALTER TABLE clients ADD COLUMN require_dpop INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN jwks TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_requests ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';

-- One row per used jti; the key is a SHA-256 over a namespace, the key
-- thumbprint or client id, and the jti. Swept after expires_at.
CREATE TABLE used_jtis (
    jti_key    TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX used_jtis_expires_at ON used_jtis (expires_at);
