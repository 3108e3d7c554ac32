package admin

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/upmedic/upmedic/health"
	"github.com/upmedic/upmedic/internal/sockfault"
)

// serveAdmin serves h on network ("tcp" or "unix") until the test ends and
// returns the address Check takes.
func serveAdmin(t *testing.T, network string, h http.Handler) string {
	t.Helper()
	if network == "tcp" {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix:" + path
}

func checkCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

func TestCheck(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			ready := serveAdmin(t, network, NewHandler(Settings{Logger: quiet()}))
			if err := Check(checkCtx(t), ready); err != nil {
				t.Fatalf("Check(ready) = %v, want nil", err)
			}

			down := serveAdmin(t, network, NewHandler(Settings{Checker: downChecker(t), Logger: quiet()}))
			err := Check(checkCtx(t), down)
			if err == nil || err.Error() != "upstream down: connection_refused" {
				t.Fatalf("Check(down) = %v, want \"upstream down: connection_refused\"", err)
			}

			unknown := serveAdmin(t, network, NewHandler(Settings{
				Checker: health.NewChecker(health.Settings{Address: "127.0.0.1:1"}), Logger: quiet()}))
			err = Check(checkCtx(t), unknown)
			if err == nil || !strings.HasPrefix(err.Error(), "upstream state unknown: ") {
				t.Fatalf("Check(unknown) = %v, want the unknown reason", err)
			}
		})
	}
}

func TestCheckOtherAnswers(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string
	}{
		{"503 with no body", http.StatusServiceUnavailable, "", "503 Service Unavailable"},
		{"only the first line, made printable", http.StatusServiceUnavailable, "  bad\x1b[31m news \nsecond line\n", "bad?[31m news"},
		{"404: not an upmedic admin API", http.StatusNotFound, "404 page not found\n", "404 Not Found: 404 page not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serveAdmin(t, "tcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/readyz" {
					t.Errorf("Check asked for %s, want /readyz", r.URL.Path)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			err := Check(checkCtx(t), addr)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Check = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckUnreachable(t *testing.T) {
	closed := sockfault.ClosedTCPAddr(t)
	_, port, _ := net.SplitHostPort(closed)
	missing := "unix:" + filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		name, addr string
		want       string // the error's exact start
	}{
		{"tcp refused", closed, "ask " + closed + ": connect: connection refused"},
		{"unix missing", missing, "ask " + missing + ": connect: no such file or directory"},
		// The image's UPMEDIC_ADMIN_LISTEN=0.0.0.0:9901: the check dials
		// loopback and names only that.
		{"all interfaces", "0.0.0.0:" + port, "ask 127.0.0.1:" + port + " (loopback: the admin API listens on all interfaces): connect: connection refused"},
		{"no host", ":" + port, "ask 127.0.0.1:" + port + " (loopback: the admin API listens on all interfaces): connect: "},
		{"all IPv6 interfaces", "[::]:" + port, "ask [::1]:" + port + " (loopback: the admin API listens on all interfaces): "},
	}
	hostPort := regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+|\[[0-9a-f:]*\]:\d+|localhost`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(checkCtx(t), tt.addr)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Check = %v, want one line starting %q", err, tt.want)
			}
			if got := hostPort.FindAllString(err.Error(), -1); len(got) > 1 {
				t.Errorf("Check = %q names %d addresses %q, want only the one dialled", err, len(got), got)
			}
		})
	}
}

// An admin API that accepts and never answers: the check ends with its
// context and says so, without the request URL.
func TestCheckNoAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		<-done // hold the connection, silent, until the test ends
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = Check(ctx, ln.Addr().String())
	if want := "ask " + ln.Addr().String() + ": no answer in time"; err == nil || err.Error() != want {
		t.Fatalf("Check = %v, want %q", err, want)
	}
}
