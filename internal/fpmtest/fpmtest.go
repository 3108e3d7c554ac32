// Package fpmtest starts a real php-fpm for the tests of the packages around
// the FastCGI transport (health, diag/probe, cmd/upmedic), the way
// proxy/fastcgi's own suite does: a configuration of its own in a temporary
// directory, workers running as nobody when the test runs as root. It skips
// where php-fpm is not installed, and fails then when CI=true.
package fpmtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// FPM is one running php-fpm master, started by this test.
type FPM struct {
	Dir  string // config, log, sockets
	Root string // the document root
	Sock string // the pool's unix socket, when it listens on one
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Pool is the default pool: static, two workers, on the unix socket
// Dir/fpm.sock, with ping.path /fpm-ping and pm.status_path /fpm-status.
// %[1]s stands for the user and group lines, %[2]s for Dir.
const Pool = `[test]
%[1]slisten = %[2]s/fpm.sock
listen.mode = 0666
pm = static
pm.max_children = 2
pm.status_path = /fpm-status
ping.path = /fpm-ping
ping.response = pong
`

// Start starts php-fpm with pools (see Pool for its placeholders) and waits
// until network accepts on address (a socket name inside Dir for "unix", or
// host:port). It is stopped, by its PID, at cleanup.
func Start(t testing.TB, pools, network, address string) *FPM {
	t.Helper()
	bin := Find()
	if bin == "" {
		SkipOrFail(t, "php-fpm not installed (.ci/run installs it: apt-get install php8.2-fpm)")
	}
	dir, err := os.MkdirTemp("", "upmedic-fpm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &FPM{Dir: dir, Root: filepath.Join(dir, "root"), Sock: filepath.Join(dir, "fpm.sock"),
		Log: filepath.Join(dir, "fpm.log"), done: make(chan struct{})}
	if err := os.MkdirAll(f.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.Root, "index.php"), []byte(`<?php echo "index";`), 0o644); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user = nobody\ngroup = nogroup\n"
	}
	conf := filepath.Join(dir, "php-fpm.conf")
	text := fmt.Sprintf("[global]\npid = %[1]s/fpm.pid\nerror_log = %[2]s\ndaemonize = no\n\n", dir, f.Log) +
		fmt.Sprintf(pools, user, dir)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
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
		case <-f.done:
			b, _ := os.ReadFile(f.Log)
			t.Fatalf("php-fpm exited before accepting: %v\n%s", f.cmd.ProcessState, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(f.Log)
			t.Fatalf("php-fpm not accepting on %s within 20s: %v\n%s", address, err, b)
		}
		time.Sleep(10 * time.Millisecond) // a poll interval, not a wait for the event
	}
}

// Stop ends the php-fpm master this test started, by its PID: SIGTERM, then
// SIGKILL after 5 s. The master takes its workers with it. Stop may be called
// more than once.
func (f *FPM) Stop() {
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

// Find returns the path of a php-fpm binary, or "".
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
