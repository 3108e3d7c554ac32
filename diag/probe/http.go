package probe

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// nginxDefaultBufferSize is nginx's default proxy_buffer_size on the common
// platforms (one 4k memory page; 8k on some). A header section larger than
// this makes nginx log "upstream sent too big header" unless raised.
const nginxDefaultBufferSize = 4096

// exchange sends the health request on conn and judges the response header.
func (p *prober) exchange(ctx context.Context, conn net.Conn) {
	s := p.s
	if bad := firstInvalid(s.HealthPath); bad >= 0 {
		p.r.add(Finding{Severity: SeverityFail,
			Title: fmt.Sprintf("the health path %q has a space or control character at byte %d", s.HealthPath, bad),
			Fix:   []string{"percent-encode it in UPMEDIC_HEALTH_PATH (a space is %20)"}})
		return
	}
	if bad := firstInvalid(s.Host); bad >= 0 {
		p.r.add(Finding{Severity: SeverityFail,
			Title: fmt.Sprintf("the Host header %q has a space or control character at byte %d", s.Host, bad)})
		return
	}

	// Cancelling ctx unblocks the read at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	start := time.Now()
	deadline := start.Add(s.ResponseTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline) // a conn that cannot take deadlines fails its reads instead

	req := "GET " + s.HealthPath + " HTTP/1.1\r\nHost: " + s.Host +
		"\r\nUser-Agent: upmedic-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		if ctx.Err() != nil {
			p.cancelled(err)
			return
		}
		cause := diag.ClassifyIn(diag.PhaseRequest, err)
		p.r.add(Finding{Cause: cause, Severity: SeverityFail,
			Title:   "the upstream closed the connection while the request was sent",
			Details: []string{err.Error()},
			Fix:     []string{cause.Hint(), p.reproduce()}})
		return
	}

	h := readHead(conn, start, probeHeaderCap)
	p.r.FirstByte = h.firstByte
	switch {
	case h.end > 0:
		p.r.HeaderSectionSize = h.end
		p.judgeHead(h)
	case h.notHTTP:
		p.notHTTP(h.buf)
	case h.overCap:
		p.r.HeaderSectionSize = len(h.buf)
		p.r.add(Finding{Cause: diag.HTTPResponseHeaderSectionSize, Severity: SeverityFail,
			Title: "the response header section did not end within its first 1 MiB",
			Details: []string{
				"no blank line ended the header section in the first 1 MiB: the app sends an endless header, or a body with a broken header",
				"first bytes: " + quoteBytes(h.buf, 64),
			},
			Fix: []string{"look at the raw response: " + p.reproduce()}})
	case ctx.Err() != nil:
		p.cancelled(h.err)
	default:
		p.readFailed(h)
	}
}

func (p *prober) cancelled(err error) {
	f := Finding{Severity: SeverityFail, Title: "probe cancelled before the response header arrived"}
	if err != nil {
		f.Details = []string{err.Error()}
	}
	p.r.add(f)
}

// readFailed explains a read that stopped before the header section ended.
func (p *prober) readFailed(h headRead) {
	s := p.s
	cause := diag.ClassifyIn(diag.PhaseHeader, h.err)
	got := fmt.Sprintf("%d bytes of the response header arrived", len(h.buf))
	switch cause {
	case diag.HTTPResponseTimeout:
		f := Finding{Cause: cause, Severity: SeverityFail}
		if len(h.buf) == 0 {
			f.Title = fmt.Sprintf("no response within %s (UPMEDIC_RESPONSE_TIMEOUT)", s.ResponseTimeout)
			f.Details = []string{
				fmt.Sprintf("the app accepted the connection but sent no byte in %s after GET %s", fmtDuration(h.elapsed), s.HealthPath),
				"a uwsgi --socket listener (the binary uwsgi protocol) also waits silently like this",
			}
		} else {
			f.Title = fmt.Sprintf("the response header was not complete within %s (UPMEDIC_RESPONSE_TIMEOUT)", s.ResponseTimeout)
			f.Details = []string{got + ", then nothing; first byte after " + fmtDuration(h.firstByte)}
		}
		f.Fix = []string{
			"find what the app waits on: its log, slow queries, stuck workers (gunicorn --timeout, php-fpm request_terminate_timeout)",
			"make the health path cheap; raise UPMEDIC_RESPONSE_TIMEOUT only if the slowness is expected, and keep nginx's proxy_read_timeout above it",
			"for uwsgi, serve HTTP: --http-socket instead of --socket",
			"reproduce: " + p.reproduce(),
		}
		p.r.add(f)
	case diag.ConnectionTerminated:
		f := Finding{Cause: cause, Severity: SeverityFail}
		if len(h.buf) == 0 {
			f.Title = "the upstream closed the connection without answering GET " + s.HealthPath
			f.Details = []string{
				"a worker crashed or was killed, or the port speaks another protocol and hung up on HTTP (php-fpm's FastCGI, uwsgi's binary protocol, a TLS port)",
			}
		} else {
			f.Title = "the upstream closed the connection in the middle of the response header"
			f.Details = []string{got + " before the close: " + quoteBytes(h.buf, 64)}
		}
		if !errors.Is(h.err, io.EOF) { // a reset says more than a plain close
			f.Details = append(f.Details, h.err.Error())
		}
		f.Fix = []string{
			"see the app's log at this time: a crash, an out-of-memory kill, a worker timeout",
			"php-fpm resets an HTTP request at once: for it use UPMEDIC_UPSTREAM=fastcgi://" + strings.TrimPrefix(p.s.Display, "http://") + "; uwsgi --socket speaks its own protocol: give it an HTTP listener (uwsgi --http-socket)",
			"reproduce: " + p.reproduce(),
		}
		p.r.add(f)
	default:
		f := Finding{Cause: cause, Severity: SeverityFail,
			Title:   "reading the response header failed: " + cause.Details(),
			Details: []string{got, h.err.Error()},
			Fix:     []string{cause.Hint(), "reproduce: " + p.reproduce()}}
		p.r.add(f)
	}
}

