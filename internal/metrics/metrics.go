// Package metrics owns Latchkey's Prometheus metrics: what is counted,
// under which names and labels (docs/observability.md), the HTTP middleware
// that times every route, and the collectors read at scrape time (database
// pool, live families). It is served on the admin listener only.
//
// Every method is safe on a nil *Metrics, so components take an optional
// *Metrics and call it unconditionally.
package metrics

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/latchkey-dev/latchkey/internal/family"
	"github.com/latchkey-dev/latchkey/internal/httpx"
	"github.com/latchkey-dev/latchkey/internal/oauth"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// Metrics holds the registry and every Latchkey metric.
type Metrics struct {
	// Registry is private to this Metrics (not prometheus.DefaultRegisterer),
	// so tests and several servers in one process do not collide.
	Registry *prometheus.Registry

	tokenRequests *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	reuse         *prometheus.CounterVec
	familyEnds    *prometheus.CounterVec
	auditEvents   *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	webhook       *prometheus.CounterVec
	webhookDrops  prometheus.Counter
	webhookLeader prometheus.Gauge
}

// Known label values. Anything else is reported as "other", so a client
// cannot create unbounded series by sending made-up values.
var (
	grantTypes = map[string]bool{"authorization_code": true, "refresh_token": true}
	errorCodes = map[string]bool{
		oauth.InvalidRequest: true, oauth.InvalidClient: true, oauth.InvalidGrant: true, oauth.UnauthorizedClient: true,
		oauth.UnsupportedGrantType: true, oauth.InvalidScope: true, oauth.ServerError: true,
		oauth.TemporarilyUnavailable: true, oauth.InvalidDPoPProof: true, oauth.AccessDenied: true,
		httpx.OutcomeCanceled: true, // the client went away before the answer
	}
	// Reasons are the stable codes of internal/oauth/reasons.go.
	Reasons = []string{
		oauth.ReasonReused, oauth.ReasonRevoked, oauth.ReasonConsentWithdrawn, oauth.ReasonExpiredIdle,
		oauth.ReasonExpiredAbsolute, oauth.ReasonUserDisabled, oauth.ReasonClientDeleted, oauth.ReasonPolicyChanged,
		oauth.ReasonCredentials, oauth.ReasonCodeReplayed, oauth.ReasonOperator, oauth.ReasonWrongClient, oauth.ReasonUnknown,
		oauth.ReasonDPoPKeyRequired, oauth.ReasonDPoPKeyMismatch,
	}
	knownReason = func() map[string]bool {
		m := map[string]bool{}
		for _, r := range Reasons {
			m[r] = true
		}
		return m
	}()
	methods = map[string]bool{http.MethodGet: true, http.MethodPost: true, http.MethodHead: true, http.MethodOptions: true,
		http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true}
)

func bounded(v string, known map[string]bool) string {
	if known[v] {
		return v
	}
	return "other"
}

