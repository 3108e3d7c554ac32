//go:build unix

package probe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/internal/sockfault"
)

// ---- fake upstreams ----

// upstream is a scripted fake app: each connection's request head is read and
// sent on reqs, then handle scripts the answer.
type upstream struct {
	addr string
	reqs chan string
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func listenUnix(t *testing.T, path string) net.Listener {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serve runs handle for every connection to ln after reading its request
// head. done closes at cleanup, releasing handlers that hold a connection.
func serve(t *testing.T, ln net.Listener, handle func(c net.Conn, done <-chan struct{})) *upstream {
	t.Helper()
	u := &upstream{addr: ln.Addr().String(), reqs: make(chan string, 8)}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				req, err := readRequestHead(c)
				if err != nil {
					return
				}
				select {
				case u.reqs <- req:
				default:
				}
				handle(c, done)
			}()
		}
	}()
	return u
}

func readRequestHead(c net.Conn) (string, error) {
	br := bufio.NewReader(c)
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if line == "\r\n" {
			return b.String(), nil
		}
	}
}

// reply writes resp and closes.
func reply(resp string) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, _ <-chan struct{}) { io.WriteString(c, resp) }
}

// replyAndHold writes resp and keeps the connection open until cleanup.
func replyAndHold(resp string) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, done <-chan struct{}) {
		io.WriteString(c, resp)
		<-done
	}
}

// ---- asserting on reports ----

// probeResult is a report as the CLI prints it: JSON and text.
type probeResult struct {
	j    reportJSON
	text string
}

func resultOf(t *testing.T, r *Report) probeResult {
	t.Helper()
	var jb, tb bytes.Buffer
	if err := r.WriteJSON(&jb); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteText(&tb, false); err != nil {
		t.Fatal(err)
	}
	return parseResult(t, jb.Bytes(), tb.String())
}

func parseResult(t *testing.T, jsonBytes []byte, text string) probeResult {
	t.Helper()
	var res probeResult
	if err := json.Unmarshal(jsonBytes, &res.j); err != nil {
		t.Fatalf("report JSON does not parse: %v\n%s", err, jsonBytes)
	}
	res.text = text
	return res
}

// expect returns the first finding with cause and severity whose fix contains
// every string in fix, after checking the printed text shows them too.
func (res probeResult) expect(t *testing.T, cause diag.Cause, sev Severity, fix ...string) findingJSON {
	t.Helper()
	want := ""
	if cause != diag.None {
		want = cause.String()
	}
next:
	for _, f := range res.j.Findings {
		if f.Cause != want || f.Severity != sev.String() {
			continue
		}
		joined := strings.Join(f.Fix, "\n")
		for _, s := range fix {
			if !strings.Contains(joined, s) {
				continue next
			}
		}
		for _, s := range fix {
			if !strings.Contains(res.text, s) {
				t.Errorf("printed report lacks %q:\n%s", s, res.text)
			}
		}
		return f
	}
	t.Fatalf("no %s finding with cause %q and a fix saying %q in report:\n%s", sev, want, fix, res.text)
	return findingJSON{}
}

func (f findingJSON) mustMention(t *testing.T, s ...string) {
	t.Helper()
	all := f.Title + "\n" + strings.Join(f.Details, "\n")
	for _, x := range s {
		if !strings.Contains(all, x) {
			t.Errorf("finding %q does not mention %q:\n%s", f.Title, x, all)
		}
	}
}

func (res probeResult) healthy(t *testing.T, want bool) {
	t.Helper()
	if res.j.Healthy != want {
		t.Fatalf("healthy = %v, want %v:\n%s", res.j.Healthy, want, res.text)
	}
}

// ---- the probe against real sockets ----

func TestProbeHealthyTCP(t *testing.T) {
	answer := raw(t, "http/200.raw")
	head := answer[:strings.Index(answer, "\r\n\r\n")+4]
	u := serve(t, listenTCP(t), reply(answer))
	r := Check(t.Context(), Settings{Network: "tcp", Address: u.addr, HealthPath: "healthz"})

	if !r.Healthy() {
		t.Fatalf("Healthy() = false")
	}
	wantReq := "GET /healthz HTTP/1.1\r\nHost: " + u.addr + "\r\nUser-Agent: upmedic-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if got := <-u.reqs; got != wantReq {
		t.Errorf("request =\n%q\nwant\n%q", got, wantReq)
	}
	if !r.Connected || r.Status != 200 || r.HeaderSectionSize != len(head) || r.FirstByte <= 0 {
		t.Errorf("connected=%v status=%d header=%d (want %d) firstByte=%v",
			r.Connected, r.Status, r.HeaderSectionSize, len(head), r.FirstByte)
	}
	res := resultOf(t, r)
	res.healthy(t, true)
	res.expect(t, diag.None, SeverityOK).mustMention(t, "connected to "+u.addr)
	for _, f := range res.j.Findings {
		if f.Severity != "ok" {
			t.Errorf("unexpected %s finding %q", f.Severity, f.Title)
		}
	}
	if !strings.Contains(res.text, "GET /healthz answered 200 OK") || !strings.HasSuffix(res.text, "\nhealthy\n") {
		t.Errorf("text report:\n%s", res.text)
	}
}

func TestProbeHealthyUnixAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("checks the note printed when the probe runs as root")
	}
	path := filepath.Join(t.TempDir(), "app.sock")
	u := serve(t, listenUnix(t, path), reply("HTTP/1.0 204 No Content\r\n\r\n"))
	res := resultOf(t, Check(t.Context(), Settings{Address: "unix:" + path, HealthPath: "/ready",
		TestAs: []string{"www-data: nginx's workers"}}))
	res.healthy(t, true)
	if got := <-u.reqs; !strings.HasPrefix(got, "GET /ready HTTP/1.1\r\nHost: localhost\r\n") {
		t.Errorf("request = %q", got)
	}
	if res.j.Network != "unix" || res.j.Upstream != "unix:"+path || res.j.Status != 204 {
		t.Errorf("network=%q upstream=%q status=%d", res.j.Network, res.j.Upstream, res.j.Status)
	}
	// Root may connect anywhere: a warning, naming the users to test as.
	res.expect(t, diag.None, SeverityWarn,
		"upmedic diag probe --as www-data unix:"+path+"   # nginx's workers",
		"upmedic diag probe --as <upmedic's user> unix:"+path+"   # User= in upmedic's unit").
		mustMention(t, "ran as root", "says nothing about the users that connect to it")
	if !strings.HasSuffix(res.text, "\nhealthy, with 1 warning\n") {
		t.Errorf("verdict:\n%s", res.text)
	}
	for _, f := range res.j.Findings {
		if f.Severity == "ok" && strings.Contains(f.Title, "root") {
			t.Errorf("an OK finding about root: %+v", f)
		}
	}
}

func TestProbeConnectOnly(t *testing.T) {
	ln := listenTCP(t) // the kernel completes the connect; nothing needs to accept
	res := resultOf(t, Check(t.Context(), Settings{Address: ln.Addr().String()}))
	res.healthy(t, true)
	res.expect(t, diag.None, SeverityOK, "UPMEDIC_HEALTH_PATH").mustMention(t, "HTTP was not checked")
	if res.j.Status != 0 || res.j.HeaderSectionSize != 0 {
		t.Errorf("status=%d header=%d for a connect-only probe", res.j.Status, res.j.HeaderSectionSize)
	}
}

func TestProbeRefusedTCP(t *testing.T) {
	addr := sockfault.ClosedTCPAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	res := resultOf(t, Check(t.Context(), Settings{Address: addr, HealthPath: "/healthz"}))
	res.healthy(t, false)
	f := res.expect(t, diag.ConnectionRefused, SeverityFail, "ss -ltnp 'sport = :"+port+"'", "host.docker.internal", "UPMEDIC_HOLD")
	f.mustMention(t, "nothing listens on "+addr, "ECONNREFUSED", "inside a container, localhost is the container itself")
	if res.j.Errno != "ECONNREFUSED" || res.j.Connected {
		t.Errorf("errno=%q connected=%v", res.j.Errno, res.j.Connected)
	}
}

func TestProbeStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false) // the app died: its socket file stays
	ln.Close()
	res := resultOf(t, Check(t.Context(), Settings{Network: "unix", Address: path}))
	res.healthy(t, false)
	f := res.expect(t, diag.ConnectionRefused, SeverityFail, "ss -xlp | grep "+path, "restart the app")
	f.mustMention(t, "stale socket", "died", "ECONNREFUSED")
}

func TestProbeNotASocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	if err := os.WriteFile(path, []byte("not a socket"), 0o666); err != nil {
		t.Fatal(err)
	}
	res := resultOf(t, Check(t.Context(), Settings{Network: "unix", Address: path}))
	res.expect(t, diag.ConnectionRefused, SeverityFail, "rm "+path, "php-fpm listen = "+path).
		mustMention(t, "is a regular file, not a socket")
}

func TestProbeSocketMissing(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "php8.2-fpm.sock")
	listenUnix(t, other)
	path := filepath.Join(dir, "php-fpm.sock")
	res := resultOf(t, Check(t.Context(), Settings{Network: "unix", Address: path}))
	res.healthy(t, false)
	res.expect(t, diag.SocketNotFound, SeverityFail, "gunicorn --bind unix:"+path, "start the app").
		mustMention(t, "socket "+path+" does not exist", "ENOENT", "sockets that do exist there: "+other)
}

func TestProbeSocketMissingPrivateTmp(t *testing.T) {
	for _, root := range []string{"/tmp", "/var/tmp"} {
		t.Run(root, func(t *testing.T) {
			// Not created: only the name matters.
			path := filepath.Join(root, fmt.Sprintf("upmedic-probe-absent-%d", os.Getpid()), "app.sock")
			res := resultOf(t, Check(t.Context(), Settings{Network: "unix", Address: path}))
			res.expect(t, diag.SocketNotFound, SeverityFail, "RuntimeDirectory=app", "systemctl show -p PrivateTmp").
				mustMention(t, "PrivateTmp=yes", "directory "+filepath.Dir(path)+" does not exist")
		})
	}
	t.Run("outside tmp", func(t *testing.T) {
		path := fmt.Sprintf("/upmedic-probe-absent-%d/app.sock", os.Getpid())
		res := resultOf(t, Check(t.Context(), Settings{Network: "unix", Address: path}))
		f := res.expect(t, diag.SocketNotFound, SeverityFail)
		if strings.Contains(res.text, "PrivateTmp") {
			t.Errorf("PrivateTmp mentioned for %s:\n%s", path, res.text)
		}
		f.mustMention(t, "deepest existing directory: /")
	})
}

func TestProbeSocketPathNotADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "run")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(file, "app.sock")
	res := resultOf(t, Check(t.Context(), Settings{Network: "unix", Address: path}))
	res.expect(t, diag.SocketNotFound, SeverityFail, "php-fpm listen = "+path).
		mustMention(t, file+" is not a directory", "ENOTDIR")
}

func TestProbeBacklogFull(t *testing.T) {
	// A unix listener with backlog 0 takes one pending connection; the next
	// connect fails with EAGAIN, as when an app's workers are all busy.
	path := filepath.Join(t.TempDir(), "app.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	first, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("first connect: %v", err)
	}
	t.Cleanup(func() { first.Close() })

	res := resultOf(t, Check(t.Context(), Settings{Network: "unix", Address: path}))
	res.expect(t, diag.ConnectionLimitReached, SeverityFail, "gunicorn --backlog", "net.core.somaxconn").
		mustMention(t, "listen backlog of "+path+" is full")
	if res.j.Errno != "EAGAIN" {
		t.Errorf("errno = %q, want EAGAIN", res.j.Errno)
	}
}

func TestProbeUnroutable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace of its own")
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// In a fresh network namespace loopback is down: nothing is routable,
	// and no packet leaves the machine.
	res := runHelper(t, bin, Settings{Address: "127.0.0.1:9"}, sockfault.NoNetwork(), false)
	res.expect(t, diag.DestinationIPUnroutable, SeverityFail, "ip route get 127.0.0.1").
		mustMention(t, "ENETUNREACH")
}

func TestProbeDNSError(t *testing.T) {
	// An empty label makes the name invalid: the resolver rejects it without
	// sending a query.
	const host = "no-such-upstream..invalid"
	res := resultOf(t, Check(t.Context(), Settings{Address: host + ":8000"}))
	res.expect(t, diag.DNSError, SeverityFail, "getent hosts "+host, "service name").
		mustMention(t, "the name "+host+" does not resolve")
}

func TestProbeLargeHeaders(t *testing.T) {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\n")
	for i := range 40 {
		fmt.Fprintf(&b, "Set-Cookie: c%02d=%s\r\n", i, strings.Repeat("x", 1024))
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	head := b.String()
	if len(head) < 40<<10 {
		t.Fatalf("fixture is %d bytes, want over 40 KiB", len(head))
	}
	u := serve(t, listenTCP(t), reply(head))
	r := Check(t.Context(), Settings{Address: u.addr, HealthPath: "/", MaxHeaderBytes: 4096})
	if r.HeaderSectionSize != len(head) {
		t.Errorf("HeaderSectionSize = %d, want %d", r.HeaderSectionSize, len(head))
	}
	res := resultOf(t, r)
	res.healthy(t, false)
	f := res.expect(t, diag.HTTPResponseHeaderSectionSize, SeverityFail,
		"proxy_buffer_size 64k; proxy_buffers 8 64k; proxy_busy_buffers_size 128k;",
		"UPMEDIC_MAX_RESPONSE_HEADER_BYTES=65536",
		"Set-Cookie")
	f.mustMention(t, fmt.Sprintf("is %d bytes, over UPMEDIC_MAX_RESPONSE_HEADER_BYTES=4096", len(head)),
		"Set-Cookie ×40 = 41680 bytes", "upstream sent too big header")
	if res.j.HeaderSectionSize != len(head) || res.j.Status != 200 {
		t.Errorf("JSON header_section_size=%d status=%d", res.j.HeaderSectionSize, res.j.Status)
	}
}

func TestProbeEndlessHeader(t *testing.T) {
	answer := "HTTP/1.1 200 OK\r\nX-Endless: " + strings.Repeat("a", probeHeaderCap)
	u := serve(t, listenTCP(t), replyAndHold(answer))
	r := Check(t.Context(), Settings{Address: u.addr, HealthPath: "/", ResponseTimeout: time.Minute})
	if r.HeaderSectionSize != probeHeaderCap {
		t.Errorf("HeaderSectionSize = %d, want the %d-byte cap", r.HeaderSectionSize, probeHeaderCap)
	}
	resultOf(t, r).expect(t, diag.HTTPResponseHeaderSectionSize, SeverityFail, "curl -sS -D -").
		mustMention(t, "did not end within its first 1 MiB")
}

func TestProbeHeadersOverNginxDefault(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nX-Debug: " + strings.Repeat("d", 6000) + "\r\n\r\n"
	u := serve(t, listenTCP(t), reply(head))
	res := resultOf(t, Check(t.Context(), Settings{Address: u.addr, HealthPath: "/", MaxHeaderBytes: 16384}))
	res.healthy(t, true) // a warning is not a failure
	res.expect(t, diag.HTTPResponseHeaderSectionSize, SeverityWarn,
		"proxy_buffer_size 8k; proxy_buffers 8 8k; proxy_busy_buffers_size 16k;").
		mustMention(t, "over nginx's default proxy_buffer_size")
}

func TestProbeSlowUpstream(t *testing.T) {
	u := serve(t, listenTCP(t), func(_ net.Conn, done <-chan struct{}) { <-done }) // never answers
	const limit = 200 * time.Millisecond
	start := time.Now()
	r := Check(t.Context(), Settings{Address: u.addr, HealthPath: "/slow", ResponseTimeout: limit})
	if took := time.Since(start); took < limit {
		t.Errorf("probe returned after %v, before the %v response timeout", took, limit)
	}
	if r.FirstByte != 0 || !r.Connected {
		t.Errorf("FirstByte = %v connected=%v", r.FirstByte, r.Connected)
	}
	res := resultOf(t, r)
	res.healthy(t, false)
	res.expect(t, diag.HTTPResponseTimeout, SeverityFail, "UPMEDIC_RESPONSE_TIMEOUT", "proxy_read_timeout", "--http-socket").
		mustMention(t, "no response within 200ms", "sent no byte")
}

func TestProbeCancelled(t *testing.T) {
	u := serve(t, listenTCP(t), func(_ net.Conn, done <-chan struct{}) { <-done })
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-u.reqs // the request has arrived: the probe now waits for the answer
		cancel()
	}()
	start := time.Now()
	res := resultOf(t, Check(ctx, Settings{Address: u.addr, HealthPath: "/", ResponseTimeout: time.Minute}))
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("cancel did not stop the probe (%v)", took)
	}
	res.expect(t, diag.None, SeverityFail).mustMention(t, "probe cancelled")
}

