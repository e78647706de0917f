package app

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestSealer(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	s, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	const rt = "lkrt_the-refresh-token"
	sealed := s.seal("session-a", "refresh", rt)
	if bytes.Contains(sealed, []byte(rt)) || bytes.Contains(sealed, []byte("refresh-token")) {
		t.Fatal("the sealed token contains the plaintext")
	}
	if got, err := s.open("session-a", "refresh", sealed); err != nil || got != rt {
		t.Fatalf("open: %q, %v", got, err)
	}
	if bytes.Equal(sealed, s.seal("session-a", "refresh", rt)) {
		t.Error("sealing twice gave the same bytes (nonce reused?)")
	}
	// Bound to its session and its kind.
	if _, err := s.open("session-b", "refresh", sealed); err == nil {
		t.Error("a token sealed for one session opened for another")
	}
	if _, err := s.open("session-a", "access", sealed); err == nil {
		t.Error("a sealed refresh token opened as an access token")
	}
	// Tampering and another key are detected.
	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 1
	if _, err := s.open("session-a", "refresh", bad); err == nil {
		t.Error("a tampered token opened")
	}
	other, _ := newSealer(bytes.Repeat([]byte{8}, 32))
	if _, err := other.open("session-a", "refresh", sealed); err == nil {
		t.Error("a token opened under another key")
	}
	if _, err := s.open("session-a", "refresh", sealed[:5]); err == nil {
		t.Error("a truncated token opened")
	}
	if _, err := newSealer(key[:16]); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryStore()
	if _, err := m.Get(ctx, "k"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Get of a missing session: %v", err)
	}
	if err := m.Replace(ctx, "k", &Session{}); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Replace of a missing session: %v", err)
	}
	if err := m.Create(ctx, "k", &Session{Subject: "u"}); err != nil {
		t.Fatal(err)
	}
	s, _ := m.Get(ctx, "k")
	s.Subject = "changed" // a copy: the store is unaffected
	if s2, _ := m.Get(ctx, "k"); s2.Subject != "u" {
		t.Error("Get returned the stored session, not a copy")
	}
	if err := m.Replace(ctx, "k", s); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	// A refresh finishing after a sign-out must not bring the session back.
	if err := m.Replace(ctx, "k", s); !errors.Is(err, ErrNoSession) {
		t.Errorf("Replace after Delete: %v", err)
	}
}
