package proxy

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/internal/sockfault"
)

// Each cause of the table produced by a real socket-level fault.

func TestConnectionRefused(t *testing.T) {
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: sockfault.ClosedTCPAddr(t)})
	r := get(t, addr, "/")
	params := wantDiagnosis(t, r, http.StatusBadGateway, diag.ConnectionRefused)
	if params["errno"] != "ECONNREFUSED" {
		t.Errorf("errno = %q, want ECONNREFUSED", params["errno"])
	}
	if _, err := strconv.Atoi(params["elapsed-ms"]); err != nil {
		t.Errorf("elapsed-ms = %q: %v", params["elapsed-ms"], err)
	}
	if strings.Contains(string(r.body), "127.0.0.1") || params["upstream"] != "" {
		t.Errorf("address leaked without EXPOSE_DETAILS: %q %v", r.body, params)
	}
}

func TestExposeDetails(t *testing.T) {
	up := sockfault.ClosedTCPAddr(t)
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up, ExposeDetails: true})
	r := send(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n")
	params := wantDiagnosis(t, r, http.StatusBadGateway, diag.ConnectionRefused)
	if params["upstream"] != up || params["hint"] != diag.ConnectionRefused.Hint() {
		t.Errorf("exposed params = %v", params)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !strings.Contains(string(r.body), `"upstream":"`+up+`"`) {
		t.Errorf("JSON body %s lacks the upstream", r.body)
	}
}

func TestSocketNotFound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.sock")
	addr, _ := startProxy(t, Settings{Network: "unix", Address: path})
	params := wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.SocketNotFound)
	if params["errno"] != "ENOENT" {
		t.Errorf("errno = %q, want ENOENT", params["errno"])
	}
}

func TestStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false) // an app that died leaves its socket file
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("socket file should remain: %v", err)
	}
	addr, _ := startProxy(t, Settings{Network: "unix", Address: path})
	params := wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.ConnectionRefused)
	if params["errno"] != "ECONNREFUSED" {
		t.Errorf("errno = %q, want ECONNREFUSED", params["errno"])
	}
}

func TestConnectionTerminated(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     behaviour
		errno string
	}{
		{"close after request", closeAfterRequest, ""},
		{"reset after request", resetAfterRequest, "ECONNRESET"},
		{"close mid header", raw("HTTP/1.1 200 OK\r\nContent-Le"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream(t, "tcp", tc.b)
			addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
			params := wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.ConnectionTerminated)
			if params["errno"] != tc.errno {
				t.Errorf("errno = %q, want %q", params["errno"], tc.errno)
			}
			if up.accepted() != 1 {
				t.Errorf("upstream saw %d connections, want 1 (no silent retry on a fresh connection)", up.accepted())
			}
		})
	}
}

func TestHeaderSectionTooLarge(t *testing.T) {
	cookie := strings.Repeat("a", 70<<10)
	resp := "HTTP/1.1 200 OK\r\nSet-Cookie: big=" + cookie + "\r\nContent-Length: 2\r\n\r\nok"
	up := newFakeUpstream(t, "tcp", raw(resp))
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
	r := get(t, addr, "/")
	params := wantDiagnosis(t, r, http.StatusBadGateway, diag.HTTPResponseHeaderSectionSize)
	if params["limit"] != "4096" {
		t.Errorf("limit = %q, want 4096", params["limit"])
	}
	wantSize := len(resp) - len("ok")
	if params["header-section-size"] != strconv.Itoa(wantSize) {
		t.Errorf("header-section-size = %q, want %d", params["header-section-size"], wantSize)
	}
	if r.Header.Get("Set-Cookie") != "" {
		t.Error("the oversized Set-Cookie leaked downstream")
	}
}

func TestResponseTimeout(t *testing.T) {
	up := newFakeUpstream(t, "tcp", nil)
	up.setScript(up.stall(""))
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), ResponseTimeout: 200 * time.Millisecond})
	params := wantDiagnosis(t, get(t, addr, "/"), http.StatusGatewayTimeout, diag.HTTPResponseTimeout)
	if ms, _ := strconv.Atoi(params["elapsed-ms"]); ms < 200 {
		t.Errorf("elapsed-ms = %d, want >= 200", ms)
	}
}

