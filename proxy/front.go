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
	"github.com/upmedic/upmedic/proxy/h1"
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

// Server is the front side of a Proxy: a fasthttp.Server whose connections
// pass through a strict HTTP/1.1 scanner (proxy/h1) before fasthttp parses
// them, whose clients are held to header, body and send timeouts, whose
// idle keep-alive connections are parked, and which closes a connection
// with an unread request body by draining it first (a lingering close).
//
// fasthttp keeps a connection's 8 KiB read buffer for as long as the
// connection lives when request bodies stream (StreamRequestBody), which
// upmedic needs; parking bounds that to the connections that are in use.
type Server struct {
	fh          *fasthttp.Server
	p           *Proxy
	traffic     *diag.Traffic // counts the parked connections
	idleTimeout time.Duration // fasthttp's IdleTimeout: between keep-alive requests
	parkAfter   time.Duration // parkAfter, but for tests
	// headerTimeout bounds a request's header from its first byte, and a
	// new connection's wait for that byte; bodyTimeout is the longest
	// silence inside a request body; sendTimeout the longest a write to the
	// client may stall.
	headerTimeout, bodyTimeout, sendTimeout time.Duration
	// lingerTime bounds a lingering close, lingerTimeout its longest
	// silence, lingerBytes what it drains.
	lingerTime, lingerTimeout time.Duration
	lingerBytes               int64

	mu        sync.Mutex // guards parked, lingering and stopping
	parked    map[*frontConn]struct{}
	lingering map[*frontConn]struct{}
	stopping  bool

	parks atomic.Int64 // connections parked since the last trim
}

// Lingering close bounds (nginx: lingering_time 30s, lingering_timeout 5s),
// and how many connections may linger at once; past it a connection closes
// at once.
const (
	lingerTime    = 10 * time.Second
	lingerTimeout = 2 * time.Second
	lingerBytes   = 64 << 20
	maxLingering  = 1024
)

// Serve accepts connections on ln and serves them until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.fh.Serve(frontListener{ln, s})
}

// Shutdown closes the listeners and the parked and lingering connections,
// and waits for the requests in flight to finish.
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
	for c := range s.lingering {
		_ = c.Conn.Close() // its draining goroutine sees the error and ends
	}
	s.mu.Unlock()
	return s.fh.ShutdownWithContext(ctx)
}

// Parked returns how many connections are parked.
func (s *Server) Parked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.parked)
}

// Lingering returns how many connections are draining before they close.
func (s *Server) Lingering() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lingering)
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
		// The socket's read deadline is the park deadline still; the next
		// read, inside the header, replaces it with the header deadline.
		c.idle, c.armed = false, false
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

// wait reads the first byte of c's next request, until the idle deadline,
// and serves c again with that byte first.
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
	_ = s.fh.ServeConn(c) // its errors are the client's (resets, timeouts), as in Serve
}

// linger drains what the client still sends after upmedic answered before
// the request was read whole, then closes: closing a socket with unread data
// makes the kernel reset the connection, and the reset can destroy the
// answer before the client (nginx) reads it. The write side is shut first,
// so the client sees the answer end; draining stops at lingerTime,
// lingerTimeout of silence, or lingerBytes.
func (s *Server) linger(c *frontConn) {
	defer func() {
		s.mu.Lock()
		delete(s.lingering, c)
		s.mu.Unlock()
		_ = c.Conn.Close()
	}()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	buf := lingerBufs.Get().(*[]byte)
	defer lingerBufs.Put(buf)
	end := time.Now().Add(s.lingerTime)
	var drained int64
	for drained < s.lingerBytes {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		deadline := now.Add(s.lingerTimeout)
		if deadline.After(end) {
			deadline = end
		}
		if err := c.Conn.SetReadDeadline(deadline); err != nil {
			return
		}
		n, err := c.Conn.Read(*buf)
		drained += int64(n)
		if err != nil {
			return
		}
	}
}

var lingerBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

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
	// parks after parkAfter, and closes, without a word, if no byte came
	// within the header timeout.
	return &frontConn{Conn: nc, s: l.s, idle: true,
		idleUntil: time.Now().Add(l.s.headerTimeout), idleFor: l.s.headerTimeout}, nil
}

