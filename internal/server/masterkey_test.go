package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"testing"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/server"
	"github.com/latchkey-dev/latchkey/internal/testdb"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

// TestMasterKeyRotation follows the procedure of docs/SECURITY.md: sign in
// under the old master key, re-seal with `keys rotate-master` (its
// operation), restart with the new key and the old one in
// LATCHKEY_OLD_MASTER_KEYS. Refresh tokens and second factors from before
// keep working; without the old key, only tokens minted before the
// rotation stop verifying.
func TestMasterKeyRotation(t *testing.T) {
	ctx := context.Background()
	st := testdb.SQLite(t)
	oldKey, newKey := bytes.Repeat([]byte{0xA1}, 32), bytes.Repeat([]byte{0xB2}, 32)
	before := testserver.StartOn(t, st, testserver.WithMasterKey(oldKey))
	addCarol(t, before)
	tok := webLogin(t, before, testserver.Alice, testserver.AlicePW)
	tok2 := webLogin(t, before, testserver.Bob, testserver.BobPW)

	// The new key alone cannot open what the old one sealed: an instance
	// started on it before the re-sealing fails at once.
	if _, err := server.New(ctx, before.Config, server.Options{Store: st, MasterKey: newKey, Log: slog.New(slog.DiscardHandler)}); err == nil {
		t.Fatal("a server with the wrong master key started")
	}

	res, err := operator.RotateMaster(ctx, st, newKey, []keys.MasterKey{oldKey})
	if err != nil {
		t.Fatal(err)
	}
	if res.KeysResealed == 0 || res.FactorsResealed != 1 {
		t.Fatalf("rotation %+v", res)
	}

	oldB64 := base64.StdEncoding.EncodeToString(oldKey)
	// The same deployment restarted: same issuer, same clock.
	after := testserver.StartOn(t, st, testserver.WithMasterKey(newKey), testserver.WithoutSeed(), testserver.WithClock(before.Clock),
		testserver.WithConfig(func(c *config.Config) { c.OldMasterKeys, c.Issuer = oldB64, before.URL }))
	// A refresh token minted under the old key still refreshes; its
	// successor is minted under the new key.
	r := mustRefresh(t, after, tok.RefreshToken)
	// Tokens signed before the rotation verify (the signing keys are the
	// same keys, re-sealed).
	if !active(introspect(after, tok.AccessToken)) {
		t.Error("an access token from before the rotation is inactive")
	}
	// The MFA user signs in: the factor opens under the new key.
	b := after.Browser()
	b.OTP = totpAnswer(t, after, carolTOTP)
	mfaLogin(t, after, b, after.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access"), carol, carolPW)

	// Once the old key is dropped, new tokens work and the ones minted
	// under the old key are unknown.
	dropped := testserver.StartOn(t, st, testserver.WithMasterKey(newKey), testserver.WithoutSeed(), testserver.WithClock(before.Clock))
	mustRefresh(t, dropped, r.Str("refresh_token"))
	wantReason(t, refreshWeb(dropped, tok2.RefreshToken), oauth.ReasonUnknown)
}
