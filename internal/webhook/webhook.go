// Package webhook delivers every audit event to an HTTP endpoint (config
// audit_webhook_url), signed with HMAC-SHA256 (see Sign and
// docs/observability.md).
//
// Delivery reads the audit log from the store, never from memory: a
// cursor row records the id of the last event delivered, so a restart
// resumes where delivery stopped and nothing recorded is lost. Delivery is
// at least once (an event can be sent again if the process stops between
// a delivery and the cursor update) and in id order: a failing event is
// retried with exponential backoff and the ones after it wait. One
// instance at a time delivers, the holder of the cursor's lease; the
// others stand by and take over when its lease runs out.
//
// The request path only nudges the worker (Notify): a non-blocking send on
// a bounded queue. A full queue drops the nudge and counts it; the event is
// still delivered at the next poll.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/secret"
	"github.com/latchkey-dev/latchkey/internal/store"
)

// CursorName names the webhook's delivery cursor in the store.
const CursorName = "audit-webhook"

// Header names of a delivery.
const (
	SignatureHeader = "Latchkey-Signature"
	EventIDHeader   = "Latchkey-Event-Id"
	EventTypeHeader = "Latchkey-Event-Type"
)

// Defaults of the Worker's tunables.
const (
	DefaultPoll       = 5 * time.Second
	DefaultLeaseTTL   = 30 * time.Second
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultGapWait    = 5 * time.Second
	DefaultBatch      = 100
	DefaultQueueSize  = 1024
	DefaultTimeout    = 10 * time.Second
)

// Recorder receives the worker's metrics (*metrics.Metrics is one).
type Recorder interface {
	WebhookDelivered()
	WebhookFailed()
	WebhookDropped()
	WebhookLease(held bool)
}

// Worker delivers audit events. Set the fields, call Init once (before the
// server accepts requests, so the cursor exists before events are
// written), then Run until the context ends.
type Worker struct {
	Store  store.Store
	URL    string
	Secret []byte
	Log    *slog.Logger
	Now    func() time.Time
	// Client sends the deliveries; nil means one with DefaultTimeout that
	// does not follow redirects.
	Client  *http.Client
	Metrics Recorder
	// Owner identifies this instance in the lease; "" means a random id.
	Owner string

	// Tunables; zero means the default.
	Poll       time.Duration // look for events this often without a nudge
	LeaseTTL   time.Duration // lease length, renewed on every poll and retry
	Backoff    time.Duration // first retry delay, doubled per failure
	MaxBackoff time.Duration
	// GapWait is how long a missing id is waited for before it is skipped:
	// on PostgreSQL an event can become visible after a later one, and ids
	// of failed inserts never appear.
	GapWait   time.Duration
	Batch     int
	QueueSize int

	queue    chan int64
	gapAt    int64
	gapSince time.Time
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// Init checks the configuration, creates the cursor if needed (at the
// newest event: delivery starts with events written from now on) and makes
// the queue. It does not need to win the lease.
func (w *Worker) Init(ctx context.Context) error {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook: URL %q must be an absolute http(s) URL", w.URL)
	}
	if len(w.Secret) == 0 {
		return errors.New("webhook: a signing secret is required")
	}
	if w.Owner == "" {
		w.Owner = "instance-" + secret.Random(9)
	}
	if w.Now == nil {
		w.Now = time.Now
	}
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
	if w.Client == nil {
		w.Client = &http.Client{Timeout: DefaultTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	w.Poll, w.LeaseTTL = orDefault(w.Poll, DefaultPoll), orDefault(w.LeaseTTL, DefaultLeaseTTL)
	w.Backoff, w.MaxBackoff = orDefault(w.Backoff, DefaultBackoff), orDefault(w.MaxBackoff, DefaultMaxBackoff)
	w.GapWait, w.Batch = orDefault(w.GapWait, DefaultGapWait), orDefault(w.Batch, DefaultBatch)
	w.queue = make(chan int64, orDefault(w.QueueSize, DefaultQueueSize))
	_, held, err := w.Store.ClaimCursor(ctx, CursorName, w.Owner, w.now(), w.LeaseTTL)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	w.lease(held)
	return nil
}

func (w *Worker) now() time.Time { return w.Now().UTC().Truncate(time.Millisecond) }

func (w *Worker) lease(held bool) {
	if w.Metrics != nil {
		w.Metrics.WebhookLease(held)
	}
}

// Notify nudges the worker after an audit event was written (it is
// family.Service's Observe). It never blocks: with the queue full the nudge
// is dropped and counted, and the event waits for the next poll.
func (w *Worker) Notify(ev *store.AuditEvent) {
	if ev.ID == 0 || w.queue == nil {
		return // not stored: nothing to deliver
	}
	select {
	case w.queue <- ev.ID:
	default:
		if w.Metrics != nil {
			w.Metrics.WebhookDropped()
		}
	}
}

// errLeaseLost stops delivering: another instance holds the lease now.
var errLeaseLost = errors.New("webhook: lease lost")

// Run delivers until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	defer w.lease(false)
	for ctx.Err() == nil {
		wait := w.Poll
		pos, held, err := w.Store.ClaimCursor(ctx, CursorName, w.Owner, w.now(), w.LeaseTTL)
		w.lease(held && err == nil)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				w.Log.Warn("webhook: claim cursor", slog.Any("error", err))
			}
		case held:
			more, pause, err := w.deliverBatch(ctx, pos)
			switch {
			case errors.Is(err, errLeaseLost):
				w.Log.Info("webhook: lease lost to another instance")
			case err != nil && ctx.Err() == nil:
				w.Log.Warn("webhook: deliver", slog.Any("error", err))
			case more:
				continue
			case pause > 0:
				wait = pause
			}
		}
		w.sleep(ctx, wait)
	}
}

