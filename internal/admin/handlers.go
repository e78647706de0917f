package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

// duration parses an optional duration field ("" → 0).
func duration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return 0, badRequest("%s: %v", field, err)
	}
	return d, nil
}

func (h *Handler) listClients(w http.ResponseWriter, r *http.Request) error {
	cs, err := operator.ListClients(r.Context(), h.Store)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ClientList{cs})
}

func (h *Handler) getClient(w http.ResponseWriter, r *http.Request) error {
	v, err := operator.GetClient(r.Context(), h.Store, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (h *Handler) createClient(w http.ResponseWriter, r *http.Request) error {
	var req ClientCreate
	if err := decode(w, r, &req); err != nil {
		return err
	}
	idle, err := duration("refresh_idle", req.RefreshIdle)
	if err != nil {
		return err
	}
	absolute, err := duration("refresh_absolute", req.RefreshAbsolute)
	if err != nil {
		return err
	}
	spec := operator.ClientSpec{
		ID: req.ClientID, Name: req.Name, Secret: req.ClientSecret, Public: req.Public, RedirectURIs: req.RedirectURIs,
		Scopes: req.Scopes, RefreshIdle: idle, RefreshAbsolute: absolute, ReuseReportOnly: req.ReuseReportOnly,
		RequireMFA: req.RequireMFA, RequireDPoP: req.RequireDPoP, JWKS: req.JWKS,
		IDTokenAlg: req.IDTokenAlg, KeyAlgs: h.keyAlgs(),
	}
	if spec.Scopes != nil && len(spec.Scopes) == 0 {
		spec.Scopes = []string{} // explicit empty list: rejected by the operator, not defaulted
	}
	v, err := operator.CreateClient(r.Context(), h.Store, spec, h.now())
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/clients/"+url.PathEscape(v.ClientID))
	return writeJSON(w, http.StatusCreated, v)
}

// keyAlgs are the algorithms the server has signing keys for: those of
// its own key manager (none without one).
func (h *Handler) keyAlgs() []string {
	if h.Keys == nil {
		return nil
	}
	return h.Keys.Algorithms()
}

func (h *Handler) updateClient(w http.ResponseWriter, r *http.Request) error {
	var req ClientUpdate
	if err := decode(w, r, &req); err != nil {
		return err
	}
	u := operator.ClientUpdate{Name: req.Name, ReuseReportOnly: req.ReuseReportOnly, RequireMFA: req.RequireMFA,
		RequireDPoP: req.RequireDPoP, JWKS: req.JWKS, IDTokenAlg: req.IDTokenAlg, KeyAlgs: h.keyAlgs()}
	if req.RedirectURIs != nil {
		u.RedirectURIs = append([]string{}, *req.RedirectURIs...)
	}
	if req.Scopes != nil {
		u.Scopes = append([]string{}, *req.Scopes...)
	}
	for _, d := range []struct {
		field string
		in    *string
		out   **time.Duration
	}{{"refresh_idle", req.RefreshIdle, &u.RefreshIdle}, {"refresh_absolute", req.RefreshAbsolute, &u.RefreshAbsolute}} {
		if d.in == nil {
			continue
		}
		v, err := config.ParseDuration(*d.in)
		if err != nil {
			return badRequest("%s: %v", d.field, err)
		}
		*d.out = &v
	}
	v, err := operator.UpdateClient(r.Context(), h.Store, r.PathValue("id"), u, h.now())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (h *Handler) deleteClient(w http.ResponseWriter, r *http.Request) error {
	if err := operator.DeleteClient(r.Context(), h.Store, h.Families, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := operator.ListUsers(r.Context(), h.Store)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, UserList{us})
}

func (h *Handler) getUser(w http.ResponseWriter, r *http.Request) error {
	v, err := operator.GetUser(r.Context(), h.Store, r.PathValue("username"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (h *Handler) createUser(w http.ResponseWriter, r *http.Request) error {
	var req UserCreate
	if err := decode(w, r, &req); err != nil {
		return err
	}
	v, err := operator.CreateUser(r.Context(), h.Store, operator.UserSpec{Username: req.Username, Password: req.Password, Name: req.Name, Email: req.Email}, h.now())
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/users/"+url.PathEscape(v.Username))
	return writeJSON(w, http.StatusCreated, v)
}

func (h *Handler) setDisabled(disabled bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("username")
		if err := operator.SetDisabled(r.Context(), h.Store, h.Families, name, disabled, h.now()); err != nil {
			return err
		}
		v, err := operator.GetUser(r.Context(), h.Store, name)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, v)
	}
}

func (h *Handler) setPassword(w http.ResponseWriter, r *http.Request) error {
	var req PasswordChange
	if err := decode(w, r, &req); err != nil {
		return err
	}
	n, err := operator.SetPassword(r.Context(), h.Store, h.Families, r.PathValue("username"), req.Password,
		h.RevokeOnPasswordChange && !req.KeepSessions, h.now())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Ended{n})
}

func (h *Handler) revokeSessions(w http.ResponseWriter, r *http.Request) error {
	n, err := operator.RevokeSessions(r.Context(), h.Store, h.Families, r.PathValue("username"), h.now())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Ended{n})
}

func (h *Handler) listGrants(w http.ResponseWriter, r *http.Request) error {
	gs, err := operator.UserGrants(r.Context(), h.Store, r.PathValue("username"), h.now())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, GrantList{gs})
}

func (h *Handler) revokeGrant(w http.ResponseWriter, r *http.Request) error {
	err := operator.RevokeUserGrant(r.Context(), h.Store, h.Families, r.PathValue("username"), r.PathValue("client_id"),
		"revoked by an operator (admin API)")
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// query returns the single value of a query parameter, refusing repeats
// and unknown parameters.
func query(r *http.Request, allowed ...string) (map[string]string, error) {
	out := map[string]string{}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	for k, vs := range r.URL.Query() {
		if !ok[k] {
			return nil, badRequest("unknown query parameter %q", k)
		}
		if len(vs) > 1 {
			return nil, badRequest("query parameter %q must not be repeated", k)
		}
		out[k] = vs[0]
	}
	return out, nil
}

func (h *Handler) listFamilies(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "username", "client_id", "live")
	if err != nil {
		return err
	}
	live := false
	if s, ok := q["live"]; ok {
		if live, err = strconv.ParseBool(s); err != nil {
			return badRequest("live must be true or false")
		}
	}
	fs, err := operator.Families(r.Context(), h.Store, operator.FamilyQuery{Username: q["username"], ClientID: q["client_id"], LiveOnly: live}, h.now())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, FamilyList{fs})
}