// notHTTP explains a response that does not start with "HTTP/".
func (p *prober) notHTTP(b []byte) {
	proto, fix := guessProtocol(b)
	if proto == protoFastCGI {
		fix = "php-fpm speaks FastCGI, and so does upmedic: use UPMEDIC_UPSTREAM=fastcgi://" + strings.TrimPrefix(p.s.Display, "http://") + " with UPMEDIC_FASTCGI_ROOT set to the document root"
	}
	f := Finding{Cause: diag.ClassifyIn(diag.PhaseHeader, diag.ErrNotHTTP), Severity: SeverityFail,
		Title: "the upstream does not answer in HTTP: this looks like " + proto,
		Details: []string{
			"first bytes: " + quoteBytes(b, 48),
		},
		Fix: []string{fix, "point UPMEDIC_UPSTREAM at the app's HTTP listener"},
	}
	p.r.add(f)
}

// protoFastCGI is guessProtocol's name for FastCGI bytes.
const protoFastCGI = "a FastCGI server (php-fpm)"

// guessProtocol names the protocol the first bytes of a non-HTTP answer
// probably belong to, and the fix.
func guessProtocol(b []byte) (proto, fix string) {
	switch {
	case len(b) >= 2 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03:
		return "a TLS (HTTPS) port",
			"upmedic speaks plain HTTP to the upstream: use the app's plain-HTTP port, or let the app listen without TLS on a local address"
	case len(b) >= 2 && b[0] == 0x01 && b[1] >= 1 && b[1] <= 11:
		return protoFastCGI, "php-fpm speaks FastCGI: use UPMEDIC_UPSTREAM=fastcgi://..."
	case bytes.HasPrefix(b, []byte("SSH-")):
		return "an SSH server", "this is an SSH port, not the app: check the port number"
	case len(b) >= 9 && b[0] == 0 && (b[3] == 0x04 || b[3] == 0x07) && b[5]&0x80 == 0:
		return "an HTTP/2-only server (h2c prior knowledge)",
			"let the app serve HTTP/1.1 on this listener: upmedic talks HTTP/1.1 to the upstream"
	case bytes.HasPrefix(b, []byte("-ERR")) || bytes.HasPrefix(b, []byte("-NOAUTH")) || bytes.HasPrefix(b, []byte("+OK")):
		return "a Redis (RESP) server", "this is a Redis port, not the app: check the port number"
	case bytes.HasPrefix(b, []byte("220")):
		return "an SMTP or FTP server", "this is a mail or FTP port, not the app: check the port number"
	case len(b) >= 5 && b[4] == 0x0a && b[3] == 0:
		return "a MySQL or MariaDB server", "this is a database port, not the app: check the port number"
	case len(b) >= 5 && b[0] == 'E' && b[1] == 0:
		return "a PostgreSQL server", "this is a database port, not the app: check the port number"
	}
	return "another protocol, or a corrupt response",
		"check what listens there (ss -ltnp or ss -xlp) and what it answers: " +
			"a FastCGI (php-fpm), uwsgi, TLS or database port does not speak HTTP"
}

