package grant

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// private_key_jwt client authentication (RFC 7523 §2.2 and §3, RFC 7521
// §4.2, OIDC Core §9).
const (
	// ClientAssertionType is the only client_assertion_type accepted.
	ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// MaxAssertionLen bounds the client_assertion parameter.
	MaxAssertionLen = 8 << 10
	// MaxAssertionLifetime is the furthest in the future an assertion's exp
	// may be: a short-lived, one-time credential.
	MaxAssertionLifetime = 5 * time.Minute
	// AssertionLeeway absorbs clock differences on exp, nbf and iat.
	AssertionLeeway = 30 * time.Second
)

// AssertionClaims are the claims of a client assertion.
type AssertionClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
}

// badAssertion is invalid_client (RFC 7523 §3.2) saying what is wrong.
func badAssertion(format string, args ...any) *oauth.Error {
	return invalidClient("The client assertion is not valid: " + fmt.Sprintf(format, args...) + ".")
}

// assertionCredentials reads the client id an assertion claims (its sub,
// unverified: it only picks the keys to verify with) and checks the form.
func (a *ClientAuth) assertionCredentials(form url.Values) (credentials, error) {
	if a.Issuer == "" {
		return credentials{}, invalidClient("private_key_jwt client authentication is not available at this endpoint.")
	}
	if form.Get("client_assertion_type") != ClientAssertionType {
		return credentials{}, invalidClient("client_assertion_type must be " + ClientAssertionType + ".")
	}
	raw := form.Get("client_assertion")
	if raw == "" || len(raw) > MaxAssertionLen {
		return credentials{}, badAssertion("send a signed JWT of at most %d bytes in client_assertion", MaxAssertionLen)
	}
	tok, err := jwt.ParseSigned(raw, keys.ClientAlgorithms)
	if err != nil {
		return credentials{}, badAssertion("it must be a JWT signed with one of ES256, EdDSA, RS256, PS256")
	}
	var c AssertionClaims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return credentials{}, badAssertion("its claims cannot be read")
	}
	if c.Subject == "" || len(c.Subject) > maxClientIDLen {
		return credentials{}, badAssertion("sub must be the client_id")
	}
	// RFC 7521 §4.2: a client_id parameter must name the same client.
	if fid := form.Get("client_id"); fid != "" && fid != c.Subject {
		return credentials{}, oauth.New(oauth.InvalidRequest, "client_id does not match the client assertion's sub.")
	}
	return credentials{id: c.Subject, assertion: raw}, nil
}

// verifyAssertion authenticates c with a client assertion: the signature,
// the claims (VerifyAssertion) and the one-time jti.
func (a *ClientAuth) verifyAssertion(ctx context.Context, c *store.Client, raw string) (*store.Client, error) {
	if c.JWKS == "" {
		return nil, invalidClient("This client has no registered keys and cannot use private_key_jwt.")
	}
	now := a.Now()
	claims, err := VerifyAssertion(raw, c, []string{a.Issuer, a.Issuer + "/token"}, now)
	if err != nil {
		return nil, err
	}
	// RFC 7523 §3 item 7: a jti is used once. The record outlives the
	// assertion's validity (exp plus the leeway).
	until := claims.Expiry.Time().Add(AssertionLeeway + time.Second)
	err = a.Store.UseJTI(ctx, secret.SHA256("client-assertion|"+c.ID+"|"+claims.ID), until, now)
	if errors.Is(err, store.ErrAlreadyUsed) {
		return nil, badAssertion("it was already used; sign a new one (new jti) for every request")
	}
	if err != nil {
		return nil, oauth.Wrap(err, "record client assertion")
	}
	return c, nil
}

// VerifyAssertion checks a client assertion for client c at now: a JWT
// signed with an asymmetric algorithm by one of the client's registered
// keys (the one its kid names), iss and sub equal to the client id, an aud
// holding one of audiences, an exp no more than MaxAssertionLifetime ahead,
// nbf and iat not in the future, and a jti. It does not check replay.
func VerifyAssertion(raw string, c *store.Client, audiences []string, now time.Time) (*AssertionClaims, error) {
	if len(raw) > MaxAssertionLen {
		return nil, badAssertion("it is longer than %d bytes", MaxAssertionLen)
	}
	tok, err := jwt.ParseSigned(raw, keys.ClientAlgorithms)
	if err != nil {
		return nil, badAssertion("it must be a JWT signed with one of ES256, EdDSA, RS256, PS256").WithCause(err)
	}
	if len(tok.Headers) != 1 {
		return nil, badAssertion("it must have exactly one signature")
	}
	h := tok.Headers[0]
	// A DPoP proof or an access token is never a client assertion.
	if t, _ := h.ExtraHeaders[jose.HeaderType].(string); strings.EqualFold(t, "dpop+jwt") || strings.EqualFold(t, "at+jwt") {
		return nil, badAssertion("typ %q is not a client assertion", t)
	}
	// Keys come only from the registration, never from the JWT (jwk, jku,
	// x5u, x5c headers are ignored).
	set, err := keys.ParseClientJWKS(c.JWKS)
	if err != nil {
		return nil, invalidClient("The client's registered key set is not usable.").WithCause(err)
	}
	var claims AssertionClaims
	verified := false
	for _, k := range set.Keys {
		if (h.KeyID != "" && k.KeyID != h.KeyID) || (k.Algorithm != "" && k.Algorithm != h.Algorithm) {
			continue
		}
		// go-jose refuses a key of the wrong type for the header's alg.
		if err := tok.Claims(k.Key, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, badAssertion("its signature does not verify with the client's registered keys")
	}
	leeway := AssertionLeeway
	switch {
	case claims.Issuer != c.ID || claims.Subject != c.ID:
		return nil, badAssertion("iss and sub must both be the client_id")
	case !slices.ContainsFunc(audiences, claims.Audience.Contains):
		return nil, badAssertion("aud must contain %s", audiences[len(audiences)-1])
	case claims.Expiry == nil:
		return nil, badAssertion("exp is required")
	case !now.Before(claims.Expiry.Time().Add(leeway)):
		return nil, badAssertion("it has expired")
	case claims.Expiry.Time().After(now.Add(MaxAssertionLifetime + leeway)):
		return nil, badAssertion("exp may be at most %s ahead", MaxAssertionLifetime)
	case claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(leeway)):
		return nil, badAssertion("nbf is in the future")
	case claims.IssuedAt != nil && claims.IssuedAt.Time().After(now.Add(leeway)):
		return nil, badAssertion("iat is in the future")
	case claims.ID == "" || len(claims.ID) > 256:
		return nil, badAssertion("a jti of 1 to 256 characters is required")
	}
	return &claims, nil
}
