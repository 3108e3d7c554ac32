package fastcgi

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The PHP-FPM suite starts a real php-fpm (Debian's php8.2-fpm in CI) with
// a configuration of its own in a temporary directory: one static pool on a
// unix socket, its workers running as nobody when the test runs as root.
// It skips, saying why, where php-fpm is not installed, and fails then
// when CI=true, since .ci/run installs it.

// fpm is one running php-fpm.
type fpm struct {
	dir     string // everything: config, log, socket, docroot, outside
	root    string // the document root
	outside string // a directory beside the root, never to run anything
	sock    string
	log     string
	cmd     *exec.Cmd
	done    chan struct{}
}

// fpmScripts are the PHP scripts of the document root.
var fpmScripts = map[string]string{
	"index.php": `<?php echo "root index";`,
	"hello.php": `<?php
header("X-Test: yes");
setcookie("a", "1");
setcookie("b", "2");
echo "hello";`,
	"env.php": `<?php
header("Content-Type: application/json");
$keys = ["SCRIPT_FILENAME", "SCRIPT_NAME", "PATH_INFO", "REQUEST_URI", "QUERY_STRING",
  "DOCUMENT_ROOT", "DOCUMENT_URI", "REQUEST_METHOD", "CONTENT_TYPE", "CONTENT_LENGTH",
  "SERVER_PROTOCOL", "REQUEST_SCHEME", "HTTPS", "SERVER_NAME", "SERVER_PORT", "SERVER_ADDR",
  "REMOTE_ADDR", "REMOTE_PORT", "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "REDIRECT_STATUS",
  "HTTP_HOST", "HTTP_X_FOO", "HTTP_PROXY", "HTTP_COOKIE", "HTTP_ACCEPT", "PHP_SELF"];
$out = [];
foreach ($keys as $k) { if (array_key_exists($k, $_SERVER)) { $out[$k] = $_SERVER[$k]; } }
$out["pid"] = getmypid();
$out["GET"] = $_GET;
echo json_encode($out);`,
	"sub/index.php": `<?php echo "sub index ", $_SERVER["SCRIPT_NAME"];`,
	"sub/info.php":  `<?php echo $_SERVER["SCRIPT_NAME"], "|", $_SERVER["PATH_INFO"];`,
	"sha.php": `<?php
$in = file_get_contents("php://input");
echo hash("sha256", $in), " ", strlen($in);`,
	"status503.php": `<?php http_response_code(503); echo "down for maintenance";`,
	"bigheader.php": `<?php header("X-Big: " . str_repeat("a", 40960)); echo "x";`,
	"sleep.php":     `<?php sleep(30); echo "woke";`,
	"sleepafter.php": `<?php
header("X-Early: 1");
echo "partial";
flush();
sleep(30);
echo "never";`,
	"uploads/avatar.jpg": "not an image, and not PHP either <?php echo 'ran'; ?>",
	"unreadable.php":     `<?php echo "ran";`,
}

// startFPM starts php-fpm with the suite's pool, [test]: static, two
// workers, on the unix socket f.sock, with a status page and ping.
func startFPM(t testing.TB) *fpm {
	t.Helper()
	return startFPMWith(t, `[test]
%[1]slisten = %[2]s/fpm.sock
listen.mode = 0666
pm = static
pm.max_children = 2
request_terminate_timeout = 1s
pm.status_path = /fpm-status
ping.path = /fpm-ping
ping.response = pong
catch_workers_output = yes
security.limit_extensions = .php
`, "unix", "fpm.sock")
}

// startFPMWith starts php-fpm with pools, a pool section in which %[1]s
// stands for the user and group lines (workers run as nobody when the test
// runs as root) and %[2]s for the directory, and waits until network
// accepts on address (a unix socket's name in the directory, or host:port).
func startFPMWith(t testing.TB, pools, network, address string) *fpm {
	t.Helper()
	bin := findFPM()
	if bin == "" {
		skipOrFail(t, "php-fpm not installed (.ci/run installs it: apt-get install php8.2-fpm)")
	}
	dir, err := os.MkdirTemp("", "upmedic-fastcgi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// 0755 all the way, so that the pool's workers (nobody) can reach the
	// scripts; the outside directory is writable for the marker.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fpm{dir: dir, root: filepath.Join(dir, "root"), outside: filepath.Join(dir, "outside"),
		sock: filepath.Join(dir, "fpm.sock"), log: filepath.Join(dir, "fpm.log"), done: make(chan struct{})}
	for name, src := range fpmScripts {
		writeTestFile(t, filepath.Join(f.root, name), src, 0o644)
	}
	// The marker leaves a file named after its tag when it runs.
	writeTestFile(t, filepath.Join(f.outside, "marker.php"),
		`<?php touch(__DIR__ . "/ran-" . basename($_GET["tag"] ?? "untagged")); echo "marker ran";`, 0o644)
	if err := os.Chmod(f.outside, 0o777); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user = nobody\ngroup = nogroup\n"
		// Only root bypasses a file's mode: this one is for the workers.
		if err := os.Chmod(filepath.Join(f.root, "unreadable.php"), 0o600); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Chmod(filepath.Join(f.root, "unreadable.php"), 0o000); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "php-fpm.conf")
	writeTestFile(t, conf, fmt.Sprintf("[global]\npid = %[1]s/fpm.pid\nerror_log = %[2]s\ndaemonize = no\n\n", dir, f.log)+
		fmt.Sprintf(pools, user, dir), 0o644)
	f.cmd = exec.Command(bin, "-n", "-y", conf, "-F")
	f.cmd.Stdout, f.cmd.Stderr = os.Stderr, os.Stderr
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = f.cmd.Wait()
		close(f.done)
	}()
	t.Cleanup(f.stop)
	if network == "unix" {
		address = filepath.Join(dir, address)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial(network, address)
		if err == nil {
			c.Close()
			return f
		}
		select {
		case <-f.done:
			t.Fatalf("php-fpm exited before accepting: %v\n%s", f.cmd.ProcessState, f.logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("php-fpm not accepting on %s within 20s: %v\n%s", address, err, f.logText())
		}
		time.Sleep(10 * time.Millisecond) // a poll interval, not a wait for the event
	}
}

