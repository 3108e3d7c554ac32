// Package proxy is upmedic's reverse proxy: it forwards each request to one
// upstream and, when the upstream fails, answers with a diagnosed 502/503/504
// that names the cause in X-Upstream-Diagnosis and Proxy-Status.
package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/proxy/h1"
	"github.com/valyala/fasthttp"
)

// Settings configures a Proxy. Network and Address are required; every other
// zero field gets the default DESIGN.md gives.
type Settings struct {
	// Network and Address name the upstream: "tcp" and "127.0.0.1:8000", or
	// "unix" and "/run/app.sock".
	Network, Address string
	// Display is the upstream as the operator configured it, for logs and
	// (with ExposeDetails) the upstream parameter. Empty means Address.
	Display string
	// Host is sent as the Host header when a request has none (HTTP/1.0).
	// Empty means Address for TCP and "localhost" for unix sockets.
	Host string

	ConnectTimeout         time.Duration // dial limit; zero means 2s
	ResponseTimeout        time.Duration // until the response header; zero means 45s
	ReadTimeout            time.Duration // longest silence in a body; zero means 30s
	MaxResponseHeaderBytes int           // zero means 4096
	// BufferBytes is the largest Content-Length received whole before the
	// status goes downstream. Zero means 131072; negative means stream all.
	BufferBytes int
	MaxConns    int // upstream connection cap; zero means 512

	// ClientHeaderTimeout bounds a request's header section from its first
	// byte, and a new connection's wait for that first byte. Zero means 10s
	// (HAProxy's timeout http-request).
	ClientHeaderTimeout time.Duration
	// ClientBodyTimeout is the longest a request body may go silent. Zero
	// means 60s (nginx's client_body_timeout).
	ClientBodyTimeout time.Duration
	// ClientSendTimeout is the longest a write to the client may stall.
	// Zero means 60s (nginx's send_timeout).
	ClientSendTimeout time.Duration

	// Hold, when positive, holds a request while the upstream refuses
	// connections or its socket is missing (a restart), re-dialling about
	// every 100ms, for at most this long from the request's start.
	Hold time.Duration

	// ExposeDetails adds the upstream address and the hint to client-visible
	// headers and bodies.
	ExposeDetails bool
	// Name is the Proxy-Status member name, an sf-token. Empty means "upmedic".
	Name string
	// FastCGI, when set, makes the upstream a FastCGI server (PHP-FPM):
	// requests go to it as FastCGI records, and hints name PHP-FPM's
	// settings. Nil means the upstream speaks HTTP.
	FastCGI *FastCGI

	// Health, when set, makes requests fail fast with upstream_unhealthy while
	// it reports the upstream down (unless Hold is set). Nil means no active
	// health checks.
	Health HealthState
	// Breaker, when set, guards upstream exchanges. Nil means none.
	Breaker Breaker

	Journal *diag.Journal // nil means diagnoses are only logged
	Traffic *diag.Traffic // nil means no request counters
	Logger  *slog.Logger  // nil means slog.Default()
}

// HealthState is what the proxy asks of an active health checker
// (*health.Checker). Its methods must not allocate.
type HealthState interface {
	// Down reports whether the upstream is known to be down.
	Down() bool
	// LastFailure is the cause and the errno (0 if none) of the last
	// failed probe.
	LastFailure() (diag.Cause, syscall.Errno)
	// NextProbe is when the next probe starts.
	NextProbe() time.Time
	// WaitUp returns a channel closed when the upstream next comes up.
	WaitUp() <-chan struct{}
}

// Breaker is what the proxy asks of a circuit breaker (*health.Breaker).
type Breaker interface {
	// Do runs fn unless the breaker is open and counts the cause it returns;
	// ran is false when it refused.
	Do(fn func() diag.Cause) (cause diag.Cause, ran bool)
	// Open reports the cause that opened the breaker and the time until its
	// next trial request.
	Open() (trippedBy diag.Cause, retryIn time.Duration, open bool)
}

