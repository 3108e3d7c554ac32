package health

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/proxy/fastcgi"
)

// fcgiBodyLimit caps the body a FastCGI probe keeps: "pong", or PHP-FPM's
// JSON status page (under 1 KiB without ?full).
const fcgiBodyLimit = 64 << 10

// fcgiRequestID is the request id of the probe's one request a connection.
const fcgiRequestID = 1

// fcgiProbe holds the buffers of the FastCGI probe and the status page read.
// Used only by the goroutine in Run.
type fcgiProbe struct {
	bw     *bufio.Writer
	br     *bufio.Reader
	w      fastcgi.Writer
	r      fastcgi.Reader
	params fastcgi.Params
	hdr    fastcgi.ResponseHeader
	head   []byte // the CGI header section, cap MaxHeaderBytes
	body   []byte
	values []byte // the FCGI_GET_VALUES record
}

func newFCGIProbe(maxHeader int) *fcgiProbe {
	return &fcgiProbe{
		bw:     bufio.NewWriterSize(nil, 4096),
		br:     bufio.NewReaderSize(nil, 4096),
		head:   make([]byte, 0, maxHeader),
		body:   make([]byte, 0, 1024),
		values: fastcgi.AppendGetValues(nil),
	}
}

// poolState is the last status page read, kept for PoolStatus.
type poolState struct {
	mu sync.Mutex // guards the fields below
	st fastcgi.PoolStatus
	at time.Time
	ok bool
	// err is the text of the last failed read, for the snapshot; "" when
	// it succeeded.
	err string
}

// errNotFastCGI is returned by a FastCGI probe whose upstream answered with
// bytes that are not FastCGI records.
var errNotFastCGI = errors.New("health: upstream does not speak FastCGI")

// fcgiExchange runs the FastCGI probe on conn, which has its deadline set:
// FCGI_GET_VALUES without a path, else a GET for path that must answer 2xx
// with the body "pong".
func (c *Checker) fcgiExchange(conn net.Conn, res *ProbeResult) error {
	p := c.fcgi
	p.br.Reset(conn)
	defer p.br.Reset(nil)
	if c.path == "" {
		if _, err := conn.Write(p.values); err != nil {
			res.Cause = diag.ClassifyIn(diag.PhaseRequest, err)
			return fmt.Errorf("write FCGI_GET_VALUES: %w", err)
		}
		if _, err := fastcgi.ReadValues(p.br); err != nil {
			res.Cause, err = p.classify(err)
			return fmt.Errorf("read FCGI_GET_VALUES_RESULT: %w", err)
		}
		return nil
	}
	status, body, err := p.get(conn, c.path, "")
	res.Status = status
	if err != nil {
		res.Cause, err = p.classify(err)
		return fmt.Errorf("FastCGI probe of %s: %w", c.path, err)
	}
	if status < 200 || status > 299 {
		res.Cause = diag.UpstreamStatus
		return fmt.Errorf("probe of ping.path %s answered with status %d", c.path, status)
	}
	if !bytes.Equal(bytes.TrimSpace(body), []byte("pong")) {
		res.Cause = diag.UpstreamStatus
		return fmt.Errorf("probe of ping.path %s answered %q, not pong: is it PHP-FPM's ping.path, with ping.response = pong?", c.path, clip(body))
	}
	return nil
}

// get sends a FastCGI GET for path?query on conn (no keep-conn: PHP-FPM
// closes it after) and returns the status and at most fcgiBodyLimit bytes of
// body, valid until the next get. PHP-FPM's ping and status paths name no
// file: SCRIPT_NAME and SCRIPT_FILENAME are the path itself.
func (p *fcgiProbe) get(conn net.Conn, path, query string) (int, []byte, error) {
	p.bw.Reset(conn)
	defer p.bw.Reset(nil)
	p.w.Reset(p.bw, fcgiRequestID)
	if err := fastcgi.WriteNamelessGet(&p.w, &p.params, path, query, "upmedic-health"); err != nil {
		return 0, nil, &diag.PhaseError{Phase: diag.PhaseRequest, Err: err}
	}
	p.r.Reset(p.br, fcgiRequestID)
	p.hdr.Reset()
	first, err := p.r.ReadHeader(&p.hdr, p.head[:0])
	if err != nil {
		return 0, nil, err
	}
	p.body = append(p.body[:0], first...)
	for {
		if len(p.body) == cap(p.body) {
			if len(p.body) >= fcgiBodyLimit {
				// Enough to judge; the rest is drained to reach
				// FCGI_END_REQUEST.
				if _, err := io.Copy(io.Discard, &p.r); err != nil {
					return p.hdr.Status, p.body, &diag.PhaseError{Phase: diag.PhaseBody, Err: err}
				}
				break
			}
			p.body = append(p.body, 0)[:len(p.body)]
		}
		n, err := p.r.Read(p.body[len(p.body):cap(p.body)])
		p.body = p.body[:len(p.body)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return p.hdr.Status, p.body, &diag.PhaseError{Phase: diag.PhaseBody, Err: err}
		}
	}
	return p.hdr.Status, p.body, nil
}

