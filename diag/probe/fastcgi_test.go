package probe

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/internal/phpfpm"
)

// answer400 is an HTTP server as nginx and Node are to FastCGI bytes: it
// reads what arrives and answers 400 at once.
func answer400(t *testing.T) string {
	t.Helper()
	ln := listenTCP(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				var b [16]byte
				if _, err := c.Read(b[:]); err == nil {
					io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestCheckFastCGIRealPHPFPM(t *testing.T) {
	f := phpfpm.StartWith(t, phpfpm.DefaultPool, "unix", "fpm.sock")
	t.Run("get values, ping and status", func(t *testing.T) {
		res := resultOf(t, Check(t.Context(), Settings{Address: f.Sock, FastCGI: true, HealthPath: "/fpm-ping", StatusPath: "/fpm-status"}))
		res.healthy(t, true)
		res.expect(t, diag.None, SeverityOK).mustMention(t, "connected to "+f.Sock, "listen.owner, listen.group and listen.mode")
		mention(t, res, "request   FastCGI: FCGI_GET_VALUES, GET /fpm-ping (ping.path), GET /fpm-status?json (pm.status_path)",
			"the upstream speaks FastCGI: FCGI_GET_VALUES answered", "FCGI_MPXS_CONNS=0",
			"ping path /fpm-ping answered 200 pong", "pool test (pm = static):", "total processes; listen queue 0",
			"on a unix socket it stays 0", "pm.status_listen")
		if res.j.Status != 200 {
			t.Errorf("status %d, want the ping's 200", res.j.Status)
		}
	})
	t.Run("get values only", func(t *testing.T) {
		res := resultOf(t, Check(t.Context(), Settings{Address: f.Sock, FastCGI: true}))
		res.healthy(t, true)
		res.expect(t, diag.None, SeverityOK, "ping.path = /ping")
	})
	t.Run("not the ping path", func(t *testing.T) {
		res := resultOf(t, Check(t.Context(), Settings{Address: f.Sock, FastCGI: true, HealthPath: "/nope"}))
		res.healthy(t, false)
		res.expect(t, diag.UpstreamStatus, SeverityFail, "ping.path = /nope").mustMention(t, "answered 404", "Primary script unknown")
	})
	t.Run("not the status path", func(t *testing.T) {
		res := resultOf(t, Check(t.Context(), Settings{Address: f.Sock, FastCGI: true, StatusPath: "/nope"}))
		res.healthy(t, true) // a warning: upmedic proxies without it
		res.expect(t, diag.None, SeverityWarn, "pm.status_path = /nope").mustMention(t, "answered 404")
	})
	t.Run("status on a missing socket", func(t *testing.T) {
		res := resultOf(t, Check(t.Context(), Settings{Address: f.Sock, FastCGI: true, StatusPath: "/fpm-status",
			StatusNetwork: "unix", StatusAddress: filepath.Join(f.Dir, "status.sock")}))
		res.healthy(t, false)
		res.expect(t, diag.SocketNotFound, SeverityFail).mustMention(t, "for the status page")
	})
	t.Run("stopped", func(t *testing.T) {
		g := phpfpm.StartWith(t, phpfpm.DefaultPool, "unix", "fpm.sock")
		g.Stop()
		res := resultOf(t, Check(t.Context(), Settings{Address: g.Sock, FastCGI: true}))
		res.healthy(t, false)
		res.expect(t, diag.SocketNotFound, SeverityFail, "grep -H '^listen' /etc/php/*/fpm/pool.d/*.conf").
			mustMention(t, "removes it when it stops")
	})
}

// A fastcgi:// upstream that speaks HTTP, and an HTTP upstream that is php-fpm.
func TestCheckFastCGIWrongProtocol(t *testing.T) {
	t.Run("fastcgi to an http server", func(t *testing.T) {
		addr := answer400(t)
		for _, path := range []string{"", "/fpm-ping"} {
			res := resultOf(t, Check(t.Context(), Settings{Address: addr, FastCGI: true, HealthPath: path}))
			res.healthy(t, false)
			res.expect(t, diag.HTTPProtocolError, SeverityFail, "use UPMEDIC_UPSTREAM=http://"+addr).
				mustMention(t, "speaks HTTP, not FastCGI", `"HTTP/1.1 400 Bad Request"`)
		}
	})
	t.Run("http to php-fpm", func(t *testing.T) {
		port := freePort(t)
		f := phpfpm.StartWith(t, fmt.Sprintf(`[tcp]
%%[1]slisten = 127.0.0.1:%d
pm = static
pm.max_children = 1
`, port), "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		t.Cleanup(f.Stop)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		res := resultOf(t, Check(t.Context(), Settings{Address: addr, HealthPath: "/"}))
		res.healthy(t, false)
		res.expect(t, diag.ConnectionTerminated, SeverityFail, "use UPMEDIC_UPSTREAM=fastcgi://"+addr)
		// And the same address as fastcgi:// is healthy.
		resultOf(t, Check(t.Context(), Settings{Address: addr, FastCGI: true})).healthy(t, true)
	})
}

// freePort returns a loopback port nothing listened on a moment ago, for a
// server that takes its port from a configuration file.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// mention checks that the printed report holds every s.
func mention(t *testing.T, res probeResult, s ...string) {
	t.Helper()
	for _, x := range s {
		if !strings.Contains(res.text, x) {
			t.Errorf("report lacks %q:\n%s", x, res.text)
		}
	}
}