func (h *Handler) revokeFamilies(w http.ResponseWriter, r *http.Request) error {
	var req FamiliesRevoke
	if err := decode(w, r, &req); err != nil {
		return err
	}
	var (
		n   int
		err error
	)
	switch {
	case req.Username != "":
		n, err = operator.RevokeTokens(r.Context(), h.Store, h.Families, req.Username, req.ClientID)
	case req.ClientID != "":
		n, err = operator.RevokeClientTokens(r.Context(), h.Store, h.Families, req.ClientID)
	default:
		return badRequest("give a username, a client_id or both")
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Ended{n})
}

func (h *Handler) revokeFamily(w http.ResponseWriter, r *http.Request) error {
	ok, err := operator.RevokeFamily(r.Context(), h.Store, h.Families, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, FamilyRevoked{ok})
}

func (h *Handler) listAudit(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "username", "client_id", "family_id", "limit")
	if err != nil {
		return err
	}
	aq := operator.AuditQuery{Username: q["username"], ClientID: q["client_id"], FamilyID: q["family_id"]}
	if s, ok := q["limit"]; ok {
		if aq.Limit, err = strconv.Atoi(s); err != nil || aq.Limit < 1 {
			return badRequest("limit must be a number between 1 and %d", operator.MaxAuditLimit)
		}
	}
	evs, err := operator.Audit(r.Context(), h.Store, aq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, AuditList{evs})
}

func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request) error {
	recs, err := h.Store.ListSigningKeys(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, KeyList{keys.Describe(recs, h.now(), h.KeyRetention)})
}

// rotateKeys is `latchkey keys rotate` on the server's own key manager,
// which then reloads so this instance signs with the new key at once
// (others pick it up at their next reload).
func (h *Handler) rotateKeys(w http.ResponseWriter, r *http.Request) error {
	if h.Keys == nil {
		return &apiError{status: http.StatusNotFound, typ: "not-found", detail: "Key rotation is not available on this listener."}
	}
	var req KeysRotate
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			return err
		}
	}
	minAge := keys.MinNextAge
	if req.Force {
		minAge = 0
	}
	res, err := h.Keys.Rotate(r.Context(), minAge)
	if err != nil {
		if errors.Is(err, keys.ErrNotReady) {
			return fmt.Errorf("%w (a next key is published %s before it can be activated; retry later or use force)", err, keys.MinNextAge)
		}
		return err
	}
	if err := h.Keys.Reload(r.Context()); err != nil {
		h.Log.Warn("reload keys after rotation", "error", err)
	}
	return writeJSON(w, http.StatusOK, res)
}
