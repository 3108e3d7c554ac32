//go:build unix

package nginxlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upmedic/upmedic/internal/sockfault"
)

// realUpmedicLog is the committed log TestRealNginxAgainstUpmedic writes
// with -update, and its options for the golden test.
const realUpmedicLog = "testdata/real-nginx-upmedic-1.22"

// TestRealNginxAgainstUpmedic runs the installed nginx, workers as nobody,
// in front of a refusing app, a stopped upmedic (a closed port, reached
// through an upstream block and directly), upmedic's unix socket and an
// app's, both 0600 root: nginx's workers may not connect to either. The
// error.log nginx writes must group as upmedic_unreachable where the
// address is UPMEDIC_LISTEN, and in nginx's terms where it is the app.
func TestRealNginxAgainstUpmedic(t *testing.T) {
	nginx := lookNginx(t)
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: nginx's workers run as nobody, so a root-owned 0600 socket is out of their reach")
	}
	dir, err := os.MkdirTemp("", "upmedic-nginxlog-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"", "logs", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rootSocket := func(name string) string {
		path := filepath.Join(dir, "run", name)
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	app := sockfault.ClosedTCPAddr(t)     // the app is down
	upmedic := sockfault.ClosedTCPAddr(t) // so is upmedic
	upmedicSock, appSock := rootSocket("upmedic.sock"), rootSocket("app.sock")
	listen := sockfault.ClosedTCPAddr(t) // free now; nginx binds it

	conf := fmt.Sprintf(`user nobody nogroup;
worker_processes 1;
daemon off;
error_log logs/error.log;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
    upstream upmedic {
        server %s;
    }
    server {
        listen %s;
        location = /app { proxy_pass http://%s; }
        location = /via-upmedic { proxy_pass http://upmedic; }
        location = /upmedic-direct { proxy_pass http://%s; }
        location = /upmedic-socket { proxy_pass http://unix:%s:; }
        location = /app-socket { proxy_pass http://unix:%s:; }
    }
}
`, upmedic, listen, app, upmedic, upmedicSock, appSock)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir+"/", "-c", confPath, "-e", filepath.Join(dir, "logs", "startup.log"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when nginx has exited
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(stop)
	waitListening(t, listen, exited, func() string { return fmt.Sprint(waitErr, "\n", stderr.String()) })

	client := &http.Client{Timeout: 10 * time.Second}
	for _, path := range []string{"/app", "/via-upmedic", "/upmedic-direct", "/upmedic-socket", "/app-socket"} {
		resp, err := client.Get("http://" + listen + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("%s: %d, want nginx's 502", path, resp.StatusCode)
		}
	}
	stop()
	errorLog, err := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
	if err != nil {
		t.Fatal(err)
	}

	opt := Options{Location: time.UTC, Listen: upmedic, UpmedicUpstreams: []string{"upmedic"},
		NginxUser: "nobody", NginxUserFrom: "user in " + confPath + ":1", CheckSockets: true}
	rep, err := Analyze(bytes.NewReader(errorLog), opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failures != 5 || rep.Matched != 5 || len(rep.Groups) != 4 {
		t.Fatalf("report %+v from:\n%s", *rep, errorLog)
	}
	g := nginxGroup(t, rep, "upmedic_unreachable", "http://"+upmedic)
	if g.Count != 2 || !g.ToUpmedic || !strings.HasPrefix(g.Fix, "upmedic is not running or not listening where nginx expects it (UPMEDIC_LISTEN="+upmedic+")") ||
		!strings.HasSuffix(g.Fix, "Refused: nothing listens there; upmedic is stopped, crashed or still starting.") {
		t.Errorf("stopped upmedic: %+v", g)
	}
	if g := nginxGroup(t, rep, "connection_refused", "http://"+app); g.Count != 1 || g.ToUpmedic ||
		!strings.HasPrefix(g.Fix, "nothing listens on the address proxy_pass names") {
		t.Errorf("refusing app: %+v", g)
	}
	g = nginxGroup(t, rep, "socket_permission_denied", "http://unix:"+appSock)
	for _, s := range []string{"nginx's workers run as nobody (user in " + confPath + ":1) and may not connect to " + appSock,
		"Now: " + appSock + " is owner root, group root, mode 0600, so nobody may not write to it.",
		"gunicorn --group nobody --umask 007"} {
		if !strings.Contains(g.Fix, s) {
			t.Errorf("app socket fix lacks %q:\n%s", s, g.Fix)
		}
	}
	// upmedic's own socket, seen as an app's while UPMEDIC_LISTEN is the TCP port.
	nginxGroup(t, rep, "socket_permission_denied", "http://unix:"+upmedicSock)

	opt.Listen = "unix:" + upmedicSock
	rep, err = Analyze(bytes.NewReader(errorLog), opt)
	if err != nil {
		t.Fatal(err)
	}
	g = nginxGroup(t, rep, "upmedic_unreachable", "http://unix:"+upmedicSock)
	for _, s := range []string{"(UPMEDIC_LISTEN=unix:" + upmedicSock + ")",
		"Permission denied: nginx's workers run as nobody", "set UPMEDIC_LISTEN_MODE=0660",
		"Now: " + upmedicSock + " is owner root, group root, mode 0600, so nobody may not write to it."} {
		if !strings.Contains(g.Fix, s) {
			t.Errorf("upmedic socket fix lacks %q:\n%s", s, g.Fix)
		}
	}

	if updateGolden() {
		if err := os.WriteFile(realUpmedicLog+".log", errorLog, 0o644); err != nil {
			t.Fatal(err)
		}
		o, _ := json.MarshalIndent(map[string]any{"listen": upmedic, "upmedic_upstreams": []string{"upmedic"},
			"nginx_user": "nobody", "nginx_user_from": "user in nginx.conf:1"}, "", "  ")
		if err := os.WriteFile(realUpmedicLog+".options.json", append(o, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s.log: now run go test ./diag/nginxlog -run NginxLogGolden -update", realUpmedicLog)
	}
}

// lookNginx returns the installed nginx, or skips (fails with CI=true).
func lookNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	skipOrFail(t, "nginx is not installed (apt-get install nginx)")
	return ""
}

// skipOrFail skips t for reason, or fails it with CI=true, where .ci/run
// installs nginx.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but " + reason)
	}
	t.Skip("skipped: " + reason)
}

// waitListening waits until addr accepts a connection, for at most 10s,
// failing at once if nginx exits.
func waitListening(t *testing.T, addr string, exited <-chan struct{}, why func() string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited: %s", why())
		case <-deadline:
			t.Fatalf("nginx does not listen on %s after 10s", addr)
		case <-tick.C:
		}
	}
}