// stop ends the php-fpm master this test started, by its PID: SIGTERM,
// SIGKILL after 5 s. The master takes its workers with it.
func (f *fpm) stop() {
	select {
	case <-f.done:
		return
	default:
	}
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case <-f.done:
	case <-timer.C:
		_ = f.cmd.Process.Kill()
		<-f.done
	}
}

func (f *fpm) logText() string {
	b, _ := os.ReadFile(f.log)
	return string(b)
}

// waitLog waits until php-fpm's log has a line containing s, and reports
// whether it came within 10 s: the master writes its log on its own time.
func (f *fpm) waitLog(s string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !hasLine(f.logText(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond) // a poll interval, not a wait for the event
	}
	return true
}

// dial connects a client to the pool.
func (f *fpm) dial(t testing.TB) *client {
	t.Helper()
	return dialClient(t, "unix", f.sock, 4096)
}

// resolver returns a Resolver for the pool's document root.
func (f *fpm) resolver(t testing.TB, front string) *Resolver {
	t.Helper()
	r, err := NewResolver(f.root, "", front)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// get builds a GET for target, resolved by res.
func get(t testing.TB, res *Resolver, target string) (*Request, *Script) {
	t.Helper()
	s := new(Script)
	if err := res.Resolve(s, []byte(target)); err != nil {
		t.Fatalf("Resolve(%q): %v", target, err)
	}
	return &Request{
		Method:     []byte("GET"),
		RequestURI: []byte(target),
		Protocol:   []byte("HTTP/1.1"),
		Host:       []byte("shop.example"),
		Remote:     netip.MustParseAddrPort("127.0.0.1:40000"),
	}, s
}

func findFPM() string {
	for _, n := range []string{"php-fpm8.2", "php-fpm8.3", "php-fpm8.4", "php-fpm"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
			if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && fi.Mode()&0o111 != 0 {
				return filepath.Join(dir, n)
			}
		}
	}
	return ""
}

// skipOrFail skips t for reason on a developer's machine and fails it in CI
// (CI=true), where .ci/run installs everything.
func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but " + reason)
	}
	t.Skip("skipped: " + reason)
}

func writeTestFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
}

// hasLine reports whether text has a line containing s.
func hasLine(text, s string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
