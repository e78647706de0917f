package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"math/big"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/testdb"
	"github.com/latchkey-dev/latchkey/internal/testserver"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// TestNoSecretsAtRestFullFlow runs every kind of flow — an MFA user at a
// confidential client, a DPoP-bound public client, a private_key_jwt
// client, refreshes, a revocation — then reads the raw SQLite files (main
// database and WAL) and finds none of the secrets the flows handled: no
// token, code, client secret, password, TOTP secret, DPoP proof or client
// assertion, and no private key material (signing keys, the client's DPoP
// and assertion keys, the master key and the keys derived from it).
func TestNoSecretsAtRestFullFlow(t *testing.T) {
	path := testdb.SQLitePath(t)
	st, err := sqlstore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := testserver.StartOn(t, st)
	var texts []string // secrets as text
	var raws [][]byte  // secrets as bytes
	addTok := func(tok *oauth2.Token) {
		texts = append(texts, tok.AccessToken, tok.RefreshToken, strings.TrimPrefix(tok.RefreshToken, token.RefreshPrefix))
		if id, ok := tok.Extra("id_token").(string); ok {
			texts = append(texts, id)
		}
	}
	addResp := func(r testserver.Response) {
		texts = append(texts, r.Str("access_token"), r.Str("refresh_token"), r.Str("id_token"), strings.TrimPrefix(r.Str("refresh_token"), token.RefreshPrefix))
	}

	// 1. An MFA user at a confidential client (client_secret_basic).
	addCarol(t, ts)
	web := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "profile", "offline_access")
	b := ts.Browser()
	b.OTP = totpAnswer(t, ts, carolTOTP)
	tok := mfaLogin(t, ts, b, web, carol, carolPW)
	addTok(tok)
	addResp(mustRefresh(t, ts, tok.RefreshToken))
	totpRaw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(carolTOTP)
	if err != nil {
		t.Fatal(err)
	}
	texts = append(texts, carolTOTP, carolPW, testserver.WebSecret, testserver.AlicePW)
	raws = append(raws, totpRaw)

	// 2. A DPoP-bound public client, through x/oauth2.
	k := dpopKey(t, ts, jose.ES256)
	ctx, _ := dpopContext(t, k)
	spa := ts.OAuth2Config(testserver.SPAClient, "", "openid", "offline_access")
	code, v := authCode(t, ts, spa)
	texts = append(texts, code, strings.TrimPrefix(code, "lkac_"))
	dtok, err := spa.Exchange(ctx, code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	ts.RememberToken(dtok)
	addTok(dtok)
	proof := k.Proof(t, "POST", ts.URL+"/token")
	texts = append(texts, proof)
	addResp(postDPoP(ts, "/token", spaRefresh(dtok.RefreshToken), proof, "", ""))
	raws = append(raws, privateParts(t, k.Private)...)

	// 3. A private_key_jwt client.
	app := newJWTApp(t, ts)
	jcfg := ts.OAuth2Config(jwtClient, "", "openid", "offline_access")
	code, v = authCode(t, ts, jcfg)
	texts = append(texts, code)
	assertion := app.assertion(nil)
	texts = append(texts, assertion)
	r := app.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testserver.Redirect}, "code_verifier": {v}}, assertion)
	if r.Status != 200 {
		t.Fatalf("private_key_jwt exchange: %d %v", r.Status, r.Body)
	}
	addResp(r)
	raws = append(raws, privateParts(t, app.priv)...)

	// 4. A revocation.
	if rv := ts.Post("/revoke", url.Values{"token": {tok.AccessToken}}, testserver.WebClient, testserver.WebSecret); rv.Status != 200 {
		t.Fatalf("revoke: %d", rv.Status)
	}

	// The master key, the keys derived from it, and the signing keys'
	// private parts (opened with the master key, as the server does).
	master := keys.MasterKey(ts.MasterKey)
	raws = append(raws, master)
	texts = append(texts, base64.StdEncoding.EncodeToString(master), base64.RawURLEncoding.EncodeToString(master))
	for _, purpose := range []string{"refresh-token/v1", "csrf", "dpop-nonce", "seal/" + keys.SealPurpose, "seal/totp"} {
		raws = append(raws, master.Derive(purpose))
	}
	sealer, err := keys.NewSealer(master, keys.SealPurpose)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := st.ListSigningKeys(context.Background())
	if err != nil || len(recs) == 0 {
		t.Fatalf("signing keys: %d %v", len(recs), err)
	}
	for _, rec := range recs {
		pj, err := sealer.Open(rec.PrivateKey, []byte(rec.ID))
		if err != nil {
			t.Fatal(err)
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(pj); err != nil {
			t.Fatal(err)
		}
		raws = append(raws, pj)
		raws = append(raws, privateParts(t, jwk.Key)...)
	}

	var blob []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		blob = append(blob, b...)
	}
	// Controls: the search finds what is meant to be stored — the client id
	// and, as base64url, the client's registered public key.
	pub := app.priv.Public().(ed25519.PublicKey)
	if !bytes.Contains(blob, []byte(jwtClient)) || !bytes.Contains(blob, []byte(base64.RawURLEncoding.EncodeToString(pub))) {
		t.Fatal("the search does not find what the database does hold")
	}
	for _, s := range texts {
		if s == "" {
			continue
		}
		if len(s) > 60 {
			s = s[len(s)-60:] // a JWT's signature part, a token's MAC part
		}
		if bytes.Contains(blob, []byte(s)) {
			t.Errorf("the database files contain a secret (…%.12s)", s[len(s)-12:])
		}
	}
	for i, raw := range raws {
		if len(raw) < 16 {
			t.Fatalf("secret %d is too short to search for", i)
		}
		if bytes.Contains(blob, raw) {
			t.Errorf("the database files contain secret key material %d (%d bytes)", i, len(raw))
		}
		// Also as text, the way a JWK would spell it.
		if bytes.Contains(blob, []byte(base64.RawURLEncoding.EncodeToString(raw))) {
			t.Errorf("the database files contain secret key material %d as base64url", i)
		}
	}
}

// privateParts returns the secret numbers of a private key (the JWK "d",
// and RSA's primes), big-endian.
func privateParts(t *testing.T, k any) [][]byte {
	t.Helper()
	switch pk := k.(type) {
	case *ecdsa.PrivateKey:
		return [][]byte{pk.D.FillBytes(make([]byte, 32))}
	case ed25519.PrivateKey:
		return [][]byte{pk.Seed()}
	case *rsa.PrivateKey:
		out := [][]byte{pk.D.Bytes()}
		for _, p := range pk.Primes {
			out = append(out, p.Bytes())
		}
		return out
	case *big.Int:
		return [][]byte{pk.Bytes()}
	}
	t.Fatalf("unexpected private key type %T", k)
	return nil
}
