package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/proxy/fastcgi"
	"github.com/valyala/fasthttp"
)

// FastCGI configures a FastCGI upstream (PHP-FPM): what the CGI parameters
// of a request are built from. Settings.FastCGI set makes the proxy speak
// FastCGI to the upstream instead of HTTP.
type FastCGI struct {
	// Root is the document root as PHP-FPM sees it, an absolute path:
	// DOCUMENT_ROOT, and the directory no SCRIPT_FILENAME leaves.
	Root string
	// Index is the script a path ending in '/' runs. Empty means
	// "index.php".
	Index string
	// FrontController is the script a path naming no .php script runs
	// ("/index.php", as nginx's `try_files $uri /index.php`); empty means
	// such a path is answered 404 without running anything.
	FrontController string
	// Trusted are the front addresses, besides loopback and unix sockets,
	// whose X-Real-IP and X-Forwarded-Proto are believed.
	Trusted []netip.Prefix
	// Pool, when set, reports PHP-FPM's pool status (pm.status_path, read by
	// the health checker), so that a 504 can say the request waited for a
	// worker. Nil means no pool status.
	Pool PoolState
}

// PoolState is what the proxy asks of whoever reads PHP-FPM's status page
// (*health.Checker). Its methods must not allocate.
type PoolState interface {
	// PoolStatus returns the last status page read and when it was read;
	// ok is false when none was read yet or the last read failed.
	PoolStatus() (st fastcgi.PoolStatus, at time.Time, ok bool)
}

// CheckFastCGI reports what is wrong with f, naming the setting.
func CheckFastCGI(f *FastCGI) error {
	_, err := fastcgi.NewResolver(f.Root, f.Index, f.FrontController)
	return err
}

// fastcgiUpstream is what a Proxy with a FastCGI upstream holds.
type fastcgiUpstream struct {
	resolver *fastcgi.Resolver
	trusted  []netip.Prefix
	pool     PoolState
	stderr   stderrRing
}

func newFastCGIUpstream(f *FastCGI) *fastcgiUpstream {
	r, err := fastcgi.NewResolver(f.Root, f.Index, f.FrontController)
	if err != nil {
		panic("proxy: FastCGI settings not checked with CheckFastCGI: " + err.Error())
	}
	return &fastcgiUpstream{resolver: r, trusted: f.Trusted, pool: f.Pool}
}

// fcgiConn is the FastCGI state of one upstream connection: the record
// writer and reader over its buffers, and the buffers of one response.
type fcgiConn struct {
	w fastcgi.Writer
	r fastcgi.Reader
	h fastcgi.ResponseHeader
	// hbuf holds the CGI header section, UPMEDIC_MAX_RESPONSE_HEADER_BYTES
	// at most, and the body bytes that came with it; body holds a body
	// being buffered, and a streamed body's first bytes.
	hbuf, body []byte
	one        [1]byte
	// id is the request id of the request in progress: each request on a
	// connection gets the next one, so that a record left over from an
	// earlier request (one that arrived after the reuse check) is
	// ErrRequestID, a diagnosed 502, never the next client's answer.
	id uint16
}

// nextID moves fc to the next request id, skipping 0 (management records).
func (fc *fcgiConn) nextID() uint16 {
	fc.id++
	if fc.id == fastcgi.NullRequestID {
		fc.id = 1
	}
	return fc.id
}

// fcgiExchange is the FastCGI part of an exchange, reused with it.
type fcgiExchange struct {
	script  fastcgi.Script
	params  fastcgi.Params
	req     fastcgi.Request
	pairs   []byte
	bodyLen int64 // CONTENT_LENGTH
	body    bytes.Reader
}

// The FastCGI limits.
const (
	// fastCGIChunkedBytes is the largest chunked request body received whole
	// to learn the CONTENT_LENGTH PHP-FPM needs; a larger one is 413.
	fastCGIChunkedBytes = 1 << 20
	// fastCGIKeepAlive makes an idle kept connection retire after 1 s:
	// PHP-FPM's worker waits on a kept connection and serves no one else,
	// and its request_terminate_timeout counts that wait.
	fastCGIKeepAlive = 2 * time.Second
	// fastCGIReadBytes is the read buffer of a FastCGI connection: records
	// carry up to 64 KiB each.
	fastCGIReadBytes = 16 << 10
	// poolStatusFresh is how old a pool status may be to explain a timeout.
	poolStatusFresh = 10 * time.Second
	// stderrSlot is the log limiter's slot for STDERR lines.
	stderrSlot = 30
)

