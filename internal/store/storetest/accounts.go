package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

var errAbort = errors.New("storetest: update aborted")

func fullClient() *store.Client {
	t := now()
	return &store.Client{
		ID:              newID("client"),
		Name:            "Example App",
		SecretHash:      "sha256$abc",
		Public:          true,
		RedirectURIs:    []string{"https://app.example/cb", "https://app.example/cb?x=1 y", "http://127.0.0.1:8080/"},
		GrantTypes:      []string{"authorization_code", "refresh_token"},
		Scopes:          []string{"openid", "profile", "offline_access"},
		RefreshIdle:     36 * time.Hour,
		RefreshAbsolute: 90 * 24 * time.Hour,
		ReuseReportOnly: true,
		RequireMFA:      true,
		PolicyVersion:   3,
		RequireDPoP:     true,
		JWKS:            `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
		IDTokenAlg:      "RS256",
		CreatedAt:       t.Add(-time.Hour),
		UpdatedAt:       t,
	}
}

func testClients(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := fullClient()
	must(t, s.CreateClient(ctx, c), "create")
	got, err := s.GetClient(ctx, c.ID)
	must(t, err, "get")
	wantEqual(t, got, c, "client round trip")

	minimal := &store.Client{ID: newID("client"), CreatedAt: now(), UpdatedAt: now()}
	must(t, s.CreateClient(ctx, minimal), "create minimal")
	got, err = s.GetClient(ctx, minimal.ID)
	must(t, err, "get minimal")
	wantEqual(t, got, minimal, "minimal client round trip")

	dup := fullClient()
	dup.ID = c.ID
	wantErr(t, s.CreateClient(ctx, dup), store.ErrConflict, "create with existing id")
	_, err = s.GetClient(ctx, newID("client"))
	wantErr(t, err, store.ErrNotFound, "get unknown")

	list, err := s.ListClients(ctx)
	must(t, err, "list")
	seen := 0
	for _, l := range list {
		if l.ID == c.ID || l.ID == minimal.ID {
			seen++
		}
	}
	if seen != 2 {
		t.Fatalf("list: found %d of the 2 created clients among %d", seen, len(list))
	}

	// A successful update is saved and returned.
	later := now().Add(time.Minute)
	updated, err := s.UpdateClient(ctx, c.ID, func(cur *store.Client) error {
		wantEqual(t, cur, c, "record passed to update")
		cur.Name = "Renamed"
		cur.Scopes = []string{"openid"}
		cur.RedirectURIs = nil
		cur.PolicyVersion++
		cur.RequireMFA = false
		cur.IDTokenAlg = "EdDSA"
		cur.UpdatedAt = later
		return nil
	})
	must(t, err, "update")
	want := *c
	want.Name, want.Scopes, want.RedirectURIs = "Renamed", []string{"openid"}, nil
	want.PolicyVersion, want.RequireMFA, want.UpdatedAt = 4, false, later
	want.IDTokenAlg = "EdDSA"
	wantEqual(t, updated, &want, "update result")
	got, err = s.GetClient(ctx, c.ID)
	must(t, err, "get after update")
	wantEqual(t, got, &want, "client after update")

	// An update whose fn fails changes nothing and returns fn's error.
	_, err = s.UpdateClient(ctx, c.ID, func(cur *store.Client) error {
		cur.Name = "Should not be saved"
		cur.PolicyVersion = 99
		return errAbort
	})
	wantErr(t, err, errAbort, "update aborted by fn")
	got, err = s.GetClient(ctx, c.ID)
	must(t, err, "get after aborted update")
	wantEqual(t, got, &want, "client after aborted update")

	called := false
	_, err = s.UpdateClient(ctx, newID("client"), func(*store.Client) error { called = true; return nil })
	wantErr(t, err, store.ErrNotFound, "update unknown")
	if called {
		t.Fatal("update unknown: fn was called")
	}

	// Deleting a client removes its consents, and only its consents.
	userID := newID("user")
	other := newID("client")
	for _, cid := range []string{c.ID, other} {
		must(t, s.PutConsent(ctx, &store.Consent{UserID: userID, ClientID: cid, Scopes: []string{"openid"},
			CreatedAt: now(), UpdatedAt: now()}), "put consent")
	}
	must(t, s.DeleteClient(ctx, c.ID), "delete")
	_, err = s.GetClient(ctx, c.ID)
	wantErr(t, err, store.ErrNotFound, "get deleted")
	_, err = s.GetConsent(ctx, userID, c.ID)
	wantErr(t, err, store.ErrNotFound, "consent of deleted client")
	_, err = s.GetConsent(ctx, userID, other)
	must(t, err, "consent of another client")
	wantErr(t, s.DeleteClient(ctx, c.ID), store.ErrNotFound, "delete again")
}

func fullUser() *store.User {
	t := now()
	return &store.User{
		ID:              newID("user"),
		Username:        newID("alice"),
		PasswordHash:    "argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Name:            "Alice Example",
		Email:           "alice@example.com",
		Disabled:        true,
		TOTPSecret:      []byte{0, 1, 2, 0xff, 0xfe, 0},
		CredentialEpoch: 7,
		CreatedAt:       t.Add(-time.Hour),
		UpdatedAt:       t,
	}
}

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := fullUser()
	must(t, s.CreateUser(ctx, u), "create")
	got, err := s.GetUser(ctx, u.ID)
	must(t, err, "get")
	wantEqual(t, got, u, "user round trip")
	got, err = s.GetUserByUsername(ctx, u.Username)
	must(t, err, "get by username")
	wantEqual(t, got, u, "user by username")

	plain := &store.User{ID: newID("user"), Username: newID("bob"), CreatedAt: now(), UpdatedAt: now()}
	must(t, s.CreateUser(ctx, plain), "create without TOTP")
	got, err = s.GetUser(ctx, plain.ID)
	must(t, err, "get without TOTP")
	wantEqual(t, got, plain, "user without TOTP")
	if got.TOTPSecret != nil {
		t.Fatalf("TOTPSecret: got %#v, want nil when not enrolled", got.TOTPSecret)
	}

	for _, tc := range []struct {
		name         string
		id, username string
	}{
		{"same id", u.ID, newID("carol")},
		{"same username", newID("user"), u.Username},
	} {
		dup := fullUser()
		dup.ID, dup.Username = tc.id, tc.username
		wantErr(t, s.CreateUser(ctx, dup), store.ErrConflict, "create with "+tc.name)
	}
	_, err = s.GetUser(ctx, newID("user"))
	wantErr(t, err, store.ErrNotFound, "get unknown")
	_, err = s.GetUserByUsername(ctx, newID("nobody"))
	wantErr(t, err, store.ErrNotFound, "get unknown username")

	list, err := s.ListUsers(ctx)
	must(t, err, "list")
	if !slices.ContainsFunc(list, func(l *store.User) bool { return l.ID == u.ID }) ||
		!slices.ContainsFunc(list, func(l *store.User) bool { return l.ID == plain.ID }) {
		t.Fatalf("list: created users missing among %d", len(list))
	}

	newName := newID("alice2")
	updated, err := s.UpdateUser(ctx, u.ID, func(cur *store.User) error {
		cur.Username = newName
		cur.CredentialEpoch++
		cur.TOTPSecret = nil
		cur.Disabled = false
		return nil
	})
	must(t, err, "update")
	want := *u
	want.Username, want.CredentialEpoch, want.TOTPSecret, want.Disabled = newName, 8, nil, false
	wantEqual(t, updated, &want, "update result")
	got, err = s.GetUserByUsername(ctx, newName)
	must(t, err, "get by new username")
	wantEqual(t, got, &want, "user after update")
	_, err = s.GetUserByUsername(ctx, u.Username)
	wantErr(t, err, store.ErrNotFound, "get by old username")

	// Taking another user's username is a conflict and saves nothing.
	_, err = s.UpdateUser(ctx, u.ID, func(cur *store.User) error {
		cur.Username = plain.Username
		cur.Name = "Should not be saved"
		return nil
	})
	wantErr(t, err, store.ErrConflict, "update to a taken username")
	_, err = s.UpdateUser(ctx, u.ID, func(cur *store.User) error { cur.Name = "no"; return errAbort })
	wantErr(t, err, errAbort, "update aborted by fn")
	got, err = s.GetUser(ctx, u.ID)
	must(t, err, "get after failed updates")
	wantEqual(t, got, &want, "user after failed updates")
	_, err = s.UpdateUser(ctx, newID("user"), func(*store.User) error { return nil })
	wantErr(t, err, store.ErrNotFound, "update unknown")
}

func testConsents(t *testing.T, s store.Store) {
	ctx := t.Context()
	userID, c1, c2 := newID("user"), newID("client-a"), newID("client-b")
	t1 := now().Add(-time.Hour)
	first := &store.Consent{UserID: userID, ClientID: c1, Scopes: []string{"openid", "email"}, CreatedAt: t1, UpdatedAt: t1}
	must(t, s.PutConsent(ctx, first), "put")
	got, err := s.GetConsent(ctx, userID, c1)
	must(t, err, "get")
	wantEqual(t, got, &store.Consent{UserID: userID, ClientID: c1, Scopes: []string{"openid", "email"},
		CreatedAt: t1, UpdatedAt: t1}, "consent round trip")

	// Putting again replaces scopes and UpdatedAt but keeps CreatedAt.
	t2 := now()
	must(t, s.PutConsent(ctx, &store.Consent{UserID: userID, ClientID: c1, Scopes: []string{"openid", "profile"},
		CreatedAt: t2, UpdatedAt: t2}), "put again")
	got, err = s.GetConsent(ctx, userID, c1)
	must(t, err, "get after second put")
	wantEqual(t, got, &store.Consent{UserID: userID, ClientID: c1, Scopes: []string{"openid", "profile"},
		CreatedAt: t1, UpdatedAt: t2}, "consent after second put")

	must(t, s.PutConsent(ctx, &store.Consent{UserID: userID, ClientID: c2, Scopes: []string{"openid"},
		CreatedAt: t2, UpdatedAt: t2}), "put second client")
	must(t, s.PutConsent(ctx, &store.Consent{UserID: newID("user"), ClientID: c1, Scopes: []string{"openid"},
		CreatedAt: t2, UpdatedAt: t2}), "put other user")
	list, err := s.ListConsents(ctx, userID)
	must(t, err, "list")
	if len(list) != 2 || list[0].ClientID != c1 || list[1].ClientID != c2 {
		t.Fatalf("list: got %d consents %v, want %s and %s in that order", len(list), list, c1, c2)
	}
	wantEqual(t, list[0], got, "listed consent")

	must(t, s.DeleteConsent(ctx, userID, c1), "delete")
	_, err = s.GetConsent(ctx, userID, c1)
	wantErr(t, err, store.ErrNotFound, "get deleted")
	must(t, s.DeleteConsent(ctx, userID, c1), "delete again")
	list, err = s.ListConsents(ctx, userID)
	must(t, err, "list after delete")
	if len(list) != 1 || list[0].ClientID != c2 {
		t.Fatalf("list after delete: got %v, want only %s", list, c2)
	}
	list, err = s.ListConsents(ctx, newID("user"))
	must(t, err, "list for unknown user")
	if len(list) != 0 {
		t.Fatalf("list for unknown user: got %d consents", len(list))
	}
}

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	created := now().Add(-time.Hour)
	k := &store.SigningKey{
		ID:         newID("kid"),
		Alg:        "ES256",
		State:      store.KeyNext,
		PrivateKey: []byte("encrypted\x00private"),
		PublicKey:  []byte(`{"kty":"EC","crv":"P-256"}`),
		CreatedAt:  created,
	}
	must(t, s.CreateSigningKey(ctx, k), "create")
	k2 := &store.SigningKey{ID: newID("kid"), Alg: "RS256", State: store.KeyNext,
		PrivateKey: []byte{1}, PublicKey: []byte{2}, CreatedAt: created.Add(time.Second)}
	must(t, s.CreateSigningKey(ctx, k2), "create second")
	wantErr(t, s.CreateSigningKey(ctx, &store.SigningKey{ID: k.ID, Alg: "ES256", State: store.KeyNext,
		CreatedAt: created}), store.ErrConflict, "create with existing kid")

	list, err := s.ListSigningKeys(ctx)
	must(t, err, "list")
	i := slices.IndexFunc(list, func(l *store.SigningKey) bool { return l.ID == k.ID })
	j := slices.IndexFunc(list, func(l *store.SigningKey) bool { return l.ID == k2.ID })
	if i < 0 || j < 0 {
		t.Fatalf("list: created keys missing among %d", len(list))
	}
	wantEqual(t, list[i], k, "listed key")

	activated := now()
	got, err := s.UpdateSigningKey(ctx, k.ID, func(cur *store.SigningKey) error {
		if cur.State != store.KeyNext {
			return errors.New("not next")
		}
		cur.State, cur.ActivatedAt = store.KeyActive, activated
		return nil
	})
	must(t, err, "activate")
	want := *k
	want.State, want.ActivatedAt = store.KeyActive, activated
	wantEqual(t, got, &want, "activated key")

	_, err = s.UpdateSigningKey(ctx, k.ID, func(cur *store.SigningKey) error {
		cur.State = store.KeyRetired
		return errAbort
	})
	wantErr(t, err, errAbort, "update aborted by fn")
	list, err = s.ListSigningKeys(ctx)
	must(t, err, "list after updates")
	i = slices.IndexFunc(list, func(l *store.SigningKey) bool { return l.ID == k.ID })
	wantEqual(t, list[i], &want, "key after aborted update")
	_, err = s.UpdateSigningKey(ctx, newID("kid"), func(*store.SigningKey) error { return nil })
	wantErr(t, err, store.ErrNotFound, "update unknown")
}
