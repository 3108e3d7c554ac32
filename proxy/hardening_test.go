package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// exchangeRaw writes raw to a new connection to addr and returns everything
// upmedic sends back until it closes the connection.
func exchangeRaw(t *testing.T, addr, raw string) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading until close: %v (got %q)", err, out)
	}
	return out
}

// parseOne parses the first response in b, which must be the only one.
func parseOne(t *testing.T, b []byte, method string) (*http.Response, []byte) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("not a response: %v: %q", err, b)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("response body: %v: %q", err, b)
	}
	if rest, _ := io.ReadAll(br); len(rest) > 0 {
		t.Fatalf("bytes after the response: %q", rest)
	}
	return resp, body
}

// wantRejected checks an answer of upmedic's own to a request it refused.
func wantRejected(t *testing.T, b []byte, status int, detail string) {
	t.Helper()
	resp, body := parseOne(t, b, http.MethodGet)
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d: %q", resp.StatusCode, status, b)
	}
	ps := resp.Header.Get(diag.HeaderProxyStatus)
	if !strings.HasPrefix(ps, "upmedic;error=http_request_error;details=") || !strings.Contains(ps, detail) {
		t.Errorf("Proxy-Status %q, want upmedic's http_request_error naming %q", ps, detail)
	}
	if resp.Header.Get(diag.HeaderDiagnosis) != "" {
		t.Errorf("a refused request carries X-Upstream-Diagnosis %q: the app did not fail", resp.Header.Get(diag.HeaderDiagnosis))
	}
	if !resp.Close {
		t.Errorf("connection not closed after a refused request")
	}
	if !bytes.Contains(body, []byte("(upmedic)")) {
		t.Errorf("body %q does not say upmedic refused it", body)
	}
}

// recorder is an upstream that records each request line, Host and body it
// receives and answers 200 "ok".
type recorder struct {
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) behaviour() behaviour {
	return respond(func(req *http.Request, body []byte) string {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.RequestURI+" host="+req.Host+" body="+string(body))
		r.mu.Unlock()
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

// Item 1: a framing header listed in Connection is never stripped into an
// unframed body: the request is refused and nothing reaches the app.
func TestConnectionListedFramingRefused(t *testing.T) {
	for _, tc := range []struct{ name, raw string }{
		{"content-length", "POST /a HTTP/1.1\r\nHost: t\r\nConnection: Content-Length\r\nContent-Length: 42\r\n\r\nGET /STOLEN HTTP/1.1\r\nHost: t\r\n\r\n"},
		{"transfer-encoding", "POST /a HTTP/1.1\r\nHost: t\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"host", "GET /a HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Host\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			up := newFakeUpstream(t, "tcp", rec.behaviour())
			addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
			wantRejected(t, exchangeRaw(t, addr, tc.raw), 400, "Connection")
			if got := rec.got(); len(got) != 0 || up.accepted() != 0 {
				t.Errorf("the app received %q over %d connections", got, up.accepted())
			}
		})
	}
}

// Item 2: a pooled connection on which the app sent something while it sat
// idle (a late HEAD body, a second response, junk) is never reused: the
// next client gets its own answer.
func TestIdleConnectionNeverDesyncs(t *testing.T) {
	for _, tc := range []struct {
		name, first, answer, late string
	}{
		{"late response after HEAD", "HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Length: 32\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN"},
		{"second response after GET", "GET /x HTTP/1.1\r\nHost: t\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN"},
		{"junk after GET", "GET /x HTTP/1.1\r\nHost: t\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", "garbage\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wrote := make(chan struct{})
			var once sync.Once
			first := func(c net.Conn) {
				br := bufio.NewReader(c)
				if _, _, err := readRequest(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, tc.answer)
				time.Sleep(50 * time.Millisecond) // the answer is taken and the connection pooled
				_, _ = io.WriteString(c, tc.late)
				once.Do(func() { close(wrote) })
				_, _, _ = readRequest(br) // a request sent here would read the late bytes
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG")
			}
			up := newFakeUpstream(t, "tcp", first, ok("own"))
			addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
			k := dialKeepAlive(t, addr)
			k.write(tc.first)
			method, _, _ := strings.Cut(tc.first, " ")
			if resp, err := http.ReadResponse(k.br, &http.Request{Method: method}); err != nil || resp.StatusCode != 200 {
				t.Fatalf("first: %v %v", resp, err)
			} else {
				_, _ = io.ReadAll(resp.Body)
			}
			select {
			case <-wrote:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream never wrote its late bytes")
			}
			for i := range 3 {
				r := get(t, addr, "/mine")
				if r.StatusCode != 200 || string(r.body) != "own" {
					t.Fatalf("request %d after the late bytes: %d %q, want 200 \"own\"", i, r.StatusCode, r.body)
				}
			}
		})
	}
}

