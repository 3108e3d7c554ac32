package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/upmedic/upmedic/internal/peers"
	"github.com/upmedic/upmedic/internal/sockfault"
)

// `upmedic env` shows each variable's value in effect and where it came
// from, beside its default.
func TestEnvShowsWhatIsInEffect(t *testing.T) {
	code, out, errOut := runUpmedic(t, []string{
		"UPMEDIC_UPSTREAM=unix:/run/gunicorn/app.sock",
		"UPMEDIC_LISTEN=0.0.0.0:8080",
		"UPMEDIC_CONNECT_TIMEOUT=5000ms",
		"UPMEDIC_READ_TIMEOUT=", // set but empty: env/v11 takes the default
		"UPMEDIC_ADMIN_LISTEN=", // set but empty: disabled
		"UPMEDIC_HEALTH_INTERVAL=0",
	}, "env")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, errOut)
	}
	rows := envTable(t, out)
	for name, want := range map[string][]string{
		"UPMEDIC_UPSTREAM":         {"unix:/run/gunicorn/app.sock", "environment", "(required)"},
		"UPMEDIC_LISTEN":           {"0.0.0.0:8080", "environment", "127.0.0.1:8080"},
		"UPMEDIC_LISTEN_MODE":      {"0660", "default", "0660"},
		"UPMEDIC_CONNECT_TIMEOUT":  {"5s", "environment", "2s"},
		"UPMEDIC_RESPONSE_TIMEOUT": {"45s", "default", "45s"},
		"UPMEDIC_READ_TIMEOUT":     {"30s", "default (set empty)", "30s"},
		"UPMEDIC_ADMIN_LISTEN":     {"(empty)", "environment", "127.0.0.1:9901"},
		"UPMEDIC_HEALTH_INTERVAL":  {"0s", "environment", "2s"},
		"UPMEDIC_HEALTH_PATH":      {"(empty)", "default", "(empty)"},
		"UPMEDIC_BREAKER_FAILURES": {"5", "default", "5"},
	} {
		if got := rows[name]; len(got) != 4 || !slices.Equal(got[:3], want) || got[3] == "" {
			t.Errorf("%s: %q, want %q and a meaning", name, got, want)
		}
	}
	if len(rows) != len(configFields()) {
		t.Errorf("%d rows, want one per variable (%d)", len(rows), len(configFields()))
	}
	if !strings.Contains(rows["UPMEDIC_HEALTH_INTERVAL"][3], "0 turns health checks off") ||
		!strings.Contains(rows["UPMEDIC_BREAKER_FAILURES"][3], "0 turns the breaker off") {
		t.Errorf("the meanings do not say that 0 turns health checks and the breaker off:\n%s", out)
	}

	// Nothing set: every default, and the required upstream shown unset.
	code, out, errOut = runUpmedic(t, nil, "env")
	rows = envTable(t, out)
	if code != 0 || errOut != "" || !slices.Equal(rows["UPMEDIC_UPSTREAM"][:3], []string{"(not set)", "-", "(required)"}) ||
		!slices.Equal(rows["UPMEDIC_LISTEN"][:3], []string{"127.0.0.1:8080", "default", "127.0.0.1:8080"}) {
		t.Errorf("with nothing set: exit %d, stderr %q, rows %q %q", code, errOut, rows["UPMEDIC_UPSTREAM"], rows["UPMEDIC_LISTEN"])
	}
}

// What serve would refuse shows in the table, marked, and after it, one line
// each; the exit code is serve's, 2.
func TestEnvShowsWhatServeRefuses(t *testing.T) {
	code, out, errOut := runUpmedic(t, []string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "UPMEDIC_CONNECT_TIMEOUT=fast", "UPMEDIC_FOO=1"}, "env")
	rows := envTable(t, out)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if got := rows["UPMEDIC_CONNECT_TIMEOUT"]; !slices.Equal(got[:3], []string{`"fast"`, "environment (refused)", "2s"}) {
		t.Errorf("UPMEDIC_CONNECT_TIMEOUT: %q", got)
	}
	if got := rows["UPMEDIC_FOO"]; !slices.Equal(got, []string{`"1"`, "environment (refused)", "-", "unknown variable"}) {
		t.Errorf("UPMEDIC_FOO: %q", got)
	}
	if got := rows["UPMEDIC_UPSTREAM"]; got[0] != "127.0.0.1:8000" {
		t.Errorf("the others still show: UPMEDIC_UPSTREAM %q", got)
	}
	want := "upmedic env: serve would refuse UPMEDIC_FOO=\"1\": unknown variable; `upmedic env` lists the accepted ones\n" +
		"upmedic env: serve would refuse UPMEDIC_CONNECT_TIMEOUT=\"fast\": not a duration; use a number with a unit: 500ms, 2s, 1m\n"
	if errOut != want {
		t.Errorf("stderr\n%s\nwant\n%s", errOut, want)
	}
}

