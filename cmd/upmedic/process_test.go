package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go.uber.org/goleak"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run upmedic as an operator meets it: a process of its own with
// only the environment given, its exit code, stdout and stderr. The process
// is this test binary, which runs main's run instead of the tests when
// asUpmedicEnv is set (the variable starts with UPMEDIC but not UPMEDIC_, so
// upmedic would not refuse it, and it is removed before run sees the
// environment anyway).
const (
	asUpmedicEnv = "UPMEDICTEST_RUN_AS_UPMEDIC"
	// connectEnv makes the test binary connect to the unix socket it names,
	// send one HTTP/1.0 GET for connectPathEnv's path, and print the
	// response's status line, or "error: <errno name>" and exit 1.
	connectEnv     = "UPMEDICTEST_CONNECT"
	connectPathEnv = "UPMEDICTEST_CONNECT_PATH"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(asUpmedicEnv) != "":
		environ := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "UPMEDICTEST_") })
		os.Exit(run(os.Args[1:], environ, os.Stdin, os.Stdout, os.Stderr))
	case os.Getenv(connectEnv) != "":
		os.Exit(connectHelper(os.Getenv(connectEnv), os.Getenv(connectPathEnv)))
	}
	// serve's goroutines (servers, checker, drain) must all end with it.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
}

// connectHelper is the client process of the socket-mode tests.
func connectHelper(path, target string) int {
	c, err := net.Dial("unix", path)
	if err != nil {
		if errno, ok := errors.AsType[syscall.Errno](err); ok && errno == syscall.EACCES {
			fmt.Println("error: EACCES")
		} else {
			fmt.Println("error:", err)
		}
		return 1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: upmedic\r\n\r\n", target)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Println("error: read:", err)
		return 1
	}
	fmt.Println(strings.TrimSpace(line))
	return 0
}

// binary returns the path of this test binary, copied into a directory every
// user may enter when others must run it (the go build cache is private).
func binary(t *testing.T, shared bool) string {
	t.Helper()
	if !shared {
		return os.Args[0]
	}
	dir := sharedDir(t)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "upmedic")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// sharedDir returns a new 0755 directory under /tmp (t.TempDir's parent is
// 0700, closed to other users).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "upmedic-cmd-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// upmedic returns a command that runs upmedic with exactly env.
func upmedic(bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(slices.Clone(env), asUpmedicEnv+"=1")
	return cmd
}

// runUpmedic runs upmedic to its end and returns its exit code and output.
func runUpmedic(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := upmedic(os.Args[0], env, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := startAndWait(ctx, cmd); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("upmedic %v: %v", args, err)
		}
		code = exit.ExitCode()
	}
	return code, o.String(), e.String()
}

// startAndWait runs cmd, killing it (by its own PID) if ctx ends first.
func startAndWait(ctx context.Context, cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	defer stop()
	return cmd.Wait()
}

// sidecar is an `upmedic serve` process listening on unix sockets in its
// own directory, so that no port is picked and raced for.
type sidecar struct {
	dir          string
	listen       string // the socket nginx would connect to
	admin        string // the admin API's socket
	cmd          *exec.Cmd
	stderr       *lockedBuffer
	served, done chan struct{}
}

// lockedBuffer is the sidecar's stderr, written by exec's copier; seen is
// closed once the "upmedic serving" line is in.
type lockedBuffer struct {
	mu   sync.Mutex // guards buf
	buf  []byte
	once sync.Once
	seen chan struct{}
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{seen: make(chan struct{})} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if bytes.Contains(b.buf, []byte(`"msg":"upmedic serving"`)) {
		b.once.Do(func() { close(b.seen) })
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// startSidecar starts `upmedic serve` with env plus UPMEDIC_LISTEN and
// UPMEDIC_ADMIN_LISTEN on sockets in dir, with cred when not nil and under
// umask, and waits for its "upmedic serving" log line. It stops the sidecar
// (SIGTERM to its PID) at the end of the test.
func startSidecar(t *testing.T, bin, dir string, env []string, cred *syscall.Credential, umask string) *sidecar {
	t.Helper()
	s := &sidecar{dir: dir, listen: filepath.Join(dir, "upmedic.sock"), admin: filepath.Join(dir, "admin.sock"),
		stderr: newLockedBuffer(), done: make(chan struct{})}
	env = append(slices.Clone(env), "UPMEDIC_LISTEN=unix:"+s.listen, "UPMEDIC_ADMIN_LISTEN=unix:"+s.admin)
	// sh sets the umask and then becomes upmedic (exec): the process that
	// creates the sockets is the one that serves them, as under systemd.
	s.cmd = exec.Command("/bin/sh", "-c", "umask "+umask+" && exec \"$0\" serve", bin)
	s.cmd.Env = append(env, asUpmedicEnv+"=1")
	s.cmd.Stderr = s.stderr
	if cred != nil {
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	select {
	case <-s.stderr.seen:
	case <-s.done:
		t.Fatalf("upmedic serve ended before serving: %s", s.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("upmedic serve did not start within 30s: %s", s.stderr)
	}
	return s
}

// client returns an HTTP client that reaches sock whatever the URL's host.
func client(sock string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}}
}

// get sends GET path to sock and returns the status, the diagnosis header
// and the body.
func get(t *testing.T, sock, path string) (int, string, string) {
	t.Helper()
	resp, err := client(sock).Get("http://upmedic" + path)
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, sock, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s on %s: body: %v", path, sock, err)
	}
	return resp.StatusCode, resp.Header.Get("X-Upstream-Diagnosis"), string(body)
}

// status fetches and decodes the sidecar's /status.
func (s *sidecar) status(t *testing.T) map[string]any {
	t.Helper()
	code, _, body := get(t, s.admin, "/status")
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status: %d %v\n%s", code, err, body)
	}
	return st
}

// waitReady polls /readyz until it answers want, for at most a minute.
func (s *sidecar) waitReady(t *testing.T, want int, reason string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code, _, body := get(t, s.admin, "/readyz")
		if code == want && strings.Contains(body, reason) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q after a minute; want %d %q", code, body, want, reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// envTable parses `upmedic env`'s table into variable -> columns.
func envTable(t *testing.T, out string) map[string][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "VARIABLE ") {
		t.Fatalf("no table:\n%s", out)
	}
	// The columns start where the header's words do.
	var starts []int
	for i := 0; i < len(lines[0]); i++ {
		if lines[0][i] != ' ' && (i == 0 || lines[0][i-1] == ' ') && !(i > 3 && lines[0][i-3:i] == "IN ") {
			starts = append(starts, i)
		}
	}
	if len(starts) != 5 {
		t.Fatalf("header %q: %d columns, want 5", lines[0], len(starts))
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		var cols []string
		for i, st := range starts {
			end := len(l)
			if i+1 < len(starts) {
				end = min(starts[i+1], len(l))
			}
			cols = append(cols, strings.TrimSpace(l[min(st, len(l)):end]))
		}
		rows[cols[0]] = cols[1:]
	}
	return rows
}
