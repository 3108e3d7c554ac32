package diag

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Classify on errors from real sockets, one per row of the cause table that
// a socket on this machine can produce; proxy/ and internal/sockfault cover
// the rest (EACCES, ENETUNREACH) in child processes.

func dialErr(t *testing.T, network, addr string, timeout time.Duration) error {
	t.Helper()
	c, err := net.DialTimeout(network, addr, timeout)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s %s succeeded", network, addr)
	}
	return err
}

func TestClassifyConnectErrors(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	for _, tc := range []struct {
		name  string
		err   error
		want  Cause
		errno syscall.Errno
	}{
		{"closed port", dialErr(t, "tcp", closedAddr, time.Second), ConnectionRefused, syscall.ECONNREFUSED},
		{"missing socket", dialErr(t, "unix", filepath.Join(dir, "missing.sock"), time.Second), SocketNotFound, syscall.ENOENT},
		{"stale socket", dialErr(t, "unix", stale, time.Second), ConnectionRefused, syscall.ECONNREFUSED},
		{"not a directory", dialErr(t, "unix", filepath.Join(stale, "x.sock"), time.Second), SocketNotFound, syscall.ENOTDIR},
		{"invalid name", dialErr(t, "tcp", "bad..name.invalid:80", time.Second), DNSError, 0},
		{"pool sentinel", ErrConnectionLimit, ConnectionLimitReached, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
			}
			if got := Errno(tc.err); got != tc.errno {
				t.Errorf("Errno = %v, want %v", got, tc.errno)
			}
		})
	}
}

// A deadline means a different cause in each phase.
func TestClassifyTimeoutByPhase(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_ = a.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := a.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("pipe read past its deadline: %v", err)
	}
	var h fasthttp.ResponseHeader
	headerErr := h.Read(bufio.NewReader(a)) // fasthttp's own ErrTimeout
	for _, tc := range []struct {
		phase Phase
		err   error
		want  Cause
	}{
		{PhaseConnect, err, ConnectionTimeout},
		{PhaseRequest, err, HTTPResponseTimeout},
		{PhaseHeader, headerErr, HTTPResponseTimeout},
		{PhaseBody, err, ConnectionReadTimeout},
	} {
		if got := ClassifyIn(tc.phase, tc.err); got != tc.want {
			t.Errorf("ClassifyIn(%s, %v) = %s, want %s", tc.phase, tc.err, got, tc.want)
		}
		if got := Classify(&PhaseError{Phase: tc.phase, Err: tc.err}); got != tc.want {
			t.Errorf("Classify(PhaseError %s) = %s, want %s", tc.phase, got, tc.want)
		}
	}
}

// What fasthttp's header parser returns for a close, for garbage and for an
// oversized header, read from a real connection.
func TestClassifyHeaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name, sent string
		bufSize    int
		want       Cause
	}{
		{"closed before a byte", "", 4096, ConnectionTerminated},
		{"closed mid header", "HTTP/1.1 200 OK\r\nContent-", 4096, ConnectionTerminated},
		{"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n", 4096, HTTPProtocolError},
		{"header too large", "HTTP/1.1 200 OK\r\nSet-Cookie: " + string(make([]byte, 200)) + "\r\n\r\n", 64, HTTPResponseHeaderSectionSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			go func() {
				io.WriteString(b, tc.sent)
				b.Close()
			}()
			var h fasthttp.ResponseHeader
			err := h.Read(bufio.NewReaderSize(a, tc.bufSize))
			a.Close()
			if got := ClassifyIn(PhaseHeader, err); got != tc.want {
				t.Errorf("ClassifyIn(header, %v) = %s, want %s", err, got, tc.want)
			}
		})
	}
}

func TestClassifyBodyErrors(t *testing.T) {
	if got := ClassifyIn(PhaseBody, io.ErrUnexpectedEOF); got != HTTPResponseIncomplete {
		t.Errorf("short body: %s", got)
	}
	if got := ClassifyIn(PhaseBody, syscall.ECONNRESET); got != HTTPResponseIncomplete {
		t.Errorf("reset in body: %s", got)
	}
	if got := ClassifyIn(PhaseHeader, syscall.ECONNRESET); got != ConnectionTerminated {
		t.Errorf("reset before header: %s", got)
	}
	if got := Classify(nil); got != None {
		t.Errorf("nil: %s", got)
	}
}

// Every cause has a row: a name that parses back, a status and, for
// failures, an RFC 9209 type, details and a hint.
func TestCauseTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Causes() {
		name := c.String()
		if seen[name] || !IsToken(name) {
			t.Errorf("%d: name %q duplicate or not a token", c, name)
		}
		seen[name] = true
		if back, ok := ParseCause(name); !ok || back != c {
			t.Errorf("ParseCause(%q) = %v", name, back)
		}
		if c.Passthrough() {
			if c.Status() != 0 || c.ProxyStatusError() != "" || c.Details() != "" || c.Hint() == "" || c.IsFailure() || c.RetryAfter() {
				t.Errorf("%s: a passthrough row has a status, an error type or no hint", name)
			}
			continue
		}
		if !c.IsFailure() {
			t.Errorf("%s: not a failure", name)
		}
		if c.Status() < 500 || c.ProxyStatusError() == "" || c.Details() == "" || c.Hint() == "" {
			t.Errorf("%s: incomplete row", name)
		}
	}
}

// The causes that label an answer of the upstream's own: UpstreamStatus and
// PHP-FPM's two, which are no failure of the hop and name what to check.
func TestPassthroughCauses(t *testing.T) {
	var got []string
	for _, c := range Causes() {
		if c.Passthrough() {
			got = append(got, c.String())
		}
	}
	if want := "upstream_status script_not_found script_access_denied"; strings.Join(got, " ") != want {
		t.Errorf("passthrough causes %q, want %s", got, want)
	}
	if None.Passthrough() || Cause(200).Passthrough() || ConnectionRefused.Passthrough() {
		t.Error("Passthrough of None, an unknown cause or a failure")
	}
	for c, words := range map[Cause][]string{
		ScriptNotFound:     {"SCRIPT_FILENAME", "UPMEDIC_FASTCGI_ROOT", "Primary script unknown"},
		ScriptAccessDenied: {"security.limit_extensions", "try_files"},
	} {
		for _, w := range words {
			if !strings.Contains(c.Hint(), w) {
				t.Errorf("%s: hint does not name %s", c, w)
			}
		}
	}
}
