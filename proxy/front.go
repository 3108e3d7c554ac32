package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/valyala/fasthttp"
)

// parkAfter is how long a keep-alive connection from the front may wait for
// its next request while holding fasthttp's buffers. Past it the connection
// is parked: fasthttp's serving loop ends and gives its read buffer and
// request context back to its pools, and a small goroutine waits for the
// next request's first byte, then serves the connection again. Waking costs
// a goroutine and one more read, so a connection in steady use never parks.
const parkAfter = time.Second

// After trimBatch connections parked, and at most once per trimDelay, the
// memory they gave back is returned to the system (see trim).
const (
	trimBatch = 256
	trimDelay = 2 * time.Second
)

// Server is the front side of a Proxy: a fasthttp.Server whose idle
// keep-alive connections are parked. fasthttp keeps a connection's 8 KiB
// read buffer for as long as the connection lives when request bodies
// stream (StreamRequestBody), which upmedic needs; parking bounds that to
// the connections that are in use.
type Server struct {
	fh          *fasthttp.Server
	traffic     *diag.Traffic // counts the parked connections
	idleTimeout time.Duration // fasthttp's IdleTimeout
	parkAfter   time.Duration // parkAfter, but for tests

	mu       sync.Mutex
	parked   map[*frontConn]struct{}
	stopping bool

	parks atomic.Int64 // connections parked since the last trim
}

// Serve accepts connections on ln and serves them until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.fh.Serve(frontListener{ln, s})
}

// Shutdown closes the listeners and the parked connections, and waits for
// the requests in flight to finish.
func (s *Server) Shutdown() error { return s.ShutdownWithContext(context.Background()) }

// ShutdownWithContext is Shutdown bounded by ctx.
func (s *Server) ShutdownWithContext(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	for c := range s.parked {
		_ = c.Conn.Close() // its waiting goroutine sees the error and ends
	}
	s.traffic.Parked(-len(s.parked))
	clear(s.parked)
	s.mu.Unlock()
	return s.fh.ShutdownWithContext(ctx)
}

// Parked returns how many connections are parked.
func (s *Server) Parked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.parked)
}

// connState follows fasthttp's view of each connection: idle between
// requests, active from a request's first byte.
func (s *Server) connState(nc net.Conn, st fasthttp.ConnState) {
	c, ok := nc.(*frontConn)
	if !ok {
		return
	}
	switch st {
	case fasthttp.StateIdle:
		c.idle, c.idleUntil = true, time.Time{}
	case fasthttp.StateActive:
		c.idle = false
		if c.armed {
			// The park deadline was for the wait; a request has no read
			// deadline of its own (fasthttp's ReadTimeout is not set).
			c.armed = false
			_ = c.setReadDeadline(time.Time{})
		}
	}
}

// park takes over c after fasthttp's loop ended on the io.EOF that Read
// returned when the park deadline passed.
func (s *Server) park(c *frontConn) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		_ = c.Conn.Close()
		return
	}
	s.parked[c] = struct{}{}
	s.traffic.Parked(1)
	s.mu.Unlock()
	if s.parks.Add(1) == trimBatch {
		time.AfterFunc(trimDelay, s.trim)
	}
	go s.wait(c)
}

// trim returns to the system the memory a batch of parked connections gave
// back. A proxy that allocates nothing per request rarely collects, so
// without it fasthttp's pools would keep their buffers, and the waiting
// goroutines the stacks they started with, until Go's forced collection
// minutes later. Two collections empty the pools (sync.Pool keeps items for
// one more) and shrink the idle stacks; FreeOSMemory's then returns the pages.
func (s *Server) trim() {
	s.parks.Store(0)
	runtime.GC()
	debug.FreeOSMemory()
}

// wait reads the first byte of c's next request, until the idle timeout
// fasthttp set, and serves c again with that byte first.
func (s *Server) wait(c *frontConn) {
	_ = c.setReadDeadline(c.idleUntil)
	n, err := c.Conn.Read(c.first[:])
	s.mu.Lock()
	if _, ok := s.parked[c]; ok { // else Shutdown took it out
		delete(s.parked, c)
		s.traffic.Parked(-1)
	}
	stopping := s.stopping
	s.mu.Unlock()
	if err != nil || n == 0 || stopping {
		_ = c.Conn.Close()
		return
	}
	c.hasFirst, c.idle = true, false
	_ = c.setReadDeadline(time.Time{})
	_ = s.fh.ServeConn(c) // its errors are the client's (resets, timeouts), as in Serve
}

// frontListener hands fasthttp each connection wrapped in a frontConn.
type frontListener struct {
	net.Listener
	s *Server
}

func (l frontListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// A new connection waits for its first request like an idle one: it
	// parks after parkAfter and closes after the idle timeout.
	return &frontConn{Conn: nc, s: l.s, idle: true}, nil
}

// frontConn is a connection from the front. Its fields belong to the
// goroutine serving it (fasthttp's loop, then wait, then fasthttp's loop
// again), except parking, which Close may read from Shutdown's goroutine.
type frontConn struct {
	net.Conn
	s *Server

	idle      bool      // between requests (fasthttp's StateIdle), or new
	idleUntil time.Time // the idle deadline fasthttp asked for; zero: none yet
	armed     bool      // the socket's read deadline is the park deadline
	rd        time.Time // the socket's read deadline as last set

	parking  atomic.Bool // Read ended the loop to park; the next Close parks
	first    [1]byte     // the first byte of the request that woke c
	hasFirst bool
}

// Read reads from the socket. While c is idle it reads under the park
// deadline, and reports io.EOF when that passes: fasthttp then ends its
// loop quietly, as when a client closes an idle connection, and closes c,
// which parks it.
func (c *frontConn) Read(p []byte) (int, error) {
	if c.hasFirst {
		c.hasFirst = false
		p[0] = c.first[0]
		return 1, nil
	}
	if !c.idle {
		return c.Conn.Read(p)
	}
	if !c.armed {
		if c.idleUntil.IsZero() { // a new connection
			c.idleUntil = time.Now().Add(c.s.idleTimeout)
		}
		// fasthttp set the idle deadline to its clock plus the idle timeout:
		// the wait started then, and parks parkAfter later.
		c.armed = true
		if err := c.setReadDeadline(c.idleUntil.Add(c.s.parkAfter - c.s.idleTimeout)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && c.s.parkAfter < c.s.idleTimeout {
		c.parking.Store(true)
		return 0, io.EOF
	}
	return n, err
}

// SetReadDeadline records the idle deadline fasthttp sets before it waits
// for a request; Read applies it. Other deadlines go to the socket.
func (c *frontConn) SetReadDeadline(t time.Time) error {
	if c.idle {
		c.idleUntil, c.armed = t, false
		return nil
	}
	return c.setReadDeadline(t)
}

// SetDeadline sets both deadlines on the socket.
func (c *frontConn) SetDeadline(t time.Time) error {
	c.rd = t
	return c.Conn.SetDeadline(t)
}

// setReadDeadline sets the socket's read deadline unless it is set already.
func (c *frontConn) setReadDeadline(t time.Time) error {
	if t.Equal(c.rd) {
		return nil
	}
	c.rd = t
	return c.Conn.SetReadDeadline(t)
}

// Close parks c when its serving loop ended because Read parked it, and
// closes the socket otherwise.
func (c *frontConn) Close() error {
	if c.parking.CompareAndSwap(true, false) {
		c.s.park(c)
		return nil
	}
	return c.Conn.Close()
}
