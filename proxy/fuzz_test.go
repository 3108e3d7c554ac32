package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/upmedic/upmedic/proxy/fastcgi"
	"github.com/upmedic/upmedic/proxy/h1"
)

// pairListener hands the server the connections a test makes with dial.
type pairListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pairListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pairListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pairListener) Addr() net.Addr { return &net.UnixAddr{Name: "socketpair", Net: "unix"} }
func (l *pairListener) dial(tb testing.TB) net.Conn {
	tb.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	server, client := conn(fds[0]), conn(fds[1])
	l.conns <- server
	return client
}

// serveOnPairs serves srv on a pairListener until the test ends.
func serveOnPairs(tb testing.TB, srv *Server) *pairListener {
	l := &pairListener{conns: make(chan net.Conn), done: make(chan struct{})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	tb.Cleanup(func() {
		_ = srv.Shutdown()
		l.Close()
		<-served
	})
	return l
}

// readResponses parses b as the responses to requests of the given
// methods, in order, strictly, and fails on anything that is not one
// well-formed response after another. A last response may be cut short
// only where its framing shows it (a body shorter than announced).
func readResponses(b []byte, methods []string) error {
	for i := 0; len(b) > 0; i++ {
		head := i < len(methods) && methods[i] == "HEAD"
		var r h1.Response
		n, err := r.Parse(b, head)
		if err != nil {
			return fmt.Errorf("response %d: %w: %q", i, err, b)
		}
		b = b[n:]
		if r.Status < 200 {
			i-- // an interim response: the final one follows
			continue
		}
		switch r.Framing {
		case h1.Length:
			if int64(len(b)) < r.ContentLength {
				return nil // cut, and visibly so
			}
			b = b[r.ContentLength:]
		case h1.Chunked:
			rest, complete, err := skipChunked(b)
			if err != nil {
				return fmt.Errorf("response %d: %w", i, err)
			}
			if !complete {
				return nil
			}
			b = rest
		case h1.Close:
			return fmt.Errorf("response %d is close-delimited to an HTTP/1.1 client", i)
		}
	}
	return nil
}

// skipChunked skips a chunked body at the start of b.
func skipChunked(b []byte) (rest []byte, complete bool, err error) {
	for {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return nil, false, nil
		}
		size, err := h1.ParseChunkLine(b[:i])
		if err != nil {
			return nil, false, err
		}
		b = b[i+2:]
		if size == 0 {
			if !bytes.HasPrefix(b, []byte("\r\n")) {
				return nil, len(b) < 2, nil // upmedic sends no trailers
			}
			return b[2:], true, nil
		}
		if int64(len(b)) < size+2 {
			return nil, false, nil
		}
		if string(b[size:size+2]) != "\r\n" {
			return nil, false, errors.New("chunk data not followed by CRLF")
		}
		b = b[size+2:]
	}
}

// acceptedMethods returns the methods of the requests in raw that the
// scanner accepts whole, in order, and then "GET" for one it refuses.
func acceptedMethods(raw []byte) []string {
	var s h1.RequestScanner
	var methods []string
	start := 0
	for i := range raw {
		before := s.State()
		if _, err := s.Scan(raw[i : i+1]); err != nil {
			return append(methods, "GET")
		}
		if after := s.State(); before != h1.Idle && (after == h1.Idle || after == h1.Paused) {
			line := bytes.TrimLeft(raw[start:i+1], "\r\n")
			m, _, _ := bytes.Cut(line, []byte(" "))
			methods = append(methods, string(m))
			start = i + 1
			if after == h1.Paused {
				s.Resume()
			}
		}
	}
	return methods
}

// FuzzFrontRequests writes raw bytes, as a client would, into a real front
// server over a socket pair: what comes back is well-formed responses or a
// close, and what reaches the app behind reads one way to a strict parser.
func FuzzFrontRequests(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: t\r\nConnection: Content-Length\r\nContent-Length: 42\r\n\r\nGET /STOLEN HTTP/1.1\r\nHost: t\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET http://good.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
		"GET / HTTP/1.1\nHost: t\n\n",
		"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
	} {
		f.Add([]byte(seed))
	}
	app := new(strictApp)
	up := newFakeUpstream(f, "tcp", app.behaviour)
	p := New(Settings{Network: "tcp", Address: up.address(), Logger: quietLogger(),
		ClientHeaderTimeout: time.Second, ClientBodyTimeout: time.Second})
	f.Cleanup(p.Close)
	srv := p.Server()
	srv.lingerTime = 100 * time.Millisecond
	l := serveOnPairs(f, srv)
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := l.dial(t)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			_, _ = c.Write(raw)
			_ = c.(*net.UnixConn).CloseWrite()
		}()
		out, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("reading the answer: %v", err)
		}
		if err := readResponses(out, acceptedMethods(raw)); err != nil {
			t.Fatalf("for %q: %v", raw, err)
		}
		if _, broken := app.seen(); len(broken) > 0 {
			t.Fatalf("for %q the app read: %q", raw, broken)
		}
	})
}

