// Package server assembles Latchkey: it builds every component from the
// configuration and a store, mounts the routes, and runs background work
// (the sweeper). cmd/latchkey only parses flags and calls it.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey-dev/latchkey/internal/account"
	"github.com/latchkey-dev/latchkey/internal/authorize"
	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/dpop"
	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/grant"
	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/metrics"
	"github.com/latchkey-dev/latchkey/internal/mfa"
	"github.com/latchkey-dev/latchkey/internal/session"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/throttle"
	"github.com/latchkey-dev/latchkey/internal/token"
	"github.com/latchkey-dev/latchkey/internal/web"
)

// Server is a configured Latchkey instance.
type Server struct {
	cfg      config.Config
	issuer   string
	store    store.Store
	log      *slog.Logger
	now      func() time.Time
	keys     *keys.Manager
	families *family.Service
	web      *web.Renderer
	dpop     *dpop.Verifier
	handler  http.Handler
}

// Options are the dependencies New needs besides the configuration.
type Options struct {
	Store     store.Store
	MasterKey keys.MasterKey
	Log       *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics, when set, counts audit events and times every route
	// (internal/metrics); it is served on the admin listener.
	Metrics *metrics.Metrics
	// OnAudit, when set, also sees every audit event (the audit webhook's
	// wake-up). It must not block.
	OnAudit func(*store.AuditEvent)
}

// New builds a server. The store must already be migrated.
func New(ctx context.Context, cfg config.Config, o Options) (*Server, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{cfg: cfg, issuer: strings.TrimRight(cfg.Issuer, "/"), store: o.Store, log: o.Log, now: o.Now}
	// Previous master keys (after `latchkey keys rotate-master`) still
	// open sealed values and verify refresh tokens; nothing new uses them.
	oldRaw, err := config.DecodeMasterKeys(cfg.OldMasterKeys)
	if err != nil {
		return nil, fmt.Errorf("old master keys: %w", err)
	}
	old := make([]keys.MasterKey, len(oldRaw))
	oldRefresh := make([][]byte, len(oldRaw))
	for i, k := range oldRaw {
		old[i], oldRefresh[i] = k, keys.MasterKey(k).Derive("refresh-token/v1")
	}
	sealer, err := keys.NewSealer(o.MasterKey, keys.SealPurpose, old...)
	if err != nil {
		return nil, err
	}
	s.keys = &keys.Manager{Store: o.Store, Sealer: sealer, Alg: jose.SignatureAlgorithm(cfg.SigningAlg), Algs: KeyAlgorithms(cfg),
		Now: o.Now, TokenTTL: max(cfg.AccessTokenTTL.D(), cfg.IDTokenTTL.D()), KidSeed: o.MasterKey.Derive("signing-key-ids")}
	if err := s.keys.Init(ctx); err != nil {
		return nil, err
	}
	s.warnIDTokenAlgs(ctx)
	if s.web, err = web.New(cfg.Templates); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	s.families = &family.Service{Store: o.Store, Log: o.Log, Now: o.Now, Observe: observeAudit(o.Metrics, o.OnAudit)}
	u, _ := url.Parse(s.issuer)
	sessions := &session.Manager{Store: o.Store, Now: o.Now, TTL: cfg.SessionTTL.D(), Secure: u.Scheme == "https", CSRFKey: o.MasterKey.Derive("csrf")}

	mux := http.NewServeMux()
	mfaCodec, err := mfa.NewCodec(o.MasterKey, old...)
	if err != nil {
		return nil, err
	}
	limiter := &throttle.Limiter{Store: o.Store, Now: o.Now, Log: o.Log, PerAccount: cfg.ThrottlePerAccount, PerAddress: cfg.ThrottlePerAddress, Window: cfg.ThrottleWindow.D()}
	clientLimiter := &throttle.Limiter{Store: o.Store, Now: o.Now, Log: o.Log, Scope: "client",
		PerAccount: cfg.ThrottleClientPerID, PerAddress: cfg.ThrottleClientPerAddress, Window: cfg.ThrottleWindow.D()}
	// Stateless DPoP nonces under a key derived from the master key, so
	// every instance issues and accepts the same ones.
	s.dpop = &dpop.Verifier{Store: o.Store, Now: o.Now, NonceKey: o.MasterKey.Derive("dpop-nonce"), RequireNonce: cfg.DPoPRequireNonce}
	(&authorize.Handler{
		Store: o.Store, Sessions: sessions, Web: s.web, Families: s.families, Log: o.Log, Throttle: limiter, MFA: mfaCodec,
		Issuer: s.issuer, CodeTTL: cfg.CodeTTL.D(), Now: o.Now,
	}).Mount(mux)
	(&grant.Handler{
		Store: o.Store, Keys: s.keys, Refresh: token.NewRefreshCodec(o.MasterKey.Derive("refresh-token/v1"), oldRefresh...),
		Families: s.families, Log: o.Log, Issuer: s.issuer, Now: o.Now, DPoP: s.dpop, Throttle: clientLimiter,
		Life: grant.Lifetimes{
			AccessToken: cfg.AccessTokenTTL.D(), IDToken: cfg.IDTokenTTL.D(),
			RefreshIdle: cfg.RefreshIdle.D(), RefreshAbsolute: cfg.RefreshAbsolute.D(), RefreshGrace: cfg.RefreshGrace.D(),
		},
	}).Mount(mux)
	(&account.Handler{
		Store: o.Store, Sessions: sessions, Web: s.web, Families: s.families, Log: o.Log, Now: o.Now, MFA: mfaCodec,
		IssuerName: u.Host, RevokeOnMFAEnroll: cfg.RevokeOnMFAEnroll, RevokeOnMFARemove: cfg.RevokeOnMFARemove,
	}).Mount(mux)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.serveDiscovery)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.serveDiscovery)
	mux.HandleFunc("GET /jwks", s.serveJWKS)
	mux.HandleFunc("GET /userinfo", s.serveUserinfo)
	mux.HandleFunc("POST /userinfo", s.serveUserinfo)
	mux.Handle("GET /static/", http.StripPrefix("/static/", s.web.StaticHandler()))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.HandleFunc("GET /{$}", s.serveHome)

	// Pages (sign-in, consent, account) refuse cross-origin form posts as a
	// second CSRF defence; the protocol endpoints are called cross-origin by
	// design (an RP may POST to /authorize, SPAs call /token).
	pages := http.NewCrossOriginProtection().Handler(mux)
	s.handler = httpx.Middleware(o.Log, o.Metrics.Instrument(cors(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if corsPaths[r.URL.Path] || r.URL.Path == "/authorize" || r.URL.Path == "/introspect" {
			mux.ServeHTTP(w, r)
			return
		}
		pages.ServeHTTP(w, r)
	}))))
	return s, nil
}

