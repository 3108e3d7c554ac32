package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/upmedic/upmedic/admin"
	"github.com/upmedic/upmedic/internal/phpfpm"
)

// serve with a fastcgi upstream: the health checker speaks FastCGI to a
// real php-fpm (ping.path), reads its status page, and /status shows both.
func TestServeFastCGIUpstream(t *testing.T) {
	f := phpfpm.StartWith(t, phpfpm.DefaultPool, "unix", "fpm.sock")
	cfg, err := loadConfig([]string{
		"UPMEDIC_UPSTREAM=fastcgi://unix:" + f.Sock, "UPMEDIC_FASTCGI_ROOT=" + f.Root,
		"UPMEDIC_FASTCGI_STATUS_PATH=/fpm-status", "UPMEDIC_HEALTH_PATH=/fpm-ping", "UPMEDIC_HEALTH_RISE=1",
		"UPMEDIC_LISTEN=127.0.0.1:0", "UPMEDIC_ADMIN_LISTEN=127.0.0.1:0", "UPMEDIC_HEALTH_INTERVAL=50ms",
		"UPMEDIC_SHUTDOWN_TIMEOUT=5s",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() { done <- serveConfig(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("serve ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not return")
		}
	}()

	var st admin.Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addrs[1] + "/status")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		st = admin.Status{}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		if st.Health.State == "up" && st.FastCGI != nil && st.FastCGI.Pool != nil && st.FastCGI.Pool.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never up with a pool status:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond) // a poll interval, not a wait for the event
	}
	if st.Upstream != "fastcgi://unix:"+f.Sock || st.FastCGI.Pool.Pool != "test" || st.Health.LastProbe == nil || st.Health.LastProbe.Status != 200 {
		t.Errorf("status: upstream %q pool %+v probe %+v", st.Upstream, st.FastCGI.Pool, st.Health.LastProbe)
	}
	want := map[string]string{"UPMEDIC_FASTCGI_ROOT": f.Root, "UPMEDIC_FASTCGI_INDEX": "index.php",
		"UPMEDIC_FASTCGI_FRONT_CONTROLLER": "/index.php", "UPMEDIC_FASTCGI_STATUS_PATH": "/fpm-status",
		"UPMEDIC_FASTCGI_STATUS_UPSTREAM": "", "UPMEDIC_TRUSTED_PROXIES": ""}
	for _, c := range st.Config {
		if w, ok := want[c.Name]; ok {
			if c.Value != w {
				t.Errorf("config %s = %q, want %q", c.Name, c.Value, w)
			}
			delete(want, c.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("config in effect lacks %v", want)
	}
}

func TestEnvFastCGIRows(t *testing.T) {
	var out, errOut bytes.Buffer
	code := printEnv([]string{"UPMEDIC_UPSTREAM=fastcgi://127.0.0.1:9000", "UPMEDIC_FASTCGI_ROOT=/var/www/html",
		"UPMEDIC_FASTCGI_FRONT_CONTROLLER=", "UPMEDIC_TRUSTED_PROXIES=10.0.0.0/8"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"UPMEDIC_FASTCGI_ROOT",
		"/var/www/html",
		"UPMEDIC_FASTCGI_INDEX",
		"UPMEDIC_FASTCGI_STATUS_PATH",
		"UPMEDIC_FASTCGI_STATUS_UPSTREAM",
		"pm.status_listen",
		"UPMEDIC_TRUSTED_PROXIES",
		"today only fastcgi upstreams use them",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("upmedic env lacks %q:\n%s", want, out.String())
		}
	}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "UPMEDIC_FASTCGI_FRONT_CONTROLLER" && (f[1] != "off" || f[2] != "environment") {
			t.Errorf("front controller set empty shows %q, want off from the environment", line)
		}
		if len(f) >= 3 && f[0] == "UPMEDIC_TRUSTED_PROXIES" && (f[1] != "10.0.0.0/8" || f[2] != "environment") {
			t.Errorf("trusted proxies row %q", line)
		}
	}

	// A FASTCGI_ variable with an HTTP upstream is refused, and named.
	out.Reset()
	errOut.Reset()
	code = printEnv([]string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "UPMEDIC_FASTCGI_ROOT=/var/www/html"}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "UPMEDIC_FASTCGI_ROOT") || !strings.Contains(errOut.String(), "fastcgi upstream only") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

// upmedic diag probe with fastcgi:// upstreams, against a real php-fpm and a
// real listener that answers FastCGI bytes in HTTP.
func TestDiagProbeFastCGI(t *testing.T) {
	f := phpfpm.StartWith(t, phpfpm.DefaultPool+`
[locked]
%[1]slisten = %[2]s/locked.sock
listen.owner = root
listen.group = root
listen.mode = 0600
pm = static
pm.max_children = 1
`, "unix", "fpm.sock")
	locked := f.Dir + "/locked.sock"
	web := answerHTTP400(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		root bool // needs root: --as
		code int
		out  []string
	}{
		{"ping and status", []string{"UPMEDIC_FASTCGI_STATUS_PATH=/fpm-status"}, []string{"--path", "/fpm-ping", "fastcgi://unix:" + f.Sock}, false, 0, []string{
			"upmedic diag probe: fastcgi://unix:" + f.Sock,
			"the upstream speaks FastCGI: FCGI_GET_VALUES answered",
			"ping path /fpm-ping answered 200 pong",
			"pool test (pm = static)",
		}},
		{"health path from the environment", []string{"UPMEDIC_UPSTREAM=fastcgi://unix:" + f.Sock, "UPMEDIC_HEALTH_PATH=/nope"}, nil, false, 1, []string{
			"ping path /nope answered 404", "ping.path = /nope",
		}},
		{"an http server", nil, []string{"fastcgi://" + web}, false, 1, []string{
			"the upstream speaks HTTP, not FastCGI", "use UPMEDIC_UPSTREAM=http://" + web,
		}},
		{"php-fpm probed as http", []string{"UPMEDIC_UPSTREAM=fastcgi://unix:" + f.Sock, "UPMEDIC_FASTCGI_STATUS_PATH=/fpm-status"},
			[]string{"--path", "/fpm-ping", "unix:" + f.Sock}, false, 1, []string{"use UPMEDIC_UPSTREAM=fastcgi://unix:" + f.Sock}},
		{"0600 root socket, unprivileged", nil, []string{"--as", "65534", "fastcgi://unix:" + locked}, true, 1, []string{
			"FAIL  socket_permission_denied", "listen.owner = <upmedic's user>, listen.group = <a group upmedic is in>, listen.mode = 0660",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				skipOrFail(t, "needs root: --as changes to uid 65534, and root itself bypasses file modes")
			}
			code, out := runProbeHelper(t, nil, tc.env, append([]string{"diag", "probe"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			for _, s := range tc.out {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}

// answerHTTP400 listens on loopback and answers whatever arrives with 400,
// as nginx does to FastCGI bytes.
func answerHTTP400(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
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
					io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}
