package operator

import (
	"context"
	"errors"
	"time"

	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// The operations below are shared by the CLI and the admin API: listing
// and looking up records as views, families, grants by username, and the
// audit log.

// ListClients returns every client as a view (without secrets).
func ListClients(ctx context.Context, st store.Store) ([]ClientView, error) {
	cs, err := st.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	views := make([]ClientView, 0, len(cs))
	for _, c := range cs {
		views = append(views, View(c))
	}
	return views, nil
}

// GetClient returns one client as a view.
func GetClient(ctx context.Context, st store.Store, id string) (ClientView, error) {
	c, err := st.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return ClientView{}, notFound("no client with id %q", id)
	}
	if err != nil {
		return ClientView{}, err
	}
	return View(c), nil
}

// ListUsers returns every user as a view (without credentials).
func ListUsers(ctx context.Context, st store.Store) ([]UserView, error) {
	us, err := st.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	views := make([]UserView, 0, len(us))
	for _, u := range us {
		views = append(views, ViewUser(u))
	}
	return views, nil
}

// GetUser returns one user, by username, as a view.
func GetUser(ctx context.Context, st store.Store, username string) (UserView, error) {
	u, err := UserByName(ctx, st, username)
	if err != nil {
		return UserView{}, err
	}
	return ViewUser(u), nil
}

// UserGrants is `latchkey grant list`: the applications a user (by
// username) has authorized.
func UserGrants(ctx context.Context, st store.Store, username string, now time.Time) ([]Grant, error) {
	u, err := UserByName(ctx, st, username)
	if err != nil {
		return nil, err
	}
	return Grants(ctx, st, u.ID, now)
}

// RevokeUserGrant is `latchkey grant revoke`: RevokeGrant by username.
func RevokeUserGrant(ctx context.Context, st store.Store, fam *family.Service, username, clientID, detail string) error {
	if clientID == "" {
		return invalid(errors.New("a client id is required"))
	}
	u, err := UserByName(ctx, st, username)
	if err != nil {
		return err
	}
	return RevokeGrant(ctx, st, fam, u.ID, clientID, detail)
}

// Family states in a FamilyView.
const (
	FamilyLive    = "live"    // can be refreshed
	FamilyRevoked = "revoked" // ended; Reason says why
	FamilyExpired = "expired" // idle or absolute lifetime reached; Reason says which
	// FamilyNoRefresh: no refresh token was issued (no offline_access);
	// only its access tokens, until they expire.
	FamilyNoRefresh = "no_refresh_token"
)

