package proxy

import (
	"bufio"
	"fmt"
	"go.uber.org/goleak"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/internal/sockfault"
)

// helperEnv makes the test binary serve a proxy instead of running tests:
// its value is the upstream unix socket path.
const helperEnv = "UPMEDIC_TEST_HELPER_UPSTREAM"

// onceEnv makes the test binary proxy one request to the TCP upstream it
// names, in-process, and print the status and the diagnosis header; with
// denyEnv set, every connect(2) first fails with EACCES.
const (
	onceEnv = "UPMEDIC_TEST_HELPER_ONCE"
	denyEnv = "UPMEDIC_TEST_HELPER_DENY_CONNECT"
	// fastCGIRootEnv, set with helperEnv, makes the helper's upstream a
	// FastCGI one with this document root.
	fastCGIRootEnv = "UPMEDIC_TEST_HELPER_FASTCGI_ROOT"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(serveHelper(path))
	}
	if addr := os.Getenv(onceEnv); addr != "" {
		os.Exit(onceHelper(addr, os.Getenv(denyEnv) != ""))
	}
	// Every goroutine a test starts (servers, parked and lingering
	// connections, tunnels, body streams) must end with it.
	goleak.VerifyTestMain(m,
		// fasthttp refreshes its Date header in one goroutine for the
		// life of the process.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// A stopped server's worker-pool cleaner ends at its next tick,
		// up to MaxIdleWorkerDuration (1s) later. A server left running
		// still shows, by its Serve goroutine.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
}

// onceHelper proxies one GET to addr and prints "status diagnosis".
func onceHelper(addr string, deny bool) int {
	if deny {
		if err := sockfault.DenyConnect(syscall.EACCES); err != nil {
			fmt.Println("error:", err)
			return 1
		}
	}
	p := New(Settings{Network: "tcp", Address: addr, Logger: quietLogger()})
	ctx := newCtx()
	p.ServeHTTP(ctx)
	fmt.Printf("%d %s\n", ctx.Response.StatusCode(), ctx.Response.Header.Peek(diag.HeaderDiagnosis))
	return 0
}

// proxyOnceIn runs onceHelper in a child process with attr and returns the
// status and the diagnosis it printed.
func proxyOnceIn(t *testing.T, addr string, attr *syscall.SysProcAttr, deny bool) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), onceEnv+"="+addr)
	if deny {
		cmd.Env = append(cmd.Env, denyEnv+"=1")
	}
	cmd.SysProcAttr = attr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	status, diagnosis, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	n, err := strconv.Atoi(status)
	if err != nil {
		t.Fatalf("helper printed %q", out)
	}
	return n, diagnosis
}

// A TCP connect the kernel refuses (here a seccomp filter; in production
// SELinux, systemd's IPAddressDeny= or a firewall) is prohibited, not refused.
func TestDestinationIPProhibited(t *testing.T) {
	up := newFakeUpstream(t, "tcp", ok("unreachable"))
	status, d := proxyOnceIn(t, up.address(), nil, true)
	if status != http.StatusBadGateway || !strings.HasPrefix(d, "destination_ip_prohibited;errno=EACCES;") {
		t.Errorf("got %d %q, want 502 destination_ip_prohibited;errno=EACCES", status, d)
	}
}

// In a network namespace whose loopback is down nothing is routable.
func TestDestinationIPUnroutable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace of its own")
	}
	status, d := proxyOnceIn(t, "127.0.0.1:9", sockfault.NoNetwork(), false)
	if status != http.StatusBadGateway || !strings.HasPrefix(d, "destination_ip_unroutable;errno=ENETUNREACH;") {
		t.Errorf("got %d %q, want 502 destination_ip_unroutable;errno=ENETUNREACH", status, d)
	}
}

// serveHelper serves a proxy for the unix socket at path on a loopback port,
// prints the port's address, and stops when stdin closes.
func serveHelper(path string) int {
	s := Settings{Network: "unix", Address: path, ExposeDetails: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if root := os.Getenv(fastCGIRootEnv); root != "" {
		s.FastCGI = &FastCGI{Root: root}
	}
	p := New(s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		ln.Close()
	}()
	_ = p.Server().Serve(ln)
	return 0
}

// startUnprivilegedProxy runs a proxy for the unix socket at path as uid and
// gid 65534 (nobody), in a copy of this test binary, and returns its address.
func startUnprivilegedProxy(t *testing.T, path string, env ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to start the proxy as another uid; as non-root, file permissions apply to the test itself")
	}
	dir := worldReadableDir(t)
	bin := filepath.Join(dir, "proxy.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), helperEnv+"="+path), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.HasPrefix(line, "error") {
		t.Fatalf("helper proxy: %q %v", line, err)
	}
	return strings.TrimSpace(line)
}

// worldReadableDir returns a temporary directory others may enter.
func worldReadableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "upmedic-test-") // t.TempDir's parent is 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSocketPermissionDenied(t *testing.T) {
	dir := worldReadableDir(t)
	path := filepath.Join(dir, "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	serveBehaviour(t, ln, ok("ok"))               // an app that would answer, if only it could be reached
	if err := os.Chmod(path, 0o600); err != nil { // owned by root, as a php-fpm default
		t.Fatal(err)
	}
	addr := startUnprivilegedProxy(t, path)
	params := wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.SocketPermissionDenied)
	if params["errno"] != "EACCES" {
		t.Errorf("errno = %q, want EACCES", params["errno"])
	}

	// The same socket made accessible: the unprivileged proxy gets through,
	// once the refusal it remembers has aged out.
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	time.Sleep(refusalMemo + 50*time.Millisecond)
	if r := get(t, addr, "/"); r.StatusCode != 200 || string(r.body) != "ok" {
		t.Errorf("after chmod 0666: %d %q", r.StatusCode, r.body)
	}
}