func TestConnectionTimeout(t *testing.T) {
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: blackholeAddr(t), ConnectTimeout: 300 * time.Millisecond})
	wantDiagnosis(t, get(t, addr, "/"), http.StatusGatewayTimeout, diag.ConnectionTimeout)
}

func TestProtocolError(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp string
	}{
		{"ssh banner", "SSH-2.0-OpenSSH_9.2\r\n"},
		{"fastcgi record", "\x01\x06\x00\x01\x00\x08\x00\x00garbage!"},
		{"bad status line", "HTTP/1.1 abc Nope\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream(t, "tcp", nil)
			up.setScript(up.stall(tc.resp))
			addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), ResponseTimeout: 2 * time.Second})
			wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.HTTPProtocolError)
		})
	}
}

func TestResponseIncomplete(t *testing.T) {
	up := newFakeUpstream(t, "tcp", raw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"))
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
	wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.HTTPResponseIncomplete)
}

func TestReadTimeout(t *testing.T) {
	up := newFakeUpstream(t, "tcp", nil)
	up.setScript(up.stall("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstalls here"))
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), ReadTimeout: 200 * time.Millisecond})
	wantDiagnosis(t, get(t, addr, "/"), http.StatusGatewayTimeout, diag.ConnectionReadTimeout)
}

func TestConnectionLimitReached(t *testing.T) {
	up := newFakeUpstream(t, "tcp", nil)
	up.setScript(up.stall(""))
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), MaxConns: 1,
		ConnectTimeout: 200 * time.Millisecond, ResponseTimeout: 5 * time.Second})
	first := make(chan *response, 1)
	go func() { first <- get(t, addr, "/held") }()
	waitFor(t, "the first request to reach the upstream", func() bool { return up.accepted() == 1 })
	params := wantDiagnosis(t, get(t, addr, "/second"), http.StatusServiceUnavailable, diag.ConnectionLimitReached)
	if params["limit"] != "1" {
		t.Errorf("limit = %q, want 1", params["limit"])
	}
	wantDiagnosis(t, <-first, http.StatusGatewayTimeout, diag.HTTPResponseTimeout)
}

func TestStreamedBodyFailureAborts(t *testing.T) {
	// Larger than BufferBytes: headers go downstream before the body fails.
	up := newFakeUpstream(t, "tcp", raw("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("x", 100)))
	j := new(diag.Journal)
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), BufferBytes: 10, Journal: j})
	r := get(t, addr, "/download")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want the upstream's 200", r.StatusCode)
	}
	if r.err == nil || len(r.body) >= 1000 {
		t.Errorf("the client got a complete-looking body (%d bytes, err %v): the connection must be cut", len(r.body), r.err)
	}
	waitFor(t, "the abort to be recorded", func() bool { return j.Count(diag.HTTPResponseIncomplete) == 1 })
	if e := j.Recent()[0]; !e.Aborted || e.Phase != diag.PhaseBody {
		t.Errorf("journal entry = %+v, want an aborted body failure", e)
	}
}

func TestChunkedBodyFailureAborts(t *testing.T) {
	up := newFakeUpstream(t, "tcp", raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nshort"))
	j := new(diag.Journal)
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), Journal: j})
	r := get(t, addr, "/events")
	if r.StatusCode != http.StatusOK || r.err == nil {
		t.Fatalf("status %d, body err %v: want 200 and a cut connection", r.StatusCode, r.err)
	}
	waitFor(t, "the abort to be recorded", func() bool { return j.Count(diag.HTTPResponseIncomplete) == 1 })
}

// A unix socket whose listen backlog is full answers connect with EAGAIN:
// the app's workers are all busy.
func TestUnixBacklogFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
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
	for i := 0; ; i++ { // fill the accept queue: nobody accepts
		c, err := net.DialTimeout("unix", path, time.Second)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
		if i > 8 {
			t.Fatal("the backlog never filled")
		}
	}
	addr, _ := startProxy(t, Settings{Network: "unix", Address: path})
	params := wantDiagnosis(t, get(t, addr, "/"), http.StatusServiceUnavailable, diag.ConnectionLimitReached)
	if params["errno"] != "EAGAIN" {
		t.Errorf("errno = %q, want EAGAIN", params["errno"])
	}
}
