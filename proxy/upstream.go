package proxy

import (
	"bufio"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// conn is one upstream connection with its buffers. It is owned by one
// exchange at a time.
type conn struct {
	nc net.Conn
	br *bufio.Reader // sized to the response header limit; reads through conn.Read
	bw *bufio.Writer
	// idle, when positive, makes every read first move the read deadline this
	// far ahead: the "longest silence" limit of a response body. Zero leaves
	// the deadline set by the caller (the response header's absolute limit).
	idle time.Duration
	// lastErr is the last error the socket returned. fasthttp turns a reset
	// before the first header byte into io.EOF; this keeps the errno.
	lastErr error
	reused  bool // it served an exchange before this one
	// keepAlive is the idle timeout the upstream announced with its last
	// response (Keep-Alive: timeout=N), zero when it announced none;
	// retireAt is when the connection, idle, is too close to it to reuse.
	keepAlive time.Duration
	retireAt  time.Time
	// idleSince is when the connection last fell idle in the pool; idleAge
	// is how long it had been idle when an exchange took it.
	idleSince time.Time
	idleAge   time.Duration

	// rc, peek, peekBuf, peekAlive and peekClosed serve alive without
	// allocating.
	rc         syscall.RawConn
	peek       func(fd uintptr) bool
	peekBuf    [1]byte
	peekAlive  bool
	peekClosed bool // the peek found the connection closed or reset by the upstream

	fcgi *fcgiConn // the FastCGI state, for a FastCGI upstream
}

// received reports whether the upstream sent any byte of an answer to the
// request in progress.
func (c *conn) received() bool {
	if c.fcgi != nil {
		return c.fcgi.r.Received()
	}
	return c.br.Buffered() > 0
}

// Read reads from the socket, moving the deadline first when idle is set.
func (c *conn) Read(p []byte) (int, error) {
	if c.idle > 0 {
		if err := c.nc.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
			return 0, err
		}
	}
	n, err := c.nc.Read(p)
	if err != nil {
		c.lastErr = err
	}
	return n, err
}

// alive reports whether an idle connection is still fit to carry a request:
// the upstream has neither closed nor reset it, nor sent anything while it
// sat idle (a late body, a stray response: the next request would read it as
// its answer). It costs one non-blocking recv(MSG_PEEK), paid on every reuse,
// as nginx's keepalive module pays a read.
func (c *conn) alive() bool {
	if c.rc == nil {
		return true
	}
	c.peekAlive, c.peekClosed = false, false
	if err := c.rc.Read(c.peek); err != nil {
		return false
	}
	return c.peekAlive
}

// peekFn returns c's peek callback for RawConn.Read, made once per
// connection: a closure made per call would be an allocation per request.
func (c *conn) peekFn() func(fd uintptr) bool {
	return func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		c.peekAlive = err == syscall.EAGAIN // nothing to read: still open and quiet
		// A FIN reads as 0 bytes, a reset as ECONNRESET: the upstream
		// closed it. Bytes are not a close, but a desync.
		c.peekClosed = (n == 0 && err == nil) || err == syscall.ECONNRESET
		return true
	}
}

// earlyAnswerWait is how long, after writing a request failed, upmedic
// waits for an answer the app may have sent before it stopped reading.
const earlyAnswerWait = 100 * time.Millisecond

// answered reports whether the upstream sent something that may be an
// answer, after writing the request to it failed: an app that refuses an
// upload (413) answers and closes before the body is sent.
func (c *conn) answered() bool {
	if c.br.Buffered() > 0 {
		return true
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(earlyAnswerWait))
	_, err := c.br.Peek(1)
	return err == nil
}

// pool holds the upstream connections: at most cap(slots) open at once, the
// idle ones in idle. It is safe for concurrent use.
type pool struct {
	network, address string
	connectTimeout   time.Duration
	headerBytes      int
	// readBytes, when larger than headerBytes, is the read buffer's size
	// (FastCGI records carry up to 64 KiB each).
	readBytes int
	traffic   *diag.Traffic

	slots chan struct{} // a token per open connection
	idle  chan *conn    // keep-alive connections ready for reuse
	// bodies counts the connections busy sending a request body the client
	// is still streaming: a full pool held by slow clients says so.
	bodies atomic.Int32

	// refused is the last connect that failed at once (see memorable), nil
	// after a connect succeeds; it is answered again for memo after it.
	refused atomic.Pointer[refusal]
	memo    time.Duration

	// idles learns the upstream's keep-alive idle limit from the idle
	// connections it closes.
	idles idleLimits
}

// refusalMemo is how long a connect refused at once is answered again
// without a new connect. A refusing upstream then costs one connect per
// window instead of one per request; a restarted app is seen at most this
// much later (the breaker and the health check make the same trade, coarser).
const refusalMemo = 100 * time.Millisecond

