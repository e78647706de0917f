package grant

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/testdb"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// accessFixture is a key manager on a real store with one live family, and
// a valid access token of that family.
func accessFixture(t testing.TB) (*keys.Manager, store.Store, string, time.Time) {
	t.Helper()
	ctx := context.Background()
	st := testdb.SQLite(t)
	sealer, err := keys.NewSealer(keys.MasterKey(strings.Repeat("m", 32)), keys.SealPurpose)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	km := &keys.Manager{Store: st, Sealer: sealer, Alg: jose.ES256, Now: func() time.Time { return now }}
	if err := km.Init(ctx); err != nil {
		t.Fatal(err)
	}
	f := &store.Family{ID: "ZmFtaWx5LWlkLTAwMDAwMQ", ClientID: "c", UserID: "u", CreatedAt: now, LastUsedAt: now}
	if err := st.CreateFamily(ctx, f); err != nil {
		t.Fatal(err)
	}
	raw, err := km.Sign(ctx, "", token.TypeAccess, token.AccessClaims{Issuer: testIssuer, Subject: "u", Audience: []string{"c"},
		IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix(), ID: "jti", ClientID: "c", FamilyID: f.ID})
	if err != nil {
		t.Fatal(err)
	}
	return km, st, raw, now
}

// forge re-signs the claims of tok under header with sig (nil: no
// signature, as alg none has).
func forge(tok string, header map[string]any, sig func(in []byte) []byte) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	in := enc(header) + "." + strings.Split(tok, ".")[1]
	s := ""
	if sig != nil {
		s = base64.RawURLEncoding.EncodeToString(sig([]byte(in)))
	}
	return in + "." + s
}

// forgeries are the classic JWT attacks on a valid token: alg none, and
// HS256 keyed with the server's public key (algorithm confusion).
func forgeries(t testing.TB, km *keys.Manager, valid string) map[string]string {
	parts := strings.SplitN(valid, ".", 2)
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	_ = json.Unmarshal(hb, &h)
	kid, _ := h["kid"].(string)
	var pubJSON []byte
	for _, k := range km.JWKS(context.Background()).Keys {
		if k.KeyID == kid {
			pubJSON, _ = k.MarshalJSON()
		}
	}
	if pubJSON == nil {
		t.Fatal("no public key for the token")
	}
	hmacWith := func(key []byte) func([]byte) []byte {
		return func(in []byte) []byte { m := hmac.New(sha256.New, key); m.Write(in); return m.Sum(nil) }
	}
	return map[string]string{
		"alg none":                  forge(valid, map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, nil),
		"alg None":                  forge(valid, map[string]any{"alg": "None", "typ": "at+jwt", "kid": kid}, nil),
		"alg none, signature kept":  forge(valid, map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, nil) + strings.SplitN(valid, ".", 3)[2],
		"HS256 with the public JWK": forge(valid, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}, hmacWith(pubJSON)),
		"HS256 without kid":         forge(valid, map[string]any{"alg": "HS256", "typ": "at+jwt"}, hmacWith(pubJSON)),
		"ES256 header, other kid":   forge(valid, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "unknown"}, nil) + strings.SplitN(valid, ".", 3)[2],
		"RS256 header on ES256 key": forge(valid, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": kid}, nil) + strings.SplitN(valid, ".", 3)[2],
		"typ JWT (an ID token)":     forge(valid, map[string]any{"alg": "ES256", "typ": "JWT", "kid": kid}, nil) + strings.SplitN(valid, ".", 3)[2],
	}
}

func TestActiveAccessTokenRefusesForgeries(t *testing.T) {
	km, st, valid, now := accessFixture(t)
	ctx := context.Background()
	if _, _, _, err := ActiveAccessToken(ctx, st, km, testIssuer, now, valid); err != nil {
		t.Fatalf("valid token: %v", err)
	}
	for name, tok := range forgeries(t, km, valid) {
		if _, _, _, err := ActiveAccessToken(ctx, st, km, testIssuer, now, tok); !errors.Is(err, ErrInactive) {
			t.Errorf("%s: %v, want ErrInactive", name, err)
		}
	}
}

// FuzzActiveAccessToken decodes arbitrary JWTs as userinfo and
// introspection do: nothing panics, and nothing but an unexpired token of
// ours, of a live family, is active.
func FuzzActiveAccessToken(f *testing.F) {
	km, st, valid, now := accessFixture(f)
	f.Add(valid)
	for _, tok := range forgeries(f, km, valid) {
		f.Add(tok)
	}
	for _, s := range []string{"", ".", "..", "a.b.c", valid + ".x", valid[:len(valid)-3], strings.Repeat("e", token.MaxLen+1)} {
		f.Add(s)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, raw string) {
		c, fam, _, err := ActiveAccessToken(ctx, st, km, testIssuer, now, raw)
		if err != nil {
			if !errors.Is(err, ErrInactive) {
				t.Fatalf("ActiveAccessToken(%q): %v", raw, err)
			}
			return
		}
		if c.Issuer != testIssuer || c.Expiry <= now.Unix() || fam == nil || fam.ID != c.FamilyID {
			t.Fatalf("ActiveAccessToken(%q) accepted %+v", raw, c)
		}
	})
}