// testdataProbe is where the raw upstream answers live, one case a file.
const testdataProbe = "testdata"

// raw returns the upstream answer in testdata/name.
func raw(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataProbe, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProbeNotHTTP(t *testing.T) {
	tests := []struct {
		file    string
		mention string // in the title
		fix     string
	}{
		{"tls-alert.raw", "TLS (HTTPS) port", "plain-HTTP port"},
		{"fastcgi.raw", "FastCGI server (php-fpm)", "use UPMEDIC_UPSTREAM=fastcgi://127.0.0.1:"},
		{"ssh-banner.raw", "SSH server", "check the port number"},
		{"h2-settings.raw", "HTTP/2-only server", "HTTP/1.1"},
		{"mysql-greeting.raw", "MySQL", "database port"},
		{"garbage.raw", "another protocol", "ss -ltnp"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			// The answer is held open: the probe must judge the first bytes,
			// not wait for a close or a timeout.
			u := serve(t, listenTCP(t), replyAndHold(raw(t, "not-http/"+tc.file)))
			res := resultOf(t, Check(t.Context(), Settings{Address: u.addr, HealthPath: "/", ResponseTimeout: time.Minute}))
			res.healthy(t, false)
			res.expect(t, diag.HTTPProtocolError, SeverityFail, tc.fix, "HTTP listener").
				mustMention(t, tc.mention, "first bytes: ")
			if strings.ContainsAny(res.text, "\x00\x1b") {
				t.Errorf("raw upstream bytes reached the text report:\n%q", res.text)
			}
		})
	}
	t.Run("bad status line", func(t *testing.T) {
		u := serve(t, listenTCP(t), reply(raw(t, "http/bad-status.raw")))
		res := resultOf(t, Check(t.Context(), Settings{Address: u.addr, HealthPath: "/"}))
		res.expect(t, diag.HTTPProtocolError, SeverityFail).mustMention(t, "status line is not valid", `"HTTP/1.1 2x0 OK`)
	})
}

func TestProbeClosedWithoutAnswer(t *testing.T) {
	u := serve(t, listenTCP(t), func(net.Conn, <-chan struct{}) {}) // reads the request, closes
	res := resultOf(t, Check(t.Context(), Settings{Address: u.addr, HealthPath: "/"}))
	res.expect(t, diag.ConnectionTerminated, SeverityFail, "uwsgi --http-socket", "see the app's log").
		mustMention(t, "closed the connection without answering GET /")
}

func TestProbeClosedMidHeader(t *testing.T) {
	u := serve(t, listenTCP(t), reply("HTTP/1.1 200 OK\r\nX-Half: "))
	res := resultOf(t, Check(t.Context(), Settings{Address: u.addr, HealthPath: "/"}))
	res.expect(t, diag.ConnectionTerminated, SeverityFail, "curl -sS -D - -o /dev/null -H 'Host: "+u.addr+"' http://"+u.addr+"/").
		mustMention(t, "in the middle of the response header", "25 bytes")
}