// A value the image's ENV set is told apart from one given with -e.
func TestEnvTellsTheImagesENV(t *testing.T) {
	image := parseImageEnv("UPMEDIC_LISTEN=0.0.0.0:8080,UPMEDIC_ADMIN_LISTEN=0.0.0.0:9901")
	rows, problems := envRows([]string{"UPMEDIC_UPSTREAM=unix:/run/app/app.sock", "UPMEDIC_LISTEN=0.0.0.0:8080",
		"UPMEDIC_ADMIN_LISTEN=127.0.0.1:9901", "UPMEDIC_HEALTH_PATH="}, image)
	if problems != nil {
		t.Fatal(problems)
	}
	from := map[string]string{}
	for _, r := range rows {
		from[r.Var] = r.From
	}
	if from["UPMEDIC_LISTEN"] != "image ENV" || from["UPMEDIC_ADMIN_LISTEN"] != "environment" || from["UPMEDIC_UPSTREAM"] != "environment" ||
		from["UPMEDIC_HEALTH_PATH"] != "environment" || from["UPMEDIC_CONNECT_TIMEOUT"] != "default" {
		t.Errorf("from: %v; want LISTEN from the image, ADMIN_LISTEN (overridden with -e), UPSTREAM and HEALTH_PATH (set empty) from the environment", from)
	}
}

// serve names every unknown variable at once, each with its own
// suggestion, and exits 2.
func TestServeNamesEveryUnknownVariable(t *testing.T) {
	code, out, errOut := runUpmedic(t, []string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "UPMEDIC_UPSTREAM_TIMEOUT=5s", "UPMEDIC_FOO=1"}, "serve")
	want := "upmedic: UPMEDIC_FOO=\"1\": unknown variable; `upmedic env` lists the accepted ones\n" +
		"upmedic: UPMEDIC_UPSTREAM_TIMEOUT=\"5s\": unknown variable; `upmedic env` lists the accepted ones; " +
		"did you mean UPMEDIC_CONNECT_TIMEOUT, UPMEDIC_RESPONSE_TIMEOUT, UPMEDIC_READ_TIMEOUT, UPMEDIC_CLIENT_HEADER_TIMEOUT, UPMEDIC_CLIENT_BODY_TIMEOUT, UPMEDIC_CLIENT_SEND_TIMEOUT, UPMEDIC_HEALTH_TIMEOUT or UPMEDIC_SHUTDOWN_TIMEOUT?\n"
	if code != 2 || out != "" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr\n%s\nwant exit 2 and\n%s", code, out, errOut, want)
	}
}

// `upmedic check` with nothing running names one address, the one it
// dialled: loopback, for the image's UPMEDIC_ADMIN_LISTEN=0.0.0.0:9901.
func TestCheckNamesTheAddressItDialled(t *testing.T) {
	_, port, _ := net.SplitHostPort(sockfault.ClosedTCPAddr(t))
	code, out, errOut := runUpmedic(t, []string{"UPMEDIC_ADMIN_LISTEN=0.0.0.0:" + port}, "check")
	want := "not ready: ask 127.0.0.1:" + port + " (loopback: the admin API listens on all interfaces): connect: connection refused\n"
	if code != 1 || out != "" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, want)
	}
}

