package proxy

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/internal/phpfpm"
	"github.com/upmedic/upmedic/proxy/fastcgi"
)

// The FastCGI suite runs upmedic in front of a real php-fpm (internal/phpfpm:
// static, two workers, request_terminate_timeout 1s, on a unix socket).

// startFastCGIProxy serves a Proxy in front of f's pool.
func startFastCGIProxy(t *testing.T, f *phpfpm.FPM, tune ...func(*Settings)) (string, *Proxy) {
	t.Helper()
	s := Settings{Network: "unix", Address: f.Sock, ExposeDetails: true, Traffic: new(diag.Traffic),
		FastCGI: &FastCGI{Root: f.Root, FrontController: "/index.php"}}
	for _, fn := range tune {
		fn(&s)
	}
	return startProxy(t, s)
}

// wantPassthrough checks that r is the upstream's own answer of status,
// labelled with cause.
func wantPassthrough(t *testing.T, r *response, status int, cause diag.Cause) {
	t.Helper()
	if r.StatusCode != status {
		t.Errorf("status %d, want %d (body %q)", r.StatusCode, status, r.body)
	}
	want := fmt.Sprintf("%s;received-status=%d", cause, status)
	if got := r.Header.Get(diag.HeaderDiagnosis); got != want {
		t.Errorf("X-Upstream-Diagnosis %q, want %q", got, want)
	}
	if got, want := r.Header.Get(diag.HeaderProxyStatus), fmt.Sprintf("upmedic;received-status=%d", status); got != want {
		t.Errorf("Proxy-Status %q, want %q", got, want)
	}
}

