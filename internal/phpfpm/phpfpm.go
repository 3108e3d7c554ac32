// Package phpfpm runs a real php-fpm for tests: a configuration of its own
// in a temporary directory, one or more pools, a document root of test
// scripts and a directory beside it that nothing may ever run. It is for
// tests only.
//
// Start skips its test, saying why, where php-fpm is not installed, and
// fails it then when CI=true, since .ci/run installs it.
package phpfpm

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FPM is one running php-fpm.
type FPM struct {
	Dir     string // everything: config, log, socket, docroot, outside
	Root    string // the document root
	Outside string // a directory beside the root, never to run anything
	Sock    string // the default pool's unix socket
	Log     string // the master's error_log
	Cmd     *exec.Cmd
	Done    chan struct{} // closed when the master has exited
}

// Scripts are the PHP scripts of the document root.
var Scripts = map[string]string{
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
	"big.php": `<?php header("Content-Type: application/octet-stream"); echo str_repeat("0123456789abcdef", 65536);`,
	"nap.php": `<?php usleep(1500000); echo "rested";`,
	"forged.php": `<?php
header("X-Upstream-Diagnosis: connection_refused");
header("Proxy-Status: upmedic; error=connection_refused");
http_response_code(502);
echo "forged";`,
	"uploads/avatar.jpg": "not an image, and not PHP either <?php echo 'ran'; ?>",
	"unreadable.php":     `<?php echo "ran";`,
}

// DefaultPool is the suite's pool, [test]: static, two workers, on the unix
// socket fpm.sock, with a status page and ping, and a 1 s
// request_terminate_timeout.
const DefaultPool = `[test]
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
`

// Start starts php-fpm with DefaultPool.
func Start(t testing.TB) *FPM {
	t.Helper()
	return StartWith(t, DefaultPool, "unix", "fpm.sock")
}

// StartWith starts php-fpm with pools, a pool section in which %[1]s
// stands for the user and group lines (workers run as nobody when the test
// runs as root) and %[2]s for the directory, and waits until network
// accepts on address (a unix socket's name in the directory, or host:port).
// The master is stopped, by its PID, when the test ends.
func StartWith(t testing.TB, pools, network, address string) *FPM {
	t.Helper()
	bin := Find()
	if bin == "" {
		SkipOrFail(t, "php-fpm not installed (.ci/run installs it: apt-get install php8.2-fpm)")
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
	f := &FPM{Dir: dir, Root: filepath.Join(dir, "root"), Outside: filepath.Join(dir, "outside"),
		Sock: filepath.Join(dir, "fpm.sock"), Log: filepath.Join(dir, "fpm.log"), Done: make(chan struct{})}
	for name, src := range Scripts {
		WriteFile(t, filepath.Join(f.Root, name), src, 0o644)
	}
	// The marker leaves a file named after its tag when it runs.
	WriteFile(t, filepath.Join(f.Outside, "marker.php"),
		`<?php touch(__DIR__ . "/ran-" . basename($_GET["tag"] ?? "untagged")); echo "marker ran";`, 0o644)
	if err := os.Chmod(f.Outside, 0o777); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user = nobody\ngroup = nogroup\n"
		// Only root bypasses a file's mode: this one is for the workers.
		if err := os.Chmod(filepath.Join(f.Root, "unreadable.php"), 0o600); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Chmod(filepath.Join(f.Root, "unreadable.php"), 0o000); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "php-fpm.conf")
	WriteFile(t, conf, fmt.Sprintf("[global]\npid = %[1]s/fpm.pid\nerror_log = %[2]s\ndaemonize = no\n\n", dir, f.Log)+
		fmt.Sprintf(pools, user, dir), 0o644)
	f.Cmd = exec.Command(bin, "-n", "-y", conf, "-F")
	f.Cmd.Stdout, f.Cmd.Stderr = os.Stderr, os.Stderr
	f.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := f.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = f.Cmd.Wait()
		close(f.Done)
	}()
	t.Cleanup(f.Stop)
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
		case <-f.Done:
			t.Fatalf("php-fpm exited before accepting: %v\n%s", f.Cmd.ProcessState, f.LogText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("php-fpm not accepting on %s within 20s: %v\n%s", address, err, f.LogText())
		}
		time.Sleep(10 * time.Millisecond) // a poll interval, not a wait for the event
	}
}

// Stop ends the php-fpm master this test started, by its PID: SIGTERM,
// SIGKILL after 5 s. The master takes its workers with it.
func (f *FPM) Stop() {
	select {
	case <-f.Done:
		return
	default:
	}
	_ = f.Cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case <-f.Done:
	case <-timer.C:
		_ = f.Cmd.Process.Kill()
		<-f.Done
	}
}

// LogText returns the master's log so far.
func (f *FPM) LogText() string {
	b, _ := os.ReadFile(f.Log)
	return string(b)
}

// WaitLog waits until php-fpm's log has a line containing s, and reports
// whether it came within 10 s: the master writes its log on its own time.
func (f *FPM) WaitLog(s string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !HasLine(f.LogText(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond) // a poll interval, not a wait for the event
	}
	return true
}

// Find returns the path of php-fpm, "" when it is not installed.
func Find() string {
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

// SkipOrFail skips t for reason on a developer's machine and fails it in CI
// (CI=true), where .ci/run installs everything.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but " + reason)
	}
	t.Skip("skipped: " + reason)
}

// WriteFile writes content to path with mode, whatever the umask, making
// its directories.
func WriteFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// HasLine reports whether text has a line containing s.
func HasLine(text, s string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
