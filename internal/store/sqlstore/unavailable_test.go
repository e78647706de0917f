package sqlstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// Errors that mean "the database is not reachable right now" carry
// store.ErrUnavailable (the HTTP layer answers 503 and clients retry);
// errors that are answers — not found, conflicts, a client that went away —
// do not.
func TestUnavailableClassification(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			s := e.open(t)
			now := time.Now().UTC().Truncate(time.Millisecond)
			c := &store.Client{ID: "c1", Name: "C", RedirectURIs: []string{"https://a.example/cb"}, CreatedAt: now, UpdatedAt: now}
			if err := s.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
			answers := map[string]error{}
			_, answers["not found"] = s.GetClient(ctx, "nobody")
			answers["conflict"] = s.CreateClient(ctx, c)
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			_, answers["cancelled request"] = s.GetClient(cancelled, "c1")
			for what, err := range answers {
				if err == nil || errors.Is(err, store.ErrUnavailable) {
					t.Errorf("%s: %v, want an error without ErrUnavailable", what, err)
				}
			}

			expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
			defer cancel2()
			_, err := s.GetClient(expired, "c1")
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("deadline exceeded: %v", err)
			}
			s.Close()
			_, err = s.GetClient(ctx, "c1")
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("closed pool: %v", err)
			}
		})
	}
}
