package proxy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/proxy/h1"
	"github.com/valyala/fasthttp"
)

// failed classifies err, which ended the exchange in phase, into x.d, records
// it and returns its cause. c is the connection it happened on, nil when
// none was made. Every failure of an exchange passes through here.
func (x *exchange) failed(phase diag.Phase, err error, c *conn) diag.Cause {
	p := x.p
	cause := diag.ClassifyIn(phase, err)
	x.d = diag.Diagnosis{
		Cause:    cause,
		Errno:    diag.Errno(err),
		Attempts: x.attempts,
		Held:     x.held,
		FastCGI:  p.fcgi != nil,
		Upstream: p.display,
	}
	now := time.Now()
	if age, ok := remembered(err, x.start); ok {
		x.d.Recalled, x.d.Age = true, age
	}
	switch cause {
	case diag.HTTPResponseHeaderSectionSize:
		x.d.Limit = p.pool.headerBytes
		if c.fcgi != nil {
			x.d.HeaderSectionSize = c.fcgi.h.Size // the reader measured it
		} else {
			x.d.HeaderSectionSize = measureHeaderSection(c, p.readTimeout)
		}
	case diag.HTTPProtocolError:
		x.d.Answered = p.answeredProtocol(c, err)
	case diag.HTTPResponseTimeout, diag.ConnectionTimeout:
		p.poolBusy(&x.d, now)
	case diag.ConnectionLimitReached:
		if x.d.Errno == 0 {
			x.d.Limit = cap(p.pool.slots)
			x.d.ClientBodies = int(p.pool.bodies.Load())
		}
	case diag.ConnectionTerminated:
		if phase == diag.PhaseHeader && !c.received() {
			// No response byte came: a crash, or a timer in the app that
			// kills requests at a fixed age.
			age := now.Sub(x.sent)
			if timer, prior := p.kills.observe(age, now); timer > 0 {
				x.d.Timer, x.d.ClosedAt, x.d.TimerPrior = timer, age, prior
			}
		}
	}
	x.d.Elapsed = now.Sub(x.start)
	p.journal.Record(now, &x.d, phase, false, x.ctx.Method(), x.ctx.Request.Header.RequestURI())
	p.logFailure(&x.d, phase, err, false, x.ctx)
	return cause
}

// recordAbort records a failure in a streamed body, after the status went
// downstream, for the request req.
func (p *Proxy) recordAbort(c *conn, start time.Time, err error, req *diag.RequestLine) {
	d := diag.Diagnosis{
		Cause:    diag.ClassifyIn(diag.PhaseBody, err),
		Errno:    diag.Errno(err),
		Elapsed:  time.Since(start),
		Upstream: p.display,
	}
	p.traffic.Aborted()
	method, path := req.Bytes()
	p.journal.Record(time.Now(), &d, diag.PhaseBody, true, method, path)
	p.logFailure(&d, diag.PhaseBody, err, true, nil)
}

// measureHeaderSection reads on past the header limit to learn how large the
// upstream's header section really is, up to maxMeasuredHeader bytes, for the
// header-section-size parameter. It returns the bytes seen up to and
// including the empty line that ends the section, or all it could read.
func measureHeaderSection(c *conn, wait time.Duration) int {
	_ = c.nc.SetReadDeadline(time.Now().Add(min(wait, time.Second)))
	total := 0
	var afterLF, afterLFCR bool
	for total < maxMeasuredHeader {
		if c.br.Buffered() == 0 {
			if _, err := c.br.Peek(1); err != nil {
				break
			}
		}
		b, _ := c.br.Peek(c.br.Buffered())
		for i, ch := range b {
			switch {
			case ch == '\n' && (afterLF || afterLFCR):
				return total + i + 1
			case ch == '\n':
				afterLF, afterLFCR = true, false
			case ch == '\r' && afterLF:
				afterLF, afterLFCR = false, true
			default:
				afterLF, afterLFCR = false, false
			}
		}
		total += len(b)
		_, _ = c.br.Discard(len(b))
	}
	return total
}

