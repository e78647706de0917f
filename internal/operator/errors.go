package operator

import (
	"errors"
	"fmt"

	"github.com/latchkey-dev/latchkey/internal/store"
)

// ErrInvalid is in the chain of every error that rejects an operator's
// input (a bad client id, a weak password, ...). Together with
// store.ErrNotFound and store.ErrConflict in the chain of "no such ..." and
// "... already exists" errors, it lets the admin API answer 400, 404 or
// 409 while the CLI prints the same message.
var ErrInvalid = errors.New("operator: invalid input")

// kindError is an error whose message is err's, classified by kind.
type kindError struct {
	err  error
	kind error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// invalid marks err (nil stays nil) as rejected input.
func invalid(err error) error {
	if err == nil {
		return nil
	}
	return &kindError{err, ErrInvalid}
}

func notFound(format string, args ...any) error {
	return &kindError{fmt.Errorf(format, args...), store.ErrNotFound}
}

func conflict(format string, args ...any) error {
	return &kindError{fmt.Errorf(format, args...), store.ErrConflict}
}