// FamilyView describes a refresh-token family for operators. It never
// contains a token.
type FamilyView struct {
	ID                string    `json:"id"`
	ClientID          string    `json:"client_id"`
	UserID            string    `json:"user_id"`
	Scopes            []string  `json:"scopes"`
	State             string    `json:"state"`
	Reason            string    `json:"reason,omitempty"`
	Generation        int64     `json:"generation"`
	DPoPBound         bool      `json:"dpop_bound"`
	AMR               []string  `json:"amr,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	LastUsedAt        time.Time `json:"last_used_at,omitzero"`
	IdleExpiresAt     time.Time `json:"idle_expires_at,omitzero"`
	AbsoluteExpiresAt time.Time `json:"absolute_expires_at,omitzero"`
	RevokedAt         time.Time `json:"revoked_at,omitzero"`
}

// ViewFamily renders f with its state at now.
func ViewFamily(f *store.Family, now time.Time) FamilyView {
	v := FamilyView{
		ID: f.ID, ClientID: f.ClientID, UserID: f.UserID, Scopes: f.Scopes, Generation: f.Generation,
		DPoPBound: f.DPoPJKT != "", AMR: f.AMR, CreatedAt: f.CreatedAt.UTC(), LastUsedAt: f.LastUsedAt.UTC(),
		IdleExpiresAt: f.IdleExpiresAt.UTC(), AbsoluteExpiresAt: f.AbsoluteExpiresAt.UTC(), RevokedAt: f.RevokedAt.UTC(),
	}
	if v.Scopes == nil {
		v.Scopes = []string{}
	}
	switch {
	case !f.RevokedAt.IsZero():
		v.State, v.Reason = FamilyRevoked, f.RevokeReason
	case !f.Offline:
		v.State = FamilyNoRefresh
	case !now.Before(f.AbsoluteExpiresAt):
		v.State, v.Reason = FamilyExpired, oauth.ReasonExpiredAbsolute
	case !now.Before(f.IdleExpiresAt):
		v.State, v.Reason = FamilyExpired, oauth.ReasonExpiredIdle
	default:
		v.State = FamilyLive
	}
	return v
}

// FamilyQuery selects families: of a user (by username), of a client, or
// both. One of them is required.
type FamilyQuery struct {
	Username string
	ClientID string
	// LiveOnly keeps only families in state live.
	LiveOnly bool
}

// Families lists the families q selects, oldest first.
func Families(ctx context.Context, st store.Store, q FamilyQuery, now time.Time) ([]FamilyView, error) {
	if q.Username == "" && q.ClientID == "" {
		return nil, invalid(errors.New("give a username, a client id or both"))
	}
	f := store.FamilyFilter{ClientID: q.ClientID, LiveOnly: q.LiveOnly}
	if q.Username != "" {
		u, err := UserByName(ctx, st, q.Username)
		if err != nil {
			return nil, err
		}
		f.UserID = u.ID
	}
	fams, err := st.ListFamilies(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]FamilyView, 0, len(fams))
	for _, fam := range fams {
		v := ViewFamily(fam, now)
		if q.LiveOnly && v.State != FamilyLive {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// RevokeFamily ends one family (operator_revoked). It reports whether the
// family was alive; ending an ended family changes nothing.
func RevokeFamily(ctx context.Context, st store.Store, fam *family.Service, id string) (bool, error) {
	if _, err := st.GetFamily(ctx, id); errors.Is(err, store.ErrNotFound) {
		return false, notFound("no refresh token family with id %q", id)
	} else if err != nil {
		return false, err
	}
	ids, err := fam.End(ctx, store.FamilyFilter{ID: id}, oauth.ReasonOperator, "revoked by an operator")
	return len(ids) > 0, err
}

// RevokeClientTokens ends every family of a client (operator_revoked)
// without deleting the client.
func RevokeClientTokens(ctx context.Context, st store.Store, fam *family.Service, clientID string) (int, error) {
	if _, err := st.GetClient(ctx, clientID); errors.Is(err, store.ErrNotFound) {
		return 0, notFound("no client with id %q", clientID)
	} else if err != nil {
		return 0, err
	}
	ids, err := fam.End(ctx, store.FamilyFilter{ClientID: clientID}, oauth.ReasonOperator, "revoked by an operator")
	return len(ids), err
}

// MaxAuditLimit bounds one audit listing.
const MaxAuditLimit = 10000

// AuditQuery selects audit events, newest first.
type AuditQuery struct {
	Username string
	ClientID string
	FamilyID string
	Limit    int // 0: 100
}

// AuditView is one audit event as the CLI and the admin API show it.
type AuditView struct {
	ID       int64  `json:"id"`
	Time     string `json:"time"`
	Type     string `json:"type"`
	UserID   string `json:"user_id,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	FamilyID string `json:"family_id,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// ViewAudit renders an event.
func ViewAudit(e *store.AuditEvent) AuditView {
	return AuditView{e.ID, e.Time.UTC().Format(time.RFC3339Nano), e.Type, e.UserID, e.ClientID, e.FamilyID, e.Reason, e.Detail}
}

// Audit is `latchkey audit list`.
func Audit(ctx context.Context, st store.Store, q AuditQuery) ([]AuditView, error) {
	if q.Limit == 0 {
		q.Limit = 100
	}
	if q.Limit < 1 || q.Limit > MaxAuditLimit {
		return nil, invalid(errors.New("the limit must be between 1 and 10000"))
	}
	f := store.AuditFilter{ClientID: q.ClientID, FamilyID: q.FamilyID, Limit: q.Limit}
	if q.Username != "" {
		u, err := UserByName(ctx, st, q.Username)
		if err != nil {
			return nil, err
		}
		f.UserID = u.ID
	}
	evs, err := st.ListAudit(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]AuditView, 0, len(evs))
	for _, e := range evs {
		out = append(out, ViewAudit(e))
	}
	return out, nil
}
