package token

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
)

// Header "typ" values.
const (
	TypeAccess = "at+jwt" // RFC 9068 §2.1
	TypeID     = "JWT"
)

// AccessClaims are the claims of a JWT access token (RFC 9068 §2.2).
type AccessClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	ID       string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	// FamilyID links the token to its authorization, so introspection can
	// report it inactive the moment the family ends.
	FamilyID string `json:"fid,omitempty"`
	// Confirmation holds the DPoP key thumbprint (RFC 9449 §6.1).
	Confirmation *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is the cnf claim.
type Confirmation struct {
	JKT string `json:"jkt,omitempty"`
}

// IDClaims are the claims of an ID token (OIDC Core §2, §5.1).
type IDClaims struct {
	Issuer            string   `json:"iss"`
	Subject           string   `json:"sub"`
	Audience          []string `json:"aud"`
	Expiry            int64    `json:"exp"`
	IssuedAt          int64    `json:"iat"`
	AuthTime          int64    `json:"auth_time,omitempty"`
	Nonce             string   `json:"nonce,omitempty"`
	ACR               string   `json:"acr,omitempty"`
	AMR               []string `json:"amr,omitempty"`
	AZP               string   `json:"azp,omitempty"`
	AccessTokenHash   string   `json:"at_hash,omitempty"`
	SessionID         string   `json:"sid,omitempty"`
	Name              string   `json:"name,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Email             string   `json:"email,omitempty"`
}

// AccessTokenHash computes at_hash (OIDC Core §3.1.3.6) for an ID token
// signed with alg: the left half of the access token's hash, base64url,
// where the hash is "the hash algorithm used in the alg Header Parameter of
// the ID Token's JOSE Header". That is SHA-256 for RS256 and ES256. EdDSA
// names no hash of its own; for Ed25519 (the only EdDSA key Latchkey
// makes) it is SHA-512, the hash inside Ed25519 (RFC 8032 §5.1): the
// consensus of the OpenID Connect working group
// (https://bitbucket.org/openid/connect/issues/1125, "_hash algorithm for
// EdDSA ID tokens"; no published errata text yet) and what relying-party
// libraries check, e.g. go-oidc's IDToken.VerifyAccessToken. alg is one of
// the algorithms Latchkey signs with (RS256, ES256, EdDSA).
func AccessTokenHash(alg, accessToken string) string {
	if alg == "EdDSA" {
		sum := sha512.Sum512([]byte(accessToken))
		return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
	}
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}
