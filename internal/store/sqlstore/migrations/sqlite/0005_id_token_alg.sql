-- Per-client ID token signing algorithm (OIDC Dynamic Client Registration
-- §2, id_token_signed_response_alg): RS256, ES256 or EdDSA; '' means the
-- server's signing_alg. Keep in step with ../postgres/0005_id_token_alg.sql.

ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT '';
