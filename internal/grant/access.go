package grant

import (
	"context"
	"errors"
	"time"

	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// ErrInactive means an access token is not (or no longer) valid.
var ErrInactive = errors.New("grant: access token inactive")

// ActiveAccessToken verifies a JWT access token we issued and reports it
// inactive when it is expired, revoked on its own, or from a family that has
// ended (so revocation takes effect at once for userinfo and introspection).
// It also returns the token's family and the family's user (the token's
// subject), which is nil when the user no longer exists.
func ActiveAccessToken(ctx context.Context, st store.Store, km *keys.Manager, issuer string, now time.Time, raw string) (*token.AccessClaims, *store.Family, *store.User, error) {
	if raw == "" || len(raw) > token.MaxLen {
		return nil, nil, nil, ErrInactive
	}
	var c token.AccessClaims
	if err := km.Verify(ctx, raw, token.TypeAccess, &c); err != nil {
		return nil, nil, nil, ErrInactive
	}
	if c.Issuer != issuer || now.Unix() >= c.Expiry || c.FamilyID == "" {
		return nil, nil, nil, ErrInactive
	}
	f, u, revoked, err := st.GetAccessTokenState(ctx, c.FamilyID, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil, ErrInactive
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if !f.RevokedAt.IsZero() || f.UserID != c.Subject || revoked {
		return nil, nil, nil, ErrInactive
	}
	return &c, f, u, nil
}
