//go:build unix

package main

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/upmedic/upmedic/internal/sockfault"
)

const (
	probeHelperEnv  = "UPMEDIC_TEST_PROBE_HELPER" // set: run the args as upmedic would, then exit
	probeHelperArgs = "UPMEDIC_TEST_PROBE_ARGS"   // JSON: the command line and the environment
)

// TestProbeHelperProcess is not a test: it is upmedic run in a child
// process by runProbeHelper, because --as changes the user of the whole
// process, for good.
func TestProbeHelperProcess(t *testing.T) {
	if os.Getenv(probeHelperEnv) != "1" {
		return
	}
	var in struct{ Args, Env []string }
	if err := json.Unmarshal([]byte(os.Getenv(probeHelperArgs)), &in); err != nil {
		os.Exit(99)
	}
	os.Exit(run(in.Args, in.Env, strings.NewReader(""), os.Stdout, os.Stdout))
}

// runProbeHelper runs upmedic's command line args with environment env in a
// child process (as cred's user when cred is not nil) and returns its exit
// code and output.
func runProbeHelper(t *testing.T, cred *syscall.Credential, env []string, args ...string) (int, string) {
	t.Helper()
	in, err := json.Marshal(struct{ Args, Env []string }{args, env})
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		bin = publicCopy(t, bin)
	}
	cmd := exec.Command(bin, "-test.run=^TestProbeHelperProcess$")
	cmd.Env = append(os.Environ(), probeHelperEnv+"=1", probeHelperArgs+"="+string(in),
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Dir = filepath.Dir(bin)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		if exit.ExitCode() == 99 {
			t.Fatalf("helper could not read its arguments:\n%s", out)
		}
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("run helper: %v\n%s", err, out)
	return 0, ""
}

// publicDir returns a 0755 directory every user can reach.
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "upmedic-diag-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by other users; set TMPDIR to a world-searchable directory", d)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return dir
}

// publicCopy copies the test binary where another user may run it.
func publicCopy(t *testing.T, bin string) string {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(publicDir(t), "upmedic.test")
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// socketOwned listens on a unix socket in a public directory and gives it
// uid, gid and mode, as an app server run by another user would.
func socketOwned(t *testing.T, uid, gid int, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(publicDir(t), "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDiagProbeAs runs upmedic diag probe as root against real sockets of
// other users, with --as a user that may or may not connect, and checks the
// verdict, the identity the report names and the exit code.
func TestDiagProbeAs(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: --as changes to uid 65534, and root itself bypasses file modes")
	}
	const nobody, appUID, appGID = 65534, 4100, 4200
	private := socketOwned(t, appUID, appGID, 0o660) // the app's, group-writable
	open := socketOwned(t, appUID, appGID, 0o666)
	nginxConf := filepath.Join(t.TempDir(), "nginx.conf")
	if err := os.WriteFile(nginxConf, []byte("user www-data;\nevents {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		out  []string
	}{
		{"as nobody, not in the socket's group", nil, []string{"--as", "nobody", "unix:" + private}, 1, []string{
			"as        uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)",
			"FAIL  socket_permission_denied: nobody may not connect to " + private + ": no write permission on the socket (EACCES)",
			"usermod -aG 4200 nobody", "not healthy: 1 problem"}},
		{"as uid 65534 with the socket's group", nil, []string{"--as", "65534:4200", "unix:" + private}, 0, []string{
			"as        uid=65534(nobody) gid=4200", "connect   ok", "\nhealthy\n"}},
		{"flags after the upstream", nil, []string{"unix:" + open, "--as", "65534", "--json"}, 0, []string{
			`"uid": 65534`, `"healthy": true`}},
		{"the argument wins over UPMEDIC_UPSTREAM", []string{"UPMEDIC_UPSTREAM=" + sockfault.ClosedTCPAddr(t)},
			[]string{"--as", "nobody", "unix:" + open}, 0, []string{"upmedic diag probe: unix:" + open}},
		{"UPMEDIC_UPSTREAM when no argument", []string{"UPMEDIC_UPSTREAM=unix:" + private}, []string{"--as", "nobody"}, 1, []string{
			"socket_permission_denied"}},
		{"tcp as nobody", nil, []string{"--as", "nobody", sockfault.ClosedTCPAddr(t)}, 1, []string{
			"as        uid=65534(nobody)", "FAIL  connection_refused"}},
		{"as root: a warning naming the users to test as", nil, []string{"--conf", nginxConf, "unix:" + private}, 0, []string{
			"as        uid=0(root)",
			"WARN  ran as root: socket permissions were not tested",
			"upmedic diag probe --as www-data unix:" + private + "   # nginx's workers, user in " + nginxConf + ":1",
			"upmedic diag probe --as <upmedic's user> unix:" + private,
			"healthy, with 1 warning"}},
		{"unknown user", nil, []string{"--as", "no-such-user-x", "unix:" + open}, 2, []string{`--as "no-such-user-x": no user "no-such-user-x"`}},
		{"unknown group", nil, []string{"--as", "nobody:no-such-group-x", "unix:" + open}, 2, []string{`no group "no-such-group-x"`}},
		{"no upstream", nil, []string{"--as", "nobody"}, 2, []string{"which upstream? Give it as an argument"}},
		{"bad upstream", nil, []string{"https://app:443"}, 2, []string{`upstream "https://app:443": TLS upstreams are not supported`}},
		{"two upstreams", nil, []string{"unix:" + open, "unix:" + private}, 2, []string{"one upstream at most"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runProbeHelper(t, nil, tc.env, append([]string{"diag", "probe"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			for _, s := range tc.out {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}

	t.Run("not root", func(t *testing.T) {
		code, out := runProbeHelper(t, &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}, nil,
			"diag", "probe", "--as", "root", "unix:"+open)
		if code != 2 || !strings.Contains(out, "--as root: only root may act as another user: run it with sudo") {
			t.Errorf("exit %d:\n%s", code, out)
		}
		// As oneself, --as needs no privilege.
		code, out = runProbeHelper(t, &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}, nil,
			"diag", "probe", "--as", "65534", "unix:"+open)
		if code != 0 || !strings.Contains(out, "uid=65534(nobody)") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}

func TestLookupIdentity(t *testing.T) {
	for _, tc := range []struct {
		spec     string
		uid, gid int
		name     string
	}{
		{"nobody", 65534, 65534, "nobody"},
		{"65534", 65534, 65534, "nobody"},
		{"4242", 4242, 4242, "4242"},
		{"65532:65532", 65532, 65532, "65532"},
		{"nobody:4200", 65534, 4200, "nobody"},
		{"root:nogroup", 0, 65534, "root"},
	} {
		id, err := lookupIdentity(tc.spec)
		if err != nil || id.uid != tc.uid || id.gid != tc.gid || id.name != tc.name || !slices.Contains(id.groups, tc.gid) {
			t.Errorf("lookupIdentity(%q) = %+v, %v", tc.spec, id, err)
		}
	}
	for _, spec := range []string{"", ":1", "nobody:", "-1", "no-such-user-x"} {
		if id, err := lookupIdentity(spec); err == nil {
			t.Errorf("lookupIdentity(%q) = %+v, no error", spec, id)
		}
	}
}