// Item 3: a client that sends its header slowly, or never, or lets its body
// go silent, is cut off and told so; it never holds upmedic or the app.
func TestClientTimeouts(t *testing.T) {
	const short = 300 * time.Millisecond
	t.Run("partial header", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", ok("x"))
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), ClientHeaderTimeout: short})
		wantRejected(t, exchangeRaw(t, addr, "GET / HTTP/1.1\r\nHost: t\r\n"), 408, "UPMEDIC_CLIENT_HEADER_TIMEOUT")
		if up.accepted() != 0 {
			t.Error("the app was contacted")
		}
	})
	t.Run("header a byte at a time", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", ok("x"))
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), ClientHeaderTimeout: short})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		go func() {
			for _, b := range []byte("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + strings.Repeat("a", 100)) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		out, _ := io.ReadAll(c)
		wantRejected(t, out, 408, "UPMEDIC_CLIENT_HEADER_TIMEOUT")
	})
	t.Run("new connection that sends nothing", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", ok("x"))
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), ClientHeaderTimeout: short})
		if out := exchangeRaw(t, addr, ""); len(out) != 0 {
			t.Errorf("a connection that sent no byte got %q; want a close without a word", out)
		}
	})
	t.Run("small body goes silent", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", ok("x"))
		j := new(diag.Journal)
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), ClientBodyTimeout: short, Journal: j})
		out := exchangeRaw(t, addr, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
		wantRejected(t, out, 408, "UPMEDIC_CLIENT_BODY_TIMEOUT")
		if up.accepted() != 0 {
			t.Error("a small body is received whole before the app is contacted; the app was contacted")
		}
		if n := len(j.Counts()); n != 0 {
			t.Errorf("the client's silence was recorded as %d upstream causes", n)
		}
	})
	t.Run("streamed body goes silent", func(t *testing.T) {
		gotErr := make(chan error, 1)
		reader := func(c net.Conn) {
			br := bufio.NewReader(c)
			req, err := http.ReadRequest(br)
			if err != nil {
				gotErr <- err
				return
			}
			_, err = io.Copy(io.Discard, req.Body)
			gotErr <- err
		}
		up := newFakeUpstream(t, "tcp", reader)
		j := new(diag.Journal)
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), ClientBodyTimeout: short, Journal: j})
		out := exchangeRaw(t, addr, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n"+strings.Repeat("a", 100000))
		wantRejected(t, out, 408, "UPMEDIC_CLIENT_BODY_TIMEOUT")
		select {
		case err := <-gotErr:
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("the app's body read ended with %v, want the connection closed mid-body", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the upstream connection was left open")
		}
		if n := len(j.Counts()); n != 0 {
			t.Errorf("the client's silence was recorded as %d upstream causes", n)
		}
	})
	t.Run("pool held by slow bodies says so", func(t *testing.T) {
		hold := func(c net.Conn) {
			_, _ = io.Copy(io.Discard, c)
		}
		up := newFakeUpstream(t, "tcp", hold)
		addr, p := startProxy(t, Settings{Network: "tcp", Address: up.address(), MaxConns: 2,
			ConnectTimeout: 200 * time.Millisecond, ExposeDetails: true})
		for range 2 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			_, _ = io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n"+strings.Repeat("a", 70000))
		}
		waitFor(t, "both connections to carry a client body", func() bool { return p.pool.bodies.Load() == 2 })
		r := get(t, addr, "/")
		params := wantDiagnosis(t, r, 503, diag.ConnectionLimitReached)
		if params["client-bodies"] != "2" || params["limit"] != "2" {
			t.Errorf("params %v, want client-bodies=2 limit=2", params)
		}
		if !strings.Contains(params["hint"], "clients still sending their request bodies") {
			t.Errorf("hint %q blames the app", params["hint"])
		}
	})
}

