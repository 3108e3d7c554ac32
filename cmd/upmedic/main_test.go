package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/upmedic/upmedic/internal/sockfault"
)

func TestRunExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		code int
		out  string // substring of stdout+stderr
	}{
		{"bad variable stops startup", []string{"serve"}, []string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "UPMEDIC_MAX_CONNS=lots"}, 2, `UPMEDIC_MAX_CONNS="lots"`},
		{"missing upstream", nil, nil, 2, "UPMEDIC_UPSTREAM is required"},
		{"unknown command", []string{"frobnicate"}, nil, 2, "unknown command"},
		{"version", []string{"version"}, nil, 0, "upmedic "},
		{"env lists every variable", []string{"env"}, nil, 0, "UPMEDIC_SHUTDOWN_TIMEOUT"},
		{"check with admin disabled", []string{"check"}, []string{"UPMEDIC_ADMIN_LISTEN="}, 2, "disabled"},
		{"check with nothing listening", []string{"check"}, []string{"UPMEDIC_ADMIN_LISTEN=" + sockfault.ClosedTCPAddr(t)}, 1, "not ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(tc.args, tc.env, strings.NewReader(""), &out, &out)
			if code != tc.code || !strings.Contains(out.String(), tc.out) {
				t.Errorf("exit %d, output %q; want exit %d and %q", code, out.String(), tc.code, tc.out)
			}
		})
	}
}

func TestEnvPrintsDefaults(t *testing.T) {
	var out bytes.Buffer
	run([]string{"env"}, nil, nil, &out, &out)
	for _, f := range configFields() {
		if !strings.Contains(out.String(), f.Var) || f.Help == "" {
			t.Errorf("%s missing from `upmedic env` or without help", f.Var)
		}
	}
	if !strings.Contains(out.String(), "UPMEDIC_CONNECT_TIMEOUT            2s") {
		t.Errorf("default of UPMEDIC_CONNECT_TIMEOUT not shown:\n%s", out.String())
	}
}

// TestServe runs the whole sidecar in front of a real upstream: a request
// passes, /readyz turns ready, `upmedic check` agrees, and cancelling the
// context drains and returns.
func TestServe(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app says hi")
	})}
	go upSrv.Serve(up)
	defer upSrv.Close()

	addrs := startServe(t, []string{
		"UPMEDIC_UPSTREAM=" + up.Addr().String(), "UPMEDIC_LISTEN=127.0.0.1:0", "UPMEDIC_ADMIN_LISTEN=127.0.0.1:0",
		"UPMEDIC_HEALTH_INTERVAL=50ms", "UPMEDIC_HEALTH_PATH=/health", "UPMEDIC_SHUTDOWN_TIMEOUT=5s",
	})

	resp, err := http.Get("http://" + addrs[0] + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "app says hi" || resp.Header.Get("X-Upstream-Diagnosis") != "" {
		t.Errorf("through the sidecar: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		var out bytes.Buffer
		code := run([]string{"check"}, []string{"UPMEDIC_ADMIN_LISTEN=" + addrs[1]}, nil, &out, &out)
		if code == 0 && strings.Contains(out.String(), "ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: exit %d %q", code, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

}

// startServe runs serveConfig for env until the test ends, when it must
// drain and return nil, and returns its front and admin addresses.
func startServe(t *testing.T, env []string) [2]string {
	t.Helper()
	cfg, err := loadConfig(env)
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
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v after shutdown", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not drain and return")
		}
	})
	return addrs
}

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"demo"}, nil, nil, &out, &out); code != 0 {
		t.Fatalf("demo exited %d:\n%s", code, out.String())
	}
	for _, want := range []string{
		"healthy app                   200     (none",
		"502     connection_refused;errno=ECONNREFUSED",
		"502     socket_not_found;errno=ENOENT",
		"502     connection_terminated;errno=ECONNRESET",
		"502     http_response_header_section_size;",
		"504     http_response_timeout;",
		"502     http_protocol_error;",
		"502     http_response_incomplete;",
		"504     connection_read_timeout;",
		"504     connection_timeout;",
		"502     upstream_status;received-status=502",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
