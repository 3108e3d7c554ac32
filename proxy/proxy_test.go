package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/upmedic/upmedic/diag"
)

// echo answers with the request line, headers and body it received, so tests
// can see exactly what reached the upstream.
func echo(req *http.Request, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\nHost: %s\n", req.Method, req.RequestURI, req.Proto, req.Host)
	for _, k := range []string{"X-Multi", "Connection", "Keep-Alive", "Te", "Upgrade", "Proxy-Connection", "X-Hop", "Content-Type", "Transfer-Encoding"} {
		for _, v := range req.Header.Values(k) {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	fmt.Fprintf(&b, "chunked=%v len=%d\n", len(req.TransferEncoding) > 0, len(body))
	b.Write(body)
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", b.Len(), b.String())
}

func TestTransparency(t *testing.T) {
	up := newFakeUpstream(t, "tcp", respond(echo))
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
	for _, tc := range []struct {
		name, req string
		want      []string
		dontWant  []string
	}{
		{
			name: "raw path with encoded slashes and dots, query",
			req:  "GET /a/%2F..%2Fb/./c/../d?x=1&y=%20&x=2 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
			want: []string{"GET /a/%2F..%2Fb/./c/../d?x=1&y=%20&x=2 HTTP/1.1\n", "Host: app.test\n"},
		},
		{
			name: "repeated headers keep their order",
			req:  "GET / HTTP/1.1\r\nHost: a\r\nX-Multi: one\r\nX-Multi: two\r\nConnection: close\r\n\r\n",
			want: []string{"X-Multi: one\nX-Multi: two\n"},
		},
		{
			name:     "hop-by-hop headers are dropped",
			req:      "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Hop, close\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n\r\n",
			dontWant: []string{"X-Hop", "Keep-Alive", "Te:", "Proxy-Connection", "Connection:"},
		},
		{
			name: "HTTP/1.0 request goes upstream as HTTP/1.1",
			req:  "GET /old HTTP/1.0\r\nHost: a\r\n\r\n",
			want: []string{"GET /old HTTP/1.1\n"},
		},
		{
			name:     "POST body without Content-Type gets none added",
			req:      "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
			want:     []string{"len=5\nhello"},
			dontWant: []string{"Content-Type"},
		},
		{
			name: "chunked upload",
			req:  "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
			want: []string{"chunked=true len=11\nhello world"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, addr, tc.req)
			if r.StatusCode != 200 {
				t.Fatalf("status %d body %q", r.StatusCode, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(r.body), w) {
					t.Errorf("upstream saw\n%s\nwant it to contain %q", r.body, w)
				}
			}
			for _, w := range tc.dontWant {
				if strings.Contains(string(r.body), w) {
					t.Errorf("upstream saw\n%s\nwant no %q", r.body, w)
				}
			}
			if r.Header.Get(diag.HeaderDiagnosis) != "" || r.Header.Get(diag.HeaderProxyStatus) != "" {
				t.Errorf("a 2xx got diagnosis headers: %v", r.Header)
			}
		})
	}
}

func TestResponsePassthrough(t *testing.T) {
	up := newFakeUpstream(t, "tcp", respond(func(req *http.Request, _ []byte) string {
		switch req.URL.Path {
		case "/cookies":
			return "HTTP/1.1 201 Created\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-App: yes\r\nConnection: X-Private\r\nX-Private: no\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok"
		case "/nodate":
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
		case "/204":
			return "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"
		case "/304":
			return "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"
		case "/head":
			return "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n"
		case "/502":
			return "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 7\r\n\r\napp 502"
		case "/chunked":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	}))
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})

	t.Run("repeated Set-Cookie, hop-by-hop dropped", func(t *testing.T) {
		r := get(t, addr, "/cookies")
		if r.StatusCode != 201 || string(r.body) != "ok" {
			t.Fatalf("got %d %q", r.StatusCode, r.body)
		}
		if c := r.Header.Values("Set-Cookie"); len(c) != 2 || c[0] != "a=1" || c[1] != "b=2" {
			t.Errorf("Set-Cookie = %q", c)
		}
		if r.Header.Get("X-App") != "yes" || r.Header.Get("X-Private") != "" || r.Header.Get("Keep-Alive") != "" {
			t.Errorf("headers = %v", r.Header)
		}
	})
	t.Run("no injected Date, Server or Content-Type", func(t *testing.T) {
		r := get(t, addr, "/nodate")
		for _, k := range []string{"Date", "Server", "Content-Type"} {
			if v := r.Header.Get(k); v != "" {
				t.Errorf("%s: %q injected", k, v)
			}
		}
	})
	t.Run("204 and 304 without body", func(t *testing.T) {
		for _, p := range []string{"/204", "/304"} {
			r := get(t, addr, p)
			if len(r.body) != 0 || r.Header.Get("Content-Length") != "" && r.Header.Get("Content-Length") != "0" {
				t.Errorf("%s: body %q, headers %v", p, r.body, r.Header)
			}
		}
		if r := get(t, addr, "/304"); r.StatusCode != 304 || r.Header.Get("ETag") != `"v1"` {
			t.Errorf("304: %d %v", r.StatusCode, r.Header)
		}
	})
	t.Run("HEAD keeps the upstream's Content-Length", func(t *testing.T) {
		r := send(t, addr, "HEAD /head HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		if r.StatusCode != 200 || r.Header.Get("Content-Length") != "1234" || len(r.body) != 0 {
			t.Errorf("HEAD: %d %v %q", r.StatusCode, r.Header, r.body)
		}
	})
	t.Run("upstream's own 502 is labelled", func(t *testing.T) {
		r := get(t, addr, "/502")
		if r.StatusCode != 502 || string(r.body) != "app 502" {
			t.Fatalf("got %d %q", r.StatusCode, r.body)
		}
		if h := r.Header.Get(diag.HeaderDiagnosis); h != "upstream_status;received-status=502" {
			t.Errorf("X-Upstream-Diagnosis = %q", h)
		}
		if h := r.Header.Get(diag.HeaderProxyStatus); h != "upmedic;received-status=502" {
			t.Errorf("Proxy-Status = %q", h)
		}
	})
	t.Run("chunked download", func(t *testing.T) {
		r := get(t, addr, "/chunked")
		if r.err != nil || string(r.body) != "hello world" {
			t.Errorf("body %q err %v", r.body, r.err)
		}
	})
	t.Run("body delimited by the upstream's close", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", raw("HTTP/1.0 200 OK\r\nX-Old: yes\r\n\r\nuntil the end"))
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
		r := get(t, addr, "/")
		if r.err != nil || string(r.body) != "until the end" || r.Header.Get("X-Old") != "yes" {
			t.Errorf("got %d %q err %v", r.StatusCode, r.body, r.err)
		}
	})
	t.Run("HTTP/1.0 client", func(t *testing.T) {
		r := send(t, addr, "GET /nodate HTTP/1.0\r\n\r\n")
		if r.StatusCode != 200 || string(r.body) != "hi" {
			t.Errorf("got %d %q", r.StatusCode, r.body)
		}
	})
}

