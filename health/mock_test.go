package health

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor is how long a test waits on a channel before it fails.
const waitFor = 5 * time.Second

// behaviour is what the fake upstream does with one accepted connection.
type behaviour int

const (
	answer200  behaviour = iota // read the request, answer 200
	answer503                   // read the request, answer 503
	closeNow                    // close the connection at once, reading nothing
	silent                      // read the request, then say nothing until the client leaves
	refuse                      // no connection: the listener is closed (a stale socket file stays for unix)
	notHTTP                     // read the request, answer with bytes that are not HTTP
	hugeHeader                  // read the request, answer 200 with a 2 KiB header
	answer302                   // read the request, answer 302
	answer404                   // read the request, answer 404
	http400                     // read the first bytes, answer 400 at once, as nginx and Node do to FastCGI bytes
)

var behaviourNames = [...]string{"answer200", "answer503", "closeNow", "silent", "refuse", "notHTTP", "hugeHeader", "answer302", "answer404", "http400"}

func (b behaviour) String() string { return behaviourNames[b] }

// fakeUpstream is a scripted upstream on a real loopback TCP port or unix
// socket. Each accepted connection takes the next scripted behaviour; the
// refuse behaviour closes the listener instead, and the next scripted
// behaviour listens again on the same address.
type fakeUpstream struct {
	t       testing.TB
	network string
	addr    string

	// requests receives the request head (up to the blank line) of every
	// connection that sent one.
	requests chan string
	done     chan struct{} // closed at cleanup: silent connections give up
	wg       sync.WaitGroup

	mu     sync.Mutex // guards ln and script
	ln     net.Listener
	script []behaviour
}

// newFakeUpstream starts a fake upstream on network "tcp" (127.0.0.1:0) or
// "unix" (a socket in t.TempDir()), stopped at cleanup.
func newFakeUpstream(t testing.TB, network string) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{t: t, network: network, requests: make(chan string, 64), done: make(chan struct{})}
	switch network {
	case "tcp":
		f.addr = "127.0.0.1:0"
	case "unix":
		f.addr = filepath.Join(t.TempDir(), "app.sock")
	default:
		t.Fatalf("fakeUpstream: network %q", network)
	}
	f.mu.Lock()
	f.listenLocked()
	f.mu.Unlock()
	t.Cleanup(func() {
		close(f.done)
		f.mu.Lock()
		if f.ln != nil {
			f.ln.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

// listenLocked listens on f.addr and starts accepting. f.mu is held.
func (f *fakeUpstream) listenLocked() {
	f.t.Helper()
	if f.network == "unix" {
		os.Remove(f.addr) // the stale socket file refuse left behind
	}
	ln, err := net.Listen(f.network, f.addr)
	if err != nil {
		f.t.Fatalf("fakeUpstream: listen: %v", err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		// Closing leaves the socket file, as an app that died does, so a
		// connect is refused rather than not finding the file.
		ul.SetUnlinkOnClose(false)
	}
	f.addr = ln.Addr().String()
	f.ln = ln
	f.wg.Go(func() { f.accept(ln) })
}

// next scripts what happens to the next connection.
func (f *fakeUpstream) next(b behaviour) {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case b == refuse && f.ln != nil:
		f.ln.Close()
		f.ln = nil
	case b == refuse:
	case f.ln == nil:
		f.listenLocked()
		f.script = append(f.script, b)
	default:
		f.script = append(f.script, b)
	}
}

func (f *fakeUpstream) accept(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return // closed by refuse or cleanup
		}
		f.mu.Lock()
		var b behaviour
		ok := len(f.script) > 0
		if ok {
			b, f.script = f.script[0], f.script[1:]
		}
		f.mu.Unlock()
		if !ok {
			f.t.Errorf("fakeUpstream: unscripted connection")
			conn.Close()
			continue
		}
		f.wg.Go(func() { f.serve(conn, b) })
	}
}

func (f *fakeUpstream) serve(conn net.Conn, b behaviour) {
	defer conn.Close()
	if b == closeNow {
		return
	}
	if b == http400 {
		conn.SetDeadline(time.Now().Add(waitFor))
		var first [8]byte
		if _, err := conn.Read(first[:]); err == nil {
			io.WriteString(conn, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		}
		return
	}
	conn.SetDeadline(time.Now().Add(waitFor))
	head, err := readHead(bufio.NewReader(conn))
	if err != nil {
		return // a connect-only probe closes without a request
	}
	select {
	case f.requests <- head:
	case <-f.done:
		return
	}
	switch b {
	case answer200:
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	case answer503:
		io.WriteString(conn, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	case answer302:
		io.WriteString(conn, "HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	case answer404:
		io.WriteString(conn, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	case notHTTP:
		io.WriteString(conn, "SSH-2.0-OpenSSH_9.6\r\n\r\n")
	case hugeHeader:
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nSet-Cookie: big="+strings.Repeat("x", 2048)+"\r\nContent-Length: 0\r\n\r\n")
	case silent:
		// Hold the connection until the prober gives up or the test ends.
		go func() {
			<-f.done
			conn.Close()
		}()
		conn.SetDeadline(time.Time{})
		io.Copy(io.Discard, conn)
	}
}

// readHead reads a request head up to and including its blank line.
func readHead(r *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		line, err := r.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return sb.String(), err
		}
		if line == "\r\n" {
			return sb.String(), nil
		}
	}
}

// stepper runs a Checker whose probes the test triggers one at a time.
type stepper struct {
	t      *testing.T
	c      *Checker
	tick   chan time.Time
	probed chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	runErr chan error
}

// newStepper returns a stepper for a Checker built from s. Run starts at the
// first step, so the test can script the fake upstream first.
func newStepper(t *testing.T, s Settings) *stepper {
	t.Helper()
	st := &stepper{t: t, c: NewChecker(s), tick: make(chan time.Time), probed: make(chan struct{})}
	st.ctx, st.cancel = context.WithCancel(context.Background())
	st.c.after = func(time.Duration) <-chan time.Time { return st.tick }
	st.c.probed = func() {
		select {
		case st.probed <- struct{}{}:
		case <-st.ctx.Done():
		}
	}
	t.Cleanup(st.stop)
	return st
}

// step runs one probe and waits until it has updated the state.
func (st *stepper) step() CheckSnapshot {
	st.t.Helper()
	if st.runErr == nil {
		st.start()
	} else {
		select {
		case st.tick <- time.Now():
		case <-time.After(waitFor):
			st.t.Fatal("Run did not wait for the next tick")
		}
	}
	select {
	case <-st.probed:
	case <-time.After(waitFor):
		st.t.Fatal("probe did not finish")
	}
	return st.c.Snapshot()
}

// start starts Run.
func (st *stepper) start() {
	errc := make(chan error, 1)
	st.runErr = errc
	go func() { errc <- st.c.Run(st.ctx) }()
}

// stop ends Run and checks that it returned nil.
func (st *stepper) stop() {
	st.t.Helper()
	st.cancel()
	if st.runErr == nil {
		return
	}
	select {
	case err := <-st.runErr:
		if err != nil {
			st.t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(waitFor):
		st.t.Error("Run did not return after its context ended")
	}
	st.runErr = nil
}

// logRecorder is a slog.Handler that keeps the message and attributes of
// every record at Info or above.
type logRecorder struct {
	mu   sync.Mutex // guards recs
	recs []logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (h *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, rec)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// messages returns the messages logged so far, in order.
func (h *logRecorder) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.recs))
	for i, r := range h.recs {
		out[i] = r.msg
	}
	return out
}

// find returns the records logged with message msg.
func (h *logRecorder) find(msg string) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range h.recs {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}
