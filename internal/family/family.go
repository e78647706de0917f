// Package family is the one place where refresh-token families end and where
// audit events are written. Every path that ends a family — the revocation
// endpoint, reuse detection, expiry, withdrawn consent, a disabled user, a
// deleted client, a policy change, an operator — calls End, so the reason is
// uniform, stored on the family, and audited.
package family

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// Audit event types.
const (
	EventIssued        = "family.issued"
	EventRotated       = "refresh.rotated"
	EventGraceReplay   = "refresh.grace_replay"
	EventRefused       = "refresh.refused"
	EventEnded         = "family.ended"
	EventReuseReported = "refresh.reuse_reported"
	EventCodeReplayed  = "code.replayed"
	EventAccessRevoked = "access_token.revoked"
	EventConsent       = "consent.granted"
	EventConsentEnded  = "consent.withdrawn"
)

// Service ends families and records audit events.
type Service struct {
	Store store.Store
	Log   *slog.Logger
	Now   func() time.Time
	// Observe, when set, sees every audit event after it was stored (or
	// failed to be): metrics count them and the audit webhook is nudged.
	// It runs on the request path, so it must not block.
	Observe func(*store.AuditEvent)
}

// End revokes every live family matching f with reason and audits each one.
// It returns the ids it ended.
func (s *Service) End(ctx context.Context, f store.FamilyFilter, reason, detail string) ([]string, error) {
	now := s.Now().UTC().Truncate(time.Millisecond)
	ids, err := s.Store.RevokeFamilies(ctx, f, reason, now)
	if err != nil {
		return nil, fmt.Errorf("family: end: %w", err)
	}
	for _, id := range ids {
		ev := &store.AuditEvent{Type: EventEnded, FamilyID: id, UserID: f.UserID, ClientID: f.ClientID, Reason: reason, Detail: detail}
		if f.UserID == "" || f.ClientID == "" {
			if fam, err := s.Store.GetFamily(ctx, id); err == nil {
				ev.UserID, ev.ClientID = fam.UserID, fam.ClientID
			}
		}
		s.Audit(ctx, ev)
	}
	return ids, nil
}

// Audit stores an event and mirrors it to the log. Storage failures are
// logged, not returned: the audit trail must not turn a refusal into a 5xx.
func (s *Service) Audit(ctx context.Context, ev *store.AuditEvent) {
	s.record(ctx, s.Stamp(ev), true)
}

// Stamp sets ev's time to now when it has none, and returns ev.
func (s *Service) Stamp(ev *store.AuditEvent) *store.AuditEvent {
	if ev.Time.IsZero() {
		ev.Time = s.Now().UTC().Truncate(time.Millisecond)
	}
	return ev
}

// Stored mirrors to the log (and Observe) an event the caller has already
// stored, e.g. with store.RotateFamilyAudited.
func (s *Service) Stored(ctx context.Context, ev *store.AuditEvent) {
	s.record(ctx, ev, false)
}

func (s *Service) record(ctx context.Context, ev *store.AuditEvent, persist bool) {
	attrs := []slog.Attr{slog.String("event", ev.Type)}
	if id := httpx.RequestID(ctx); id != "" {
		attrs = append(attrs, slog.String("request_id", id))
	}
	if s.Observe != nil {
		defer s.Observe(ev)
	}
	for _, kv := range [][2]string{{"user_id", ev.UserID}, {"client_id", ev.ClientID}, {"family_id", ev.FamilyID}, {"reason", ev.Reason}, {"detail", ev.Detail}} {
		if kv[1] != "" {
			attrs = append(attrs, slog.String(kv[0], kv[1]))
		}
	}
	if persist {
		if err := s.Store.AppendAudit(ctx, ev); err != nil {
			attrs = append(attrs, slog.String("store_error", err.Error()))
			s.Log.LogAttrs(ctx, slog.LevelError, "audit", attrs...)
			return
		}
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}
