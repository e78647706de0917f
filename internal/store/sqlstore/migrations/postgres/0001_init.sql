-- Latchkey schema, PostgreSQL. Times are unix milliseconds (0 = unset),
-- durations milliseconds, lists space-joined (redirect URIs JSON).
-- Keep in step with ../sqlite/0001_init.sql.

CREATE TABLE clients (
    id                  TEXT    NOT NULL PRIMARY KEY,
    name                TEXT    NOT NULL,
    secret_hash         TEXT    NOT NULL,
    is_public           BOOLEAN NOT NULL,
    redirect_uris       TEXT    NOT NULL,
    grant_types         TEXT    NOT NULL,
    scopes              TEXT    NOT NULL,
    refresh_idle_ms     BIGINT  NOT NULL,
    refresh_absolute_ms BIGINT  NOT NULL,
    reuse_report_only   BOOLEAN NOT NULL,
    require_mfa         BOOLEAN NOT NULL,
    policy_version      BIGINT  NOT NULL,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);

CREATE TABLE users (
    id               TEXT    NOT NULL PRIMARY KEY,
    username         TEXT    NOT NULL,
    password_hash    TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    email            TEXT    NOT NULL,
    disabled         BOOLEAN NOT NULL,
    totp_secret      BYTEA,
    credential_epoch BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (username);

CREATE TABLE sessions (
    id         TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    auth_time  BIGINT  NOT NULL,
    amr        TEXT    NOT NULL,
    acr        TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
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
    max_age               BIGINT  NOT NULL,
    acr_values            TEXT    NOT NULL,
    created_at            BIGINT  NOT NULL,
    expires_at            BIGINT  NOT NULL
);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE auth_codes (
    id             TEXT    NOT NULL PRIMARY KEY,
    client_id      TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    redirect_uri   TEXT    NOT NULL,
    nonce          TEXT    NOT NULL,
    code_challenge TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    auth_time      BIGINT  NOT NULL,
    amr            TEXT    NOT NULL,
    acr            TEXT    NOT NULL,
    family_id      TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL,
    used_at        BIGINT  NOT NULL
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE consents (
    user_id    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE families (
    id                  TEXT    NOT NULL PRIMARY KEY,
    client_id           TEXT    NOT NULL,
    user_id             TEXT    NOT NULL,
    scopes              TEXT    NOT NULL,
    offline             BOOLEAN NOT NULL,
    generation          BIGINT  NOT NULL,
    rotated_at          BIGINT  NOT NULL,
    auth_time           BIGINT  NOT NULL,
    amr                 TEXT    NOT NULL,
    acr                 TEXT    NOT NULL,
    policy_version      BIGINT  NOT NULL,
    credential_epoch    BIGINT  NOT NULL,
    dpop_jkt            TEXT    NOT NULL,
    created_at          BIGINT  NOT NULL,
    last_used_at        BIGINT  NOT NULL,
    idle_expires_at     BIGINT  NOT NULL,
    absolute_expires_at BIGINT  NOT NULL,
    revoked_at          BIGINT  NOT NULL,
    revoke_reason       TEXT    NOT NULL
);
CREATE INDEX families_user_id ON families (user_id, created_at);
CREATE INDEX families_client_id ON families (client_id, created_at);
-- Sweep: one index per deletion rule.
CREATE INDEX families_revoked_at ON families (revoked_at);
CREATE INDEX families_idle_expires_at ON families (offline, idle_expires_at);
CREATE INDEX families_absolute_expires_at ON families (offline, absolute_expires_at);
CREATE INDEX families_created_at ON families (offline, created_at);

CREATE TABLE revoked_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);

CREATE TABLE signing_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    alg          TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    private_key  BYTEA,
    public_key   BYTEA,
    created_at   BIGINT  NOT NULL,
    activated_at BIGINT  NOT NULL,
    retired_at   BIGINT  NOT NULL
);

CREATE TABLE audit_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT  NOT NULL,
    event_type TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    family_id  TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    detail     TEXT    NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at, id);
CREATE INDEX audit_events_user ON audit_events (user_id, at, id);
CREATE INDEX audit_events_client ON audit_events (client_id, at, id);
CREATE INDEX audit_events_family ON audit_events (family_id, at, id);
