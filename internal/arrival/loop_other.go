//go:build !linux

package arrival

import (
	"context"
	"net"
)

type poller struct{}

// Serve returns ErrUnsupported: arrival order needs Linux's epoll.
func (s *Server) Serve(ln net.Listener) error { return ErrUnsupported }

// Shutdown does nothing: Serve never ran.
func (s *Server) Shutdown(ctx context.Context) error { return nil }