// UPMEDIC_HEALTH_INTERVAL=0 and UPMEDIC_BREAKER_FAILURES=0 turn health
// checks and the breaker off: every request meets the upstream's own fault,
// /readyz is ready, /status says "off", /metrics has no gauge for either.
// The same sidecar with both on is the control.
func TestHealthAndBreakerOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		off  bool
	}{
		{"off", []string{"UPMEDIC_HEALTH_INTERVAL=0", "UPMEDIC_BREAKER_FAILURES=0"}, true},
		{"on", []string{"UPMEDIC_HEALTH_INTERVAL=1h", "UPMEDIC_BREAKER_FAILURES=3"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"UPMEDIC_UPSTREAM=" + sockfault.ClosedTCPAddr(t)}, tc.env...)
			s := startSidecar(t, binary(t, false), t.TempDir(), env, nil, "022")
			if got := strings.Contains(s.stderr.String(), `"health_checks":"off","breaker":"off"`); got != tc.off {
				t.Errorf("start-up line says off: %v, want %v:\n%s", got, tc.off, s.stderr)
			}
			for i := range 6 {
				code, d, _ := get(t, s.listen, "/")
				want := 502
				if !tc.off && i >= 3 {
					want = 503 // the breaker opened after 3 failures
				}
				if code != want || (want == 502 && !strings.HasPrefix(d, "connection_refused;errno=ECONNREFUSED;")) ||
					(want == 503 && !strings.HasPrefix(d, "breaker_open;")) {
					t.Fatalf("request %d: %d %q, want %d", i+1, code, d, want)
				}
			}
			code, _, body := get(t, s.admin, "/readyz")
			if tc.off && (code != 200 || body != "ready\n") {
				t.Errorf("/readyz %d %q, want 200 ready: nothing to say the upstream is down", code, body)
			}
			if !tc.off && code != 503 {
				t.Errorf("/readyz %d %q, want 503", code, body)
			}
			st := s.status(t)
			health, breaker := st["health"].(map[string]any), st["breaker"].(map[string]any)
			if off := health["state"] == "off" && breaker["state"] == "off"; off != tc.off {
				t.Errorf("/status health %v breaker %v; want off: %v", health, breaker, tc.off)
			}
			_, _, metrics := get(t, s.admin, "/metrics")
			for _, m := range []string{"\nupmedic_upstream_up ", "\nupmedic_breaker_state ", "\nupmedic_probe_duration_seconds_count "} {
				if strings.Contains(metrics, m) == tc.off {
					t.Errorf("/metrics has %q: %v, want %v", strings.TrimSpace(m), !tc.off, !tc.off)
				}
			}
		})
	}
}

// The app's own 5xx are counted and kept, in /metrics and /status, and do
// not open the breaker.
func TestAppStatusIsCounted(t *testing.T) {
	app := newApp(t)
	s := startSidecar(t, binary(t, false), t.TempDir(), []string{"UPMEDIC_UPSTREAM=" + app,
		"UPMEDIC_HEALTH_PATH=/", "UPMEDIC_BREAKER_FAILURES=2"}, nil, "022")
	for range 4 { // twice the breaker's threshold
		if code, d, body := get(t, s.listen, "/code/502"); code != 502 || d != "upstream_status;received-status=502" || body != "app says 502" {
			t.Fatalf("got %d %q %q, want the app's own 502, labelled", code, d, body)
		}
	}
	_, _, metrics := get(t, s.admin, "/metrics")
	if !strings.Contains(metrics, "\nupmedic_diagnoses_total{cause=\"upstream_status\"} 4\n") {
		t.Errorf("/metrics lacks upmedic_diagnoses_total{cause=\"upstream_status\"} 4:\n%s", grepLines(metrics, "upmedic_diagnoses_total"))
	}
	st := s.status(t)
	var counted bool
	for _, c := range st["causes"].([]any) {
		c := c.(map[string]any)
		counted = counted || (c["cause"] == "upstream_status" && c["count"] == 4.0)
	}
	if !counted {
		t.Errorf("/status causes %v, want upstream_status counted 4 times", st["causes"])
	}
	recent := st["recent"].([]any)
	if len(recent) != 4 {
		t.Fatalf("/status recent has %d entries, want 4", len(recent))
	}
	r := recent[0].(map[string]any)
	if r["cause"] != "upstream_status" || r["status"] != 502.0 || r["diagnosis"] != "upstream_status;received-status=502" ||
		r["phase"] != "response header" || r["aborted"] != false {
		t.Errorf("/status recent[0] %v", r)
	}
	if b := st["breaker"].(map[string]any); b["state"] != "closed" || b["consecutive_failures"] != 0.0 {
		t.Errorf("/status breaker %v, want closed with no failure counted", b)
	}
}