func TestFastCGIPHPFPM(t *testing.T) {
	f := phpfpm.Start(t)
	addr, p := startFastCGIProxy(t, f)

	t.Run("page with headers and two cookies", func(t *testing.T) {
		r := get(t, addr, "/hello.php")
		if r.StatusCode != 200 || string(r.body) != "hello" || r.Header.Get("X-Test") != "yes" {
			t.Fatalf("got %d %q %v", r.StatusCode, r.body, r.Header)
		}
		if c := r.Header.Values("Set-Cookie"); len(c) != 2 || c[0] != "a=1" || c[1] != "b=2" {
			t.Errorf("Set-Cookie %q, want a=1 and b=2", c)
		}
		if r.Header.Get(diag.HeaderDiagnosis) != "" || r.ContentLength != 5 {
			t.Errorf("diagnosis %q, Content-Length %d", r.Header.Get(diag.HeaderDiagnosis), r.ContentLength)
		}
	})
	t.Run("directory index, PATH_INFO, front controller", func(t *testing.T) {
		for path, want := range map[string]string{
			"/sub/":                    "sub index /sub/index.php",
			"/sub/info.php/extra/path": "/sub/info.php|/extra/path",
			"/blog/hello-world?page=2": "root index",
			"/":                        "root index",
		} {
			if r := get(t, addr, path); r.StatusCode != 200 || string(r.body) != want {
				t.Errorf("%s: %d %q, want 200 %q", path, r.StatusCode, r.body, want)
			}
		}
	})
	t.Run("CGI parameters", func(t *testing.T) {
		r := send(t, addr, "GET /env.php?a=1&b=x%20y HTTP/1.1\r\nHost: shop.example:8443\r\nX-Real-IP: 203.0.113.7\r\n"+
			"X-Forwarded-Proto: https\r\nProxy: http://evil.example\r\nX-Foo: bar\r\nX_Foo: spoof\r\nConnection: close\r\n\r\n")
		var env map[string]any
		if err := json.Unmarshal(r.body, &env); err != nil {
			t.Fatalf("%d %q: %v", r.StatusCode, r.body, err)
		}
		for k, want := range map[string]any{
			"SCRIPT_FILENAME": filepath.Join(f.Root, "env.php"), "SCRIPT_NAME": "/env.php",
			"REQUEST_URI": "/env.php?a=1&b=x%20y", "QUERY_STRING": "a=1&b=x%20y", "DOCUMENT_ROOT": f.Root,
			"DOCUMENT_URI": "/env.php", "REQUEST_METHOD": "GET", "CONTENT_LENGTH": "0",
			"SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_SCHEME": "https", "HTTPS": "on",
			"SERVER_NAME": "shop.example", "SERVER_PORT": "8443", "SERVER_ADDR": "127.0.0.1",
			"REMOTE_ADDR": "203.0.113.7", "GATEWAY_INTERFACE": "CGI/1.1", "REDIRECT_STATUS": "200",
			"HTTP_HOST": "shop.example:8443", "HTTP_X_FOO": "bar",
		} {
			if env[k] != want {
				t.Errorf("%s = %v, want %v", k, env[k], want)
			}
		}
		if _, ok := env["HTTP_PROXY"]; ok {
			t.Errorf("HTTP_PROXY reached PHP: %v", env["HTTP_PROXY"])
		}
		if g, _ := env["GET"].(map[string]any); g["b"] != "x y" {
			t.Errorf("$_GET %v", env["GET"])
		}
	})
	t.Run("200 KiB POST byte for byte", func(t *testing.T) {
		body := strings.Repeat("upmedic-fastcgi-", 200<<10/16) + "end"
		sum := sha256.Sum256([]byte(body))
		want := fmt.Sprintf("%s %d", hex.EncodeToString(sum[:]), len(body))
		r := send(t, addr, fmt.Sprintf("POST /sha.php HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body))
		if r.StatusCode != 200 || string(r.body) != want {
			t.Errorf("POST: %d %q, want %q", r.StatusCode, r.body, want)
		}
		chunked := "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
		sum = sha256.Sum256([]byte("hello world"))
		r = send(t, addr, "POST /sha.php HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+chunked)
		if want := hex.EncodeToString(sum[:]) + " 11"; r.StatusCode != 200 || string(r.body) != want {
			t.Errorf("chunked POST: %d %q, want %q", r.StatusCode, r.body, want)
		}
	})
	t.Run("50 requests on one keep-alive connection, one PHP-FPM connection", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		opened := p.traffic.OpenConns()
		pids := map[any]int{}
		for i := range 50 {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "GET /env.php?i=%d HTTP/1.1\r\nHost: t\r\n\r\n", i)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			var env map[string]any
			if resp.StatusCode != 200 || json.Unmarshal(b, &env) != nil {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
			}
			pids[env["pid"]]++
		}
		if len(pids) != 1 || p.traffic.OpenConns() > opened+1 {
			t.Errorf("served by workers %v with %d upstream connections open (before: %d): want one kept connection", pids, p.traffic.OpenConns(), opened)
		}
	})
	t.Run("missing script: PHP-FPM's 404 labelled script_not_found", func(t *testing.T) {
		r := get(t, addr, "/missing.php")
		wantPassthrough(t, r, 404, diag.ScriptNotFound)
		lines := p.FastCGIStderr()
		if len(lines) == 0 || lines[len(lines)-1].Kind != fastcgi.StderrScriptUnknown.String() ||
			lines[len(lines)-1].Script != filepath.Join(f.Root, "missing.php") {
			t.Errorf("stderr lines %+v: want the script path of the last one", lines)
		}
		if strings.Contains(string(r.body), f.Root) || strings.Contains(r.Header.Get(diag.HeaderDiagnosis), f.Root) {
			t.Errorf("the script path reached the client: %q", r.body)
		}
	})
	t.Run("limit_extensions: PHP-FPM's 403 labelled script_access_denied", func(t *testing.T) {
		wantPassthrough(t, get(t, addr, "/uploads/avatar.jpg/x.php"), 403, diag.ScriptAccessDenied)
	})
	t.Run("PHP's own 503 and forged diagnosis", func(t *testing.T) {
		r := get(t, addr, "/status503.php")
		wantPassthrough(t, r, 503, diag.UpstreamStatus)
		if string(r.body) != "down for maintenance" {
			t.Errorf("body %q", r.body)
		}
		r = get(t, addr, "/forged.php")
		wantPassthrough(t, r, 502, diag.UpstreamStatus)
		if v := r.Header.Values(diag.HeaderDiagnosis); len(v) != 1 {
			t.Errorf("X-Upstream-Diagnosis %q: the script's must be dropped", v)
		}
	})
	t.Run("40 KiB of headers", func(t *testing.T) {
		r := get(t, addr, "/bigheader.php")
		params := wantDiagnosis(t, r, 502, diag.HTTPResponseHeaderSectionSize)
		if params["limit"] != "4096" || params["header-section-size"] < "40960" || len(params["header-section-size"]) < 5 {
			t.Errorf("params %v: want limit=4096 and the real size, over 40960", params)
		}
	})
	t.Run("large body streams whole", func(t *testing.T) {
		r := get(t, addr, "/big.php")
		if r.StatusCode != 200 || len(r.body) != 1<<20 || r.err != nil {
			t.Errorf("got %d, %d bytes, %v: want 1 MiB", r.StatusCode, len(r.body), r.err)
		}
		r = send(t, addr, "GET /big.php HTTP/1.0\r\nHost: t\r\n\r\n")
		if r.StatusCode != 200 || len(r.body) != 1<<20 || r.err != nil || r.TransferEncoding != nil {
			t.Errorf("HTTP/1.0: got %d, %d bytes, %v, %v: want 1 MiB close-delimited", r.StatusCode, len(r.body), r.err, r.TransferEncoding)
		}
		r = send(t, addr, "HEAD /hello.php HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
		if r.StatusCode != 200 || len(r.body) != 0 || r.Header.Get("X-Test") != "yes" {
			t.Errorf("HEAD: %d %q", r.StatusCode, r.body)
		}
	})
	t.Run("request_terminate_timeout kills the worker", func(t *testing.T) {
		r := get(t, addr, "/sleep.php")
		params := wantDiagnosis(t, r, 502, diag.ConnectionTerminated)
		for _, w := range []string{"request_terminate_timeout", "max_execution_time", "memory_limit"} {
			if !strings.Contains(params["hint"], w) {
				t.Errorf("hint %q lacks %s", params["hint"], w)
			}
		}
		// Killed after the header and part of a small body: diagnosed, since
		// the body was being buffered.
		params = wantDiagnosis(t, get(t, addr, "/sleepafter.php"), 502, diag.HTTPResponseIncomplete)
		if !strings.Contains(params["hint"], "FCGI_END_REQUEST") {
			t.Errorf("hint %q: want PHP-FPM's", params["hint"])
		}
		// Streamed: the status went out, so the stream is cut, never
		// completed.
		streamAddr, _ := startFastCGIProxy(t, f, func(s *Settings) { s.BufferBytes = -1 })
		r = send(t, streamAddr, "GET /sleepafter.php HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
		if r.StatusCode != 200 || r.err == nil || string(r.body) != "partial" {
			t.Errorf("killed mid-stream: %d %q, err %v: want a cut stream", r.StatusCode, r.body, r.err)
		}
	})
	t.Run("path traversal runs nothing", func(t *testing.T) {
		for _, target := range []string{"/../outside/marker.php?tag=a", "/%2e%2e/outside/marker.php?tag=b",
			"/sub/..%2f..%2foutside/marker.php?tag=c", "/sub/%2e%2e/%2e%2e/outside/marker.php?tag=d",
			"/marker.php%00.php?tag=e", "/sub\\..\\..\\outside\\marker.php?tag=f", "/.%2e/outside/marker.php?tag=g"} {
			r := send(t, addr, "GET "+target+" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
			if r.StatusCode != 400 {
				t.Errorf("%s: %d %q, want 400", target, r.StatusCode, r.body)
			}
		}
		if m, _ := filepath.Glob(filepath.Join(f.Outside, "ran-*")); len(m) > 0 {
			t.Errorf("the marker outside the root ran: %v", m)
		}
	})
}

// An address that answers FastCGI with HTTP is named, and the reverse.
func TestFastCGIWrongProtocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: ln.Addr().String(), ExposeDetails: true,
		FastCGI: &FastCGI{Root: "/var/www"}})
	params := wantDiagnosis(t, get(t, addr, "/index.php"), 502, diag.HTTPProtocolError)
	if params["answered"] != "http" || !strings.Contains(params["hint"], "answered FastCGI with HTTP") {
		t.Errorf("params %v: want answered=http and its hint", params)
	}

	// An HTTP upstream that answers with a FastCGI record.
	var rec []byte
	rec = fastcgi.Header{Version: 1, Type: fastcgi.TypeStdout, RequestID: 1, ContentLength: 2}.AppendTo(rec)
	u := newFakeUpstream(t, "tcp", raw(string(rec)+"hi"))
	addr, _ = startProxy(t, Settings{Network: "tcp", Address: u.address(), ExposeDetails: true})
	params = wantDiagnosis(t, get(t, addr, "/"), 502, diag.HTTPProtocolError)
	if params["answered"] != "fastcgi" || !strings.Contains(params["hint"], "fastcgi://") {
		t.Errorf("params %v: want answered=fastcgi and its hint", params)
	}
}

// A stopped PHP-FPM leaves no socket: socket_not_found.
func TestFastCGIStopped(t *testing.T) {
	f := phpfpm.Start(t)
	addr, _ := startFastCGIProxy(t, f)
	if r := get(t, addr, "/hello.php"); r.StatusCode != 200 {
		t.Fatalf("before the stop: %d", r.StatusCode)
	}
	f.Stop()
	if _, err := os.Stat(f.Sock); err == nil {
		t.Fatalf("php-fpm left its socket %s", f.Sock)
	}
	params := wantDiagnosis(t, get(t, addr, "/hello.php"), 502, diag.SocketNotFound)
	if params["errno"] != "ENOENT" {
		t.Errorf("params %v, want errno=ENOENT", params)
	}
}

// A pool socket of mode 0600 owned by root, PHP-FPM's listen.mode when
// listen.owner is not set to upmedic's user: upmedic, unprivileged, is
// refused, and the hint names listen.owner, listen.group and listen.mode.
func TestFastCGISocketPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run php-fpm's master as root and upmedic as uid 65534")
	}
	f := phpfpm.StartWith(t, strings.Replace(phpfpm.DefaultPool, "listen.mode = 0666", "listen.owner = root\nlisten.group = root\nlisten.mode = 0600", 1),
		"unix", "fpm.sock")
	fi, err := os.Stat(f.Sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pool socket %v %v, want mode 0600", fi, err)
	}
	addr := startUnprivilegedProxy(t, f.Sock, fastCGIRootEnv+"="+f.Root)
	params := wantDiagnosis(t, get(t, addr, "/hello.php"), http.StatusBadGateway, diag.SocketPermissionDenied)
	if params["errno"] != "EACCES" || !strings.Contains(params["hint"], "listen.owner, listen.group and listen.mode") {
		t.Errorf("params %v: want errno=EACCES and php-fpm's listen settings in the hint", params)
	}
}

