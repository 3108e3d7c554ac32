package e2e

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
	"sync"
	"testing"
	"time"

	"github.com/upmedic/upmedic/internal/phpfpm"
)

// The PHP-FPM suite: Debian's php8.2-fpm behind upmedic
// (UPMEDIC_UPSTREAM=fastcgi://unix:...) behind nginx running
// testdata/nginx/upmedic-php.conf, which serves static files itself and
// proxies PHP to upmedic. Each case asserts what the client got and what
// nginx's access log says (status, diag=, ps=).

// phpStack starts php-fpm with pool (phpfpm.StartWith) and nginx -> upmedic
// in front of it; env adds UPMEDIC_ variables, "{dir}" in them standing for
// php-fpm's directory.
func phpStack(t *testing.T, pool string, env ...string) (*phpfpm.FPM, *stack) {
	t.Helper()
	needRoot(t)
	need(t, "nginx", "php-fpm")
	f := phpfpm.StartWith(t, pool, "unix", "fpm.sock")
	dir := scenarioDir(t)
	for i := range env {
		env[i] = strings.ReplaceAll(env[i], "{dir}", f.Dir)
	}
	s := newStack(t, dir, stackConfig{Upstream: "fastcgi://unix:" + f.Sock, PHPRoot: f.Root,
		Env:   append([]string{"UPMEDIC_FASTCGI_ROOT=" + f.Root, "UPMEDIC_EXPOSE_DETAILS=false"}, env...),
		Alone: "return 404;"})
	return f, s
}

// wantLabelled checks a PHP-FPM answer upmedic passed through and labelled.
func wantLabelled(t *testing.T, r result, status int, diagnosis string) {
	t.Helper()
	if r.status != status || r.line.status != status || r.line.upstreamStatus != fmt.Sprint(status) {
		t.Errorf("client %d, access log %d upstream %q; want %d from PHP-FPM\n%s", r.status, r.line.status, r.line.upstreamStatus, status, r.line.raw)
	}
	if r.line.diagnosis != diagnosis || r.line.proxyStatus != fmt.Sprintf("upmedic;received-status=%d", status) {
		t.Errorf("access log: diag=%q ps=%q, want diag=%s\n%s", r.line.diagnosis, r.line.proxyStatus, diagnosis, r.line.raw)
	}
}