// Errors a frontConn's Read returns for the client's faults. The error
// handler answers them (see reject).
var (
	// errHeaderTimeout: a request's header did not arrive whole within
	// UPMEDIC_CLIENT_HEADER_TIMEOUT of its first byte.
	errHeaderTimeout = &clientTimeout{"proxy: request header not received within UPMEDIC_CLIENT_HEADER_TIMEOUT"}
	// errBodyTimeout: a request body went silent for longer than
	// UPMEDIC_CLIENT_BODY_TIMEOUT.
	errBodyTimeout = &clientTimeout{"proxy: request body silent for longer than UPMEDIC_CLIENT_BODY_TIMEOUT"}
)

// clientTimeout is a deadline the client missed. It is a net.Error whose
// Timeout is true, as the deadline errors it replaces are.
type clientTimeout struct{ msg string }

func (e *clientTimeout) Error() string { return e.msg }
func (e *clientTimeout) Timeout() bool { return true }

// Temporary is false: the connection is done.
func (e *clientTimeout) Temporary() bool { return false }

// frontConn is a connection from the front. Every byte read from it passes
// through its scanner before fasthttp sees it. Its fields belong to the
// goroutine serving it (fasthttp's loop, then wait, then fasthttp's loop
// again, or the tunnel after a protocol switch), except parking, which Close
// may read from Shutdown's goroutine.
type frontConn struct {
	net.Conn
	s    *Server
	scan h1.RequestScanner
	err  error // what broke the stream: every later Read returns it

	// kept holds bytes read past a paused request (one that asked to
	// switch protocols), for the tunnel or the next request.
	kept    *[]byte
	keptOff int

	idle        bool          // between requests (fasthttp's StateIdle), or new
	idleUntil   time.Time     // the idle deadline; zero: fasthttp has not set one yet
	idleFor     time.Duration // how long the wait that ends at idleUntil lasts
	armed       bool          // the socket's read deadline is the park deadline
	headerArmed bool          // the header deadline is set for the request in progress
	rd          time.Time     // the socket's read deadline as last set

	parking  atomic.Bool // Read ended the loop to park; the next Close parks
	closed   atomic.Bool // Close ran (and closed the socket or began to linger)
	first    [1]byte     // the first byte of the request that woke c
	hasFirst bool
}

// Read reads the next bytes of the stream and lets through those the
// scanner accepts. When the scanner refuses the stream, Read returns what
// came before the refused line's end, then the scanner's error, which
// fasthttp hands to the error handler: fasthttp never holds a complete
// request the scanner refused.
func (c *frontConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	switch c.scan.State() {
	case h1.Tunnel:
		if c.kept != nil {
			return c.takeKept(p), nil
		}
		return c.Conn.Read(p)
	case h1.Paused:
		// fasthttp reads again only for the next request: the app declined
		// to switch protocols.
		c.scan.Resume()
	}
	wasIdle := c.scan.State() == h1.Idle
	n, err := c.fill(p, wasIdle)
	if n == 0 {
		return 0, err
	}
	m, serr := c.scan.Scan(p[:n])
	switch {
	case serr != nil:
		c.err = serr
		if m == 0 && wasIdle {
			// Refused at its first byte: fasthttp answers nothing to a
			// request that sent no byte, so give it one that starts none.
			p[0], m = '?', 1
		}
		if m == 0 {
			return 0, c.err
		}
		return m, nil
	case m < n:
		c.keep(p[m:n])
	}
	return m, err
}

// fill reads from the kept bytes, the byte that woke a parked connection or
// the socket, under the deadline of where the stream is: the park and idle
// deadlines between requests, the header deadline inside a header, the body
// silence deadline inside a body.
func (c *frontConn) fill(p []byte, idle bool) (int, error) {
	if c.kept != nil {
		return c.takeKept(p), nil
	}
	if c.hasFirst {
		c.hasFirst = false
		p[0] = c.first[0]
		return 1, nil
	}
	if idle {
		c.headerArmed = false
		return c.readIdle(p)
	}
	var timeoutErr error
	if c.scan.State() == h1.Body {
		timeoutErr = errBodyTimeout
		if err := c.setReadDeadline(time.Now().Add(c.s.bodyTimeout)); err != nil {
			return 0, err
		}
	} else {
		timeoutErr = errHeaderTimeout
		if !c.headerArmed {
			c.headerArmed = true
			if err := c.setReadDeadline(time.Now().Add(c.s.headerTimeout)); err != nil {
				return 0, err
			}
		}
	}
	n, err := c.Conn.Read(p)
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		c.err = timeoutErr
		return 0, c.err
	}
	return n, err
}