func TestKeepAliveReuseAndRace(t *testing.T) {
	// The first connection answers once and then closes while idle. No
	// request, GET or POST, is sent on it: upmedic checks every idle
	// connection before reuse and dials afresh, so no retry is needed.
	answerOnceThenClose := func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, _, err := readRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
	}
	for _, second := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
	} {
		up := newFakeUpstream(t, "tcp", answerOnceThenClose, ok("second"))
		tr := new(diag.Traffic)
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), Traffic: tr})
		if r := get(t, addr, "/"); string(r.body) != "first" {
			t.Fatalf("first: %d %q", r.StatusCode, r.body)
		}
		waitFor(t, "the idle connection to be closed by the upstream", func() bool { return up.finished() == 1 })
		r := send(t, addr, second)
		if r.StatusCode != 200 || string(r.body) != "second" || tr.Retries() != 0 || up.accepted() != 2 {
			t.Errorf("%.4s after the idle close: %d %q, retries %d, connections %d; want 200 second, 0, 2",
				second, r.StatusCode, r.body, tr.Retries(), up.accepted())
		}
	}
}

// When the upstream takes the request and then closes without a byte, a GET
// is retried on a fresh connection, a POST is not: it may have reached the
// app.
func TestNoRetryOfNonIdempotent(t *testing.T) {
	answerThenDropNext := func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, _, err := readRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
		_, _, _ = readRequest(br) // the next request reaches the app, which dies
	}
	for _, tc := range []struct {
		method      string
		wantStatus  int
		wantRetries uint64
	}{
		{"GET", 200, 1},
		{"POST", 502, 0},
	} {
		t.Run(tc.method, func(t *testing.T) {
			up := newFakeUpstream(t, "tcp", answerThenDropNext, ok("fresh"))
			tr := new(diag.Traffic)
			addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), Traffic: tr})
			get(t, addr, "/")
			r := send(t, addr, tc.method+" / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			if r.StatusCode != tc.wantStatus || tr.Retries() != tc.wantRetries {
				t.Errorf("%s: status %d, retries %d; want %d and %d", tc.method, r.StatusCode, tr.Retries(), tc.wantStatus, tc.wantRetries)
			}
			if tc.wantStatus == 502 {
				wantDiagnosis(t, r, 502, diag.ConnectionTerminated)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	up := newFakeUpstream(t, "tcp", respond(echo))
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
	r := send(t, addr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if r.StatusCode != 400 {
		t.Errorf("CL+TE: status %d, want 400", r.StatusCode)
	}
	r = send(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "+strings.Repeat("b", 20000)+"\r\n\r\n")
	if r.StatusCode != 431 {
		t.Errorf("huge header: status %d, want 431", r.StatusCode)
	}
	if up.accepted() != 0 {
		t.Errorf("a bad request reached the upstream (%d connections)", up.accepted())
	}
}
