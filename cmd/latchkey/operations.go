package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/latchkey-dev/latchkey/internal/admin"
	"github.com/latchkey-dev/latchkey/internal/config"
	"github.com/latchkey-dev/latchkey/internal/keys"
	"github.com/latchkey-dev/latchkey/internal/metrics"
	"github.com/latchkey-dev/latchkey/internal/server"
	"github.com/latchkey-dev/latchkey/internal/store"
	"github.com/latchkey-dev/latchkey/internal/store/sqlstore"
	"github.com/latchkey-dev/latchkey/internal/webhook"
)

// shutdownGrace bounds how long serve waits for in-flight requests.
const shutdownGrace = 20 * time.Second

// liveFamiliesEvery is how often the live-families gauge is recounted.
const liveFamiliesEvery = 15 * time.Second

// operations is what serve runs beside the public server when configured:
// metrics and the admin listener (admin_addr), the audit webhook
// (audit_webhook_url).
type operations struct {
	metrics *metrics.Metrics
	hook    *webhook.Worker
	token   string
}

func newOperations(ctx context.Context, cfg config.Config, st *sqlstore.Store, log *slog.Logger) (*operations, error) {
	o := &operations{}
	if cfg.AdminAddr != "" {
		tok, err := cfg.AdminTokenValue()
		if err != nil {
			return nil, err
		}
		if tok == "" {
			return nil, errors.New("admin_addr is set but the admin token is empty")
		}
		o.token = tok
		o.metrics = metrics.New()
		o.metrics.RegisterDB(st.DB(), st.Engine())
		o.metrics.RegisterLiveFamilies(st.CountLiveFamilies, time.Now, liveFamiliesEvery)
		if st.CheckpointInterval() > 0 { // a SQLite file: its WAL checkpoints
			observe := o.metrics.RegisterCheckpoints()
			st.OnCheckpoint(func(p sqlstore.CheckpointPass) {
				observe(p.Final, p.Duration, p.WALFrames, p.Err != nil)
			})
		}
	}
	if cfg.AuditWebhookURL != "" {
		sec, err := cfg.AuditWebhookSecretValue()
		if err != nil {
			return nil, err
		}
		o.hook = &webhook.Worker{Store: st, URL: cfg.AuditWebhookURL, Secret: []byte(sec), Log: log, Now: time.Now}
		if o.metrics != nil {
			o.hook.Metrics = o.metrics
		}
		if err := o.hook.Init(ctx); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// onAudit is the server's extra audit observer: the webhook's nudge.
func (o *operations) onAudit() func(*store.AuditEvent) {
	if o.hook == nil {
		return nil
	}
	return o.hook.Notify
}

// adminHandler builds the admin API on the server's own components.
func (o *operations) adminHandler(cfg config.Config, srv *server.Server, st store.Store, log *slog.Logger) http.Handler {
	h := &admin.Handler{
		Store: st, Families: srv.Families(), Keys: srv.Keys(), Log: log, Now: time.Now, Token: o.token,
		KeyRetention:           keys.Retention(max(cfg.AccessTokenTTL.D(), cfg.IDTokenTTL.D()), keys.ReloadInterval),
		RevokeOnPasswordChange: cfg.RevokeOnPasswordChange,
		Metrics:                o.metrics.Handler(), Ready: srv.Ready,
		Profiles: cfg.AdminPprof,
	}
	return h.Handler()
}

// listening is one HTTP server and its listener.
type listening struct {
	name string
	hs   server.HTTPServer
	ln   net.Listener
}

// serveAll serves every listener until ctx ends (SIGTERM, SIGINT) or one
// of them fails, then shuts them all down together: listeners close at
// once, in-flight requests finish (within grace).
func serveAll(ctx context.Context, log *slog.Logger, grace time.Duration, ls ...listening) error {
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() {
			if err := l.hs.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", l.name, err)
			}
		}()
	}
	var failed error
	select {
	case failed = <-errc:
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs = []error{failed}
	)
	for _, l := range ls {
		wg.Go(func() {
			if err := l.hs.Shutdown(shutdownCtx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s listener: %w", l.name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
