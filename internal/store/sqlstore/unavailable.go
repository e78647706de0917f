package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// unavailable reports whether err means the database could not be reached
// or did not answer in time, rather than that it refused the statement:
// store.ErrUnavailable is added to such errors (see wrap), and the HTTP
// layer answers them 503 temporarily_unavailable instead of 500.
//
// Connection failures: refused, reset or lost connections, timeouts, a
// closed pool (the server is shutting down); PostgreSQL's connection
// exceptions (class 08), shutdown and start-up states (57P01-57P03), too
// many connections (53300), a cancelled statement (57014, e.g.
// statement_timeout) and writes sent to a read-only server during a
// failover (25006). Transient conflicts (serialization failures, deadlocks,
// SQLITE_BUSY) count too: they reach here only after tx/retry gave up.
func (d *dialect) unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		// A cancelled request context is the client going away, not the
		// database failing.
		return false
	}
	var (
		netErr  net.Error
		connErr *pgconn.ConnectError
		pgErr   *pgconn.PgError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.As(err, &netErr),
		errors.As(err, &connErr),
		pgconn.Timeout(err):
		return true
	case errors.As(err, &pgErr):
		return strings.HasPrefix(pgErr.Code, "08") ||
			pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03" ||
			pgErr.Code == "53300" || pgErr.Code == "57014" || pgErr.Code == "25006" ||
			d.isTransient(err)
	}
	// database/sql does not export these (a pool used after Close; pgx's
	// "conn closed" after the connection broke mid-query).
	msg := err.Error()
	return strings.Contains(msg, "sql: database is closed") || strings.Contains(msg, "conn closed") ||
		d.isTransient(err)
}