// A record left over from an earlier request on a kept connection, one that
// arrives after the reuse check, names that request's id: the next client
// gets a diagnosed 502, never the earlier request's answer.
func TestFastCGIStaleRecordNeverAnswers(t *testing.T) {
	rec := func(typ fastcgi.RecordType, id uint16, content string) []byte {
		h := fastcgi.Header{Version: 1, Type: typ, RequestID: id, ContentLength: uint16(len(content))}
		return append(h.AppendTo(nil), content...)
	}
	answer := func(id uint16, body string) []byte {
		b := rec(fastcgi.TypeStdout, id, "Content-Type: text/plain\r\n\r\n"+body)
		return append(b, rec(fastcgi.TypeEndRequest, id, "\x00\x00\x00\x00\x00\x00\x00\x00")...)
	}
	app := func(c net.Conn) {
		br := bufio.NewReader(c)
		buf := make([]byte, 66<<10)
		var prev uint16
		for n := 0; ; {
			h, _, err := readRecord(br, buf)
			if err != nil {
				return
			}
			if h.Type != fastcgi.TypeStdin || h.ContentLength != 0 {
				continue
			}
			n++
			out := answer(h.RequestID, fmt.Sprintf("answer %d", n))
			if n == 2 {
				// The late record of request 1, then request 2's own answer.
				out = append(answer(prev, "STOLEN"), out...)
			}
			if _, err := c.Write(out); err != nil {
				return
			}
			prev = h.RequestID
		}
	}
	u := newFakeUpstream(t, "tcp", app)
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: u.address(), FastCGI: &FastCGI{Root: "/var/www"}})
	if r := get(t, addr, "/a.php"); r.StatusCode != 200 || string(r.body) != "answer 1" {
		t.Fatalf("first: %d %q", r.StatusCode, r.body)
	}
	r := get(t, addr, "/b.php")
	if strings.Contains(string(r.body), "STOLEN") {
		t.Fatalf("the second client got the first request's late answer: %d %q", r.StatusCode, r.body)
	}
	wantDiagnosis(t, r, http.StatusBadGateway, diag.HTTPProtocolError)
	if u.accepted() != 1 {
		t.Errorf("%d upstream connections, want the one kept (the test needs the reuse)", u.accepted())
	}
}