// readIdle reads the first bytes of a request. While fasthttp waits between
// requests it reads under the park deadline, and reports io.EOF when that
// passes: fasthttp then ends its loop quietly, as when a client closes an
// idle connection, and closes c, which parks it.
func (c *frontConn) readIdle(p []byte) (int, error) {
	if !c.idle {
		return c.Conn.Read(p)
	}
	if !c.armed {
		if c.idleUntil.IsZero() {
			c.idleUntil, c.idleFor = time.Now().Add(c.s.idleTimeout), c.s.idleTimeout
		}
		// The wait began idleFor before the idle deadline; it parks
		// parkAfter after it began.
		c.armed = true
		if err := c.setReadDeadline(c.idleUntil.Add(c.s.parkAfter - c.idleFor)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		// Between requests a deadline ends the connection without a word:
		// parked when the park deadline came before the idle one.
		c.parking.Store(c.s.parkAfter < c.idleFor)
		return 0, io.EOF
	}
	return n, err
}

// keep saves b, bytes read past a paused request.
func (c *frontConn) keep(b []byte) {
	buf := lingerBufs.Get().(*[]byte)
	*buf = append((*buf)[:0], b...)
	c.kept, c.keptOff = buf, 0
}

// takeKept copies kept bytes into p.
func (c *frontConn) takeKept(p []byte) int {
	n := copy(p, (*c.kept)[c.keptOff:])
	if c.keptOff += n; c.keptOff == len(*c.kept) {
		c.releaseKept()
	}
	return n
}

func (c *frontConn) releaseKept() {
	if c.kept != nil {
		*c.kept = (*c.kept)[:cap(*c.kept)]
		lingerBufs.Put(c.kept)
		c.kept = nil
	}
}

// abort makes the coming close a reset, so the client cannot take a cut
// close-delimited body for a whole one.
func (c *frontConn) abort() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}

// tunnel lets every byte through from now on: the app switched protocols.
func (c *frontConn) tunnel() { c.scan.SetTunnel() }

// Write writes to the socket under the send timeout: a client that stops
// reading is dropped once a write stalls for that long.
func (c *frontConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.s.sendTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// SetReadDeadline records the idle deadline fasthttp sets before it waits
// for a request; Read applies it. frontConn manages every other read
// deadline itself, so fasthttp's others are ignored.
func (c *frontConn) SetReadDeadline(t time.Time) error {
	if c.idle && !t.IsZero() {
		c.idleUntil, c.idleFor, c.armed = t, c.s.idleTimeout, false
	}
	return nil
}

// SetDeadline clears or sets both deadlines on the socket (fasthttp clears
// them before handing a connection to a protocol-switch tunnel).
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

// Close parks c when its serving loop ended because Read parked it, drains
// it first when its client is still sending a request upmedic answered
// early, and closes the socket otherwise.
func (c *frontConn) Close() error {
	if c.parking.CompareAndSwap(true, false) {
		c.s.park(c)
		return nil
	}
	if !c.closed.CompareAndSwap(false, true) {
		return nil // closed already, or lingering
	}
	c.releaseKept()
	if c.scan.State() != h1.Tunnel && c.scan.InRequest() || c.err != nil && !isClientTimeout(c.err) {
		s := c.s
		s.mu.Lock()
		if !s.stopping && len(s.lingering) < maxLingering {
			s.lingering[c] = struct{}{}
			s.mu.Unlock()
			go s.linger(c)
			return nil
		}
		s.mu.Unlock()
	}
	return c.Conn.Close()
}

// isClientTimeout reports whether err is one of the client timeouts: a
// client that missed one gets no more time to drain.
func isClientTimeout(err error) bool {
	return errors.Is(err, errHeaderTimeout) || errors.Is(err, errBodyTimeout)
}