// judgeHead checks the status, the timing and the size of a complete header
// section.
func (p *prober) judgeHead(h headRead) {
	s := p.s
	head := h.buf[:h.end]
	rh, ok := parseHead(head)
	if !ok {
		p.r.add(Finding{Cause: diag.ClassifyIn(diag.PhaseHeader, diag.ErrNotHTTP), Severity: SeverityFail,
			Title:   "the upstream's status line is not valid HTTP/1.x",
			Details: []string{"status line: " + quoteBytes(firstLine(head), 120)},
			Fix:     []string{"the app, or something between, writes a broken response: reproduce with " + p.reproduce()}})
		return
	}
	p.r.Status = rh.status
	timing := fmt.Sprintf("first byte after %s (UPMEDIC_RESPONSE_TIMEOUT %s)", fmtDuration(h.firstByte), s.ResponseTimeout)
	size := fmt.Sprintf("header section %d bytes (UPMEDIC_MAX_RESPONSE_HEADER_BYTES %d)", h.end, s.MaxHeaderBytes)
	statusText := strings.TrimSpace(strconv.Itoa(rh.status) + " " + rh.reason)
	body := h.buf[h.end:]

	f := Finding{Details: []string{timing, size}}
	switch {
	case rh.status >= 500:
		f.Cause, f.Severity = diag.UpstreamStatus, SeverityFail
		f.Title = "GET " + s.HealthPath + " answered " + statusText + ": the app says it is failing"
		if len(body) > 0 {
			f.Details = append(f.Details, "body starts: "+quoteBytes(body, 200))
		}
		f.Fix = []string{
			"the app itself answered " + strconv.Itoa(rh.status) + ": see its log for this request (upmedic passes it on labelled upstream_status)",
		}
		if rh.status == 502 || rh.status == 504 {
			f.Fix = append(f.Fix, "a 502 or 504 from the app often comes from yet another proxy behind it: check that one's upstream")
		}
	case rh.status >= 400:
		f.Severity = SeverityFail
		f.Title = "GET " + s.HealthPath + " answered " + statusText + ": a health check needs a 2xx or 3xx"
		if len(body) > 0 {
			f.Details = append(f.Details, "body starts: "+quoteBytes(body, 200))
		}
		f.Fix = []string{"set UPMEDIC_HEALTH_PATH to a path the app answers with 200 (e.g. /healthz), without authentication"}
		if rh.status == 400 && bytes.Contains(bytes.ToLower(body), []byte("https")) {
			f.Details = append(f.Details, "the body mentions HTTPS: this is probably a TLS port that answered a plain-HTTP request")
			f.Fix = append([]string{"upmedic speaks plain HTTP to the upstream: use the app's plain-HTTP port"}, f.Fix...)
		}
		if rh.status == 400 || rh.status == 421 {
			f.Fix = append(f.Fix, "the app may reject the Host header "+strconv.Quote(s.Host)+": allow it (Django ALLOWED_HOSTS, Rails config.hosts)")
		}
	case rh.status < 200:
		// The probe reads one header section and does not follow a 1xx to
		// the final status; whether the proxy does is its parser's business.
		f.Severity = SeverityWarn
		f.Title = "GET " + s.HealthPath + " answered an informational " + statusText + " first; the probe did not read on to the final status"
		f.Fix = []string{"an app should not send 1xx to a plain GET: look at the raw response with " + p.reproduce()}
	default:
		f.Severity = SeverityOK
		f.Title = "GET " + s.HealthPath + " answered " + statusText
		if loc := rh.location; loc != "" && rh.status < 400 && rh.status >= 300 {
			f.Details = append(f.Details, "redirects to "+strconv.Quote(loc))
		}
	}
	p.r.add(f)

	// Timing: a first byte past half the limit is a warning.
	if h.firstByte*2 > s.ResponseTimeout {
		p.r.add(slowFinding(h.firstByte, s.ResponseTimeout))
	}
	if sf, ok := sizeFinding(h.end, s.MaxHeaderBytes, rh.fields); ok {
		p.r.add(sf)
	}
}

// slowFinding warns about a first byte that took more than half of limit.
func slowFinding(firstByte, limit time.Duration) Finding {
	return Finding{Cause: diag.HTTPResponseTimeout, Severity: SeverityWarn,
		Title: fmt.Sprintf("the first byte took %s, over half of UPMEDIC_RESPONSE_TIMEOUT (%s)", fmtDuration(firstByte), limit),
		Details: []string{
			"a little more load and the proxy answers http_response_timeout (504) instead, and health checks flap",
		},
		Fix: []string{
			"make the health path cheap (no database round trips it does not need)",
			"if this slowness is expected, raise UPMEDIC_RESPONSE_TIMEOUT and keep nginx's proxy_read_timeout above it",
		}}
}