// Item 4: malformed requests get a 400 at once and reach nothing; an
// absolute-form target reaches the app in origin-form, with its authority
// as Host.
func TestMalformedRequests(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		status    int
		detail    string
	}{
		{"space in a name", "GET / HTTP/1.1\r\nHost: t\r\nFoo Bar: x\r\n\r\n", 400, "field name"},
		{"space in Content Length", "POST / HTTP/1.1\r\nHost: t\r\nContent Length: 5\r\n\r\nhello", 400, "field name"},
		{"space in Transfer Encoding", "POST / HTTP/1.1\r\nHost: t\r\nTransfer Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "field name"},
		{"bare LF", "GET / HTTP/1.1\nHost: t\n\n", 400, "LF without CR"},
		{"bare CR", "GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400, "CR not followed by LF"},
		{"bare LF first byte", "\nGET / HTTP/1.1\r\nHost: t\r\n\r\n", 400, "LF without CR"},
		{"TLS handshake", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "method"},
		{"binary after a method", "GET\x00\x01", 400, "method"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", 400, "folding"},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "both"},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, "HTTP/1.1"},
		{"CONNECT", "CONNECT app:443 HTTP/1.1\r\nHost: app:443\r\n\r\n", 501, "CONNECT"},
		{"chunk size junk", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n", 400, "chunk-size"},
		{"header too large", "GET / HTTP/1.1\r\nHost: t\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n", 431, "8192"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			up := newFakeUpstream(t, "tcp", rec.behaviour())
			addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
			wantRejected(t, exchangeRaw(t, addr, tc.raw), tc.status, tc.detail)
			if got := rec.got(); len(got) != 0 {
				t.Errorf("the app received %q", got)
			}
		})
	}
	t.Run("absolute-form", func(t *testing.T) {
		var rec recorder
		up := newFakeUpstream(t, "tcp", rec.behaviour())
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
		for _, target := range []string{"http://good.example/x?q=1", "HTTP://good.example?q=1", "http://good.example"} {
			r := send(t, addr, "GET "+target+" HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
			if r.StatusCode != 200 {
				t.Errorf("%s: status %d", target, r.StatusCode)
			}
		}
		want := []string{"GET /x?q=1 host=good.example body=", "GET /?q=1 host=good.example body=", "GET / host=good.example body="}
		if got := rec.got(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("the app received\n%q\nwant\n%q", got, want)
		}
	})
}

// Item 5: a response that is not strict HTTP/1.1 is http_protocol_error at
// once, never passed on and never a timeout; the client's framing is
// upmedic's own, for the client's version.
func TestMalformedResponses(t *testing.T) {
	for _, tc := range []struct{ name, raw string }{
		{"space in a name", "HTTP/1.1 200 OK\r\nX Bad: v\r\nContent-Length: 2\r\n\r\nhi"},
		{"status 099", "HTTP/1.1 099 Weird\r\nContent-Length: 2\r\n\r\nhi"},
		{"status 000", "HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nhi"},
		{"NUL in the reason", "HTTP/1.1 200 O\x00K\r\nContent-Length: 2\r\n\r\nhi"},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nhi"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nhi"},
		{"two Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi"},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream(t, "tcp", raw(tc.raw))
			addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
			wantDiagnosis(t, get(t, addr, "/"), 502, diag.HTTPProtocolError)
		})
	}
	t.Run("HTTP/1.0 client gets no chunked", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-App: 1\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"))
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
		out := exchangeRaw(t, addr, "GET / HTTP/1.0\r\n\r\n")
		want := "HTTP/1.1 200 OK\r\nX-App: 1\r\nConnection: close\r\n\r\nhello world"
		if string(out) != want {
			t.Errorf("got %q\nwant %q", out, want)
		}
	})
	t.Run("chunk extension over 4 KiB", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x="+strings.Repeat("a", 5000)+"\r\nhello\r\n0\r\n\r\n"))
		j := new(diag.Journal)
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), Journal: j})
		r := get(t, addr, "/")
		if r.err == nil {
			t.Errorf("a body with a broken chunk arrived whole: %q", r.body)
		}
		waitFor(t, "the abort to be recorded", func() bool { return len(j.Recent()) == 1 })
		if e := j.Recent()[0]; e.Diagnosis.Cause != diag.HTTPProtocolError || !e.Aborted {
			t.Errorf("recorded %s aborted=%v, want http_protocol_error aborted", e.Diagnosis.Cause, e.Aborted)
		}
	})
}

