package metrics_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/latchkey-dev/latchkey/internal/metrics"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/server"
	"github.com/latchkey-dev/latchkey/internal/testserver"
)

// value returns the value of the series name{labels} (0 when absent).
func value(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if match(s, labels) {
				switch {
				case s.Counter != nil:
					return s.Counter.GetValue()
				case s.Gauge != nil:
					return s.Gauge.GetValue()
				case s.Histogram != nil:
					return float64(s.Histogram.GetSampleCount())
				}
			}
		}
	}
	return 0
}

func match(s *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, l := range s.GetLabel() {
		if v, ok := labels[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

// TestMetricsFromRealTraffic drives the token endpoint through real flows
// and checks what each metric counted.
func TestMetricsFromRealTraffic(t *testing.T) {
	m := metrics.New()
	ts := testserver.Start(t, testserver.WithServerOptions(func(o *server.Options) { o.Metrics = m }))
	m.RegisterLiveFamilies(ts.Store.CountLiveFamilies, ts.Clock.Now, time.Nanosecond)
	const reportSecret = "report-only-secret-0123456789abcdefghijklm"
	ts.Remember(reportSecret)
	if _, err := operator.CreateClient(context.Background(), ts.Store, operator.ClientSpec{ID: "report-app", Secret: reportSecret,
		RedirectURIs: []string{testserver.Redirect}, ReuseReportOnly: true}, time.Now()); err != nil {
		t.Fatal(err)
	}
	c := func(name string, labels map[string]string) float64 { return value(t, m, name, labels) }

	// A code exchange, a rotation, then reuse of the rotated token after
	// the grace window: the family ends (reused).
	web := ts.OAuth2Config(testserver.WebClient, testserver.WebSecret, "openid", "offline_access")
	tok := ts.Login(web, testserver.Alice, testserver.AlicePW)
	if got := c("latchkey_live_families", nil); got != 1 {
		t.Errorf("live families after a sign-in: %v", got)
	}
	if r := ts.Refresh(tok.RefreshToken, testserver.WebClient, testserver.WebSecret); r.Status != 200 {
		t.Fatalf("refresh: %+v", r)
	}
	ts.Clock.Advance(ts.Config.RefreshGrace.D() + time.Second)
	testserver.WantError(t, ts.Refresh(tok.RefreshToken, testserver.WebClient, testserver.WebSecret), 400, "invalid_grant")

	// A report-only client: the reuse is answered and counted, not revoked.
	rep := ts.OAuth2Config("report-app", reportSecret, "openid", "offline_access")
	rtok := ts.Login(rep, testserver.Bob, testserver.BobPW)
	ts.Refresh(rtok.RefreshToken, "report-app", reportSecret)
	ts.Clock.Advance(ts.Config.RefreshGrace.D() + time.Second)
	if r := ts.Refresh(rtok.RefreshToken, "report-app", reportSecret); r.Status != 200 {
		t.Fatalf("report-only reuse: %+v", r)
	}

	// Client authentication failure, an unsupported grant type, an
	// unknown token.
	ts.Post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, testserver.WebClient, "wrong-secret")
	ts.Post("/token", url.Values{"grant_type": {"password"}}, testserver.WebClient, testserver.WebSecret)
	ts.Refresh("not-a-token", testserver.WebClient, testserver.WebSecret)

	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"latchkey_token_requests_total", map[string]string{"grant_type": "authorization_code", "outcome": "success"}, 2},
		{"latchkey_token_requests_total", map[string]string{"grant_type": "refresh_token", "outcome": "success"}, 3},
		{"latchkey_token_requests_total", map[string]string{"grant_type": "refresh_token", "outcome": "invalid_grant"}, 2},
		{"latchkey_token_requests_total", map[string]string{"grant_type": "refresh_token", "outcome": "invalid_client"}, 1},
		{"latchkey_token_requests_total", map[string]string{"grant_type": "other", "outcome": "unsupported_grant_type"}, 1},
		{"latchkey_refresh_refusals_total", map[string]string{"reason": "reused"}, 1},
		{"latchkey_refresh_refusals_total", map[string]string{"reason": "unknown_token"}, 1},
		{"latchkey_refresh_refusals_total", map[string]string{"reason": "revoked"}, 0},
		{"latchkey_refresh_reuse_detected_total", map[string]string{"action": "revoked"}, 1},
		{"latchkey_refresh_reuse_detected_total", map[string]string{"action": "reported"}, 1},
		{"latchkey_family_ends_total", map[string]string{"reason": "reused"}, 1},
		{"latchkey_audit_events_total", map[string]string{"type": "refresh.rotated"}, 2},
		{"latchkey_http_request_duration_seconds", map[string]string{"route": "/token", "method": "POST", "status": "200"}, 5},
		{"latchkey_live_families", nil, 1}, // Bob's report-only family
	} {
		if got := c(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// TestNilMetrics: every method is safe on a nil *Metrics.
func TestNilMetrics(t *testing.T) {
	var m *metrics.Metrics
	m.ObserveAudit(nil)
	m.WebhookDelivered()
	m.WebhookFailed()
	m.WebhookDropped()
	m.WebhookLease(true)
	m.RegisterDB(nil, "x")
	m.RegisterCheckpoints()(true, time.Millisecond, 10, false)
	if m.Instrument(nil) != nil || m.Handler() == nil {
		t.Error("nil Metrics: Instrument must pass through, Handler must answer")
	}
}

// TestCheckpointMetrics: each pass is timed under its own label, failures
// are counted, and the WAL gauge follows the last pass that succeeded.
func TestCheckpointMetrics(t *testing.T) {
	m := metrics.New()
	if got := value(t, m, "latchkey_sqlite_checkpoint_duration_seconds", map[string]string{"pass": "final"}); got != 0 {
		t.Fatalf("registered before RegisterCheckpoints: %v", got)
	}
	observe := m.RegisterCheckpoints()
	observe(false, 30*time.Millisecond, 16000, false)
	observe(false, 2*time.Millisecond, 16200, false)
	observe(true, 4*time.Millisecond, 16250, false)
	observe(false, time.Millisecond, 99, true)
	observe(false, time.Millisecond, -1, false) // another connection was checkpointing
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"latchkey_sqlite_checkpoint_duration_seconds", map[string]string{"pass": "background"}, 4},
		{"latchkey_sqlite_checkpoint_duration_seconds", map[string]string{"pass": "final"}, 1},
		{"latchkey_sqlite_checkpoint_errors_total", map[string]string{"pass": "background"}, 1},
		{"latchkey_sqlite_checkpoint_errors_total", map[string]string{"pass": "final"}, 0},
		{"latchkey_sqlite_wal_frames", nil, 16250},
	} {
		if got := value(t, m, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// The final pass's duration lands in its buckets: 4 ms is above 2 ms
	// and within 5 ms.
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "latchkey_sqlite_checkpoint_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			if !match(s, map[string]string{"pass": "final"}) {
				continue
			}
			if sum := s.GetHistogram().GetSampleSum(); sum != 0.004 {
				t.Errorf("final pass sum %v s, want 0.004", sum)
			}
			for _, b := range s.GetHistogram().GetBucket() {
				want := uint64(0)
				if b.GetUpperBound() >= 0.005 {
					want = 1
				}
				if b.GetCumulativeCount() != want {
					t.Errorf("final pass bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
				}
			}
		}
	}
}