func TestProbeUpstreamStatus(t *testing.T) {
	t.Run("5xx", func(t *testing.T) {
		u := serve(t, listenTCP(t), reply(raw(t, "http/503.raw")))
		r := Check(t.Context(), Settings{Address: u.addr, HealthPath: "/healthz"})
		if r.Healthy() {
			t.Fatal("Healthy() = true for a 503 health path")
		}
		res := resultOf(t, r)
		res.expect(t, diag.UpstreamStatus, SeverityFail, "see its log").
			mustMention(t, "answered 503 Service Unavailable", `body starts: "db is down\n"`)
		if res.j.Status != 503 {
			t.Errorf("status = %d", res.j.Status)
		}
	})
	t.Run("404", func(t *testing.T) {
		u := serve(t, listenTCP(t), reply("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
		res := resultOf(t, Check(t.Context(), Settings{Address: u.addr, HealthPath: "/nope"}))
		res.healthy(t, false)
		res.expect(t, diag.None, SeverityFail, "set UPMEDIC_HEALTH_PATH").mustMention(t, "answered 404 Not Found")
	})
	t.Run("400 from a TLS port", func(t *testing.T) {
		u := serve(t, listenTCP(t), reply(raw(t, "http/tls-400.raw")))
		res := resultOf(t, Check(t.Context(), Settings{Address: u.addr, HealthPath: "/"}))
		res.expect(t, diag.None, SeverityFail, "plain-HTTP port").mustMention(t, "probably a TLS port")
	})
}

func TestProbeBadHealthPath(t *testing.T) {
	u := serve(t, listenTCP(t), reply("HTTP/1.1 200 OK\r\n\r\n"))
	res := resultOf(t, Check(t.Context(), Settings{Address: u.addr, HealthPath: "/a b\r\nX: y"}))
	res.expect(t, diag.None, SeverityFail, "%20").mustMention(t, "space or control character")
}

func TestProbeSlowFirstByteWarns(t *testing.T) {
	// The timing judgement alone: a real upstream would need a clock to
	// delay its answer.
	p := &prober{s: Settings{HealthPath: "/", ResponseTimeout: time.Second}.withDefaults(), r: &Report{}}
	head := []byte("HTTP/1.1 200 OK\r\n\r\n")
	p.judgeHead(headRead{buf: head, end: len(head), firstByte: 700 * time.Millisecond})
	res := resultOf(t, p.r)
	res.healthy(t, true)
	res.expect(t, diag.HTTPResponseTimeout, SeverityWarn, "raise UPMEDIC_RESPONSE_TIMEOUT").
		mustMention(t, "first byte took 700.0ms, over half of UPMEDIC_RESPONSE_TIMEOUT (1s)")

	p.r = &Report{}
	p.judgeHead(headRead{buf: head, end: len(head), firstByte: 400 * time.Millisecond})
	if n := len(p.r.Findings); n != 1 {
		t.Errorf("%d findings for a first byte under half the limit, want 1", n)
	}
}

// ---- SELinux text, unit level ----

// fakeSELinux writes a selinuxfs look-alike: enforce, and the boolean when
// boolean is not "".
func fakeSELinux(t *testing.T, enforce, boolean string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "booleans"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "enforce"), []byte(enforce), 0o644); err != nil {
		t.Fatal(err)
	}
	if boolean != "" {
		if err := os.WriteFile(filepath.Join(root, "booleans", "httpd_can_network_connect"), []byte(boolean), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestReadSELinux(t *testing.T) {
	tests := []struct {
		name, enforce, boolean string
		want                   selinuxState
	}{
		{"enforcing, boolean off", "1", "0 0", selinuxState{present: true, enforcing: true, boolKnown: true}},
		{"enforcing, boolean on", "1\n", "1 1", selinuxState{present: true, enforcing: true, boolKnown: true, networkConnect: true}},
		{"permissive", "0", "0 0", selinuxState{present: true, boolKnown: true}},
		{"no boolean", "1", "", selinuxState{present: true, enforcing: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := readSELinux(fakeSELinux(t, tc.enforce, tc.boolean))
			got.enforcePath, got.boolPath = "", ""
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if got := readSELinux(filepath.Join(t.TempDir(), "absent")); got.present {
		t.Errorf("absent root reads as present: %+v", got)
	}
}

// ---- helper processes: unprivileged and seccomp-confined probes ----

const (
	helperEnv         = "UPMEDIC_PROBE_HELPER"
	helperSettingsEnv = "UPMEDIC_PROBE_HELPER_SETTINGS"
	helperSeccompEnv  = "UPMEDIC_PROBE_HELPER_DENY_CONNECT"
	helperTextMarker  = "\n--- text ---\n"
)

// TestProbeHelperProcess is not a test: it is the probe run in a child
// process, as another user or under a seccomp filter, by runHelper.
func TestProbeHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	var s Settings
	if err := json.Unmarshal([]byte(os.Getenv(helperSettingsEnv)), &s); err != nil {
		fmt.Fprintln(os.Stderr, "helper settings:", err)
		os.Exit(2)
	}
	if os.Getenv(helperSeccompEnv) != "" {
		if err := sockfault.DenyConnect(syscall.EACCES); err != nil {
			fmt.Fprintln(os.Stderr, "seccomp:", err)
			os.Exit(3)
		}
	}
	r := Check(context.Background(), s)
	r.WriteJSON(os.Stdout)
	io.WriteString(os.Stdout, helperTextMarker)
	r.WriteText(os.Stdout, false)
	os.Exit(0)
}

// runHelper runs the probe in a child copy of this test binary, with attr
// (another user, another network namespace) when it is not nil, and with
// every connect failing EACCES when denyConnect is set.
func runHelper(t *testing.T, bin string, s Settings, attr *syscall.SysProcAttr, denyConnect bool) probeResult {
	t.Helper()
	settings, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestProbeHelperProcess$")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperSettingsEnv+"="+string(settings),
		// Under -race the child would otherwise sleep 1s at exit.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	if denyConnect {
		cmd.Env = append(cmd.Env, helperSeccompEnv+"=1")
	}
	cmd.SysProcAttr = attr
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\nstderr: %s\nstdout: %s", err, stderr.String(), out)
	}
	jsonPart, text, ok := strings.Cut(string(out), helperTextMarker)
	if !ok {
		t.Fatalf("helper output has no text part:\n%s", out)
	}
	return parseResult(t, []byte(jsonPart), text)
}

// publicDir makes a 0755 directory every user can reach, or skips the test
// when the temp directory's ancestors would keep them out.
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "upmedic-probe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range ancestors(filepath.Join(dir, "x")) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by other users; set TMPDIR to a world-searchable directory", d)
		}
	}
	return dir
}