const maxMeasuredHeader = 1 << 20

// answer writes upmedic's own response for the failure in x.d: its status,
// the two diagnosis headers, Retry-After when the upstream is known to be
// unavailable, and a short body (JSON when the client accepts it).
func (p *Proxy) answer(x *exchange) {
	d := &x.d
	resp := &x.ctx.Response
	// A failure after the upstream's header was taken (a body that broke
	// off while being buffered) must not carry any of its fields: the
	// answer is upmedic's alone. Only a close already decided stays.
	closeConn := resp.ConnectionClose()
	resp.Reset()
	if closeConn {
		resp.SetConnectionClose()
	}
	status := d.Cause.Status()
	resp.Header.SetStatusCode(status)
	x.buf = d.AppendHeader(x.buf[:0], p.expose)
	resp.Header.SetBytesV(diag.HeaderDiagnosis, x.buf)
	x.buf = d.AppendProxyStatus(x.buf[:0], p.name)
	resp.Header.SetBytesV(diag.HeaderProxyStatus, x.buf)
	if d.Cause.RetryAfter() {
		secs := max(int64((d.RetryIn+time.Second-1)/time.Second), 1)
		x.buf = strconv.AppendInt(x.buf[:0], secs, 10)
		resp.Header.SetBytesV(fasthttp.HeaderRetryAfter, x.buf)
	}
	resp.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	if bytes.Contains(x.ctx.Request.Header.Peek(fasthttp.HeaderAccept), strJSON) {
		resp.Header.SetContentType("application/json")
		x.buf = p.appendJSONBody(x.buf[:0], d, status)
	} else {
		resp.Header.SetContentType("text/plain; charset=utf-8")
		x.buf = p.appendTextBody(x.buf[:0], d, status)
	}
	resp.SetBody(x.buf)
}

var strJSON = []byte("application/json")

// appendTextBody appends "502 Bad Gateway: <details> (<cause>)" and, with
// ExposeDetails, the upstream and the hint.
func (p *Proxy) appendTextBody(dst []byte, d *diag.Diagnosis, status int) []byte {
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, fasthttp.StatusMessage(status)...)
	dst = append(dst, ": "...)
	dst = append(dst, d.Cause.Details()...)
	dst = append(dst, " ("...)
	dst = append(dst, d.Cause.String()...)
	dst = append(dst, ")\n"...)
	if p.expose {
		dst = append(dst, "upstream: "...)
		dst = append(dst, d.Upstream...)
		dst = append(dst, "\nhint: "...)
		dst = append(dst, d.Hint()...)
		dst = append(dst, '\n')
	}
	return dst
}

// appendJSONBody appends {"status":502,"cause":"...","details":"..."} and,
// with ExposeDetails, the upstream and the hint.
func (p *Proxy) appendJSONBody(dst []byte, d *diag.Diagnosis, status int) []byte {
	dst = append(dst, `{"status":`...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, `,"cause":`...)
	dst = appendJSONString(dst, d.Cause.String())
	dst = append(dst, `,"details":`...)
	dst = appendJSONString(dst, d.Cause.Details())
	if p.expose {
		dst = append(dst, `,"upstream":`...)
		dst = appendJSONString(dst, d.Upstream)
		dst = append(dst, `,"hint":`...)
		dst = appendJSONString(dst, d.Hint())
	}
	return append(dst, "}\n"...)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// logFailure writes one log line for a diagnosed failure. A storm of one
// cause is cut to logBurst lines a second; the next line that gets through
// says how many were left out. Every failure is still counted in the journal.
func (p *Proxy) logFailure(d *diag.Diagnosis, phase diag.Phase, err error, aborted bool, ctx *fasthttp.RequestCtx) {
	if !p.log.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	ok, suppressed := p.limiter.allow(int(d.Cause), time.Now())
	if !ok {
		return
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs,
		slog.String("cause", d.Cause.String()),
		slog.String("phase", phase.String()),
		slog.Int64("elapsed_ms", d.Elapsed.Milliseconds()),
		slog.String("upstream", p.display),
	)
	if name := diag.ErrnoName(d.Errno); name != "" {
		attrs = append(attrs, slog.String("errno", name))
	}
	if d.Attempts > 1 {
		attrs = append(attrs, slog.Int("attempts", d.Attempts))
	}
	if d.HeaderSectionSize > 0 {
		attrs = append(attrs, slog.Int("header_section_size", d.HeaderSectionSize))
	}
	if d.Timer > 0 {
		attrs = append(attrs, slog.Int64("timer_s", int64(d.Timer/time.Second)),
			slog.Int64("closed_at_ms", d.ClosedAt.Milliseconds()))
	}
	if d.TrippedBy.IsFailure() {
		attrs = append(attrs, slog.String("tripped_by", d.TrippedBy.String()))
	}
	if d.LastCause.IsFailure() {
		attrs = append(attrs, slog.String("last_cause", d.LastCause.String()))
	}
	if aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	if ctx != nil {
		attrs = append(attrs, slog.String("method", string(ctx.Method())), slog.String("uri", string(ctx.RequestURI())))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int64("suppressed_before", suppressed))
	}
	attrs = append(attrs, slog.String("hint", d.Hint()))
	p.log.LogAttrs(context.Background(), slog.LevelWarn, "upstream failure", attrs...)
}

