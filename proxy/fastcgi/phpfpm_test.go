package fastcgi

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPHPFPM drives a real php-fpm with the codec over its unix socket:
// every answer below is PHP-FPM's own, on the wire.
func TestPHPFPM(t *testing.T) {
	f := startFPM(t)
	res := f.resolver(t, "/index.php")

	t.Run("200 with its headers and two cookies", func(t *testing.T) {
		c := f.dial(t)
		req, s := get(t, res, "/hello.php")
		r := c.do(req, s, nil)
		if r.err != nil || r.status != 200 || string(r.body) != "hello" || !r.done {
			t.Fatalf("got %d %q err %v done %v", r.status, r.body, r.err, r.done)
		}
		if got := r.field("Set-Cookie"); !slices.Equal(got, []string{"a=1", "b=2"}) {
			t.Errorf("Set-Cookie = %q, want a=1 then b=2", got)
		}
		if got := r.field("X-Test"); !slices.Equal(got, []string{"yes"}) {
			t.Errorf("X-Test = %q", got)
		}
		if got := r.field("Content-Type"); !slices.Equal(got, []string{"text/html; charset=UTF-8"}) {
			t.Errorf("Content-Type = %q", got)
		}
		if r.stderr != "" {
			t.Errorf("stderr %q", r.stderr)
		}
	})

	t.Run("directory URLs run the index", func(t *testing.T) {
		c := f.dial(t)
		for target, want := range map[string]string{
			"/":      "root index",
			"/sub/":  "sub index /sub/index.php",
			"//sub/": "sub index /sub/index.php",
		} {
			req, s := get(t, res, target)
			if r := c.do(req, s, nil); r.status != 200 || string(r.body) != want {
				t.Errorf("%s: %d %q (err %v), want 200 %q", target, r.status, r.body, r.err, want)
			}
		}
	})

	t.Run("PATH_INFO and front controller", func(t *testing.T) {
		c := f.dial(t)
		req, s := get(t, res, "/sub/info.php/extra/path")
		if r := c.do(req, s, nil); r.status != 200 || string(r.body) != "/sub/info.php|/extra/path" {
			t.Errorf("PATH_INFO: %d %q (err %v)", r.status, r.body, r.err)
		}
		req, s = get(t, res, "/blog/hello-world")
		if r := c.do(req, s, nil); r.status != 200 || string(r.body) != "root index" {
			t.Errorf("front controller: %d %q (err %v)", r.status, r.body, r.err)
		}
	})

	t.Run("CGI parameters as PHP sees them", func(t *testing.T) {
		c := f.dial(t)
		req, s := get(t, res, "/env.php/a%20b?x=1&y=%2F")
		req.HTTPS = true
		req.Host = []byte("Shop.Example:8443")
		req.ServerAddr = netip.MustParseAddr("127.0.0.1")
		req.Header = headerList{
			{"Host", "Shop.Example:8443"}, {"X-Foo", "front"}, {"X_Foo", "spoofed"},
			{"Proxy", "http://evil.example:3128"}, {"Cookie", "a=1"}, {"Cookie", "b=2"},
			{"Connection", "keep-alive"}, {"Accept", "text/html"}, {"accept", "application/json"},
		}
		r := c.do(req, s, nil)
		if r.status != 200 {
			t.Fatalf("%d %q %v", r.status, r.body, r.err)
		}
		var env map[string]any
		if err := json.Unmarshal(r.body, &env); err != nil {
			t.Fatalf("%v: %s", err, r.body)
		}
		want := map[string]any{
			"SCRIPT_FILENAME": f.root + "/env.php", "SCRIPT_NAME": "/env.php", "PATH_INFO": "/a b",
			"REQUEST_URI": "/env.php/a%20b?x=1&y=%2F", "QUERY_STRING": "x=1&y=%2F",
			"DOCUMENT_ROOT": f.root, "DOCUMENT_URI": "/env.php/a b", "REQUEST_METHOD": "GET",
			"CONTENT_TYPE": "", "CONTENT_LENGTH": "0", "SERVER_PROTOCOL": "HTTP/1.1",
			"REQUEST_SCHEME": "https", "HTTPS": "on", "SERVER_NAME": "shop.example", "SERVER_PORT": "8443",
			"SERVER_ADDR": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000",
			"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_SOFTWARE": "upmedic", "REDIRECT_STATUS": "200",
			"HTTP_HOST": "Shop.Example:8443", "HTTP_X_FOO": "front", "HTTP_COOKIE": "a=1; b=2",
			"HTTP_ACCEPT": "text/html, application/json", "PHP_SELF": "/env.php/a b",
			"GET": map[string]any{"x": "1", "y": "/"},
		}
		delete(env, "pid")
		if fmt.Sprint(env) != fmt.Sprint(want) {
			t.Errorf("PHP's $_SERVER:\n got  %v\n want %v", env, want)
		}
		if _, ok := env["HTTP_PROXY"]; ok {
			t.Error("HTTP_PROXY reached PHP (httpoxy)")
		}
	})

	t.Run("200 KiB POST reaches PHP byte for byte", func(t *testing.T) {
		c := f.dial(t)
		body := make([]byte, 200<<10)
		_, _ = rand.Read(body)
		sum := sha256.Sum256(body)
		wantBody := hex.EncodeToString(sum[:]) + " " + strconv.Itoa(len(body))
		req, s := get(t, res, "/sha.php")
		req.Method, req.ContentType, req.ContentLength = []byte("POST"), []byte("application/octet-stream"), int64(len(body))
		if r := c.do(req, s, bytes.NewReader(body)); r.status != 200 || string(r.body) != wantBody {
			t.Errorf("ReadFrom: %d %q (err %v), want %q", r.status, r.body, r.err, wantBody)
		}
		// The same body through Stdin, in one call.
		pairs, _ := c.p.Build(req, s)
		c.id++
		c.w.Reset(c.bw, c.id)
		if err := errors.Join(c.w.BeginRequest(true), c.w.Params(pairs), c.w.Stdin(body), c.w.EndStdin()); err != nil {
			t.Fatal(err)
		}
		if r := c.read(); r.status != 200 || string(r.body) != wantBody {
			t.Errorf("Stdin: %d %q (err %v), want %q", r.status, r.body, r.err, wantBody)
		}
	})

	t.Run("REMOTE_ADDR from X-Real-IP of a trusted front only", func(t *testing.T) {
		c := f.dial(t)
		trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		for _, tc := range []struct {
			name         string
			peer         net.Addr
			realIP       string
			addr, port   string
			fromRealIPHd bool
		}{
			{"loopback front", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 51000}, "203.0.113.7", "203.0.113.7", "", true},
			{"unix front", &net.UnixAddr{Name: "@", Net: "unix"}, "2001:db8::7", "2001:db8::7", "", true},
			{"configured front", &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 51001}, "198.51.100.9", "198.51.100.9", "", true},
			{"untrusted peer", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 6000}, "203.0.113.7", "192.0.2.10", "6000", false},
			{"not an address", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 51002}, "203.0.113.7, 10.0.0.1", "127.0.0.1", "51002", false},
		} {
			addr, fromHeader := ClientAddr(tc.peer, []byte(tc.realIP), trusted)
			if fromHeader != tc.fromRealIPHd {
				t.Errorf("%s: fromHeader = %v", tc.name, fromHeader)
			}
			req, s := get(t, res, "/env.php")
			req.Remote = addr
			r := c.do(req, s, nil)
			var env map[string]any
			_ = json.Unmarshal(r.body, &env)
			if env["REMOTE_ADDR"] != tc.addr || env["REMOTE_PORT"] != tc.port {
				t.Errorf("%s: PHP saw REMOTE_ADDR %v REMOTE_PORT %v, want %s %q", tc.name, env["REMOTE_ADDR"], env["REMOTE_PORT"], tc.addr, tc.port)
			}
		}
	})

	t.Run("50 requests on one keep-alive connection", func(t *testing.T) {
		c := f.dial(t)
		pids := map[float64]int{}
		for i := range 50 {
			req, s := get(t, res, "/env.php?i="+strconv.Itoa(i))
			r := c.do(req, s, nil)
			var env map[string]any
			if err := json.Unmarshal(r.body, &env); err != nil || r.status != 200 || !r.done {
				t.Fatalf("request %d: %d %q err %v done %v", i, r.status, r.body, r.err, r.done)
			}
			if got := env["GET"].(map[string]any)["i"]; got != strconv.Itoa(i) {
				t.Fatalf("request %d answered for i=%v", i, got)
			}
			pids[env["pid"].(float64)]++
		}
		// One connection is one worker: PHP-FPM does not hand a kept
		// connection to another.
		if len(pids) != 1 {
			t.Errorf("workers per request: %v, want one worker for all 50", pids)
		}
	})

	t.Run("missing script", func(t *testing.T) {
		c := f.dial(t)
		req, s := get(t, res, "/missing.php")
		r := c.do(req, s, nil)
		if r.status != 404 || string(r.body) != "File not found.\n" || !r.done {
			t.Errorf("%d %q err %v", r.status, r.body, r.err)
		}
		if kind, _ := ClassifyStderr([]byte(r.stderr)); r.stderr != "Primary script unknown" || kind != StderrScriptUnknown {
			t.Errorf("stderr %q: %v", r.stderr, kind)
		}
	})

	t.Run("security.limit_extensions denial", func(t *testing.T) {
		// PHP-FPM's cgi.fix_pathinfo walks up from the missing x.php to
		// the existing avatar.jpg, then refuses to run it.
		c := f.dial(t)
		req, s := get(t, res, "/uploads/avatar.jpg/x.php")
		r := c.do(req, s, nil)
		if r.status != 403 || string(r.body) != "Access denied.\n" {
			t.Errorf("%d %q err %v", r.status, r.body, r.err)
		}
		kind, script := ClassifyStderr([]byte(r.stderr))
		if kind != StderrAccessDenied || string(script) != f.root+"/uploads/avatar.jpg" {
			t.Errorf("stderr %q: %v %q", r.stderr, kind, script)
		}
	})

	t.Run("script the pool may not read", func(t *testing.T) {
		c := f.dial(t)
		req, s := get(t, res, "/unreadable.php")
		r := c.do(req, s, nil)
		kind, script := ClassifyStderr([]byte(r.stderr))
		if r.status != 403 || string(r.body) != "Access denied.\n" || kind != StderrScriptUnreadable || string(script) != f.root+"/unreadable.php" {
			t.Errorf("%d %q stderr %q: %v %q", r.status, r.body, r.stderr, kind, script)
		}
	})

	t.Run("PHP's own 503", func(t *testing.T) {
		c := f.dial(t)
		req, s := get(t, res, "/status503.php")
		if r := c.do(req, s, nil); r.status != 503 || string(r.body) != "down for maintenance" || !r.done {
			t.Errorf("%d %q err %v", r.status, r.body, r.err)
		}
	})

	t.Run("40 KiB of headers", func(t *testing.T) {
		// What the whole header section measures, read with room for it.
		big := dialClient(t, "unix", f.sock, 64<<10)
		req, s := get(t, res, "/bigheader.php")
		whole := big.do(req, s, nil)
		if whole.status != 200 || len(whole.field("X-Big")[0]) != 40960 || whole.header.Size <= 40960 {
			t.Fatalf("with a 64 KiB limit: %d, size %d, err %v", whole.status, whole.header.Size, whole.err)
		}
		c := f.dial(t) // 4 KiB limit
		r := c.do(req, s, nil)
		if !errors.Is(r.err, ErrHeaderTooLarge) || r.header.Size != whole.header.Size {
			t.Errorf("with a 4 KiB limit: err %v, size %d; want ErrHeaderTooLarge, size %d", r.err, r.header.Size, whole.header.Size)
		}
	})

	t.Run("a worker killed by request_terminate_timeout", func(t *testing.T) {
		c := f.dial(t)
		req, s := get(t, res, "/sleep.php")
		r := c.do(req, s, nil)
		// The worker dies with our empty STDIN record unread in its
		// socket, so the kernel resets the connection: no FIN, no
		// FCGI_END_REQUEST, no byte.
		if !errors.Is(r.err, ErrNoEndRequest) || !errors.Is(r.err, syscall.ECONNRESET) || !errors.Is(r.err, io.ErrUnexpectedEOF) || r.received || r.done {
			t.Errorf("got err %v received %v done %v; want ErrNoEndRequest with ECONNRESET, nothing received", r.err, r.received, r.done)
		}
		// Killed after its headers and some body went out: the body is
		// cut, and never reported complete.
		c = f.dial(t)
		req, s = get(t, res, "/sleepafter.php")
		r = c.do(req, s, nil)
		if r.status != 200 || !slices.Equal(r.field("X-Early"), []string{"1"}) || string(r.body) != "partial" ||
			!errors.Is(r.err, ErrNoEndRequest) || !errors.Is(r.err, syscall.ECONNRESET) || r.done {
			t.Errorf("got %d %q err %v done %v; want 200 \"partial\" then ErrNoEndRequest with ECONNRESET", r.status, r.body, r.err, r.done)
		}
		if !f.waitLog("root/sleep.php' (request: \"GET /sleep.php\") execution timed out") {
			t.Errorf("php-fpm's log does not say it timed out:\n%s", f.logText())
		}
	})

	t.Run("an idle kept connection holds a worker until request_terminate_timeout", func(t *testing.T) {
		c := f.dial(t)
		req, s := get(t, res, "/index.php")
		if r := c.do(req, s, nil); r.status != 200 {
			t.Fatalf("%d %v", r.status, r.err)
		}
		// The worker waits on this connection for the next request, and
		// PHP-FPM counts that wait against request_terminate_timeout: it
		// kills the worker, which closes the connection (FIN: nothing of
		// ours was left unread).
		_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, err := c.conn.Read(make([]byte, 1))
		if n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("idle read: %d bytes, %v; want EOF", n, err)
		}
		if !f.waitLog("script '' (request: \" \") execution timed out") {
			t.Errorf("php-fpm's log does not say it killed an idle worker:\n%s", f.logText())
		}
	})

	t.Run("FCGI_GET_VALUES", func(t *testing.T) {
		c := f.dial(t)
		if _, err := c.conn.Write(AppendGetValues(nil)); err != nil {
			t.Fatal(err)
		}
		_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
		v, err := ReadValues(c.br)
		// PHP-FPM answers FCGI_MPXS_CONNS only, and keeps the connection,
		// with a worker waiting on it: a request on it runs.
		if err != nil || v != (Values{MaxConns: -1, MaxReqs: -1, MpxsConns: 0}) {
			t.Errorf("got %+v, %v", v, err)
		}
		req, s := get(t, res, "/index.php")
		if r := c.do(req, s, nil); r.status != 200 || string(r.body) != "root index" {
			t.Errorf("request after FCGI_GET_VALUES: %d %q %v", r.status, r.body, r.err)
		}
	})

	t.Run("ping and the status page", func(t *testing.T) {
		c := f.dial(t)
		if r := c.do(fixed(t, f, "/fpm-ping", "")); r.status != 200 || string(r.body) != "pong" {
			t.Errorf("ping: %d %q %v", r.status, r.body, r.err)
		}
		r := c.do(fixed(t, f, "/fpm-status", "json"))
		st, err := ParsePoolStatus(r.body)
		// On a unix socket PHP-FPM (Linux) knows no listen queue: it
		// reports 0 for its length and its content (a TCP pool does, see
		// TestPHPFPMListenQueue).
		if r.status != 200 || err != nil || st.Pool != "test" || st.ProcessManager != "static" || st.AcceptedConn == 0 || st.ListenQueueLen != 0 {
			t.Errorf("status: %d %q: %+v %v", r.status, r.body, st, err)
		}
		// PHP-FPM's scoreboard counts a request on a kept connection as a
		// process that stays active: with FCGI_KEEP_CONN the counts exceed
		// pm.max_children (2) and cannot be believed.
		for range 5 {
			req, s := get(t, res, "/index.php")
			c.do(req, s, nil)
		}
		r = c.do(fixed(t, f, "/fpm-status", "json"))
		if st, err := ParsePoolStatus(r.body); err != nil || st.ActiveProcesses <= 2 || st.TotalProcesses <= 2 {
			t.Errorf("after keep-alive requests: %+v %v; want more active and total processes than pm.max_children = 2 (PHP-FPM's keep-alive accounting)", st, err)
		}
	})

	t.Run("path traversal runs nothing outside the root", func(t *testing.T) {
		c := f.dial(t)
		// Control: the marker works when it is addressed from a root that
		// holds it.
		wide, err := NewResolver(f.dir, "", "")
		if err != nil {
			t.Fatal(err)
		}
		req, s := get(t, wide, "/outside/marker.php?tag=control")
		if r := c.do(req, s, nil); r.status != 200 || string(r.body) != "marker ran" {
			t.Fatalf("control: %d %q %v", r.status, r.body, r.err)
		}
		for i, tc := range []struct {
			target string
			err    error // nil: resolves to a path under the root that does not exist
		}{
			{"/../outside/marker.php", ErrPathDotSegment},
			{"/%2e%2e/outside/marker.php", ErrPathDotSegment},
			{"/%2E%2E/outside/marker.php", ErrPathDotSegment},
			{"/.%2e/outside/marker.php", ErrPathDotSegment},
			{"/sub/../../outside/marker.php", ErrPathDotSegment},
			{"//../outside/marker.php", ErrPathDotSegment},
			{"/./../outside/marker.php", ErrPathDotSegment},
			{"/sub/..", ErrPathDotSegment},
			{"/..%2foutside/marker.php", ErrPathSlash},
			{"/%2e%2e%2foutside%2fmarker.php", ErrPathSlash},
			{`/..\outside\marker.php`, ErrPathSlash},
			{"/%2e%2e%5coutside%5cmarker.php", ErrPathSlash},
			{"/index.php%00/../../outside/marker.php", ErrPathControl},
			{"/%00../outside/marker.php", ErrPathControl},
			{"/..%0a/outside/marker.php", ErrPathControl},
			{"/%2", ErrPathEscape},
			{"/%zz/marker.php", ErrPathEscape},
			{"../outside/marker.php", ErrPathNotOrigin},
			{"outside/marker.php", ErrPathNotOrigin},
			{"/%252e%252e/outside/marker.php", nil},
			{"/..%c0%af/outside/marker.php", nil},
			{"/..;/outside/marker.php", nil},
			{"/.../outside/marker.php", nil},
			{"/outside/marker.php", nil},
		} {
			target := tc.target + "?tag=attack" + strconv.Itoa(i)
			var s Script
			err := res.Resolve(&s, []byte(target))
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Errorf("Resolve(%q) = %v, want %v", tc.target, err, tc.err)
				continue
			}
			if err != nil {
				continue // nothing to send: the proxy answers 400
			}
			if !strings.HasPrefix(string(s.Filename), f.root+"/") {
				t.Errorf("Resolve(%q): SCRIPT_FILENAME %q is outside the root", tc.target, s.Filename)
				continue
			}
			req, _ := get(t, res, "/index.php")
			req.RequestURI = []byte(target)
			if r := c.do(req, &s, nil); r.status != 404 {
				t.Errorf("%q (SCRIPT_FILENAME %q): %d %q, want 404", tc.target, s.Filename, r.status, r.body)
			}
		}
		ran, _ := filepath.Glob(filepath.Join(f.outside, "ran-*"))
		if !slices.Equal(ran, []string{filepath.Join(f.outside, "ran-control")}) {
			t.Errorf("markers outside the root: %q, want only the control's", ran)
		}
	})

	t.Run("a body without CONTENT_LENGTH", func(t *testing.T) {
		// Why Build always sends CONTENT_LENGTH: without it PHP-FPM does
		// not read the body, answers as if there were none, and leaves the
		// STDIN records on the connection, which it then resets when they
		// arrive in place of the next request.
		c := f.dial(t)
		req, s := get(t, res, "/sha.php")
		req.Method, req.ContentLength = []byte("POST"), 5
		pairs, _ := c.p.Build(req, s)
		var without []byte
		for p := pairs; len(p) > 0; {
			name, value, rest, _ := NextPair(p)
			if string(name) != "CONTENT_LENGTH" {
				without = AppendPair(without, name, value)
			}
			p = rest
		}
		empty := sha256.Sum256(nil)
		if r := c.doPairs(without, strings.NewReader("hello")); r.status != 200 || string(r.body) != hex.EncodeToString(empty[:])+" 0" {
			t.Errorf("%d %q %v; want PHP to see an empty body", r.status, r.body, r.err)
		}
		// The reset comes before our next request is written (EPIPE or
		// ECONNRESET on the write) or after (ECONNRESET on the read).
		req, s = get(t, res, "/index.php")
		pairs, _ = c.p.Build(req, s)
		err := c.send(pairs, nil)
		if err == nil {
			r := c.read()
			if err = r.err; r.received {
				t.Errorf("next request answered: %d %q", r.status, r.body)
			}
		}
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Errorf("next request on the connection: %v; want a reset", err)
		}
	})
}

