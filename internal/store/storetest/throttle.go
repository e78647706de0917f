package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/store"
)

func testThrottle(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := newID("thr")
	now := time.Now().UTC().Truncate(time.Millisecond)
	if n, _, err := s.GetThrottle(ctx, key, now); err != nil || n != 0 {
		t.Fatalf("fresh key: %d %v", n, err)
	}
	for i := 1; i <= 3; i++ {
		n, end, err := s.HitThrottle(ctx, key, now.Add(time.Duration(i)*time.Second), time.Minute)
		if err != nil || n != i || !end.Equal(now.Add(time.Second+time.Minute)) {
			t.Fatalf("hit %d: %d %v %v", i, n, end, err)
		}
	}
	if n, _, _ := s.GetThrottle(ctx, key, now.Add(30*time.Second)); n != 3 {
		t.Fatalf("get in window: %d", n)
	}
	// A new window starts after the old one ends.
	later := now.Add(2 * time.Minute)
	if n, _, _ := s.GetThrottle(ctx, key, later); n != 0 {
		t.Fatalf("get after window: %d", n)
	}
	if n, _, _ := s.HitThrottle(ctx, key, later, time.Minute); n != 1 {
		t.Fatalf("hit after window: %d", n)
	}
	if err := s.ResetThrottle(ctx, key); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := s.GetThrottle(ctx, key, later); n != 0 {
		t.Fatalf("after reset: %d", n)
	}
	// Concurrent hits are all counted.
	key2 := newID("thr")
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.HitThrottle(ctx, key2, now, time.Minute); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n, _, _ := s.GetThrottle(ctx, key2, now); n != 20 {
		t.Fatalf("concurrent hits counted %d, want 20", n)
	}
}