// KeyAlgorithms is cfg.KeyAlgorithms as JOSE algorithms: signing_alg,
// RS256 and id_token_algs (keys.Manager.Algs).
func KeyAlgorithms(cfg config.Config) []jose.SignatureAlgorithm {
	var out []jose.SignatureAlgorithm
	for _, a := range cfg.KeyAlgorithms() {
		out = append(out, jose.SignatureAlgorithm(a))
	}
	return out
}

// warnIDTokenAlgs logs the clients whose id_token_signed_response_alg the
// server has no keys for (id_token_algs changed since they were
// registered): their token requests fail until it is configured again or
// the client is updated.
func (s *Server) warnIDTokenAlgs(ctx context.Context) {
	cs, err := s.store.ListClients(ctx)
	if err != nil {
		s.log.Warn("check clients' ID token algorithms", "error", err)
		return
	}
	for _, c := range cs {
		if c.IDTokenAlg != "" && !slices.Contains(s.keys.Algorithms(), c.IDTokenAlg) {
			s.log.Error("client asks for ID tokens signed with an algorithm the server has no keys for; its token requests will fail",
				"client_id", c.ID, "id_token_signed_response_alg", c.IDTokenAlg, "key_algorithms", s.keys.Algorithms(),
				"fix", "add it to id_token_algs, or `latchkey client update --id-token-alg`")
		}
	}
}

// Handler is the public HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Families is the server's family service: the admin API ends families and
// writes audit events through it, so they are counted and delivered like
// the server's own.
func (s *Server) Families() *family.Service { return s.families }

// Keys is the server's signing key manager (the admin API lists and
// rotates keys with it).
func (s *Server) Keys() *keys.Manager { return s.keys }

// Ready reports whether the server can serve: the database answers.
func (s *Server) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.store.Ping(ctx)
}

// observeAudit combines the audit observers that are set.
func observeAudit(m *metrics.Metrics, also func(*store.AuditEvent)) func(*store.AuditEvent) {
	if m == nil && also == nil {
		return nil
	}
	return func(ev *store.AuditEvent) {
		m.ObserveAudit(ev)
		if also != nil {
			also(ev)
		}
	}
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) serveHome(w http.ResponseWriter, r *http.Request) {
	_ = s.web.Home(w, http.StatusOK, web.HomeData{Issuer: s.issuer, Links: []web.Link{
		{Text: "Your account", URL: "/account"},
		{Text: "OpenID configuration", URL: "/.well-known/openid-configuration"},
		{Text: "Signing keys (JWKS)", URL: "/jwks"},
	}})
}

// corsPaths are the endpoints browser apps (public clients) call directly.
var corsPaths = map[string]bool{
	"/.well-known/openid-configuration": true, "/.well-known/oauth-authorization-server": true,
	"/jwks": true, "/token": true, "/userinfo": true, "/revoke": true,
}

// cors allows cross-origin calls to the token-style endpoints. They take no
// cookies, so any origin may call them; the pages never allow it.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !corsPaths[r.URL.Path] || r.Header.Get("Origin") == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, DPoP-Nonce")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, DPoP")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Sweep runs the sweeper until ctx ends: expired and dead rows are deleted
// in small batches so tables do not grow without bound.
func (s *Server) Sweep(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := s.store.Sweep(ctx, s.now(), 24*time.Hour, 500)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("sweep", slog.Any("error", err))
				}
				break
			}
			if n == 0 {
				break
			}
			s.log.Debug("sweep", slog.Int("deleted", n))
		}
		if ret := s.cfg.AuditRetention.D(); ret > 0 {
			for {
				n, err := s.store.PruneAudit(ctx, s.now().Add(-ret), 500)
				if err != nil {
					if ctx.Err() == nil {
						s.log.Warn("prune audit", slog.Any("error", err))
					}
					break
				}
				if n == 0 {
					break
				}
			}
		}
	}
}
