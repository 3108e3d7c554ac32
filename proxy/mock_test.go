package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// behaviour is what a fake upstream does with one accepted connection.
type behaviour func(c net.Conn)

// fakeUpstream is a real listener whose connections replay a scripted
// sequence of behaviours: the i-th connection gets script[i], and the last
// behaviour repeats.
type fakeUpstream struct {
	ln     net.Listener
	mu     sync.Mutex // guards script and conns
	script []behaviour
	conns  int
	ended  int           // connections whose behaviour returned and closed
	done   chan struct{} // closed at cleanup: unblocks behaviours that wait
}

func newFakeUpstream(t testing.TB, network string, script ...behaviour) *fakeUpstream {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "app.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	u := &fakeUpstream{ln: ln, script: script, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			b := u.script[min(u.conns, len(u.script)-1)]
			u.conns++
			u.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				b(c)
				c.Close()
				u.mu.Lock()
				u.ended++
				u.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		close(u.done)
		ln.Close()
		wg.Wait()
	})
	return u
}

func (u *fakeUpstream) network() string { return u.ln.Addr().Network() }
func (u *fakeUpstream) address() string { return u.ln.Addr().String() }

// finished returns how many connections the upstream has closed.
func (u *fakeUpstream) finished() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ended
}

func (u *fakeUpstream) accepted() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

// readRequest reads one request (header and body) from br.
func readRequest(br *bufio.Reader) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

// respond answers every request on the connection with fn's raw response.
func respond(fn func(req *http.Request, body []byte) string) behaviour {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, body, err := readRequest(br)
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, fn(req, body)); err != nil {
				return
			}
		}
	}
}

// ok answers every request with 200 and body.
func ok(body string) behaviour {
	return respond(func(*http.Request, []byte) string {
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
}

// raw writes s after reading the request, then closes.
func raw(s string) behaviour {
	return func(c net.Conn) {
		if _, _, err := readRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, s)
	}
}

// closeAfterRequest reads the request and closes without a byte.
func closeAfterRequest(c net.Conn) {
	_, _, _ = readRequest(bufio.NewReader(c))
}

// resetAfterRequest reads the request and resets the connection (RST).
func resetAfterRequest(c net.Conn) {
	_, _, _ = readRequest(bufio.NewReader(c))
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}

// (u *fakeUpstream) stall reads the request, writes s, then stays silent
// until the test ends.
func (u *fakeUpstream) stall(s string) behaviour {
	return func(c net.Conn) {
		if _, _, err := readRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, s)
		<-u.done
	}
}

// blackholeAddr returns a loopback TCP address whose connects never finish:
// a listener with backlog 0 whose accept queue is already filled by one
// connection nobody accepts, so Linux drops further SYNs.
func blackholeAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the accept queue; with backlog 0 one connection fills it.
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

// startProxy serves a Proxy for s on a loopback port and returns its address.
// Each tune function adjusts the Proxy before it serves.
func startProxy(t testing.TB, s Settings, tune ...func(*Proxy)) (string, *Proxy) {
	t.Helper()
	if s.Logger == nil {
		s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.Journal == nil {
		s.Journal = new(diag.Journal)
	}
	p := New(s)
	for _, f := range tune {
		f(p)
	}
	t.Cleanup(p.Close) // after serve's cleanup, which runs first
	return serve(t, p.Server()), p
}

// serve serves srv on a loopback port until the test ends and returns its
// address.
func serve(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return ln.Addr().String()
}

// response is what a test client got.
type response struct {
	*http.Response
	body []byte
	err  error // the body read error: set when the connection was cut
}

// send writes a raw request to addr and reads one response.
func send(t *testing.T, addr, rawReq string) *response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, rawReq); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(rawReq, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	return &response{Response: resp, body: body, err: err}
}

// get sends a plain HTTP/1.1 GET.
func get(t *testing.T, addr, path string) *response {
	t.Helper()
	return send(t, addr, "GET "+path+" HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
}

// wantDiagnosis checks status, the X-Upstream-Diagnosis cause and the
// Proxy-Status error of a diagnosed response, and returns the diagnosis
// header's parameters.
func wantDiagnosis(t *testing.T, r *response, status int, cause diag.Cause) map[string]string {
	t.Helper()
	if r.StatusCode != status {
		t.Errorf("status = %d, want %d (body %q)", r.StatusCode, status, r.body)
	}
	h := r.Header.Get(diag.HeaderDiagnosis)
	token, params := parseSFItem(t, h)
	if token != cause.String() {
		t.Errorf("X-Upstream-Diagnosis = %q, want cause %s", h, cause)
	}
	ps := r.Header.Get(diag.HeaderProxyStatus)
	name, psParams := parseSFItem(t, ps)
	if name != "upmedic" || psParams["error"] != cause.ProxyStatusError() {
		t.Errorf("Proxy-Status = %q, want upmedic; error=%s", ps, cause.ProxyStatusError())
	}
	if !bytes.Contains(r.body, []byte(cause.String())) {
		t.Errorf("body %q does not name the cause %s", r.body, cause)
	}
	return params
}

// parseSFItem parses an RFC 9651 item with parameters: a bare item (token)
// followed by ;key=value pairs, values being tokens, integers or strings.
func parseSFItem(t *testing.T, s string) (string, map[string]string) {
	t.Helper()
	params := map[string]string{}
	item, rest, _ := strings.Cut(s, ";")
	for rest != "" {
		var kv string
		if i := indexUnquoted(rest, ';'); i >= 0 {
			kv, rest = rest[:i], rest[i+1:]
		} else {
			kv, rest = rest, ""
		}
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.HasPrefix(v, `"`) {
			var b strings.Builder
			for i := 1; i < len(v)-1; i++ {
				if v[i] == '\\' {
					i++
				}
				b.WriteByte(v[i])
			}
			v = b.String()
		}
		if k != strings.ToLower(k) || k == "" {
			t.Errorf("structured field %q: bad key %q", s, k)
		}
		params[k] = v
	}
	return strings.TrimSpace(item), params
}

func indexUnquoted(s string, c byte) int {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == c && !quoted:
			return i
		}
	}
	return -1
}

// waitFor polls cond until it holds or a generous limit passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// setScript replaces the behaviours for the connections still to come.
func (u *fakeUpstream) setScript(script ...behaviour) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.script = script
}