func TestPHPFPMThroughNginx(t *testing.T) {
	f, s := phpStack(t, phpfpm.DefaultPool)

	t.Run("page, headers and two cookies", func(t *testing.T) {
		r := s.via.get(t, "/hello.php")
		wantClean(t, r, 200)
		if string(r.body) != "hello" || r.header.Get("X-Test") != "yes" {
			t.Errorf("body %q, X-Test %q", r.body, r.header.Get("X-Test"))
		}
		if c := r.header.Values("Set-Cookie"); len(c) != 2 || c[0] != "a=1" || c[1] != "b=2" {
			t.Errorf("Set-Cookie %q, want a=1 and b=2", c)
		}
	})
	t.Run("static file served by nginx, PHP in it not run", func(t *testing.T) {
		r := s.via.get(t, "/uploads/avatar.jpg")
		if r.status != 200 || string(r.body) != phpfpm.Scripts["uploads/avatar.jpg"] || r.line.upstreamStatus != "" {
			t.Errorf("%d %q upstream %q: want nginx's own 200 with the raw file", r.status, r.body, r.line.upstreamStatus)
		}
	})
	t.Run("directory index and PATH_INFO", func(t *testing.T) {
		for path, want := range map[string]string{"/sub/": "sub index /sub/index.php", "/sub/info.php/extra/path": "/sub/info.php|/extra/path",
			"/blog/a-pretty-url": "root index"} {
			if r := s.via.get(t, path); r.status != 200 || string(r.body) != want {
				t.Errorf("%s: %d %q, want %q", path, r.status, r.body, want)
			}
		}
	})
	t.Run("200 KiB POST byte for byte", func(t *testing.T) {
		body := []byte(strings.Repeat("0123456789abcdef", 200<<10/16))
		sum := sha256.Sum256(body)
		r := s.via.post(t, "/sha.php", body)
		if want := fmt.Sprintf("%s %d", hex.EncodeToString(sum[:]), len(body)); r.status != 200 || string(r.body) != want {
			t.Errorf("%d %q, want %q", r.status, r.body, want)
		}
	})
	t.Run("REMOTE_ADDR is the client, from X-Real-IP", func(t *testing.T) {
		// The client comes from 127.0.0.2; nginx reaches upmedic from
		// 127.0.0.1, which upmedic trusts for X-Real-IP.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
		client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
		resp, err := client.Get("http://" + s.via.addr + "/env.php")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatal(err)
		}
		if env["REMOTE_ADDR"] != "127.0.0.2" || env["REQUEST_SCHEME"] != "http" || env["SCRIPT_FILENAME"] != filepath.Join(f.Root, "env.php") {
			t.Errorf("REMOTE_ADDR %v, REQUEST_SCHEME %v, SCRIPT_FILENAME %v", env["REMOTE_ADDR"], env["REQUEST_SCHEME"], env["SCRIPT_FILENAME"])
		}
	})
	t.Run("50 requests on one keep-alive connection", func(t *testing.T) {
		c, err := net.Dial("tcp", s.via.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		pids := map[any]int{}
		for i := range 50 {
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			fmt.Fprintf(c, "GET /env.php?i=%d HTTP/1.1\r\nHost: shop.example\r\n\r\n", i)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			var env map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || resp.StatusCode != 200 {
				t.Fatalf("request %d: %d %v", i, resp.StatusCode, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			pids[env["pid"]]++
		}
		if len(pids) != 1 {
			t.Errorf("served by workers %v: want one kept FastCGI connection, one worker", pids)
		}
	})
	t.Run("missing script", func(t *testing.T) {
		wantLabelled(t, s.via.get(t, "/missing.php"), 404, "script_not_found;received-status=404")
		line := waitUpmedicLogged(t, s.upmedic, "FastCGI stderr", filepath.Join(f.Root, "missing.php"))
		if !strings.Contains(line, `"kind":"script unknown"`) {
			t.Errorf("log line %s", line)
		}
	})
	t.Run("limit_extensions: an upload named as a script", func(t *testing.T) {
		// cgi.fix_pathinfo walks /uploads/avatar.jpg/x.php back to the
		// .jpg, which security.limit_extensions refuses to run.
		r := s.via.get(t, "/uploads/avatar.jpg/x.php")
		wantLabelled(t, r, 403, "script_access_denied;received-status=403")
		if strings.Contains(string(r.body), "ran") {
			t.Errorf("the upload ran as PHP: %q", r.body)
		}
	})
	t.Run("PHP's own 503", func(t *testing.T) {
		r := s.via.get(t, "/status503.php")
		wantLabelled(t, r, 503, "upstream_status;received-status=503")
		if string(r.body) != "down for maintenance" {
			t.Errorf("body %q", r.body)
		}
	})
	t.Run("40 KiB of headers", func(t *testing.T) {
		ps := wantDiagnosed(t, s.via.get(t, "/bigheader.php"), 502, "http_response_header_section_size", "http_response_header_section_size")
		if ps["limit"] != "4096" || len(ps["header-section-size"]) < 5 {
			t.Errorf("params %v: want limit=4096 and the measured size", ps)
		}
	})
	t.Run("request_terminate_timeout", func(t *testing.T) {
		wantDiagnosed(t, s.via.get(t, "/sleep.php"), 502, "connection_terminated", "connection_terminated")
		line := waitUpmedicLogged(t, s.upmedic, "connection_terminated", "sleep.php")
		if !strings.Contains(line, "request_terminate_timeout") || !strings.Contains(line, "FCGI_END_REQUEST") {
			t.Errorf("upmedic's log line lacks PHP-FPM's hint: %s", line)
		}
		if !f.WaitLog("execution timed out") {
			t.Errorf("php-fpm did not log the kill:\n%s", f.LogText())
		}
	})
	t.Run("path traversal runs nothing", func(t *testing.T) {
		for _, target := range []string{"/../outside/marker.php?tag=a", "/%2e%2e/outside/marker.php?tag=b",
			"/sub/..%2f..%2foutside/marker.php?tag=c", "/sub/%2e%2e/%2e%2e/outside/marker.php?tag=d",
			"/marker.php%00.php?tag=e", "/.%2e/outside/marker.php?tag=g"} {
			c, err := net.Dial("tcp", s.via.addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n", target)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			c.Close()
			if err != nil {
				t.Fatalf("%s: %v", target, err)
			}
			if resp.StatusCode < 400 || resp.StatusCode > 404 {
				t.Errorf("%s: %d, want a 4xx", target, resp.StatusCode)
			}
		}
		if m, _ := filepath.Glob(filepath.Join(f.Outside, "ran-*")); len(m) > 0 {
			t.Errorf("the marker outside the root ran: %v", m)
		}
	})
}

// A pool socket only root may open, upmedic running as uid 65534.
func TestPHPFPMSocketRootOnly(t *testing.T) {
	pool := strings.Replace(phpfpm.DefaultPool, "listen.mode = 0666", "listen.owner = root\nlisten.group = root\nlisten.mode = 0600", 1)
	_, s := phpStack(t, pool)
	ps := wantDiagnosed(t, s.via.get(t, "/hello.php"), 502, "socket_permission_denied", "connection_refused")
	if ps["errno"] != "EACCES" {
		t.Errorf("errno %q, want EACCES", ps["errno"])
	}
	if line := waitUpmedicLogged(t, s.upmedic, "socket_permission_denied"); !strings.Contains(line, "listen.owner, listen.group and listen.mode") {
		t.Errorf("upmedic's log line lacks php-fpm's listen settings: %s", line)
	}
}

// PHP-FPM stopped: the next request says its socket is gone, and /readyz
// follows the health checker's FCGI_GET_VALUES probes.
func TestPHPFPMStopped(t *testing.T) {
	f, s := phpStack(t, phpfpm.DefaultPool, "UPMEDIC_HEALTH_INTERVAL=200ms", "UPMEDIC_HEALTH_FALL=2", "UPMEDIC_HEALTH_RISE=1")
	waitReadyz(t, s.admin, http.StatusOK)
	wantClean(t, s.via.get(t, "/hello.php"), 200)
	f.Stop()
	if _, err := os.Stat(f.Sock); err == nil {
		t.Fatalf("php-fpm left its socket")
	}
	waitReadyz(t, s.admin, http.StatusServiceUnavailable)
	r := s.via.get(t, "/hello.php")
	ps := wantDiagnosed(t, r, 503, "upstream_unhealthy", "destination_unavailable")
	if ps["last-cause"] != "socket_not_found" || ps["errno"] != "ENOENT" {
		t.Errorf("params %v: want last-cause=socket_not_found;errno=ENOENT", ps)
	}
}

// Every worker busy (pm.max_children = 1): the request that waits for a
// worker times out with PHP-FPM's pool status, read from pm.status_listen.
func TestPHPFPMMaxChildren(t *testing.T) {
	pool := strings.NewReplacer("pm.max_children = 2", "pm.max_children = 1",
		"request_terminate_timeout = 1s", "request_terminate_timeout = 20s",
		"pm.status_path = /fpm-status", "pm.status_path = /fpm-status\npm.status_listen = %[2]s/status.sock").Replace(phpfpm.DefaultPool)
	_, s := phpStack(t, pool, "UPMEDIC_FASTCGI_STATUS_PATH=/fpm-status", "UPMEDIC_FASTCGI_STATUS_UPSTREAM=unix:{dir}/status.sock", "UPMEDIC_HEALTH_INTERVAL=300ms",
		"UPMEDIC_RESPONSE_TIMEOUT=3s", "UPMEDIC_BREAKER_FAILURES=0")
	waitReadyz(t, s.admin, http.StatusOK)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // holds the only worker for 20 s, until PHP-FPM kills it
		defer wg.Done()
		_, _ = s.via.fetch("/sleep.php")
	}()
	time.Sleep(500 * time.Millisecond) // the slow request reaches the worker first
	r := s.via.get(t, "/hello.php")
	ps := wantDiagnosed(t, r, 504, "http_response_timeout", "http_response_timeout")
	if ps["active-processes"] != "1" || ps["max-children"] != "1" || ps["listen-queue"] == "" {
		resp, err := http.Get("http://" + s.admin + "/status")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if i := strings.Index(string(b), `"fastcgi"`); i >= 0 {
				b = b[i:]
			}
			t.Errorf("params %v: want listen-queue, active-processes=1, max-children=1; /status %s", ps, strings.Join(strings.Fields(string(b[:min(len(b), 1500)])), " "))
		}
	}
	if line := waitUpmedicLogged(t, s.upmedic, "http_response_timeout", "hello.php"); !strings.Contains(line, "pm.max_children") {
		t.Errorf("upmedic's hint does not name pm.max_children: %s", line)
	}
	wg.Wait()
}