// classify returns the cause of err from a FastCGI exchange, and err
// extended with what answered when the bytes were not FastCGI.
func (p *fcgiProbe) classify(err error) (diag.Cause, error) {
	if errors.Is(err, fastcgi.ErrHeaderTooLarge) {
		return diag.HTTPResponseHeaderSectionSize, err
	}
	if errors.Is(err, fastcgi.ErrVersion) {
		// The Reader left the bytes for a look.
		got, _ := p.br.Peek(p.br.Buffered())
		if fastcgi.Sniff(got) == fastcgi.ProtocolHTTP {
			return diag.HTTPProtocolError, fmt.Errorf("%w: the address speaks HTTP (it answered %q): use an http upstream, or point it at PHP-FPM's listen", errNotFastCGI, clip(got))
		}
		return diag.HTTPProtocolError, fmt.Errorf("%w: %w", errNotFastCGI, err)
	}
	if pe, ok := errors.AsType[*diag.PhaseError](err); ok {
		return diag.ClassifyIn(pe.Phase, pe.Err), err
	}
	return diag.ClassifyIn(diag.PhaseHeader, err), err
}

// clip returns the first line of b, at most 64 bytes, for a message.
func clip(b []byte) []byte {
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		b = b[:i]
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return b
}

// readStatus reads PHP-FPM's status page (StatusPath?json) on a connection
// of its own, with the probe's timeout, and keeps it for PoolStatus. A
// failure is logged at debug and makes PoolStatus report ok=false; it does
// not touch the health state.
func (c *Checker) readStatus(ctx context.Context) {
	start := time.Now()
	st, err := c.fetchStatus(ctx, start)
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	c.pool.at = start
	if err != nil {
		c.pool.ok = false
		c.pool.err = err.Error()
		c.log.Debug("PHP-FPM status page read failed", "path", c.statusPath, "address", c.statusAddress, "error", c.pool.err)
		return
	}
	c.pool.st, c.pool.ok, c.pool.err = st, true, ""
}

func (c *Checker) fetchStatus(ctx context.Context, start time.Time) (fastcgi.PoolStatus, error) {
	conn, err := c.dialer.DialContext(ctx, c.statusNetwork, c.statusAddress)
	if err != nil {
		return fastcgi.PoolStatus{}, fmt.Errorf("dial status page: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(start.Add(c.dialer.Timeout)); err != nil {
		return fastcgi.PoolStatus{}, fmt.Errorf("set deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	p := c.fcgi
	p.br.Reset(conn)
	defer p.br.Reset(nil)
	status, body, err := p.get(conn, c.statusPath, "json")
	if err != nil {
		_, err = p.classify(err)
		return fastcgi.PoolStatus{}, fmt.Errorf("read status page %s: %w", c.statusPath, err)
	}
	if status != 200 {
		return fastcgi.PoolStatus{}, fmt.Errorf("status page %s answered with status %d: is it PHP-FPM's pm.status_path?", c.statusPath, status)
	}
	st, err := fastcgi.ParsePoolStatus(body)
	if err != nil {
		return fastcgi.PoolStatus{}, fmt.Errorf("parse status page %s: %w", c.statusPath, err)
	}
	return st, nil
}

// PoolStatus returns the last PHP-FPM status page read (StatusPath) and when
// the read started; ok is false when none was read yet, the last read
// failed, or StatusPath is not set. It satisfies proxy.PoolState. It
// allocates nothing and is safe for concurrent use.
func (c *Checker) PoolStatus() (st fastcgi.PoolStatus, at time.Time, ok bool) {
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	return c.pool.st, c.pool.at, c.pool.ok
}

// PoolSnapshot is the last read of PHP-FPM's status page, for /status.
type PoolSnapshot struct {
	// Status is the last status page read successfully; with OK false it
	// is an older one, or zero.
	Status fastcgi.PoolStatus
	// At is when the last read started, successful or not; zero before
	// the first.
	At time.Time
	// OK is true when the last read succeeded.
	OK bool
	// Error is the text of the last failed read, for server-side use only
	// (it holds paths and addresses); "" when OK.
	Error string
}

func (c *Checker) poolSnapshot() *PoolSnapshot {
	if c.statusPath == "" {
		return nil
	}
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	return &PoolSnapshot{Status: c.pool.st, At: c.pool.at, OK: c.pool.ok, Error: c.pool.err}
}
