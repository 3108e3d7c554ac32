package health

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/internal/phpfpm"
)

// fcgiPools are two pools of one php-fpm: [test] answers ping with pong and
// has a status page; [odd] answers ping with "busy".
const fcgiPools = phpfpm.DefaultPool + `
[odd]
%[1]slisten = %[2]s/odd.sock
listen.mode = 0666
pm = static
pm.max_children = 1
pm.status_path = /odd-status
pm.status_listen = %[2]s/odd-status.sock
ping.path = /fpm-ping
ping.response = busy
`

func TestCheckerFastCGIRealPHPFPM(t *testing.T) {
	f := phpfpm.StartWith(t, fcgiPools, "unix", "fpm.sock")
	odd := filepath.Join(f.Dir, "odd.sock")
	for _, tc := range []struct {
		name, addr, path string
		ok               bool
		cause            diag.Cause
		status           int
	}{
		{"get values", f.Sock, "", true, diag.None, 0},
		{"ping", f.Sock, "/fpm-ping", true, diag.None, 200},
		{"ping answers busy", odd, "/fpm-ping", false, diag.UpstreamStatus, 200},
		// No ping.path there: PHP-FPM looks for a script of that name.
		{"not the ping path", f.Sock, "/nope", false, diag.UpstreamStatus, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStepper(t, Settings{Network: "unix", Address: tc.addr, Path: tc.path, FastCGI: true,
				Timeout: waitFor, Rise: 1, Fall: 1, Logger: quiet()})
			snap := st.step()
			p := snap.LastProbe
			if p.OK != tc.ok || p.Cause != tc.cause || p.Status != tc.status {
				t.Fatalf("probe: ok %v cause %v status %d (%s), want %v %v %d", p.OK, p.Cause, p.Status, snap.LastError, tc.ok, tc.cause, tc.status)
			}
			if tc.name == "ping answers busy" && !strings.Contains(snap.LastError, `"busy", not pong`) {
				t.Errorf("error %q does not say what answered", snap.LastError)
			}
			if snap.Pool != nil {
				t.Errorf("pool snapshot %+v without a StatusPath", snap.Pool)
			}
		})
	}

	t.Run("stopped", func(t *testing.T) {
		g := phpfpm.StartWith(t, phpfpm.DefaultPool, "unix", "fpm.sock")
		st := newStepper(t, Settings{Network: "unix", Address: g.Sock, FastCGI: true, Timeout: waitFor, Rise: 1, Fall: 1, Logger: quiet()})
		if snap := st.step(); snap.State != Up {
			t.Fatalf("before stop: %+v", snap)
		}
		g.Stop()
		snap := st.step()
		// php-fpm removes its socket when it stops.
		if snap.State != Down || snap.LastProbe.Cause != diag.SocketNotFound {
			t.Fatalf("after stop: state %v cause %v (%s), want down socket_not_found", snap.State, snap.LastProbe.Cause, snap.LastError)
		}
	})
}

func TestCheckerFastCGIStatusPage(t *testing.T) {
	f := phpfpm.StartWith(t, fcgiPools, "unix", "fpm.sock")
	t.Run("read", func(t *testing.T) {
		st := newStepper(t, Settings{Network: "unix", Address: f.Sock, Path: "/fpm-ping", FastCGI: true,
			StatusPath: "/fpm-status", Timeout: waitFor, Rise: 1, Fall: 1, Logger: quiet()})
		if _, _, ok := st.c.PoolStatus(); ok {
			t.Fatal("PoolStatus ok before any read")
		}
		before := time.Now()
		snap := st.step()
		ps, at, ok := st.c.PoolStatus()
		if !ok || ps.Pool != "test" || ps.ProcessManager != "static" || ps.TotalProcesses < 1 || ps.TotalProcesses > 2 || at.Before(before) {
			t.Fatalf("PoolStatus %+v %v %v, want pool test, static, 1 or 2 processes (the scoreboard fills as workers start)", ps, at, ok)
		}
		if snap.Pool == nil || !snap.Pool.OK || snap.Pool.Status != ps || snap.Pool.Error != "" {
			t.Errorf("snapshot pool %+v", snap.Pool)
		}
	})
	t.Run("wrong path leaves health alone", func(t *testing.T) {
		st := newStepper(t, Settings{Network: "unix", Address: f.Sock, FastCGI: true,
			StatusPath: "/no-status", Timeout: waitFor, Rise: 1, Fall: 1, Logger: quiet()})
		snap := st.step()
		if _, _, ok := st.c.PoolStatus(); ok || snap.State != Up {
			t.Fatalf("PoolStatus ok %v, state %v: want not ok, up", ok, snap.State)
		}
		if snap.Pool == nil || snap.Pool.OK || !strings.Contains(snap.Pool.Error, "status 404") {
			t.Errorf("snapshot pool %+v, want the 404 named", snap.Pool)
		}
	})
	t.Run("pm.status_listen", func(t *testing.T) {
		st := newStepper(t, Settings{Network: "unix", Address: filepath.Join(f.Dir, "odd.sock"), FastCGI: true,
			StatusPath: "/odd-status", StatusNetwork: "unix", StatusAddress: filepath.Join(f.Dir, "odd-status.sock"),
			Timeout: waitFor, Rise: 1, Fall: 1, Logger: quiet()})
		st.step()
		if ps, _, ok := st.c.PoolStatus(); !ok || ps.Pool != "odd" {
			t.Fatalf("status from pm.status_listen: %+v %v (%+v)", ps, ok, st.c.Snapshot().Pool)
		}
	})
	t.Run("own address missing", func(t *testing.T) {
		st := newStepper(t, Settings{Network: "unix", Address: f.Sock, FastCGI: true,
			StatusPath: "/fpm-status", StatusNetwork: "unix", StatusAddress: filepath.Join(f.Dir, "missing.sock"),
			Timeout: waitFor, Rise: 1, Fall: 1, Logger: quiet()})
		snap := st.step()
		if _, _, ok := st.c.PoolStatus(); ok || snap.State != Up || !strings.Contains(snap.Pool.Error, "dial status page") {
			t.Fatalf("status on a missing socket: ok %v state %v %+v", ok, snap.State, snap.Pool)
		}
	})
}

func TestCheckerFastCGIFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     behaviour
		path  string
		cause diag.Cause
		text  string
	}{
		{"http server", http400, "", diag.HTTPProtocolError, `speaks HTTP (it answered "HTTP/1.1 400 Bad Request")`},
		{"http server, ping", http400, "/fpm-ping", diag.HTTPProtocolError, "speaks HTTP"},
		{"closed at once", closeNow, "", diag.ConnectionTerminated, ""},
		{"closed at once, ping", closeNow, "/fpm-ping", diag.ConnectionTerminated, ""},
		{"silent", silent, "/fpm-ping", diag.HTTPResponseTimeout, ""},
		{"refused", refuse, "", diag.ConnectionRefused, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Settings{Network: "tcp", Path: tc.path, FastCGI: true, Timeout: waitFor, Rise: 1, Fall: 1, Logger: quiet()}
			up := newFakeUpstream(t, "tcp")
			up.next(tc.b)
			s.Address = up.addr
			if tc.b == silent {
				s.Timeout = 200 * time.Millisecond
			}
			snap := newStepper(t, s).step()
			if snap.State != Down || snap.LastProbe.Cause != tc.cause || !strings.Contains(snap.LastError, tc.text) {
				t.Fatalf("state %v cause %v error %q, want down %v %q", snap.State, snap.LastProbe.Cause, snap.LastError, tc.cause, tc.text)
			}
		})
	}
}
