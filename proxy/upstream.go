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

// alive reports whether an idle connection still looks usable: the upstream
// has neither closed nor reset it nor sent anything while it sat idle. It
// costs one non-blocking recv(MSG_PEEK), so it is kept for requests that
// cannot be retried when a stale connection fails them.
func (c *conn) alive() bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN // nothing to read: still open and quiet
		return true
	})
	return err == nil && alive
}

// pool holds the upstream connections: at most cap(slots) open at once, the
// idle ones in idle. It is safe for concurrent use.
type pool struct {
	network, address string
	connectTimeout   time.Duration
	headerBytes      int
	traffic          *diag.Traffic

	slots chan struct{} // a token per open connection
	idle  chan *conn    // keep-alive connections ready for reuse

	// refused is the last connect that failed at once (see memorable), nil
	// after a connect succeeds; it is answered again for memo after it.
	refused atomic.Pointer[refusal]
	memo    time.Duration
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
	select {
	case c := <-p.idle:
		return c, nil
	default:
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
	select {
	case c := <-p.idle:
		return c, nil
	case p.slots <- struct{}{}:
		return p.dial(start)
	case <-t.C:
		return nil, diag.ErrConnectionLimit
	}
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
	c.br = bufio.NewReaderSize(c, p.headerBytes)
	c.bw = bufio.NewWriterSize(nc, 4096)
	return c, nil
}

// put returns c to the pool for reuse when reusable, or closes it.
func (p *pool) put(c *conn, reusable bool) {
	if reusable && c.br.Buffered() == 0 {
		c.idle, c.lastErr, c.reused = 0, nil, true
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