// New creates the metrics and registers them, with the Go runtime and
// process collectors, in a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_token_requests_total",
			Help: "Token endpoint requests by grant type and outcome (success, or the OAuth error code).",
		}, []string{"grant_type", "outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_refresh_refusals_total",
			Help: "Refresh grants refused with invalid_grant, by the error_reason sent to the client.",
		}, []string{"reason"}),
		reuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_refresh_reuse_detected_total",
			Help: "Reuse of an already-rotated refresh token: action=revoked ended the family, action=reported is a report-only client.",
		}, []string{"action"}),
		familyEnds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_family_ends_total",
			Help: "Refresh-token families ended by this instance, by reason code.",
		}, []string{"reason"}),
		auditEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_audit_events_total",
			Help: "Audit events recorded by this instance, by type.",
		}, []string{"type"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "latchkey_http_request_duration_seconds",
			Help:    "Latency of HTTP requests by route pattern, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		webhook: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_webhook_deliveries_total",
			Help: "Audit webhook delivery attempts by result (delivered, failed).",
		}, []string{"result"}),
		webhookDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latchkey_webhook_queue_dropped_total",
			Help: "Audit webhook wake-ups dropped because the queue was full (the events are still delivered from the database).",
		}),
		webhookLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "latchkey_webhook_lease_held",
			Help: "1 while this instance holds the audit webhook delivery lease.",
		}),
	}
	for _, r := range Reasons {
		m.refusals.WithLabelValues(r)
		m.familyEnds.WithLabelValues(r)
	}
	m.reuse.WithLabelValues("revoked")
	m.reuse.WithLabelValues("reported")
	m.Registry.MustRegister(m.tokenRequests, m.refusals, m.reuse, m.familyEnds, m.auditEvents, m.httpDuration,
		m.webhook, m.webhookDrops, m.webhookLeader,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// RegisterDB exports the pool statistics of db (sql.DBStats: open, in-use
// and idle connections, waits) as go_sql_* metrics labelled db_name.
func (m *Metrics) RegisterDB(db *sql.DB, name string) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(collectors.NewDBStatsCollector(db, name))
}

// RegisterCheckpoints registers the metrics of a SQLite database's WAL
// checkpoints and returns the function that records one pass (final: the
// writer's final pass, during which no commit runs, else a background
// pass; took: its duration; walFrames: the WAL's length in frames when it
// ended; failed: it returned an error). Call it once, and only for a
// file-backed SQLite database (sqlstore.Store.OnCheckpoint). On a nil
// *Metrics it returns a function that does nothing.
func (m *Metrics) RegisterCheckpoints() func(final bool, took time.Duration, walFrames int, failed bool) {
	if m == nil {
		return func(bool, time.Duration, int, bool) {}
	}
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "latchkey_sqlite_checkpoint_duration_seconds",
		Help: "SQLite WAL checkpoint passes by pass (background: alongside the commits; final: every commit waits for it).",
		// From a fraction of a millisecond (a final pass on a fast disk)
		// to seconds (a background pass copying a large WAL).
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
	}, []string{"pass"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_sqlite_checkpoint_errors_total",
		Help: "SQLite WAL checkpoint passes that failed, by pass (their frames stay in the WAL for the next checkpoint).",
	}, []string{"pass"})
	frames := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "latchkey_sqlite_wal_frames",
		Help: "Length of the SQLite WAL in frames (pages) at the end of the last checkpoint pass: the writes of one checkpoint interval.",
	})
	for _, p := range []string{"background", "final"} {
		duration.WithLabelValues(p)
		errs.WithLabelValues(p)
	}
	m.Registry.MustRegister(duration, errs, frames)
	return func(final bool, took time.Duration, walFrames int, failed bool) {
		pass := "background"
		if final {
			pass = "final"
		}
		duration.WithLabelValues(pass).Observe(took.Seconds())
		if failed {
			errs.WithLabelValues(pass).Inc()
			return
		}
		if walFrames >= 0 { // SQLite reports -1 when another connection was checkpointing
			frames.Set(float64(walFrames))
		}
	}
}

// RegisterLiveFamilies exports latchkey_live_families, counted by count
// (store.CountLiveFamilies) at scrape time but at most once per every, so
// frequent scrapes cost one COUNT query per interval. It is a database-wide
// number: every instance reports the same value.
func (m *Metrics) RegisterLiveFamilies(count func(ctx context.Context, now time.Time) (int, error), now func() time.Time, every time.Duration) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(&liveFamilies{
		desc:  prometheus.NewDesc("latchkey_live_families", "Refresh-token families that can still be refreshed (database-wide).", nil, nil),
		count: count, now: now, every: every,
	})
}

type liveFamilies struct {
	desc  *prometheus.Desc
	count func(ctx context.Context, now time.Time) (int, error)
	now   func() time.Time
	every time.Duration

	mu     sync.Mutex
	at     time.Time
	value  float64
	failed bool
}