// fixed builds a GET for one of PHP-FPM's own paths (ping.path,
// pm.status_path), which name no file: SCRIPT_NAME and SCRIPT_FILENAME are
// the path itself.
func fixed(t *testing.T, f *fpm, path, query string) (*Request, *Script, io.Reader) {
	t.Helper()
	uri := path
	if query != "" {
		uri += "?" + query
	}
	return &Request{Method: []byte("GET"), RequestURI: []byte(uri), Host: []byte("localhost")},
		&Script{Root: f.root, Filename: []byte(path), Name: []byte(path), URI: []byte(path)}, nil
}

// TestPHPFPMListenQueue: a TCP pool with its one worker busy. PHP-FPM's
// status page counts the request waiting in the listen queue (on a TCP
// socket only), and pm.status_listen answers it while no worker is free;
// pm.status_path on the pool's own socket would wait in that queue too.
func TestPHPFPMListenQueue(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := startFPMWith(t, `[busy]
%[1]slisten = `+addr+`
pm = static
pm.max_children = 1
request_terminate_timeout = 30s
pm.status_path = /status
pm.status_listen = %[2]s/status.sock
`, "tcp", addr)
	res := f.resolver(t, "")
	busy := dialClient(t, "tcp", addr, 4096)
	req, s := get(t, res, "/sleep.php")
	pairs, _ := busy.p.Build(req, s)
	if err := busy.send(pairs, nil); err != nil {
		t.Fatal(err)
	}
	queued := dialClient(t, "tcp", addr, 4096)
	req, s = get(t, res, "/index.php")
	pairs, _ = queued.p.Build(req, s)
	if err := queued.send(pairs, nil); err != nil {
		t.Fatal(err)
	}
	// The master updates the queue's count about once a second: poll.
	var st PoolStatus
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dialClient(t, "unix", filepath.Join(f.dir, "status.sock"), 4096)
		r := c.do(fixed(t, f, "/status", "json"))
		c.conn.Close()
		if st, err = ParsePoolStatus(r.body); err != nil || r.status != 200 {
			t.Fatalf("status: %d %q %v", r.status, r.body, err)
		}
		if st.ListenQueue == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // a poll interval, not a wait for the event
	}
	if st.ListenQueue != 1 || st.ActiveProcesses != 1 || st.IdleProcesses != 0 || st.TotalProcesses != 1 || st.ListenQueueLen == 0 || st.Pool != "busy" {
		t.Errorf("status with the worker busy and one request queued: %+v", st)
	}
}