// rejectSlot is the log limiter's slot for rejected requests: the last,
// beyond every cause.
const rejectSlot = 31

// logBurst is how many lines per cause and second logFailure writes.
const logBurst = 10

// logLimiter counts log lines per cause in one-second windows. Its zero
// value is ready; it is safe for concurrent use and allocates nothing.
type logLimiter struct {
	slots [32]struct {
		window     atomic.Int64 // unix second of the current window
		n          atomic.Int64 // lines in the current window
		suppressed atomic.Int64 // lines left out since the last one written
	}
}

// allow reports whether a line in slot (a cause, or rejectSlot) may be written at now, and how
// many were left out before it.
func (l *logLimiter) allow(slot int, now time.Time) (ok bool, suppressed int64) {
	s := &l.slots[slot%len(l.slots)]
	sec := now.Unix()
	if old := s.window.Load(); old != sec && s.window.CompareAndSwap(old, sec) {
		s.n.Store(0)
	}
	if s.n.Add(1) > logBurst {
		s.suppressed.Add(1)
		return false, 0
	}
	return true, s.suppressed.Swap(0)
}

// hopByHopHeaders are the connection-specific fields of RFC 9110 section
// 7.6.1 that a proxy must not forward, plus the obsolete Proxy-Connection.
var hopByHopHeaders = [...]string{
	fasthttp.HeaderConnection, "Keep-Alive", fasthttp.HeaderTE, fasthttp.HeaderTrailer,
	fasthttp.HeaderTransferEncoding, fasthttp.HeaderUpgrade, "Proxy-Connection",
}

func hopByHop(k []byte) bool {
	for _, h := range hopByHopHeaders {
		if len(k) == len(h) && bytes.EqualFold(k, []byte(h)) {
			return true
		}
	}
	return false
}

// stripHopByHop removes the downstream connection's hop-by-hop fields and
// the fields its Connection header lists.
func stripHopByHop(h *fasthttp.RequestHeader) {
	for listed := h.Peek(fasthttp.HeaderConnection); len(listed) > 0; {
		name := listed
		if i := bytes.IndexByte(listed, ','); i >= 0 {
			name, listed = listed[:i], listed[i+1:]
		} else {
			listed = nil
		}
		if name = bytes.TrimSpace(name); len(name) > 0 && !bytes.EqualFold(name, strClose) && !bytes.EqualFold(name, strKeepAlive) {
			h.DelBytes(name)
		}
	}
	for _, name := range hopByHopHeaders {
		if name != fasthttp.HeaderTransferEncoding { // fasthttp frames the body itself
			h.Del(name)
		}
	}
}

var (
	strClose     = []byte("close")
	strKeepAlive = []byte("keep-alive")
)