// Proxy forwards requests to one upstream. It is safe for concurrent use.
type Proxy struct {
	pool            *pool
	display, host   string
	responseTimeout time.Duration
	readTimeout     time.Duration
	bufferBytes     int
	hold            time.Duration
	holdSlots       chan struct{} // a token per request being held
	expose          bool
	name            string
	kills           killTimers // the app's kill timers, from premature closes
	health          HealthState
	breaker         Breaker
	journal         *diag.Journal
	traffic         *diag.Traffic
	log             *slog.Logger
	limiter         logLimiter
	fcgi            *fastcgiUpstream // nil for an HTTP upstream
	exchanges       sync.Pool        // *exchange
	// clientTimeouts are the front server's header, body and send timeouts.
	clientTimeouts [3]time.Duration
}

// New returns a Proxy for the upstream s names.
func New(s Settings) *Proxy {
	if s.ConnectTimeout <= 0 {
		s.ConnectTimeout = 2 * time.Second
	}
	if s.ResponseTimeout <= 0 {
		// Above gunicorn's default kill timer (30s), below nginx's default
		// proxy_read_timeout (60s): with every default, upmedic answers.
		s.ResponseTimeout = 45 * time.Second
	}
	if s.ReadTimeout <= 0 {
		s.ReadTimeout = 30 * time.Second
	}
	if s.MaxResponseHeaderBytes <= 0 {
		s.MaxResponseHeaderBytes = 4096
	}
	if s.BufferBytes == 0 {
		s.BufferBytes = 128 << 10
	}
	if s.MaxConns <= 0 {
		s.MaxConns = 512
	}
	if s.ClientHeaderTimeout <= 0 {
		s.ClientHeaderTimeout = 10 * time.Second
	}
	if s.ClientBodyTimeout <= 0 {
		s.ClientBodyTimeout = 60 * time.Second
	}
	if s.ClientSendTimeout <= 0 {
		s.ClientSendTimeout = 60 * time.Second
	}
	if s.Name == "" {
		s.Name = "upmedic"
	}
	if s.Display == "" {
		s.Display = s.Address
	}
	if s.Host == "" {
		s.Host = s.Address
		if s.Network == "unix" {
			s.Host = "localhost"
		}
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	p := &Proxy{
		pool:            newPool(s.Network, s.Address, s.MaxConns, s.ConnectTimeout, s.MaxResponseHeaderBytes, s.Traffic),
		display:         s.Display,
		host:            s.Host,
		responseTimeout: s.ResponseTimeout,
		readTimeout:     s.ReadTimeout,
		bufferBytes:     s.BufferBytes,
		hold:            s.Hold,
		holdSlots:       make(chan struct{}, s.MaxConns),
		expose:          s.ExposeDetails,
		name:            s.Name,
		health:          s.Health,
		breaker:         s.Breaker,
		journal:         s.Journal,
		traffic:         s.Traffic,
		log:             s.Logger,
		clientTimeouts:  [3]time.Duration{s.ClientHeaderTimeout, s.ClientBodyTimeout, s.ClientSendTimeout},
	}
	if s.FastCGI != nil {
		p.fcgi = newFastCGIUpstream(s.FastCGI)
		p.pool.readBytes = fastCGIReadBytes
	}
	p.exchanges.New = func() any {
		x := &exchange{p: p}
		x.runFn = x.run
		return x
	}
	return p
}

// Server returns the server that serves p to the front proxy: fasthttp with
// the options a transparent proxy needs (no injected Server, Date or
// Content-Type headers, streamed request bodies, no multipart pre-parsing,
// in-flight requests drained on shutdown), behind a strict request scanner
// and the client timeouts, whose keep-alive connections give their write
// buffer back between requests (ReduceMemoryUsage) and park when idle (see
// parkAfter).
func (p *Proxy) Server() *Server {
	s := &Server{p: p, idleTimeout: 75 * time.Second, // above nginx's keepalive_timeout 60s
		parkAfter: parkAfter, traffic: p.traffic,
		headerTimeout: p.clientTimeouts[0], bodyTimeout: p.clientTimeouts[1], sendTimeout: p.clientTimeouts[2],
		lingerTime: lingerTime, lingerTimeout: lingerTimeout, lingerBytes: lingerBytes,
		parked: make(map[*frontConn]struct{}), lingering: make(map[*frontConn]struct{})}
	s.fh = &fasthttp.Server{
		Handler:                      p.ServeHTTP,
		ErrorHandler:                 p.rejectUnread,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		StreamRequestBody:            true,
		// The scanner refuses a header section over h1.MaxRequestHeaderBytes
		// before fasthttp's buffer could fill.
		ReadBufferSize:    h1.MaxRequestHeaderBytes + 512,
		ReduceMemoryUsage: true,
		CloseOnShutdown:   true,
		IdleTimeout:       s.idleTimeout,
		ConnState:         s.connState,
		// A worker whose connection parked ends soon, with its stack: a
		// parked connection is served again by its own goroutine.
		MaxIdleWorkerDuration: parkAfter,
		Logger:                fasthttpLogger{p.log},
	}
	return s
}

// Close closes the idle upstream connections. Connections in use close when
// their exchange ends.
func (p *Proxy) Close() { p.pool.closeIdle() }

// exchange is the state of one proxied request, pooled so that the hot path
// allocates nothing.
type exchange struct {
	p      *Proxy
	ctx    *fasthttp.RequestCtx
	start  time.Time
	http10 bool        // the client spoke HTTP/1.0
	resp   h1.Response // the upstream's response header, parsed
	hlen   int         // the length of that header section in c.br
	body   []byte      // a buffered response body
	buf    []byte      // scratch for formatting headers
	ps     []byte      // the upstream's Proxy-Status fields, joined
	d      diag.Diagnosis
	// reqBody holds a small request body received whole before the
	// exchange (see requestBufferBytes); bodyBuffered says it does.
	reqBody      []byte
	bodyBuffered bool
	attempts     int
	held         time.Duration
	// sent is when the request was last written upstream: the age of a
	// premature close counts from it.
	sent time.Time
	// runFn is x.run, made once: a method value passed through the Breaker
	// interface escapes, and would cost an allocation per request.
	runFn func() diag.Cause
	// upgrade holds the request's Upgrade value when it asks to switch
	// protocols (WebSocket); empty otherwise.
	upgrade []byte
	// clientBody and limited read the request body being sent upstream.
	clientBody clientBody
	limited    io.LimitedReader
	// fx is the FastCGI part, for a FastCGI upstream.
	fx fcgiExchange
}

// requestBufferBytes is the largest request body, with a Content-Length,
// that is received whole from the client before an upstream connection is
// taken: a client that trickles a small body holds no upstream connection,
// and its failure never reaches the app.
const requestBufferBytes = 64 << 10

// ServeHTTP proxies one request. It is a fasthttp.RequestHandler.
func (p *Proxy) ServeHTTP(ctx *fasthttp.RequestCtx) {
	x := p.exchanges.Get().(*exchange)
	x.ctx, x.start, x.attempts, x.held = ctx, time.Now(), 0, 0
	x.d = diag.Diagnosis{}
	x.http10 = !ctx.Request.Header.IsHTTP11()
	toOriginForm(&ctx.Request.Header)

	var cause diag.Cause
	switch {
	case p.hold <= 0 && p.health != nil && p.health.Down():
		cause = diag.UpstreamUnhealthy
		lastCause, errno := p.health.LastFailure()
		x.d = diag.Diagnosis{Cause: cause, LastCause: lastCause, Errno: errno,
			RetryIn: max(time.Until(p.health.NextProbe()), 0)}
	case p.breaker != nil:
		var ran bool
		if cause, ran = p.breaker.Do(x.runFn); !ran {
			cause = diag.BreakerOpen
			tripped, retryIn, _ := p.breaker.Open()
			x.d = diag.Diagnosis{Cause: cause, TrippedBy: tripped, RetryIn: retryIn}
		}
	default:
		cause = x.run()
	}
	if cause.IsFailure() {
		x.d.Elapsed = time.Since(x.start)
		if cause == diag.UpstreamUnhealthy || cause == diag.BreakerOpen {
			p.journal.Record(x.start, &x.d, diag.PhaseConnect, false, ctx.Method(), ctx.Request.Header.RequestURI())
		}
		p.answer(x)
	}
	end := time.Now()
	if cause.Passthrough() {
		// The app's own 5xx, or PHP-FPM's 404 or 403 of a script: counted
		// and kept like every diagnosis, though the breaker took it for a
		// success (the app answered).
		x.d.Elapsed = end.Sub(x.start)
		p.journal.Record(end, &x.d, diag.PhaseHeader, false, ctx.Method(), ctx.Request.Header.RequestURI())
	}
	p.traffic.Done(ctx.Response.StatusCode(), end.Sub(x.start), end)

	x.ctx, x.clientBody, x.limited, x.upgrade = nil, clientBody{}, io.LimitedReader{}, x.upgrade[:0]
	x.bodyBuffered = false
	p.exchanges.Put(x)
}

// toOriginForm turns an absolute-form request-target (http://host/path)
// into origin-form, with Host from the target (RFC 9112 section 3.2.2): the
// app sees one authority, the one the request was routed by. The scanner
// has checked the target's syntax.
func toOriginForm(h *fasthttp.RequestHeader) {
	uri := h.RequestURI()
	if len(uri) == 0 || uri[0] == '/' || uri[0] == '*' {
		return
	}
	i := bytes.Index(uri, strSchemeEnd)
	if i < 0 {
		return
	}
	rest := uri[i+len(strSchemeEnd):]
	end := bytes.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	h.SetHostBytes(rest[:end])
	path := rest[end:]
	switch {
	case len(path) == 0:
		h.SetRequestURI("/")
	case path[0] == '?':
		var b [1]byte
		b[0] = '/'
		h.SetRequestURIBytes(append(b[:], path...))
	default:
		// path points into the URI being replaced: fasthttp copies it with
		// append, which moves overlapping bytes correctly.
		h.SetRequestURIBytes(path)
	}
}

var strSchemeEnd = []byte("://")

// run carries out the exchange with the upstream, retrying once on a fresh
// connection when a reused one turns out to have been closed by the upstream.
// It prepares ctx.Response and returns None or UpstreamStatus when the
// upstream answered, or fills x.d and returns the failure's cause. A client
// whose request body fails gets its own 4xx, and None: the app did not fail.
func (x *exchange) run() diag.Cause {
	p := x.p
	if p.fcgi != nil {
		if !x.prepareFastCGI() {
			return diag.None
		}
	} else if err := x.bufferBody(); err != nil {
		p.rejectBody(x)
		return diag.None
	}
	for {
		x.attempts++
		c, err := p.connect(x)
		if err != nil {
			return x.failed(diag.PhaseConnect, err, nil)
		}
		phase, err := p.roundTrip(x, c)
		if x.clientBody.err != nil {
			// The client's request body broke off: not the upstream's fault.
			p.pool.close(c)
			p.rejectBody(x)
			return diag.None
		}
		if err == nil {
			if st := x.ctx.Response.StatusCode(); st >= 500 {
				x.d = diag.Diagnosis{Cause: diag.UpstreamStatus, ReceivedStatus: st, FastCGI: p.fcgi != nil}
			}
			if x.d.Cause.Passthrough() {
				p.labelUpstreamStatus(x)
				return x.d.Cause
			}
			return diag.None
		}
		if c.reused && keepAliveRace(phase, err, c) && time.Since(x.sent) < immediateClose {
			// The upstream closed the connection as the request reached
			// it: it had been idle for about the upstream's idle limit.
			p.pool.idles.died(c.idleAge, time.Now())
			if x.attempts == 1 && retryable(&x.ctx.Request.Header) {
				p.pool.close(c)
				p.traffic.Retried()
				continue
			}
		}
		err = refine(phase, err, c)
		cause := x.failed(phase, err, c)
		p.pool.close(c)
		return cause
	}
}

// bufferBody receives a request body of at most requestBufferBytes whole,
// before any upstream connection is taken.
func (x *exchange) bufferBody() error {
	req := &x.ctx.Request
	cl := req.Header.ContentLength()
	bs := req.BodyStream()
	if bs == nil || cl <= 0 || cl > requestBufferBytes {
		return nil
	}
	if cap(x.reqBody) < cl {
		x.reqBody = make([]byte, requestBufferBytes)
	}
	x.clientBody = clientBody{r: bs}
	if _, err := io.ReadFull(&x.clientBody, x.reqBody[:cl]); err != nil {
		if x.clientBody.err == nil {
			return x.clientBody.short()
		}
		return err
	}
	x.bodyBuffered = true
	return nil
}

// connect gets an upstream connection, holding the request through a restart
// of the upstream when Hold is set.
func (p *Proxy) connect(x *exchange) (*conn, error) {
	// The first connect of an exchange counts from the request's arrival:
	// one clock read per request on the hot path.
	now := x.start
	if x.attempts > 1 {
		now = time.Now()
	}
	c, err := p.pool.get(now, true)
	if err == nil || p.hold <= 0 || !holdable(err) {
		return c, err
	}
	select {
	case p.holdSlots <- struct{}{}:
		defer func() { <-p.holdSlots }()
	default:
		return nil, err // too many held already: answer now
	}
	holdStart := time.Now()
	end := x.start.Add(p.hold)
	var up <-chan struct{}
	for {
		wait := min(100*time.Millisecond, time.Until(end))
		if wait <= 0 {
			x.held = time.Since(holdStart)
			return nil, err
		}
		if p.health != nil {
			up = p.health.WaitUp()
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-up:
			up = nil
		}
		t.Stop()
		x.attempts++
		c, err = p.pool.get(time.Now(), false) // a held request dials: it waits for the app
		if err == nil || !holdable(err) {
			x.held = time.Since(holdStart)
			return c, err
		}
	}
}

// holdable reports whether a failed connect is the kind a restarting app
// causes, so that holding the request may ride it out.
func holdable(err error) bool {
	switch diag.ClassifyIn(diag.PhaseConnect, err) {
	case diag.ConnectionRefused, diag.SocketNotFound:
		return true
	}
	return false
}

// roundTrip writes the request on c and reads the response header, and a
// small body whole. On success ctx.Response holds the upstream's answer and c
// belongs to the pool or to the response's body stream.
func (p *Proxy) roundTrip(x *exchange, c *conn) (diag.Phase, error) {
	if p.fcgi != nil {
		return p.roundTripFastCGI(x, c)
	}
	ctx := x.ctx
	if err := p.beginAttempt(x, c); err != nil {
		return diag.PhaseRequest, err
	}
	early := false
	if err := p.writeRequest(x, &ctx.Request, c.bw); err != nil {
		// The app may have answered before it stopped reading the body (a
		// 413 to an upload): that answer is the response, if it came.
		if x.clientBody.err != nil || !c.answered() {
			return diag.PhaseRequest, err
		}
		early = true
	}
	if !c.reused || (x.clientBody.r != nil && !x.bodyBuffered) {
		// A dial or a streamed body took time since start; a reused
		// connection and a small body took none worth a clock read.
		x.sent = time.Now()
	}
	head := ctx.IsHead()
	for {
		if err := x.readHeader(c, head); err != nil {
			return diag.PhaseHeader, err
		}
		// Interim 1xx answers (100 Continue, 103 Early Hints) are not the
		// response: fasthttp cannot forward them, so skip them.
		if st := x.resp.Status; st >= 200 || st == fasthttp.StatusSwitchingProtocols {
			break
		}
		_, _ = c.br.Discard(x.hlen)
	}
	r := &x.resp
	c.idle = p.readTimeout
	if r.Status == fasthttp.StatusSwitchingProtocols {
		if len(x.upgrade) == 0 {
			return diag.PhaseHeader, errUnaskedUpgrade
		}
		p.copyHeader(x, &ctx.Response)
		_, _ = c.br.Discard(x.hlen)
		ctx.Response.Header.SetBytesV(fasthttp.HeaderUpgrade, fieldValue(r, strUpgradeField))
		ctx.Response.Header.Set(fasthttp.HeaderConnection, "Upgrade")
		if fc, ok := ctx.Conn().(*frontConn); ok {
			fc.tunnel()
		}
		ctx.Hijack(func(client net.Conn) { p.tunnel(client, c) })
		return diag.PhaseBody, nil
	}
	// A connection is reused only after a response that was framed whole
	// and asked for no close, after the whole request went out, and not
	// after a bodiless response that announced a body anyway (a HEAD with
	// Content-Length: the app might send that body late, where the next
	// request would read it as its answer).
	reusable := r.KeepAlive && !r.BodyAnnounced && !early
	if early {
		ctx.SetConnectionClose() // the client's body was not read whole
	}
	p.copyHeader(x, &ctx.Response)
	_, _ = c.br.Discard(x.hlen)
	c.keepAlive = time.Duration(r.KeepAliveTimeout) * time.Second

	switch {
	case r.Framing == h1.NoBody:
		if r.HasContentLength && r.Status != fasthttp.StatusNoContent {
			ctx.Response.Header.SetContentLength(int(r.ContentLength))
		}
		ctx.Response.SkipBody = true
		p.pool.put(c, reusable)
		return diag.PhaseBody, nil
	case r.Framing == h1.Length && r.ContentLength <= int64(p.bufferBytes):
		cl := int(r.ContentLength)
		if cap(x.body) < cl {
			x.body = make([]byte, cl, max(cl, 4096))
		}
		if _, err := io.ReadFull(c.br, x.body[:cl]); err != nil {
			return diag.PhaseBody, err
		}
		ctx.Response.SetBody(x.body[:cl])
		p.pool.put(c, reusable)
		return diag.PhaseBody, nil
	}
	s := bodyStreamPool.Get().(*bodyStream)
	*s = bodyStream{p: p, c: c, start: x.start, reusable: reusable, remaining: r.ContentLength, head: s.head}
	s.req.Set(ctx.Method(), ctx.Request.Header.RequestURI())
	cl := -1
	switch r.Framing {
	case h1.Length:
		s.framing, cl = framingLength, int(r.ContentLength)
	case h1.Chunked:
		s.framing, s.remaining = framingChunked, 0
	default:
		s.framing, s.remaining = framingClose, 0
	}
	x.stream(s, cl)
	return diag.PhaseBody, nil
}

// stream makes s the response body, of length cl, -1 when unknown.
func (x *exchange) stream(s *bodyStream, cl int) {
	ctx := x.ctx
	if x.http10 && cl < 0 {
		// An HTTP/1.0 client cannot read chunked framing (RFC 9112 section
		// 6.1): its body ends with the connection instead.
		s.closeDelimited(ctx)
		return
	}
	ctx.Response.SetBodyStream(s, cl)
	// The status and headers go downstream now, not with the first body
	// bytes: server-sent events and long polls must see them at once.
	ctx.Response.ImmediateHeaderFlush = true
}

// beginAttempt sets c's deadline for the response header of x's attempt.
// UPMEDIC_RESPONSE_TIMEOUT counts from the request's arrival (its first
// attempt): what nginx's proxy_read_timeout, which must exceed it, counts
// from too.
func (p *Proxy) beginAttempt(x *exchange, c *conn) error {
	start := x.start
	if x.attempts > 1 || x.held > 0 {
		start = time.Now()
	}
	x.sent = start
	return c.nc.SetDeadline(start.Add(p.responseTimeout))
}

// readHeader reads the upstream's response header section into x.resp,
// parsing it strictly as it arrives: bytes that break a rule fail at once,
// not when the response timeout ends. The section stays in c.br, x.hlen
// bytes long, until the caller discards it.
func (x *exchange) readHeader(c *conn, head bool) error {
	for {
		b, err := c.br.Peek(max(c.br.Buffered(), 1))
		if len(b) == 0 {
			return err
		}
		n, perr := x.resp.Parse(b, head)
		switch {
		case perr == nil:
			x.hlen = n
			return nil
		case perr != h1.ErrIncomplete:
			return perr
		case err != nil:
			return err
		case len(b) == c.br.Size():
			return bufio.ErrBufferFull // over UPMEDIC_MAX_RESPONSE_HEADER_BYTES
		}
		if _, err := c.br.Peek(len(b) + 1); err != nil && c.br.Buffered() == len(b) {
			return err
		}
	}
}

// fieldValue returns the value of the first field of r named name.
func fieldValue(r *h1.Response, name []byte) []byte {
	for _, f := range r.Fields {
		if bytes.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return nil
}

var strUpgradeField = []byte(fasthttp.HeaderUpgrade)

// writeRequest sends req upstream on w as HTTP/1.1 with keep-alive, without
// the hop-by-hop headers of the downstream connection, and flushes it. The
// request line keeps the raw request-target: no path normalizing.
func (p *Proxy) writeRequest(x *exchange, req *fasthttp.Request, w *bufio.Writer) error {
	h := &req.Header
	x.upgrade = append(x.upgrade[:0], upgradeRequested(h)...)
	stripHopByHop(h)
	if len(x.upgrade) > 0 {
		// Upgrade is hop-by-hop, but a WebSocket handshake must reach the
		// app; upmedic tunnels the connection once the app agrees.
		h.SetBytesV(fasthttp.HeaderUpgrade, x.upgrade)
		h.Set(fasthttp.HeaderConnection, "Upgrade")
	}
	h.SetNoDefaultContentType(true)
	if !h.IsHTTP11() {
		// The server already noted the downstream request's version; the
		// upstream always gets HTTP/1.1 so its connection can be kept.
		h.SetProtocol("HTTP/1.1")
	}
	if len(h.Host()) == 0 {
		h.SetHost(p.host)
	}
	if err := h.Write(w); err != nil {
		return err
	}
	cl := h.ContentLength()
	switch bs := req.BodyStream(); {
	case x.bodyBuffered:
		if _, err := w.Write(x.reqBody[:cl]); err != nil {
			return err
		}
	case bs != nil && cl != 0 && cl != -2:
		// A streamed body holds this upstream connection for as long as the
		// client takes: counted, so a full pool can say who holds it.
		p.pool.bodies.Add(1)
		p.traffic.ClientBody(1)
		defer func() {
			p.pool.bodies.Add(-1)
			p.traffic.ClientBody(-1)
		}()
		x.clientBody = clientBody{r: bs}
		if cl > 0 {
			x.limited = io.LimitedReader{R: &x.clientBody, N: int64(cl)}
			if n, err := copyBody(w, &x.limited); err != nil {
				return err
			} else if n < int64(cl) {
				return x.clientBody.short()
			}
		} else if err := writeChunked(w, &x.clientBody); err != nil {
			return err
		}
	default:
		if body := req.Body(); len(body) > 0 {
			if _, err := w.Write(body); err != nil {
				return err
			}
		}
	}
	return w.Flush()
}

// clientBody reads the downstream request body and remembers whether a
// failure came from the client, not the upstream.
type clientBody struct {
	r   io.Reader
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// short records and returns the error of a request body that ended before
// its Content-Length.
func (b *clientBody) short() error {
	b.err = io.ErrUnexpectedEOF
	return b.err
}

// writeChunked copies r to w in HTTP/1.1 chunked encoding.
func writeChunked(w *bufio.Writer, r io.Reader) error {
	buf := chunkBufPool.Get().(*[]byte)
	defer chunkBufPool.Put(buf)
	for {
		n, err := r.Read(*buf)
		if n > 0 {
			var size [16]byte
			w.Write(strconv.AppendInt(size[:0], int64(n), 16))
			w.WriteString("\r\n")
			w.Write((*buf)[:n])
			if _, werr := w.WriteString("\r\n"); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			_, err = w.WriteString("0\r\n\r\n")
			return err
		}
		if err != nil {
			return err
		}
	}
}

var chunkBufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// copyBody copies a request body of known length from r to w through a
// pooled buffer. w.ReadFrom would hand r to net.TCPConn.ReadFrom once the
// header is flushed, which copies through io.Copy: a 32 KiB buffer
// allocated per request, and twice the write syscalls.
func copyBody(w *bufio.Writer, r io.Reader) (int64, error) {
	buf := bodyBufPool.Get().(*[]byte)
	defer bodyBufPool.Put(buf)
	return copyThrough(w, r, *buf)
}

var bodyBufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copyHeader copies the upstream's response header x.resp into resp one
// field at a time (repeated fields such as Set-Cookie stay repeated),
// without the hop-by-hop fields, the fields Connection lists, and
// Content-Length, which the body sets. The diagnosis headers are upmedic's
// alone: every X-Upstream-Diagnosis the app sent is dropped, and every
// Proxy-Status member of upmedic's name; other proxies' members stay.
func (p *Proxy) copyHeader(x *exchange, resp *fasthttp.Response) {
	r := &x.resp
	h := &resp.Header
	h.SetStatusCode(r.Status)
	if len(r.Reason) > 0 {
		h.SetStatusMessage(r.Reason)
	}
	x.ps = x.ps[:0]
	for _, f := range r.Fields {
		if k := f.Name; hopByHop(k) || bytes.EqualFold(k, strContentLength) || connectionListed(r, k) {
			continue
		}
		p.addField(x, h, f.Name, f.Value)
	}
	p.setProxyStatus(x, h)
}

// addField adds one field of the upstream's response to h, except the
// diagnosis headers: an X-Upstream-Diagnosis is dropped, and Proxy-Status
// values are gathered in x.ps for setProxyStatus.
func (p *Proxy) addField(x *exchange, h *fasthttp.ResponseHeader, name, value []byte) {
	switch {
	case bytes.EqualFold(name, strDiagnosis):
		return
	case bytes.EqualFold(name, strProxyStatus):
		if len(x.ps) > 0 {
			x.ps = append(x.ps, ", "...)
		}
		x.ps = append(x.ps, value...)
		return
	}
	h.AddBytesKV(name, value)
}

// setProxyStatus sets the upstream's Proxy-Status gathered in x.ps, without
// the members of upmedic's name.
func (p *Proxy) setProxyStatus(x *exchange, h *fasthttp.ResponseHeader) {
	if len(x.ps) > 0 {
		// A Proxy-Status that is not a valid list cannot be trusted at all.
		if kept, ok := diag.FilterProxyStatus(x.buf[:0], x.ps, p.name); ok && len(kept) > 0 {
			h.SetBytesV(diag.HeaderProxyStatus, kept)
			x.buf = kept
		}
	}
}

// connectionListed reports whether a Connection field of r lists name.
func connectionListed(r *h1.Response, name []byte) bool {
	for _, f := range r.Fields {
		if bytes.EqualFold(f.Name, strConnection) && tokenListed(f.Value, name) {
			return true
		}
	}
	return false
}

var (
	strDiagnosis   = []byte(diag.HeaderDiagnosis)
	strProxyStatus = []byte(diag.HeaderProxyStatus)
	strConnection  = []byte(fasthttp.HeaderConnection)
)

// labelUpstreamStatus marks a passed-through upstream 5xx so that it is never
// mistaken for one of upmedic's own. upmedic's Proxy-Status member goes
// last, after those of proxies closer to the app (RFC 9209 section 2).
func (p *Proxy) labelUpstreamStatus(x *exchange) {
	h := &x.ctx.Response.Header
	x.buf = x.d.AppendHeader(x.buf[:0], false)
	h.SetBytesV(diag.HeaderDiagnosis, x.buf)
	x.buf = append(x.buf[:0], h.Peek(diag.HeaderProxyStatus)...)
	if len(x.buf) > 0 {
		x.buf = append(x.buf, ", "...)
	}
	x.buf = x.d.AppendProxyStatus(x.buf, p.name)
	h.SetBytesV(diag.HeaderProxyStatus, x.buf)
}

// keepAliveRace reports whether err shows that a reused connection had been
// closed by the upstream before our request reached it: the write failed, or
// the connection ended before a single response byte.
func keepAliveRace(phase diag.Phase, err error, c *conn) bool {
	switch phase {
	case diag.PhaseRequest:
		return true
	case diag.PhaseHeader:
		cause := diag.ClassifyIn(phase, refine(phase, err, c))
		return cause == diag.ConnectionTerminated && !c.received()
	}
	return false
}

// retryable reports whether a request may be sent twice: an idempotent method
// (RFC 9110 section 9.2.2) and no body that was already consumed.
func retryable(h *fasthttp.RequestHeader) bool {
	if cl := h.ContentLength(); cl != 0 && cl != -2 { // -2: a GET with no framing
		return false
	}
	switch string(h.Method()) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions, fasthttp.MethodTrace,
		fasthttp.MethodPut, fasthttp.MethodDelete:
		return true
	}
	return false
}

// refine adds to err what the connection knows and fasthttp's error hides:
// the errno of a reset that fasthttp reports as io.EOF, and that bytes which
// do not start like an HTTP/1.x status line are not HTTP at all.
func refine(phase diag.Phase, err error, c *conn) error {
	if phase != diag.PhaseHeader {
		return err
	}
	if n := c.br.Buffered(); n > 0 && c.fcgi == nil {
		b, _ := c.br.Peek(min(n, len(httpPrefix)))
		if !bytes.HasPrefix(httpPrefix, b) {
			return diag.ErrNotHTTP
		}
		return err
	}
	if diag.Errno(err) == 0 && c.lastErr != nil && diag.Errno(c.lastErr) != 0 {
		return c.lastErr
	}
	return err
}

var (
	httpPrefix       = []byte("HTTP/1.")
	strContentLength = []byte(fasthttp.HeaderContentLength)
)

// fasthttpLogger sends fasthttp's own messages to slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
}
