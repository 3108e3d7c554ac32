package fastcgi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fastcgiRequest is a whole FastCGI request as upmedic sends it.
func fastcgiRequest(t *testing.T) []byte {
	t.Helper()
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	var w Writer
	w.Reset(bw, 1)
	pairs := AppendPair(AppendPair(AppendPair(nil, "SCRIPT_FILENAME", "/srv/index.php"), "SCRIPT_NAME", "/index.php"), "REQUEST_METHOD", "GET")
	if err := errors.Join(w.BeginRequest(true), w.Params(pairs), w.EndStdin()); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// answer sends b on a new connection to addr and returns all it gets back
// until the peer closes, and how the read ended.
func answer(t *testing.T, network, addr string, b []byte) ([]byte, error) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // a safety net
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	return got, err
}

// TestSniffRealServers: what real servers answer to the wrong protocol.
func TestSniffRealServers(t *testing.T) {
	t.Run("nginx answers FastCGI with an HTTP 400", func(t *testing.T) {
		nginx, err := exec.LookPath("nginx")
		if err != nil {
			if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
				skipOrFail(t, "nginx not installed (.ci/run installs it)")
			}
			nginx = "/usr/sbin/nginx"
		}
		dir := t.TempDir()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		conf := filepath.Join(dir, "nginx.conf")
		writeTestFile(t, conf, fmt.Sprintf(`daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
    access_log off;
    client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
    server { listen %[2]s; location / { return 200 "ok\n"; } }
}
`, dir, addr), 0o644)
		p := startProc(t, exec.Command(nginx, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf))
		waitDial(t, p, "tcp", addr)
		got, err := answer(t, "tcp", addr, fastcgiRequest(t))
		if err != nil || Sniff(got) != ProtocolHTTP || !bytes.HasPrefix(got, []byte("HTTP/1.1 400 Bad Request\r\n")) {
			t.Errorf("nginx answered %q (%v): Sniff %v", got, err, Sniff(got))
		}
		var r Reader
		r.Reset(bufio.NewReader(bytes.NewReader(got)), 1)
		if _, err := r.Read(make([]byte, 8)); !errors.Is(err, ErrVersion) {
			t.Errorf("Reader on nginx's answer: %v, want ErrVersion", err)
		}
	})

	t.Run("php-fpm resets an HTTP request without a byte", func(t *testing.T) {
		f := startFPM(t)
		got, err := answer(t, "unix", f.sock, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		if len(got) != 0 || !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("php-fpm answered %q, %v; want nothing and a reset", got, err)
		}
	})

	t.Run("gunicorn stays silent until its worker timeout", func(t *testing.T) {
		gunicorn, err := exec.LookPath("gunicorn")
		if err != nil {
			skipOrFail(t, "gunicorn not installed (.ci/run installs it)")
		}
		dir := t.TempDir()
		writeTestFile(t, filepath.Join(dir, "app.py"), "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'ok']\n", 0o644)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cmd := exec.Command(gunicorn, "--bind", addr, "--chdir", dir, "--timeout", "1", "--workers", "1", "app:app")
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONDONTWRITEBYTECODE=1"}
		p := startProc(t, cmd)
		waitDial(t, p, "tcp", addr)
		// FastCGI bytes hold no CRLF: gunicorn's sync worker waits for the
		// end of a request line until its arbiter kills it, then the
		// connection closes with nothing sent.
		got, err := answer(t, "tcp", addr, fastcgiRequest(t))
		if len(got) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
			t.Errorf("gunicorn answered %q, %v; want nothing", got, err)
		}
	})
}

// startProc starts cmd, its output kept for the test's log if it fails,
// and stops it by its PID (SIGTERM, then SIGKILL after 5 s) when the test
// ends.
func startProc(t *testing.T, cmd *exec.Cmd) chan struct{} {
	t.Helper()
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s's output:\n%s", cmd.Path, out.String())
		}
	})
	return done
}

// lockedBuffer is a bytes.Buffer that a process's output copier and the
// test may use at once.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitDial waits until network/addr accepts, failing t if the process
// exits first or 20 s pass.
func waitDial(t *testing.T, done chan struct{}, network, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("exited before accepting on %s", addr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not accepting on %s within 20s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond) // a poll interval, not a wait for the event
	}
}