// tokenListed reports whether name is one of the comma-separated tokens in
// list (a Connection header value).
func tokenListed(list, name []byte) bool {
	for len(list) > 0 {
		tok := list
		if i := bytes.IndexByte(list, ','); i >= 0 {
			tok, list = list[:i], list[i+1:]
		} else {
			list = nil
		}
		if bytes.EqualFold(bytes.TrimSpace(tok), name) {
			return true
		}
	}
	return false
}

// rejectUnread answers a request fasthttp could not read: one the front
// scanner refused, or whose header did not arrive in time. It is the front
// server's fasthttp ErrorHandler.
func (p *Proxy) rejectUnread(ctx *fasthttp.RequestCtx, err error) {
	status, rule, text := requestFault(err)
	p.reject(ctx, status, rule, text, err)
}

// rejectBody answers a request whose body the client did not deliver: it
// went silent, broke the chunked framing, or ended early.
func (p *Proxy) rejectBody(x *exchange) {
	err := x.clientBody.err
	if fc, ok := x.ctx.Conn().(*frontConn); ok && fc.err != nil {
		// fasthttp's chunked reader may hide the scanner's error or a
		// timeout behind its own: the connection knows what it was.
		err = fc.err
	}
	status, rule, text := requestFault(err)
	if status == fasthttp.StatusBadRequest && rule == "malformed" {
		rule, text = "body-incomplete", "the request body ended before its framing did"
	}
	p.reject(x.ctx, status, rule, text, err)
}

// requestFault says what answer a client's fault gets.
func requestFault(err error) (status int, rule, text string) {
	if e, ok := errors.AsType[*h1.Error](err); ok {
		return e.Status, e.Rule, e.Text
	}
	switch {
	case errors.Is(err, errHeaderTimeout):
		return fasthttp.StatusRequestTimeout, "client-header-timeout", "the request header did not arrive within UPMEDIC_CLIENT_HEADER_TIMEOUT"
	case errors.Is(err, errBodyTimeout):
		return fasthttp.StatusRequestTimeout, "client-body-timeout", "the request body went silent for longer than UPMEDIC_CLIENT_BODY_TIMEOUT"
	}
	if _, ok := errors.AsType[*fasthttp.ErrSmallBuffer](err); ok {
		return fasthttp.StatusRequestHeaderFieldsTooLarge, "header-section-size", "the header section is too large"
	}
	return fasthttp.StatusBadRequest, "malformed", "the request could not be read"
}

// reject answers a request upmedic does not forward: the status, a
// Proxy-Status of error=http_request_error (RFC 9209: the proxy answers a
// 4xx on the origin's behalf) whose details say which rule the request
// broke, a one-line body, and the connection closed. Nothing of it reached
// the app. It is counted by rule and logged as the client's fault.
func (p *Proxy) reject(ctx *fasthttp.RequestCtx, status int, rule, text string, err error) {
	h := &ctx.Response.Header
	h.SetStatusCode(status)
	b := append([]byte(p.name), ";error=http_request_error;details="...)
	h.SetBytesV(diag.HeaderProxyStatus, diag.AppendString(b, text))
	h.Set(fasthttp.HeaderCacheControl, "no-store")
	h.SetContentType("text/plain; charset=utf-8")
	body := strconv.AppendInt(nil, int64(status), 10)
	body = append(body, ' ')
	body = append(body, fasthttp.StatusMessage(status)...)
	body = append(body, ": "...)
	body = append(body, text...)
	body = append(body, " (upmedic)\n"...)
	ctx.Response.SetBody(body)
	ctx.SetConnectionClose()
	p.traffic.Rejected(rule)
	if ok, suppressed := p.limiter.allow(rejectSlot, time.Now()); ok && p.log.Enabled(context.Background(), slog.LevelInfo) {
		attrs := []slog.Attr{slog.String("rule", rule), slog.Int("status", status),
			slog.String("remote", ctx.RemoteAddr().String())}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		if suppressed > 0 {
			attrs = append(attrs, slog.Int64("suppressed_before", suppressed))
		}
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "request rejected", attrs...)
	}
}
