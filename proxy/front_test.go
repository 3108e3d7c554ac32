package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// keepAlive is a client connection that sends requests one after another.
type keepAlive struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &keepAlive{t: t, c: c, br: bufio.NewReader(c)}
}

// write sends raw bytes: one request, part of one, or several.
func (k *keepAlive) write(s string) {
	k.t.Helper()
	if _, err := io.WriteString(k.c, s); err != nil {
		k.t.Fatal(err)
	}
}

// read reads one response and returns its status and body.
func (k *keepAlive) read() (int, string) {
	k.t.Helper()
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		k.t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		k.t.Fatalf("reading body: %v", err)
	}
	return resp.StatusCode, string(body)
}

// roundTrip sends req and checks that the answer is 200 with body want.
func (k *keepAlive) roundTrip(req, want string) {
	k.t.Helper()
	k.write(req)
	if st, body := k.read(); st != 200 || body != want {
		k.t.Errorf("%q: %d %q, want 200 %q", strings.SplitN(req, "\r\n", 2)[0], st, body, want)
	}
}

// pathAndBody answers with the request's method, path and body.
var pathAndBody = respond(func(req *http.Request, body []byte) string {
	s := req.Method + " " + req.URL.Path + ":" + string(body)
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(s), s)
})

// startParking serves a proxy whose connections park after 50ms idle.
func startParking(t *testing.T, idleTimeout time.Duration, tune ...func(*Server)) (string, *Server) {
	t.Helper()
	up := newFakeUpstream(t, "tcp", pathAndBody)
	_, p := startProxy(t, Settings{Network: "tcp", Address: up.address(), Traffic: new(diag.Traffic)})
	srv := p.Server()
	srv.parkAfter = 50 * time.Millisecond
	srv.idleTimeout, srv.fh.IdleTimeout = idleTimeout, idleTimeout
	for _, f := range tune {
		f(srv)
	}
	return serve(t, srv), srv
}

// An idle keep-alive connection parks, and the next request on it is served
// as before: a plain one, one with a body, and two pipelined in one write.
func TestParkedConnectionWakes(t *testing.T) {
	addr, srv := startParking(t, time.Minute)
	k := dialKeepAlive(t, addr)
	k.roundTrip("GET /one HTTP/1.1\r\nHost: x\r\n\r\n", "GET /one:")
	waitFor(t, "the connection to park", func() bool { return srv.Parked() == 1 })
	if n := srv.traffic.ParkedConns(); n != 1 {
		t.Errorf("parked connections counted: %d, want 1", n)
	}

	k.roundTrip("POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "POST /two:hello")
	waitFor(t, "the connection to park again", func() bool { return srv.Parked() == 1 })

	k.write("GET /three HTTP/1.1\r\nHost: x\r\n\r\nGET /four HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"GET /three:", "GET /four:"} {
		if st, body := k.read(); st != 200 || body != want {
			t.Errorf("pipelined after parking: %d %q, want %q", st, body, want)
		}
	}

	// A request whose head arrives in pieces, the first byte alone.
	waitFor(t, "the connection to park a third time", func() bool { return srv.Parked() == 1 })
	k.write("G")
	time.Sleep(20 * time.Millisecond)
	k.roundTrip("ET /five HTTP/1.1\r\nHost: x\r\n\r\n", "GET /five:")
}

// A new connection that sends nothing parks too, is served when its request
// comes, and one that never sends is closed without a word at the header
// timeout, which bounds a new connection's wait for its first byte.
func TestNewConnectionParksAndTimesOut(t *testing.T) {
	addr, srv := startParking(t, time.Minute, func(s *Server) { s.headerTimeout = 400 * time.Millisecond })
	k := dialKeepAlive(t, addr)
	waitFor(t, "the new connection to park", func() bool { return srv.Parked() == 1 })
	k.roundTrip("GET /late HTTP/1.1\r\nHost: x\r\n\r\n", "GET /late:")

	silent := dialKeepAlive(t, addr)
	start := time.Now()
	n, err := silent.c.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("silent connection: read %d, %v; want it closed (EOF)", n, err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("silent connection closed after %v, before the 400ms header timeout", waited)
	}
}

// Shutdown closes parked connections and returns.
func TestShutdownClosesParked(t *testing.T) {
	up := newFakeUpstream(t, "tcp", pathAndBody)
	p := New(Settings{Network: "tcp", Address: up.address(), Logger: quietLogger(), Traffic: new(diag.Traffic)})
	defer p.Close()
	srv := p.Server()
	srv.parkAfter = 50 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	k := dialKeepAlive(t, ln.Addr().String())
	k.roundTrip("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /a:")
	waitFor(t, "the connection to park", func() bool { return srv.Parked() == 1 })

	if err := srv.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if n, err := k.c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("parked connection after Shutdown: read %d, %v; want it closed", n, err)
	}
	if n, counted := srv.Parked(), srv.traffic.ParkedConns(); n != 0 || counted != 0 {
		t.Errorf("%d connections still parked, %d counted", n, counted)
	}
}

// Many connections parking and waking at once, some requests arriving just
// as the park deadline passes: every request is answered, in order, whole.
func TestParkingUnderChurn(t *testing.T) {
	up := newFakeUpstream(t, "tcp", pathAndBody)
	_, p := startProxy(t, Settings{Network: "tcp", Address: up.address(), Traffic: new(diag.Traffic)})
	srv := p.Server()
	srv.parkAfter = 10 * time.Millisecond
	addr := serve(t, srv)
	const conns, rounds = 24, 6
	errs := make(chan error, conns)
	for i := range conns {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			t.Cleanup(func() { c.Close() }) // open until the parking is counted
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			for r := range rounds {
				// 0-20ms apart: before, around and after the park deadline.
				time.Sleep(time.Duration((i*7+r*5)%21) * time.Millisecond)
				path := fmt.Sprintf("/c%d/r%d", i, r)
				if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					errs <- err
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", path, err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				if err != nil || resp.StatusCode != 200 || string(body) != "GET "+path+":" {
					errs <- fmt.Errorf("%s: %d %q %v", path, resp.StatusCode, body, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	waitFor(t, "every connection to park", func() bool { return srv.Parked() == conns })
	if n := srv.traffic.ParkedConns(); n != conns {
		t.Errorf("parked connections counted: %d, want %d", n, conns)
	}
}