// refusal is a remembered connect failure. It wraps the original error, so
// it classifies the same.
type refusal struct {
	err error
	at  time.Time
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// remembered reports whether err is a refusal answered from the memo, and
// how long ago that connect failed.
func remembered(err error, now time.Time) (age time.Duration, ok bool) {
	if r, ok := err.(*refusal); ok {
		return max(now.Sub(r.at), 0), true
	}
	return 0, false
}

// memorable reports whether a connect that failed with err says the same to
// every connect in the next moment: nothing listens, the socket file is
// missing or forbidden, or the route is refused. Timeouts and DNS failures
// are not remembered: they are rare per request, and slow by themselves.
func memorable(err error) bool {
	switch diag.ClassifyIn(diag.PhaseConnect, err) {
	case diag.ConnectionRefused, diag.SocketNotFound, diag.SocketPermissionDenied,
		diag.DestinationIPProhibited, diag.DestinationIPUnroutable:
		return true
	}
	return false
}

func newPool(network, address string, maxConns int, connectTimeout time.Duration, headerBytes int, t *diag.Traffic) *pool {
	return &pool{
		network: network, address: address,
		connectTimeout: connectTimeout, headerBytes: headerBytes, traffic: t,
		slots: make(chan struct{}, maxConns),
		idle:  make(chan *conn, maxConns),
		memo:  refusalMemo,
	}
}

// get returns an idle connection or dials a new one. When all connections are
// busy it waits for one until the connect deadline, then returns
// diag.ErrConnectionLimit. With recall, a connect refused less than p.memo
// before start is answered with that *refusal instead of a new connect.
func (p *pool) get(start time.Time, recall bool) (*conn, error) {
	if c := p.takeIdle(start); c != nil {
		return c, nil
	}
	if r := p.refused.Load(); recall && r != nil && start.Sub(r.at) < p.memo {
		return nil, r
	}
	select {
	case p.slots <- struct{}{}:
		return p.dial(start)
	default:
	}
	t := time.NewTimer(time.Until(start.Add(p.connectTimeout)))
	defer t.Stop()
	for {
		select {
		case c := <-p.idle:
			now := time.Now()
			ok, died := p.fit(c, now)
			if ok {
				return c, nil
			}
			p.idles.died(died, now)
		case p.slots <- struct{}{}:
			return p.dial(start)
		case <-t.C:
			return nil, diag.ErrConnectionLimit
		}
	}
}

// takeIdle returns an idle connection fit to carry a request at now, or nil
// when there is none. The idle connections it finds closed by the upstream
// count as one idle death, at the shortest idle age among them: an app that
// restarts closes them all at once.
func (p *pool) takeIdle(now time.Time) *conn {
	var died time.Duration
	for {
		select {
		case c := <-p.idle:
			ok, d := p.fit(c, now)
			if ok {
				p.idles.died(died, now)
				return c
			}
			if d > 0 && (died == 0 || d < died) {
				died = d
			}
		default:
			p.idles.died(died, now)
			return nil
		}
	}
}

// fit reports whether the idle connection c may carry a request at now, and
// closes it if not: past the point its announced or learned keep-alive
// timeout makes risky, or no longer quiet and open. died is c's idle age
// when the upstream had closed it, zero otherwise.
func (p *pool) fit(c *conn, now time.Time) (ok bool, died time.Duration) {
	c.idleAge = max(now.Sub(c.idleSince), 0)
	if !c.retireAt.IsZero() && !now.Before(c.retireAt) {
		p.close(c)
		return false, 0
	}
	if !c.alive() {
		if c.peekClosed {
			died = c.idleAge
		}
		p.close(c)
		return false, died
	}
	return true, 0
}

// dial opens a connection in a slot already taken.
func (p *pool) dial(start time.Time) (*conn, error) {
	d := net.Dialer{Deadline: start.Add(p.connectTimeout)}
	nc, err := d.Dial(p.network, p.address)
	if err != nil {
		<-p.slots
		if memorable(err) {
			p.refused.Store(&refusal{err: err, at: time.Now()})
		}
		return nil, err
	}
	if p.refused.Load() != nil {
		p.refused.Store(nil)
	}
	p.traffic.ConnOpened()
	c := &conn{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc, c.peek = rc, c.peekFn()
		}
	}
	c.br = bufio.NewReaderSize(c, max(p.headerBytes, p.readBytes))
	c.bw = bufio.NewWriterSize(nc, 4096)
	return c, nil
}

// put returns c to the pool for reuse when reusable, or closes it. With the
// upstream's announced keep-alive timeout, or the idle limit learned from
// it, it sets when c must be retired.
func (p *pool) put(c *conn, reusable bool) {
	if reusable && c.br.Buffered() == 0 {
		// One clock read per pooled response: the idle ages that teach the
		// idle limit must not include the exchange before them.
		now := time.Now()
		if c.reused {
			// It carried a whole exchange after idling: the upstream keeps
			// connections open at least this long.
			p.idles.survived(c.idleAge, now)
		}
		c.idle, c.lastErr, c.reused = 0, nil, true
		c.idleSince, c.retireAt = now, time.Time{}
		if c.keepAlive > 0 {
			c.retireAt = now.Add(c.keepAlive - retireMargin(c.keepAlive))
		}
		if r := p.idles.retireAfter(); r > 0 && (c.retireAt.IsZero() || now.Add(r).Before(c.retireAt)) {
			c.retireAt = now.Add(r)
		}
		select {
		case p.idle <- c:
			return
		default:
		}
	}
	p.close(c)
}

// close closes c and frees its slot.
func (p *pool) close(c *conn) {
	_ = c.nc.Close()
	<-p.slots
	p.traffic.ConnClosed()
}

// closeIdle closes every idle connection.
func (p *pool) closeIdle() {
	for {
		select {
		case c := <-p.idle:
			p.close(c)
		default:
			return
		}
	}
}