// sleep waits for d, a nudge or the end of ctx; nudges that queued up
// meanwhile are drained (one look at the store covers them all).
func (w *Worker) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	case <-w.queue:
	}
	for {
		select {
		case <-w.queue:
		default:
			return
		}
	}
}

// deliverBatch delivers the events after pos in id order. more: a full
// batch was delivered (look again at once); pause: wait this long for a
// missing id.
func (w *Worker) deliverBatch(ctx context.Context, pos int64) (more bool, pause time.Duration, err error) {
	evs, err := w.Store.ListAuditAfter(ctx, pos, w.Batch)
	if err != nil {
		return false, 0, err
	}
	next := pos + 1
	for _, ev := range evs {
		if ev.ID != next {
			// Ids next..ev.ID-1 are not visible (yet). Wait up to GapWait
			// from when the gap was first seen, then skip it.
			now := time.Now()
			if w.gapAt != next {
				w.gapAt, w.gapSince = next, now
			}
			if left := w.GapWait - now.Sub(w.gapSince); left > 0 {
				return false, min(left, w.Poll), nil
			}
			w.Log.Debug("webhook: skipping ids never written", slog.Int64("from", next), slog.Int64("to", ev.ID-1))
		}
		if err := w.deliver(ctx, ev, pos); err != nil {
			return false, 0, err
		}
		if err := w.Store.AdvanceCursor(ctx, CursorName, w.Owner, ev.ID, w.now(), w.LeaseTTL); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return false, 0, errLeaseLost
			}
			return false, 0, err
		}
		pos, next = ev.ID, ev.ID+1
	}
	return len(evs) == w.Batch, 0, nil
}

// deliver sends ev until the receiver accepts it (2xx), backing off
// exponentially between attempts and renewing the lease before each retry.
func (w *Worker) deliver(ctx context.Context, ev *store.AuditEvent, pos int64) error {
	body, err := json.Marshal(operator.ViewAudit(ev))
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := w.send(ctx, ev, body)
		if err == nil {
			if w.Metrics != nil {
				w.Metrics.WebhookDelivered()
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if w.Metrics != nil {
			w.Metrics.WebhookFailed()
		}
		delay := w.Backoff << min(attempt-1, 30)
		if delay <= 0 || delay > w.MaxBackoff {
			delay = w.MaxBackoff
		}
		delay += time.Duration(rand.Int64N(int64(delay)/10 + 1)) // jitter: instances and receivers recover unsynchronised
		w.Log.Warn("webhook: delivery failed; retrying", slog.Int64("event_id", ev.ID), slog.Int("attempt", attempt),
			slog.Duration("retry_in", delay), slog.String("error", err.Error()))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		// Still ours? Renewing also keeps the lease alive through long
		// backoffs.
		if err := w.Store.AdvanceCursor(ctx, CursorName, w.Owner, pos, w.now(), w.LeaseTTL); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return errLeaseLost
			}
			return err
		}
	}
}

func (w *Worker) send(ctx context.Context, ev *store.AuditEvent, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Latchkey-Webhook/1")
	req.Header.Set(SignatureHeader, Sign(w.Secret, time.Now(), body))
	req.Header.Set(EventIDHeader, strconv.FormatInt(ev.ID, 10))
	req.Header.Set(EventTypeHeader, ev.Type)
	resp, err := w.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry credentials: keep it out of the log
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

// Sign returns the Latchkey-Signature header value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>". Signing
// the timestamp with the body lets receivers refuse old replays.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a Latchkey-Signature header for body, as a receiver
// written in Go would: a v1 signature must match (several v1 entries are
// allowed, for secret rotation) and the timestamp must be within
// tolerance of now.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("webhook: malformed signature header")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook: signature timestamp outside the tolerance")
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return errors.New("webhook: signature mismatch")
}