// sizeFinding judges a header section of size bytes against the proxy's
// limit and nginx's default buffer. ok is false when there is nothing to say.
func sizeFinding(size, limit int, fields []fieldSize) (Finding, bool) {
	bufSize, directives := nginxBuffers(size)
	largest := largestFields(fields, 3)
	f := Finding{Details: []string{
		fmt.Sprintf("measured: %d bytes from the status line through the blank line", size),
	}}
	if largest != "" {
		f.Details = append(f.Details, "largest fields: "+largest)
	}
	envFix := "upmedic: UPMEDIC_MAX_RESPONSE_HEADER_BYTES=" + strconv.Itoa(bufSize)
	nginxFix := "nginx:   " + directives
	switch {
	case size > limit:
		f.Cause, f.Severity = diag.HTTPResponseHeaderSectionSize, SeverityFail
		f.Title = fmt.Sprintf("the response header section is %d bytes, over UPMEDIC_MAX_RESPONSE_HEADER_BYTES=%d", size, limit)
		f.Details = append(f.Details,
			"the proxy would answer http_response_header_section_size (502); nginx needs it to fit in proxy_buffer_size too, or it logs \"upstream sent too big header\" and answers 502")
		f.Fix = []string{
			"shrink the headers (usually Set-Cookie: keep session data server-side), or raise both limits together:",
			"  " + envFix,
			"  " + nginxFix,
		}
	case size > nginxDefaultBufferSize:
		f.Cause, f.Severity = diag.HTTPResponseHeaderSectionSize, SeverityWarn
		f.Title = fmt.Sprintf("the response header section is %d bytes: within upmedic's limit (%d) but over nginx's default proxy_buffer_size (4k or 8k)", size, limit)
		f.Details = append(f.Details,
			"unless nginx's buffers are raised, it logs \"upstream sent too big header while reading response header from upstream\" and answers 502")
		f.Fix = []string{
			"make sure nginx's location for upmedic has at least:",
			"  " + nginxFix,
		}
	case size*4 > limit*3:
		f.Cause, f.Severity = diag.HTTPResponseHeaderSectionSize, SeverityWarn
		f.Title = fmt.Sprintf("the response header section is %d bytes, close to UPMEDIC_MAX_RESPONSE_HEADER_BYTES=%d", size, limit)
		f.Details = append(f.Details, "a few more cookies and the proxy answers http_response_header_section_size (502)")
		next, nextDirectives := nginxBuffers(2 * limit)
		f.Fix = []string{
			"shrink the headers, or raise both limits together:",
			"  upmedic: UPMEDIC_MAX_RESPONSE_HEADER_BYTES=" + strconv.Itoa(next),
			"  nginx:   " + nextDirectives,
		}
	default:
		return Finding{}, false
	}
	return f, true
}

// nginxBuffers returns the smallest power-of-two buffer of at least 4k that
// holds size bytes, and the nginx directives that use it.
func nginxBuffers(size int) (bufSize int, directives string) {
	bufSize = nginxDefaultBufferSize
	for bufSize < size {
		bufSize <<= 1
	}
	return bufSize, "proxy_buffer_size " + nginxSize(bufSize) +
		"; proxy_buffers 8 " + nginxSize(bufSize) +
		"; proxy_busy_buffers_size " + nginxSize(2*bufSize) + ";"
}

// nginxSize writes n bytes the way nginx reads sizes: "64k", "1m".
func nginxSize(n int) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.Itoa(n>>20) + "m"
	}
	return strconv.Itoa(n>>10) + "k"
}

// reproduce returns a curl command that sends the probe's request.
func (p *prober) reproduce() string {
	if p.s.Network == "unix" {
		return "curl -sS -D - -o /dev/null --unix-socket " + p.s.Address + " http://" + p.s.Host + p.s.HealthPath
	}
	return "curl -sS -D - -o /dev/null -H 'Host: " + p.s.Host + "' http://" + p.s.Address + p.s.HealthPath
}

// headRead is the outcome of reading a response header section.
type headRead struct {
	buf       []byte        // everything read
	end       int           // length of the header section in buf; 0 when it did not end
	firstByte time.Duration // from start to the first byte; 0 when none came
	elapsed   time.Duration // from start to the end of reading
	err       error         // why reading stopped, when end is 0 and neither flag is set
	notHTTP   bool          // the first bytes cannot start an HTTP/1.x response
	overCap   bool          // limit bytes read without the end of the section
}

