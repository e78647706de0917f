package httpx

import "context"

// Outcome is how a request served through Handle ended: the OAuth error
// code and reason code it returned, both empty on success. The metrics
// middleware reads it (grants by outcome, refresh refusals by reason)
// without parsing response bodies.
type Outcome struct {
	Code   string
	Reason string
}

const outcomeKey ctxKey = requestIDKey + 1

// WithOutcome returns a context in which Handle records the request's
// outcome into the returned Outcome.
func WithOutcome(ctx context.Context) (context.Context, *Outcome) {
	o := &Outcome{}
	return context.WithValue(ctx, outcomeKey, o), o
}

func recordOutcome(ctx context.Context, code, reason string) {
	if o, ok := ctx.Value(outcomeKey).(*Outcome); ok {
		o.Code, o.Reason = code, reason
	}
}