// helperBinary copies this test binary where user nobody may execute it: go
// test builds it in a directory only its owner can enter.
func helperBinary(t *testing.T) string {
	t.Helper()
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(publicDir(t), "diag.test")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// socketAs listens on path as root, then gives the socket file its owner,
// group and mode, as php-fpm's listen.owner/group/mode would.
func socketAs(t *testing.T, path string, uid, gid int, mode os.FileMode) {
	t.Helper()
	listenUnix(t, path)
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestProbeUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create root-owned sockets and run the probe as uid 65534; root itself bypasses file modes")
	}
	const nobody, nogroup = 65534, 65534
	bin := helperBinary(t)
	cred := &syscall.Credential{Uid: nobody, Gid: nogroup, Groups: []uint32{}}
	who := userID(nobody).label()

	t.Run("socket 0600 root:root", func(t *testing.T) {
		path := filepath.Join(publicDir(t), "app.sock")
		socketAs(t, path, 0, 0, 0o600)
		res := runHelper(t, bin, Settings{Network: "unix", Address: path}, &syscall.SysProcAttr{Credential: cred}, false)
		res.healthy(t, false)
		if res.j.User.UID != nobody || res.j.User.GID != nogroup || len(res.j.User.Groups) != 0 {
			t.Errorf("probe ran as %+v", res.j.User)
		}
		res.expect(t, diag.SocketPermissionDenied, SeverityFail,
			"php-fpm pool: listen.group = <shared-group>, listen.mode = 0660",
			"--umask 007",
			"usermod -aG <shared-group> "+who).
			mustMention(t, "no write permission on the socket", "EACCES", "mode 0600",
				"nor in group 0(root), so the other bits apply: --- (connecting needs w)")
		if res.j.Errno != "EACCES" {
			t.Errorf("errno = %q", res.j.Errno)
		}
	})

	t.Run("socket 0640 in the probe's group", func(t *testing.T) {
		path := filepath.Join(publicDir(t), "app.sock")
		socketAs(t, path, 0, nogroup, 0o640)
		res := runHelper(t, bin, Settings{Network: "unix", Address: path}, &syscall.SysProcAttr{Credential: cred}, false)
		f := res.expect(t, diag.SocketPermissionDenied, SeverityFail,
			"make the socket group-writable", "listen.mode = 0660", "chmod g+w "+path)
		f.mustMention(t, "is in group "+groupID(nogroup).String()+", so the group bits apply: r--")
		if strings.Contains(strings.Join(f.Fix, "\n"), "usermod") {
			t.Errorf("fix adds a user to a group it is already in:\n%s", strings.Join(f.Fix, "\n"))
		}
	})

	t.Run("socket 0660 in a group the probe is not in", func(t *testing.T) {
		const appGroup = 4242
		path := filepath.Join(publicDir(t), "app.sock")
		socketAs(t, path, 0, appGroup, 0o660)
		res := runHelper(t, bin, Settings{Network: "unix", Address: path}, &syscall.SysProcAttr{Credential: cred}, false)
		res.expect(t, diag.SocketPermissionDenied, SeverityFail,
			"usermod -aG "+groupID(appGroup).label()+" "+who+", then restart what runs as "+who+", upmedic or nginx")
	})

	t.Run("directory without search permission", func(t *testing.T) {
		dir := filepath.Join(publicDir(t), "private")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "app.sock")
		socketAs(t, path, 0, 0, 0o666)
		res := runHelper(t, bin, Settings{Network: "unix", Address: path}, &syscall.SysProcAttr{Credential: cred}, false)
		res.expect(t, diag.SocketPermissionDenied, SeverityFail, "chmod o+x "+dir).
			mustMention(t, who+" may not search directory "+dir, "mode 0700", "the other bits apply: ---")
	})

	t.Run("socket 0666 is healthy", func(t *testing.T) {
		path := filepath.Join(publicDir(t), "app.sock")
		socketAs(t, path, 0, 0, 0o666)
		res := runHelper(t, bin, Settings{Network: "unix", Address: path}, &syscall.SysProcAttr{Credential: cred}, false)
		res.healthy(t, true)
		if strings.Contains(res.text, "ran as root") {
			t.Errorf("root note printed for an unprivileged probe:\n%s", res.text)
		}
	})
}