// Item 6: the diagnosis headers are upmedic's alone, on every response.
func TestForgedDiagnosisRemoved(t *testing.T) {
	forged := "X-Upstream-Diagnosis: connection_refused;errno=ECONNREFUSED\r\n" +
		"Proxy-Status: cdn; error=http_response_timeout, upmedic; error=connection_refused\r\n" +
		"X-Upstream-Diagnosis: breaker_open\r\n" +
		"Proxy-Status: \"upmedic\"; error=destination_unavailable\r\n"
	t.Run("on a 200", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", raw("HTTP/1.1 200 OK\r\n"+forged+"Content-Length: 2\r\n\r\nhi"))
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
		r := get(t, addr, "/")
		if r.StatusCode != 200 || len(r.Header.Values(diag.HeaderDiagnosis)) != 0 {
			t.Errorf("%d, X-Upstream-Diagnosis %q: the app's forgery passed", r.StatusCode, r.Header.Values(diag.HeaderDiagnosis))
		}
		if ps := r.Header.Values(diag.HeaderProxyStatus); len(ps) != 1 || ps[0] != "cdn; error=http_response_timeout" {
			t.Errorf("Proxy-Status %q, want only the cdn's member", ps)
		}
	})
	t.Run("on the app's 502", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", raw("HTTP/1.1 502 Bad Gateway\r\n"+forged+"Content-Length: 2\r\n\r\nhi"))
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
		r := get(t, addr, "/")
		if d := r.Header.Values(diag.HeaderDiagnosis); len(d) != 1 || d[0] != "upstream_status;received-status=502" {
			t.Errorf("X-Upstream-Diagnosis %q, want upmedic's label only", d)
		}
		if ps := r.Header.Values(diag.HeaderProxyStatus); len(ps) != 1 || ps[0] != "cdn; error=http_response_timeout, upmedic;received-status=502" {
			t.Errorf("Proxy-Status %q, want the cdn's member, then upmedic's", ps)
		}
	})
	t.Run("an invalid Proxy-Status is dropped whole", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", raw("HTTP/1.1 200 OK\r\nProxy-Status: cdn, upmedic; error=\"x\r\nContent-Length: 2\r\n\r\nhi"))
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
		if ps := get(t, addr, "/").Header.Values(diag.HeaderProxyStatus); len(ps) != 0 {
			t.Errorf("Proxy-Status %q kept", ps)
		}
	})
}

// Item 7: an app that answers an upload early and resets: the client still
// gets the app's answer, because upmedic drains the rest of the body before
// it closes (a lingering close) instead of resetting the client.
func TestEarlyAnswerReachesTheClient(t *testing.T) {
	refuse := func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	up := newFakeUpstream(t, "tcp", refuse)
	_, p := startProxy(t, Settings{Network: "tcp", Address: up.address()})
	srv := p.Server()
	addr := serve(t, srv)
	for i := range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		body := strings.Repeat("u", 4<<20)
		go func() {
			_, _ = io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 4194304\r\n\r\n"+body)
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("try %d: no answer: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || string(got) != "too large" || err != nil {
			t.Errorf("try %d: %d %q %v, want the app's 413", i, resp.StatusCode, got, err)
		}
		c.Close()
	}
	waitFor(t, "the lingering closes to end", func() bool { return srv.Lingering() == 0 })
}

// A body that breaks off while being buffered is answered by upmedic alone:
// none of the upstream's fields (a session cookie, a cache header) reach
// the client with the 502.
func TestFailedBodyCarriesNoUpstreamField(t *testing.T) {
	u := newFakeUpstream(t, "tcp", raw("HTTP/1.1 200 OK\r\nSet-Cookie: session=victim\r\nCache-Control: public, max-age=3600\r\nContent-Length: 10\r\n\r\nabc"))
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: u.address()})
	r := get(t, addr, "/")
	wantDiagnosis(t, r, http.StatusBadGateway, diag.HTTPResponseIncomplete)
	if c := r.Header.Values("Set-Cookie"); len(c) > 0 || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the 502 carries the upstream's fields: Set-Cookie %q, Cache-Control %q", c, r.Header.Get("Cache-Control"))
	}
}