func (l *liveFamilies) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

func (l *liveFamilies) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.at.IsZero() || now.Sub(l.at) >= l.every {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := l.count(ctx, now)
		cancel()
		l.at = now
		if err != nil {
			// Keep the last value; a scrape must not fail for a slow count.
			l.failed = true
		} else {
			l.value, l.failed = float64(n), false
		}
	}
	if l.failed && l.value == 0 {
		ch <- prometheus.NewInvalidMetric(l.desc, errCountFailed)
		return
	}
	ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, l.value)
}

type countError struct{}

func (countError) Error() string { return "metrics: counting live families failed" }

var errCountFailed error = countError{}

// ObserveAudit counts an audit event (family.Service.Observe calls it):
// events by type, family ends by reason, reuse detections.
func (m *Metrics) ObserveAudit(ev *store.AuditEvent) {
	if m == nil {
		return
	}
	m.auditEvents.WithLabelValues(ev.Type).Inc()
	switch ev.Type {
	case family.EventEnded:
		m.familyEnds.WithLabelValues(bounded(ev.Reason, knownReason)).Inc()
		if ev.Reason == oauth.ReasonReused {
			m.reuse.WithLabelValues("revoked").Inc()
		}
	case family.EventReuseReported:
		m.reuse.WithLabelValues("reported").Inc()
	}
}

// WebhookDelivered, WebhookFailed, WebhookDropped and WebhookLease report
// the audit webhook worker's progress.
func (m *Metrics) WebhookDelivered() {
	if m != nil {
		m.webhook.WithLabelValues("delivered").Inc()
	}
}

func (m *Metrics) WebhookFailed() {
	if m != nil {
		m.webhook.WithLabelValues("failed").Inc()
	}
}

func (m *Metrics) WebhookDropped() {
	if m != nil {
		m.webhookDrops.Inc()
	}
}

func (m *Metrics) WebhookLease(held bool) {
	if m == nil {
		return
	}
	if held {
		m.webhookLeader.Set(1)
	} else {
		m.webhookLeader.Set(0)
	}
}

// Instrument times every request by route and, for the token endpoint,
// counts grants by type and outcome and refresh refusals by reason. It must
// wrap the ServeMux directly: the mux sets r.Pattern (the route label) on
// the request it is given, and the token handler parses the form into it.
// Routes are the registered patterns, so the label set is bounded;
// requests no pattern matched are "unmatched".
func (m *Metrics) Instrument(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx, outcome := httpx.WithOutcome(r.Context())
		r = r.WithContext(ctx)
		rec := &httpx.StatusRecorder{ResponseWriter: w}
		panicked := true
		defer func() {
			status := rec.Status
			if status == 0 {
				status = http.StatusOK
			}
			if panicked {
				status = http.StatusInternalServerError
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			method := r.Method
			if !methods[method] {
				method = "OTHER"
			}
			m.httpDuration.WithLabelValues(route, method, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
			if r.URL.Path == "/token" && r.Method == http.MethodPost {
				m.observeToken(r, outcome, status)
			}
		}()
		next.ServeHTTP(rec, r)
		panicked = false
	})
}

func (m *Metrics) observeToken(r *http.Request, o *httpx.Outcome, status int) {
	gt := "none"
	if r.PostForm != nil {
		if v := r.PostForm.Get("grant_type"); v != "" {
			gt = bounded(v, grantTypes)
		}
	}
	result := "success"
	switch {
	case o.Code != "":
		result = bounded(o.Code, errorCodes)
	case status >= 400:
		result = "other"
	}
	m.tokenRequests.WithLabelValues(gt, result).Inc()
	if gt == "refresh_token" && o.Code == oauth.InvalidGrant && o.Reason != "" {
		m.refusals.WithLabelValues(bounded(o.Reason, knownReason)).Inc()
	}
}
