-- Latchkey schema, SQLite. Times are unix milliseconds (0 = unset),
-- durations milliseconds, booleans 0/1, lists space-joined (redirect URIs
-- JSON). Keep in step with ../postgres/0001_init.sql.

CREATE TABLE clients (
    id                  TEXT    NOT NULL PRIMARY KEY,
    name                TEXT    NOT NULL,
    secret_hash         TEXT    NOT NULL,
    is_public           INTEGER NOT NULL,
    redirect_uris       TEXT    NOT NULL,
    grant_types         TEXT    NOT NULL,
    scopes              TEXT    NOT NULL,
    refresh_idle_ms     INTEGER NOT NULL,
    refresh_absolute_ms INTEGER NOT NULL,
    reuse_report_only   INTEGER NOT NULL,
    require_mfa         INTEGER NOT NULL,
    policy_version      INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id               TEXT    NOT NULL PRIMARY KEY,
    username         TEXT    NOT NULL,
    password_hash    TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    email            TEXT    NOT NULL,
    disabled         INTEGER NOT NULL,
    totp_secret      BLOB,
    credential_epoch INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_username ON users (username);

CREATE TABLE sessions (
    id         TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    auth_time  INTEGER NOT NULL,
    amr        TEXT    NOT NULL,
    acr        TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE auth_requests (
    id                    TEXT    NOT NULL PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL,
    state                 TEXT    NOT NULL,
    nonce                 TEXT    NOT NULL,
    code_challenge        TEXT    NOT NULL,
    code_challenge_method TEXT    NOT NULL,
    scopes                TEXT    NOT NULL,
    prompt                TEXT    NOT NULL,
    max_age               INTEGER NOT NULL,
    acr_values            TEXT    NOT NULL,
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL
) STRICT;
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE auth_codes (
    id             TEXT    NOT NULL PRIMARY KEY,
    client_id      TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    redirect_uri   TEXT    NOT NULL,
    nonce          TEXT    NOT NULL,
    code_challenge TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    auth_time      INTEGER NOT NULL,
    amr            TEXT    NOT NULL,
    acr            TEXT    NOT NULL,
    family_id      TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE consents (
    user_id    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
) STRICT;
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE families (
    id                  TEXT    NOT NULL PRIMARY KEY,
    client_id           TEXT    NOT NULL,
    user_id             TEXT    NOT NULL,
    scopes              TEXT    NOT NULL,
    offline             INTEGER NOT NULL,
    generation          INTEGER NOT NULL,
    rotated_at          INTEGER NOT NULL,
    auth_time           INTEGER NOT NULL,
    amr                 TEXT    NOT NULL,
    acr                 TEXT    NOT NULL,
    policy_version      INTEGER NOT NULL,
    credential_epoch    INTEGER NOT NULL,
    dpop_jkt            TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    last_used_at        INTEGER NOT NULL,
    idle_expires_at     INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    revoked_at          INTEGER NOT NULL,
    revoke_reason       TEXT    NOT NULL
) STRICT;
CREATE INDEX families_user_id ON families (user_id, created_at);
CREATE INDEX families_client_id ON families (client_id, created_at);
-- Sweep: one index per deletion rule.
CREATE INDEX families_revoked_at ON families (revoked_at);
CREATE INDEX families_idle_expires_at ON families (offline, idle_expires_at);
CREATE INDEX families_absolute_expires_at ON families (offline, absolute_expires_at);
CREATE INDEX families_created_at ON families (offline, created_at);

CREATE TABLE revoked_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);

CREATE TABLE signing_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    alg          TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    private_key  BLOB,
    public_key   BLOB,
    created_at   INTEGER NOT NULL,
    activated_at INTEGER NOT NULL,
    retired_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE audit_events (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    event_type TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    family_id  TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    detail     TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_events_at ON audit_events (at, id);
CREATE INDEX audit_events_user ON audit_events (user_id, at, id);
CREATE INDEX audit_events_client ON audit_events (client_id, at, id);
CREATE INDEX audit_events_family ON audit_events (family_id, at, id);