func TestProbeConnectDenied(t *testing.T) {
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skip("the real EACCES comes from a seccomp filter: linux/amd64 and linux/arm64 only")
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := listenTCP(t).Addr().String() // a live listener: the denial is not a refusal
	_, port, _ := net.SplitHostPort(addr)

	tests := []struct {
		name        string
		selinux     func(t *testing.T) string
		fix         []string
		mention     []string
		noSetsebool bool
	}{
		{"selinux enforcing, boolean off",
			func(t *testing.T) string { return fakeSELinux(t, "1", "0 0") },
			[]string{"setsebool -P httpd_can_network_connect 1", "ausearch -m avc"},
			[]string{"SELinux is enforcing", "httpd_can_network_connect is off"}, false},
		{"selinux enforcing, boolean on",
			func(t *testing.T) string { return fakeSELinux(t, "1", "1 1") },
			[]string{"semanage port -a -t http_port_t -p tcp " + port},
			[]string{"httpd_can_network_connect is already on"}, false},
		{"selinux permissive",
			func(t *testing.T) string { return fakeSELinux(t, "0", "0 0") },
			[]string{"IPAddressDeny=", "iptables -S OUTPUT"},
			[]string{"SELinux is not enforcing"}, true},
		{"no selinux",
			func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent") },
			[]string{"SystemCallFilter=", "seccomp"},
			[]string{"SELinux is not active"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Settings{Address: addr, HealthPath: "/", SELinuxRoot: tc.selinux(t)}
			res := runHelper(t, bin, s, nil, true)
			res.healthy(t, false)
			f := res.expect(t, diag.DestinationIPProhibited, SeverityFail, tc.fix...)
			f.mustMention(t, append(tc.mention, "EACCES", "refused the connect to "+addr)...)
			if tc.noSetsebool && strings.Contains(res.text, "setsebool") {
				t.Errorf("setsebool suggested without SELinux enforcing:\n%s", res.text)
			}
		})
	}

	t.Run("unix socket, modes allow, selinux enforcing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "app.sock")
		listenUnix(t, path)
		s := Settings{Network: "unix", Address: path, SELinuxRoot: fakeSELinux(t, "1", "0 0")}
		res := runHelper(t, bin, s, nil, true)
		res.expect(t, diag.SocketPermissionDenied, SeverityFail, "ausearch -m avc -ts recent | grep connectto", "getfacl "+path).
			mustMention(t, "although the file modes allow it", "SELinux is enforcing")
	})
}

// ---- pure parts ----

func TestNginxBuffers(t *testing.T) {
	tests := []struct {
		size       int
		wantBuf    int
		directives string
	}{
		{100, 4096, "proxy_buffer_size 4k; proxy_buffers 8 4k; proxy_busy_buffers_size 8k;"},
		{4096, 4096, "proxy_buffer_size 4k; proxy_buffers 8 4k; proxy_busy_buffers_size 8k;"},
		{4097, 8192, "proxy_buffer_size 8k; proxy_buffers 8 8k; proxy_busy_buffers_size 16k;"},
		{41000, 65536, "proxy_buffer_size 64k; proxy_buffers 8 64k; proxy_busy_buffers_size 128k;"},
		{65536, 65536, "proxy_buffer_size 64k; proxy_buffers 8 64k; proxy_busy_buffers_size 128k;"},
		{65537, 131072, "proxy_buffer_size 128k; proxy_buffers 8 128k; proxy_busy_buffers_size 256k;"},
		{600 << 10, 1 << 20, "proxy_buffer_size 1m; proxy_buffers 8 1m; proxy_busy_buffers_size 2m;"},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.size), func(t *testing.T) {
			buf, d := nginxBuffers(tc.size)
			if buf != tc.wantBuf || d != tc.directives {
				t.Errorf("nginxBuffers(%d) = %d, %q; want %d, %q", tc.size, buf, d, tc.wantBuf, tc.directives)
			}
		})
	}
}

func TestLsMode(t *testing.T) {
	tests := []struct {
		mode     os.FileMode
		ls       string
		chmodArg uint32
	}{
		{os.ModeSocket | 0o660, "srw-rw----", 0o660},
		{os.ModeDir | os.ModeSticky | 0o777, "drwxrwxrwt", 0o1777},
		{os.ModeDir | os.ModeSetgid | 0o750, "drwxr-s---", 0o2750},
		{os.ModeSetuid | 0o644, "-rwSr--r--", 0o4644},
		{os.ModeSymlink | 0o777, "lrwxrwxrwx", 0o777},
	}
	for _, tc := range tests {
		if got := lsMode(tc.mode); got != tc.ls {
			t.Errorf("lsMode(%v) = %q, want %q", tc.mode, got, tc.ls)
		}
		if got := unixMode(tc.mode); got != tc.chmodArg {
			t.Errorf("unixMode(%v) = %04o, want %04o", tc.mode, got, tc.chmodArg)
		}
	}
}

func TestProbeSettingsDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Settings
		want Settings
	}{
		{"tcp", Settings{Address: "127.0.0.1:8000", HealthPath: "healthz"},
			Settings{Network: "tcp", Address: "127.0.0.1:8000", Display: "127.0.0.1:8000", HealthPath: "/healthz", Host: "127.0.0.1:8000",
				ConnectTimeout: 2 * time.Second, ResponseTimeout: 30 * time.Second, MaxHeaderBytes: 4096, SELinuxRoot: "/sys/fs/selinux"}},
		{"unix prefix", Settings{Address: "unix:/run/app.sock", ConnectTimeout: time.Second, Host: "app.internal"},
			Settings{Network: "unix", Address: "/run/app.sock", Display: "unix:/run/app.sock", Host: "app.internal",
				ConnectTimeout: time.Second, ResponseTimeout: 30 * time.Second, MaxHeaderBytes: 4096, SELinuxRoot: "/sys/fs/selinux"}},
		{"display kept", Settings{Network: "unix", Address: "/run/app.sock", Display: "UPMEDIC_UPSTREAM=unix:/run/app.sock", MaxHeaderBytes: 8192, SELinuxRoot: "/x"},
			Settings{Network: "unix", Address: "/run/app.sock", Display: "UPMEDIC_UPSTREAM=unix:/run/app.sock", Host: "localhost",
				ConnectTimeout: 2 * time.Second, ResponseTimeout: 30 * time.Second, MaxHeaderBytes: 8192, SELinuxRoot: "/x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.withDefaults(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestProbeWriteText(t *testing.T) {
	r := Check(t.Context(), Settings{Address: sockfault.ClosedTCPAddr(t), HealthPath: "/healthz"})
	var plain, color bytes.Buffer
	if err := r.WriteText(&plain, false); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteText(&color, true); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") {
		t.Errorf("colour codes without color:\n%q", plain.String())
	}
	if !strings.Contains(color.String(), ansiRed+"FAIL"+ansiReset) {
		t.Errorf("no red FAIL with color:\n%q", color.String())
	}
	lines := strings.Split(plain.String(), "\n")
	want := []string{
		"upmedic diag probe: " + r.Upstream,
		"  upstream  tcp " + r.Address,
		"  request   GET /healthz HTTP/1.1, Host: " + r.Address,
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d = %q, want %q", i, lines[i], w)
		}
	}
	for _, prefix := range []string{"  as        uid=", "  connect   failed after ", "FAIL  connection_refused: nothing listens on ", "      fix:", "        check that the app runs"} {
		found := false
		for _, l := range lines {
			found = found || strings.HasPrefix(l, prefix)
		}
		if !found {
			t.Errorf("no line starts with %q:\n%s", prefix, plain.String())
		}
	}
	if !strings.HasSuffix(plain.String(), "\nnot healthy: 1 problem, 0 warnings\n") {
		t.Errorf("verdict line missing:\n%s", plain.String())
	}
}

func TestParseHead(t *testing.T) {
	tests := []struct {
		head   string
		ok     bool
		status int
		reason string
		fields string
	}{
		{"HTTP/1.1 200 OK\r\nA: b\r\nSet-Cookie: x\r\nset-cookie: yy\r\n\r\n", true, 200, "OK", "Set-Cookie ×2 = 31 bytes, A = 6 bytes"},
		{"HTTP/1.0 503\n\n", true, 503, "", ""},
		{"HTTP/1.1 301 Moved\r\nLocation: /x\r\n folded\r\n\r\n", true, 301, "Moved", "Location = 23 bytes"},
		{"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", true, 200, "OK", "(malformed) = 10 bytes"},
		{"HTTP/2 200\r\n\r\n", false, 0, "", ""},
		{"HTTP/1.1 20 OK\r\n\r\n", false, 0, "", ""},
		{"HTTP/1.1 2000 OK\r\n\r\n", false, 0, "", ""},
		{"ICY 200 OK\r\n\r\n", false, 0, "", ""},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.head), func(t *testing.T) {
			rh, ok := parseHead([]byte(tc.head))
			if ok != tc.ok || rh.status != tc.status || rh.reason != tc.reason {
				t.Fatalf("parseHead = %d %q %v, want %d %q %v", rh.status, rh.reason, ok, tc.status, tc.reason, tc.ok)
			}
			if got := largestFields(rh.fields, 3); got != tc.fields {
				t.Errorf("largestFields = %q, want %q", got, tc.fields)
			}
		})
	}
}

func TestReadHead(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		limit   int
		end     int
		notHTTP bool
		overCap bool
		wantErr error
	}{
		{"crlf", "HTTP/1.1 200 OK\r\n\r\nbody", 1 << 20, 19, false, false, nil},
		{"bare lf", "HTTP/1.1 200 OK\n\nbody", 1 << 20, 17, false, false, nil},
		{"not http", "SSH-2.0\r\n", 1 << 20, 0, true, false, nil},
		{"short", "HTTP/1.1 200 OK\r\n", 1 << 20, 0, false, false, io.EOF},
		{"over cap", "HTTP/1.1 200 OK\r\nA: " + strings.Repeat("a", 100), 64, 0, false, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One byte a read finds the end wherever a read boundary falls.
			h := readHead(&oneByteReader{s: tc.in}, time.Now(), tc.limit)
			if h.end != tc.end || h.notHTTP != tc.notHTTP || h.overCap != tc.overCap || !errors.Is(h.err, tc.wantErr) {
				t.Errorf("readHead = end %d notHTTP %v overCap %v err %v", h.end, h.notHTTP, h.overCap, h.err)
			}
		})
	}
}

type oneByteReader struct{ s string }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.s[0]
	r.s = r.s[1:]
	return 1, nil
}

func FuzzParseHead(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join(testdataProbe, "*", "*.raw"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in %s: %v", testdataProbe, err)
	}
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("HTTP/1.1 200\r\n:\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h := readHead(bytes.NewReader(b), time.Now(), 1<<16)
		if h.end > len(h.buf) {
			t.Fatalf("end %d beyond %d bytes read", h.end, len(h.buf))
		}
		if h.end > 0 {
			rh, ok := parseHead(h.buf[:h.end])
			if ok && (rh.status < 0 || rh.status > 999) {
				t.Fatalf("status %d", rh.status)
			}
			_ = largestFields(rh.fields, 3)
		}
		guessProtocol(b)
		if q := quoteBytes(b, 48); strings.ContainsAny(q, "\x00\x1b\r\n") {
			t.Fatalf("quoteBytes let a control byte through: %q", q)
		}
	})
}