// readHead reads from r until the end of a response header section, a
// non-HTTP start, limit bytes, or an error. start is when the request was
// written.
func readHead(r io.Reader, start time.Time, limit int) headRead {
	var h headRead
	buf := make([]byte, 0, min(16<<10, limit))
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), limit-len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit)])
		if n > 0 && h.firstByte == 0 {
			h.firstByte = max(time.Since(start), time.Nanosecond)
		}
		from := max(len(buf)-2, 0)
		buf = buf[:len(buf)+n]
		if end := headerEnd(buf, from); end > 0 {
			h.end = end
			break
		}
		if !maybeHTTP(buf) {
			h.notHTTP = true
			break
		}
		if len(buf) >= limit {
			h.overCap = true
			break
		}
		if err != nil {
			h.err = err
			break
		}
	}
	h.buf = buf
	h.elapsed = time.Since(start)
	return h
}

// headerEnd returns the length of the header section in b (through the blank
// line that ends it, CRLF or bare LF), or 0 when b does not hold its end. It
// looks for the end starting at from.
func headerEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return 0
}

// maybeHTTP reports whether b can be the start of an HTTP/1.x response.
func maybeHTTP(b []byte) bool {
	const prefix = "HTTP/"
	n := min(len(b), len(prefix))
	return string(b[:n]) == prefix[:n]
}

// respHead is a parsed response header section.
type respHead struct {
	status   int
	reason   string
	location string
	fields   []fieldSize
}

// fieldSize is how many bytes the lines of one header field take.
type fieldSize struct {
	name  string
	count int
	bytes int
}

// parseHead parses a complete header section. ok is false when the status
// line is not "HTTP/1.x NNN reason". Lines without a colon count under
// "(malformed)": the proxy's parser judges them, not the probe.
func parseHead(head []byte) (rh respHead, ok bool) {
	line := firstLine(head)
	rest := head[min(len(head), len(line)+1):]
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) ||
		line[7] < '0' || line[7] > '9' || line[8] != ' ' {
		return rh, false
	}
	code := line[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return rh, false
		}
	}
	if len(line) > 12 && line[12] != ' ' {
		return rh, false
	}
	rh.status, _ = strconv.Atoi(string(code))
	if len(line) > 13 {
		rh.reason = string(line[13:])
	}

	index := map[string]int{}
	last := -1
	for len(rest) > 0 {
		l := firstLine(rest)
		n := min(len(rest), len(l)+1)
		rest = rest[n:]
		text := bytes.TrimSuffix(l, []byte("\r"))
		if len(text) == 0 {
			break // the blank line
		}
		if (text[0] == ' ' || text[0] == '\t') && last >= 0 {
			rh.fields[last].bytes += n // obsolete line folding continues the field
			continue
		}
		name, value, found := bytes.Cut(text, []byte(":"))
		key := "(malformed)"
		if found && len(name) > 0 {
			key = string(name)
		}
		lower := strings.ToLower(key)
		if lower == "location" {
			rh.location = string(bytes.TrimSpace(value))
		}
		i, seen := index[lower]
		if !seen {
			i = len(rh.fields)
			index[lower] = i
			rh.fields = append(rh.fields, fieldSize{name: key})
		}
		rh.fields[i].count++
		rh.fields[i].bytes += n
		last = i
	}
	return rh, true
}

// largestFields describes the n fields taking most bytes:
// "Set-Cookie ×40 = 40600 bytes, Content-Type = 26 bytes".
func largestFields(fields []fieldSize, n int) string {
	fs := slices.Clone(fields)
	slices.SortStableFunc(fs, func(a, b fieldSize) int { return cmp.Compare(b.bytes, a.bytes) })
	var parts []string
	for _, f := range fs[:min(n, len(fs))] {
		if f.count > 1 {
			parts = append(parts, fmt.Sprintf("%s ×%d = %d bytes", f.name, f.count, f.bytes))
		} else {
			parts = append(parts, fmt.Sprintf("%s = %d bytes", f.name, f.bytes))
		}
	}
	return strings.Join(parts, ", ")
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}

// quoteBytes returns up to max bytes of b as a Go-quoted ASCII string, so
// bytes from the upstream cannot drive the terminal; "…" marks a cut.
func quoteBytes(b []byte, max int) string {
	if len(b) > max {
		return strconv.QuoteToASCII(string(b[:max])) + "…"
	}
	return strconv.QuoteToASCII(string(b))
}

// firstInvalid returns the index of the first byte that cannot appear in a
// request target or Host value (space, control, DEL), or -1.
func firstInvalid(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return i
		}
	}
	return -1
}