var (
	strRealIP         = []byte("X-Real-IP")
	strForwardedProto = []byte("X-Forwarded-Proto")
	strHTTPS          = []byte("https")
	// errFastCGIHeaderSize is a CGI header section over the limit: it
	// classifies as a header-size failure, like bufio's full buffer.
	errFastCGIHeaderSize = fmt.Errorf("%w: %w", fastcgi.ErrHeaderTooLarge, bufio.ErrBufferFull)
)

// errFastCGIProtocol marks a record-layer error: the upstream broke the
// FastCGI protocol, which classifies as http_protocol_error in every phase.
var errFastCGIProtocol = fmt.Errorf("proxy: FastCGI protocol broken: %w", diag.ErrNotHTTP)

// fastCGIProtocol marks err when it says the upstream broke the FastCGI
// protocol (a record of the wrong version, type or request id, a bad
// FCGI_END_REQUEST), so that it is never taken for a network failure or an
// unclassified one; other errors come back as they are. It allocates only
// for such an error.
func fastCGIProtocol(err error) error {
	if errors.Is(err, fastcgi.ErrProtocol) {
		return fmt.Errorf("%w: %w", errFastCGIProtocol, err)
	}
	return err
}

// prepareFastCGI resolves the script a request runs and builds its CGI
// parameters, before any upstream connection is taken. A request that may
// run nothing is answered here, and prepareFastCGI returns false.
func (x *exchange) prepareFastCGI() bool {
	p, ctx, fx := x.p, x.ctx, &x.fx
	h := &ctx.Request.Header
	if err := p.fcgi.resolver.Resolve(&fx.script, h.RequestURI()); err != nil {
		if errors.Is(err, fastcgi.ErrNoScript) {
			p.reject(ctx, fasthttp.StatusNotFound, "no-script", "the path names no PHP script", err)
		} else {
			p.reject(ctx, fasthttp.StatusBadRequest, "script-path", "the path may not name a script", err)
		}
		return false
	}
	if err := x.bufferBody(); err != nil {
		p.rejectBody(x)
		return false
	}
	fx.bodyLen = 0
	switch cl := h.ContentLength(); {
	case x.bodyBuffered:
		fx.bodyLen = int64(cl)
	case cl > 0:
		fx.bodyLen = int64(cl) // streamed to STDIN as it arrives
	case cl == -1 && ctx.Request.BodyStream() != nil:
		// Chunked: PHP-FPM reads no body without CONTENT_LENGTH, so it is
		// received whole first, up to fastCGIChunkedBytes.
		n, err := x.bufferChunked()
		if err != nil {
			if x.clientBody.err != nil {
				p.rejectBody(x)
			} else {
				p.reject(ctx, fasthttp.StatusRequestEntityTooLarge, "chunked-body-size",
					"a chunked request body to PHP is received whole, and this one is too large", err)
			}
			return false
		}
		fx.bodyLen, x.bodyBuffered = int64(n), true
	}
	stripHopByHop(h)
	r := &fx.req
	peer := ctx.RemoteAddr()
	r.Method, r.RequestURI, r.Protocol = h.Method(), h.RequestURI(), h.Protocol()
	r.ContentType, r.ContentLength, r.Host = h.ContentType(), fx.bodyLen, h.Host()
	r.HTTPS = fastcgi.Trusted(peer, p.fcgi.trusted) && bytes.EqualFold(h.PeekBytes(strForwardedProto), strHTTPS)
	r.Remote, _ = fastcgi.ClientAddr(peer, h.PeekBytes(strRealIP), p.fcgi.trusted)
	r.ServerAddr = netip.Addr{}
	if a, ok := ctx.LocalAddr().(*net.TCPAddr); ok {
		r.ServerAddr = a.AddrPort().Addr().Unmap()
	}
	r.Header = h
	pairs, err := fx.params.Build(r, &fx.script)
	if err != nil {
		p.reject(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "header-field-size",
			"a header field does not fit in one FastCGI record", err)
		return false
	}
	fx.pairs = pairs
	return true
}