// A sustained outage keeps its errno: the 502 of the failed connect and the
// 503 upstream_unhealthy it turns into both read
// "socket_permission_denied;errno=EACCES" (a root-owned 0600 socket, and
// upmedic as uid 65534).
func TestUnhealthyKeepsTheErrno(t *testing.T) {
	peers.NeedRoot(t, "upmedic as uid 65534 in front of a root-owned 0600 socket; root bypasses file modes")
	sock := filepath.Join(sharedDir(t), "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "unreachable") }))
	t.Cleanup(func() { ln.Close() })
	if err := os.Chmod(sock, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := ownedDir(t, 65534)
	s := startSidecar(t, binary(t, true), dir, []string{"UPMEDIC_UPSTREAM=unix:" + sock,
		"UPMEDIC_HEALTH_INTERVAL=1s", "UPMEDIC_HEALTH_FALL=3"}, &syscall.Credential{Uid: 65534, Gid: 65534}, "022")

	code, first, _ := get(t, s.listen, "/")
	if code != 502 || !strings.HasPrefix(first, "socket_permission_denied;errno=EACCES;") {
		t.Fatalf("first request: %d %q, want 502 socket_permission_denied;errno=EACCES", code, first)
	}
	s.waitReady(t, 503, "upstream down: socket_permission_denied")
	code, later, _ := get(t, s.listen, "/")
	if code != 503 || !regexp.MustCompile(`^upstream_unhealthy;elapsed-ms=\d+;last-cause=socket_permission_denied;errno=EACCES;retry-in-ms=\d+$`).MatchString(later) {
		t.Fatalf("once down: %d %q, want 503 upstream_unhealthy;...;last-cause=socket_permission_denied;errno=EACCES;retry-in-ms=...", code, later)
	}
	for _, d := range []string{first, later} {
		if !strings.Contains(d, "socket_permission_denied;errno=EACCES") {
			t.Errorf("%q: a grep for socket_permission_denied;errno=EACCES misses it", d)
		}
	}
}

// UPMEDIC_LISTEN_MODE (0660) applies whatever the umask: under umask 077
// (systemd's UMask=0077) both unix sockets are srw-rw---- and belong to
// upmedic's user and group; a process of another uid in that group
// connects, one outside it gets EACCES.
func TestListenModeUnderUmask077(t *testing.T) {
	peers.NeedRoot(t, "upmedic and its clients as other uids; root bypasses file modes")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		peers.SkipOrFail(t, "setpriv (util-linux) not found")
	}
	app := newApp(t)
	bin := binary(t, true)
	dir := ownedDir(t, 65534)
	s := startSidecar(t, bin, dir, []string{"UPMEDIC_UPSTREAM=" + app, "UPMEDIC_HEALTH_INTERVAL=1h"},
		&syscall.Credential{Uid: 65534, Gid: 65534}, "077")

	for _, sock := range []string{s.listen, s.admin} {
		fi, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 || st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%s: %v owned %d:%d, want srw-rw---- owned 65534:65534", sock, fi.Mode(), st.Uid, st.Gid)
		}
	}
	connect := func(sock, target string, groups ...string) (string, int) {
		t.Helper()
		args := append([]string{"--reuid", "65533", "--regid", "65533"}, groups...)
		cmd := exec.Command(setpriv, append(args, bin)...)
		cmd.Env = []string{connectEnv + "=" + sock, connectPathEnv + "=" + target}
		out, err := cmd.Output()
		code := 0
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatalf("setpriv: %v", err)
		}
		return strings.TrimSpace(string(out)), code
	}
	if out, code := connect(s.listen, "/hello", "--groups", "65534"); code != 0 || out != "HTTP/1.1 200 OK" {
		t.Errorf("uid 65533 in group 65534 through UPMEDIC_LISTEN: %q (exit %d), want HTTP/1.1 200 OK", out, code)
	}
	if out, code := connect(s.admin, "/healthz", "--groups", "65534"); code != 0 || out != "HTTP/1.0 200 OK" {
		t.Errorf("uid 65533 in group 65534 to the admin API: %q (exit %d), want HTTP/1.0 200 OK", out, code)
	}
	for _, sock := range []string{s.listen, s.admin} {
		if out, code := connect(sock, "/", "--clear-groups"); code != 1 || out != "error: EACCES" {
			t.Errorf("uid 65533 in no group to %s: %q (exit %d), want EACCES", sock, out, code)
		}
	}
}

// newApp serves a small app on loopback TCP: "/code/N" answers status N
// with "app says N", anything else 200 "hello".
func newApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var code int
		if _, err := fmt.Sscanf(r.URL.Path, "/code/%d", &code); err == nil && code >= 200 && code <= 599 {
			w.WriteHeader(code)
			fmt.Fprintf(w, "app says %d", code)
			return
		}
		io.WriteString(w, "hello")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// ownedDir returns a new 0755 directory owned by uid (and gid uid), for the
// sockets of an upmedic that runs as uid.
func ownedDir(t *testing.T, uid int) string {
	t.Helper()
	dir := sharedDir(t)
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