// FuzzUpstreamResponses has the app answer a first request with raw bytes,
// then answer every later request on the same connection with its own
// path: the client of the first gets a well-formed response or a visible
// cut, and the next client always gets its own answer, whatever the first
// left on the connection.
func FuzzUpstreamResponses(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 099 Weird\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX Bad: v\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nX-Upstream-Diagnosis: connection_refused\r\nProxy-Status: upmedic; error=connection_refused\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	var mu sync.Mutex
	var first []byte
	app := func(c net.Conn) {
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			req, _, err := readRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/first" {
				mu.Lock()
				_, err = c.Write(first)
				mu.Unlock()
			} else {
				own := "own:" + req.URL.Path
				_, err = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(own), own)
			}
			if err != nil {
				return
			}
		}
	}
	up := newFakeUpstream(f, "tcp", app)
	p := New(Settings{Network: "tcp", Address: up.address(), Logger: quietLogger(),
		ResponseTimeout: 30 * time.Millisecond, ReadTimeout: 30 * time.Millisecond})
	f.Cleanup(p.Close)
	fuzzFirstThenOwn(f, p, &mu, &first, "")
}

// FuzzFastCGIUpstreamResponses is FuzzUpstreamResponses for a FastCGI
// upstream: the app answers a first request with raw bytes (records, or
// not), then every later request on the same connection with its own
// REQUEST_URI. The first client gets a well-formed response or a visible
// cut, and the next clients always get their own answers.
func FuzzFastCGIUpstreamResponses(f *testing.F) {
	rec := func(typ fastcgi.RecordType, content string) string {
		h := fastcgi.Header{Version: 1, Type: typ, RequestID: 1, ContentLength: uint16(len(content))}
		return string(h.AppendTo(nil)) + content
	}
	end := rec(fastcgi.TypeEndRequest, "\x00\x00\x00\x00\x00\x00\x00\x00")
	for _, seed := range []string{
		rec(fastcgi.TypeStdout, "Content-Type: text/plain\r\n\r\nhello") + end,
		rec(fastcgi.TypeStderr, "PHP message: Primary script unknown") + rec(fastcgi.TypeStdout, "Status: 404 Not Found\r\n\r\nFile not found.\n") + end,
		rec(fastcgi.TypeStdout, "Content-Length: 1\r\n\r\nxSTOLEN") + end + rec(fastcgi.TypeStdout, "\r\nSTOLEN") + end,
		rec(fastcgi.TypeStdout, "Status: 200\r\n\r\nhi"), // no END_REQUEST
		rec(fastcgi.TypeStdout, "Status: 100\r\n\r\n") + end,
		rec(fastcgi.TypeStdout, "X Bad: v\r\n\r\n") + end,
		rec(fastcgi.TypeStdout, "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n") + end,
		rec(fastcgi.TypeStdout, "X-Upstream-Diagnosis: connection_refused\r\nProxy-Status: upmedic; error=connection_refused\r\n\r\n") + end,
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	var mu sync.Mutex
	var first []byte
	app := func(c net.Conn) {
		br := bufio.NewReader(c)
		buf := make([]byte, 66<<10)
		var uri string
		for {
			h, content, err := readRecord(br, buf)
			if err != nil {
				return
			}
			for h.Type == fastcgi.TypeParams && len(content) > 0 {
				name, value, rest, err := fastcgi.NextPair(content)
				if err != nil {
					return
				}
				if string(name) == "REQUEST_URI" {
					uri = string(value)
				}
				content = rest
			}
			if h.Type != fastcgi.TypeStdin || h.ContentLength != 0 {
				continue
			}
			// The fuzzed bytes and the answers carry the request's id, so
			// that what the fuzzer varies is the rest.
			var out []byte
			if uri == "/first.php" {
				mu.Lock()
				out = append(out, first...)
				mu.Unlock()
			} else {
				out = []byte(rec(fastcgi.TypeStdout, "Content-Type: text/plain\r\n\r\nown:"+uri) + end)
			}
			setRequestIDs(out, h.RequestID)
			_, err = c.Write(out)
			if err != nil {
				return
			}
		}
	}
	up := newFakeUpstream(f, "tcp", app)
	p := New(Settings{Network: "tcp", Address: up.address(), Logger: quietLogger(),
		ResponseTimeout: 30 * time.Millisecond, ReadTimeout: 30 * time.Millisecond,
		FastCGI: &FastCGI{Root: "/var/www"}})
	f.Cleanup(p.Close)
	fuzzFirstThenOwn(f, p, &mu, &first, ".php")
}

// fuzzFirstThenOwn is the loop the upstream fuzzers share: p's app answers
// "/first"+ext with *first, the fuzzed bytes, and every other path with
// "own:" and that path. The client of the first gets well-formed responses
// or a visible cut and no forged diagnosis; the next two clients each get
// their own answer.
func fuzzFirstThenOwn(f *testing.F, p *Proxy, mu *sync.Mutex, first *[]byte, ext string) {
	l := serveOnPairs(f, p.Server())
	ask := func(t *testing.T, path string) []byte {
		c := l.dial(t)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("reading %s: %v", path, err)
		}
		return out
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		mu.Lock()
		*first = raw
		mu.Unlock()
		out := ask(t, "/first"+ext)
		if err := readResponses(out, []string{"GET"}); err != nil {
			t.Fatalf("for %q: %v", raw, err)
		}
		if bytes.Contains(bytes.ToLower(out), []byte("x-upstream-diagnosis: connection_refused")) {
			t.Fatalf("for %q a forged diagnosis passed: %q", raw, out)
		}
		for _, path := range []string{"/next" + ext, "/after" + ext} {
			want := "own:" + path
			if got := ask(t, path); !bytes.HasSuffix(got, []byte("\r\n\r\n"+want)) || !strings.HasPrefix(string(got), "HTTP/1.1 200 ") {
				t.Fatalf("after %q, %s got %q, want its own answer %q", raw, path, got, want)
			}
		}
	})
}