// errChunkedTooLarge is a chunked request body over fastCGIChunkedBytes.
var errChunkedTooLarge = errors.New("proxy: chunked request body larger than 1 MiB for a FastCGI upstream")

// bufferChunked receives a chunked request body whole into x.reqBody.
func (x *exchange) bufferChunked() (int, error) {
	x.clientBody = clientBody{r: x.ctx.Request.BodyStream()}
	n := 0
	for {
		if n == len(x.reqBody) {
			if n > fastCGIChunkedBytes {
				return 0, errChunkedTooLarge
			}
			x.reqBody = append(x.reqBody[:n], make([]byte, max(n, 16<<10))...)
		}
		m, err := x.clientBody.Read(x.reqBody[n:])
		n += m
		if errors.Is(err, io.EOF) {
			if n > fastCGIChunkedBytes {
				return 0, errChunkedTooLarge
			}
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// roundTripFastCGI is roundTrip for a FastCGI upstream: it writes the
// request's records on c, reads the CGI header from STDOUT, and the body
// whole when it is small. PHP-FPM's STDERR labels a 404 or 403 of its own.
func (p *Proxy) roundTripFastCGI(x *exchange, c *conn) (diag.Phase, error) {
	ctx := x.ctx
	if err := p.beginAttempt(x, c); err != nil {
		return diag.PhaseRequest, err
	}
	if c.fcgi == nil {
		c.fcgi = &fcgiConn{hbuf: make([]byte, p.pool.headerBytes)}
	}
	fc := c.fcgi
	early := false
	if err := p.writeFastCGI(x, c); err != nil {
		if x.clientBody.err != nil || !c.answered() {
			return diag.PhaseRequest, err
		}
		early = true
	}
	if !c.reused || (x.clientBody.r != nil && !x.bodyBuffered) {
		x.sent = time.Now()
	}
	fc.r.Reset(c.br, fc.id)
	body, err := fc.r.ReadHeader(&fc.h, fc.hbuf[:0])
	if err != nil {
		if errors.Is(err, fastcgi.ErrHeaderTooLarge) {
			err = errFastCGIHeaderSize
		}
		return diag.PhaseHeader, fastCGIProtocol(err)
	}
	c.idle, c.keepAlive = p.readTimeout, fastCGIKeepAlive
	fh := &fc.h
	resp := &ctx.Response
	resp.Header.SetStatusCode(fh.Status)
	if len(fh.Reason) > 0 {
		resp.Header.SetStatusMessage(fh.Reason)
	}
	x.ps = x.ps[:0]
	for i := range fh.Fields {
		p.addField(x, &resp.Header, fh.Fields[i].Name, fh.Fields[i].Value)
	}
	p.setProxyStatus(x, &resp.Header)
	if early {
		ctx.SetConnectionClose()
	}
	p.labelScript(x, fc)

	noBody := ctx.IsHead() || fh.Status == fasthttp.StatusNoContent || fh.Status == fasthttp.StatusNotModified
	fc.body = append(fc.body[:0], body...)
	complete, err := fc.readBody(p.bufferBytes)
	if err != nil {
		return diag.PhaseBody, fastCGIProtocol(err)
	}
	cl := fh.ContentLength
	if noBody {
		if cl >= 0 && fh.Status != fasthttp.StatusNoContent {
			resp.Header.SetContentLength(int(cl))
		}
		resp.SkipBody = true
		p.pool.put(c, complete && !early && fc.r.Done())
		return diag.PhaseBody, nil
	}
	if complete {
		b := fc.body
		if cl >= 0 {
			if int64(len(b)) < cl {
				return diag.PhaseBody, io.ErrUnexpectedEOF // the script announced more
			}
			b = b[:cl] // like nginx, what is past Content-Length is dropped
		}
		resp.SetBody(b)
		p.pool.put(c, !early && fc.r.Done())
		return diag.PhaseBody, nil
	}
	s := bodyStreamPool.Get().(*bodyStream)
	*s = bodyStream{p: p, c: c, start: x.start, reusable: !early, head: s.head,
		framing: framingFastCGI, prefix: fc.body, remaining: cl}
	s.req.Set(ctx.Method(), ctx.Request.Header.RequestURI())
	if cl >= 0 && int64(len(fc.body)) > cl {
		s.prefix = fc.body[:cl]
	}
	x.stream(s, int(max(cl, -1)))
	return diag.PhaseBody, nil
}

// writeFastCGI writes the request's records: FCGI_BEGIN_REQUEST with
// FCGI_KEEP_CONN, the parameters, the body as FCGI_STDIN, and the empty
// FCGI_STDIN that ends it, then flushes.
func (p *Proxy) writeFastCGI(x *exchange, c *conn) error {
	fx, w := &x.fx, &c.fcgi.w
	w.Reset(c.bw, c.fcgi.nextID())
	if err := w.BeginRequest(true); err != nil {
		return err
	}
	if err := w.Params(fx.pairs); err != nil {
		return err
	}
	switch {
	case x.bodyBuffered:
		fx.body.Reset(x.reqBody[:fx.bodyLen])
		if _, err := w.ReadFrom(&fx.body); err != nil {
			return err
		}
	case fx.bodyLen > 0:
		p.pool.bodies.Add(1)
		p.traffic.ClientBody(1)
		defer func() {
			p.pool.bodies.Add(-1)
			p.traffic.ClientBody(-1)
		}()
		x.clientBody = clientBody{r: x.ctx.Request.BodyStream()}
		x.limited = io.LimitedReader{R: &x.clientBody, N: fx.bodyLen}
		if n, err := w.ReadFrom(&x.limited); err != nil {
			return err
		} else if n < fx.bodyLen {
			return x.clientBody.short()
		}
	}
	return w.EndStdin()
}

// readBody reads STDOUT on into fc.body, which holds the body bytes read so
// far, until FCGI_END_REQUEST (complete) or until it holds more than limit
// bytes; a negative limit reads nothing more.
func (fc *fcgiConn) readBody(limit int) (complete bool, err error) {
	if limit < 0 {
		return false, nil
	}
	for len(fc.body) <= limit {
		if len(fc.body) == cap(fc.body) {
			fc.body = append(fc.body, make([]byte, max(cap(fc.body), 4096))...)[:len(fc.body)]
		}
		n, err := fc.r.Read(fc.body[len(fc.body):cap(fc.body)])
		fc.body = fc.body[:len(fc.body)+n]
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

// labelScript reads PHP-FPM's STDERR so far: it names a 404 or 403 of
// PHP-FPM's own (the script is missing, or its extension may not run), and
// it goes to the log and /status.
func (p *Proxy) labelScript(x *exchange, fc *fcgiConn) {
	if len(fc.r.Stderr) == 0 {
		return
	}
	kind, script := fastcgi.ClassifyStderr(fc.r.Stderr)
	switch st := fc.h.Status; {
	case st == fasthttp.StatusNotFound && (kind == fastcgi.StderrScriptUnknown || kind == fastcgi.StderrScriptUnreadable):
		x.d = diag.Diagnosis{Cause: diag.ScriptNotFound, ReceivedStatus: st, FastCGI: true}
		if len(script) == 0 {
			script = x.fx.script.Filename
		}
	case st == fasthttp.StatusForbidden && kind == fastcgi.StderrAccessDenied:
		x.d = diag.Diagnosis{Cause: diag.ScriptAccessDenied, ReceivedStatus: st, FastCGI: true}
	}
	p.fcgi.stderr.note(p, x.ctx, kind, script, fc.r.Stderr)
}

// StderrLine is one text PHP-FPM wrote to a request's STDERR, as /status
// shows it.
type StderrLine struct {
	At     time.Time `json:"at"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	// Kind is what upmedic recognized in it ("primary script unknown",
	// "text").
	Kind string `json:"kind"`
	// Script is the script path PHP-FPM named, or SCRIPT_FILENAME for
	// "Primary script unknown".
	Script string `json:"script,omitempty"`
	Text   string `json:"text"`
}

// stderrLines is how many STDERR texts /status keeps; stderrTextBytes how
// much of each.
const (
	stderrLines     = 64
	stderrTextBytes = 1024
)

// stderrRing keeps the most recent STDERR texts. Texts beyond logBurst a
// second are counted, not kept: a script that warns on every request must
// not cost an allocation per request.
type stderrRing struct {
	mu         sync.Mutex
	lines      [stderrLines]StderrLine
	n          int // texts kept in all
	suppressed int64
}

// note keeps one STDERR text and logs it, rate-limited.
func (r *stderrRing) note(p *Proxy, ctx *fasthttp.RequestCtx, kind fastcgi.StderrKind, script, text []byte) {
	ok, suppressed := p.limiter.allow(stderrSlot, time.Now())
	if !ok {
		r.mu.Lock()
		r.suppressed++
		r.mu.Unlock()
		return
	}
	text = bytes.TrimSpace(text[:min(len(text), stderrTextBytes)])
	l := StderrLine{At: time.Now(), Method: string(ctx.Method()), Path: string(ctx.Request.Header.RequestURI()),
		Kind: kind.String(), Script: string(script), Text: string(text)}
	r.mu.Lock()
	r.lines[r.n%stderrLines] = l
	r.n++
	r.mu.Unlock()
	if p.log.Enabled(context.Background(), slog.LevelWarn) {
		attrs := []slog.Attr{slog.String("kind", l.Kind), slog.String("method", l.Method), slog.String("uri", l.Path)}
		if l.Script != "" {
			attrs = append(attrs, slog.String("script", l.Script))
		}
		attrs = append(attrs, slog.String("stderr", l.Text))
		if suppressed > 0 {
			attrs = append(attrs, slog.Int64("suppressed_before", suppressed))
		}
		p.log.LogAttrs(context.Background(), slog.LevelWarn, "FastCGI stderr", attrs...)
	}
}

// FastCGIStderr returns the most recent STDERR texts of PHP-FPM, oldest
// first; nil for an HTTP upstream.
func (p *Proxy) FastCGIStderr() []StderrLine {
	if p.fcgi == nil {
		return nil
	}
	r := &p.fcgi.stderr
	r.mu.Lock()
	defer r.mu.Unlock()
	first := max(r.n-stderrLines, 0)
	lines := make([]StderrLine, 0, r.n-first)
	for i := first; i < r.n; i++ {
		lines = append(lines, r.lines[i%stderrLines])
	}
	return lines
}

// FastCGIStderrSuppressed returns how many STDERR texts were over the rate
// limit, counted but neither kept nor logged.
func (p *Proxy) FastCGIStderrSuppressed() int64 {
	if p.fcgi == nil {
		return 0
	}
	r := &p.fcgi.stderr
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.suppressed
}

// poolBusy adds PHP-FPM's pool status to the diagnosis of a timeout when
// every worker was busy: the request waited in the listen queue.
func (p *Proxy) poolBusy(d *diag.Diagnosis, now time.Time) {
	if p.fcgi == nil || p.fcgi.pool == nil {
		return
	}
	st, at, ok := p.fcgi.pool.PoolStatus()
	if !ok || now.Sub(at) > poolStatusFresh || (st.IdleProcesses > 0 && st.ListenQueue == 0) {
		return
	}
	d.Pool, d.ListenQueue, d.ActiveProcesses = true, st.ListenQueue, st.ActiveProcesses
	if st.ProcessManager == "static" {
		d.MaxChildren = st.TotalProcesses
	}
}

// answeredProtocol returns which other protocol than the one upmedic speaks
// the bytes c received belong to, for the answered parameter.
func (p *Proxy) answeredProtocol(c *conn, err error) string {
	if c == nil || c.br.Buffered() == 0 || (p.fcgi != nil && !errors.Is(err, fastcgi.ErrVersion)) {
		// A FastCGI reader consumes what it parses, except a first
		// header that is not FastCGI at all.
		return ""
	}
	b, _ := c.br.Peek(min(c.br.Buffered(), 16))
	switch fastcgi.Sniff(b) {
	case fastcgi.ProtocolHTTP:
		if p.fcgi != nil {
			return diag.AnsweredHTTP
		}
	case fastcgi.ProtocolFastCGI:
		if p.fcgi == nil {
			return diag.AnsweredFastCGI
		}
	}
	return ""
}
