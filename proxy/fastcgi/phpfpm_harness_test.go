package fastcgi

import (
	"net/netip"
	"os"
	"os/exec"
	"testing"

	"github.com/upmedic/upmedic/internal/phpfpm"
)

// The PHP-FPM suite runs a real php-fpm (Debian's php8.2-fpm in CI) from
// internal/phpfpm: one static pool on a unix socket, its workers running as
// nobody when the test runs as root. It skips, saying why, where php-fpm is
// not installed, and fails then when CI=true.

// fpm is one running php-fpm, with the names this package's tests use.
type fpm struct {
	*phpfpm.FPM
	dir, root, outside, sock, log string
	cmd                           *exec.Cmd
	done                          chan struct{}
}

var fpmScripts = phpfpm.Scripts

func wrapFPM(f *phpfpm.FPM) *fpm {
	return &fpm{FPM: f, dir: f.Dir, root: f.Root, outside: f.Outside, sock: f.Sock, log: f.Log, cmd: f.Cmd, done: f.Done}
}

// startFPM starts php-fpm with the suite's pool, [test]: static, two
// workers, on the unix socket f.sock, with a status page and ping.
func startFPM(t testing.TB) *fpm { t.Helper(); return wrapFPM(phpfpm.Start(t)) }

// startFPMWith starts php-fpm with pools (see phpfpm.StartWith).
func startFPMWith(t testing.TB, pools, network, address string) *fpm {
	t.Helper()
	return wrapFPM(phpfpm.StartWith(t, pools, network, address))
}

func (f *fpm) stop()                         { f.Stop() }
func (f *fpm) logText() string               { return f.LogText() }
func (f *fpm) waitLog(s string) bool         { return f.WaitLog(s) }
func findFPM() string                        { return phpfpm.Find() }
func skipOrFail(t testing.TB, reason string) { t.Helper(); phpfpm.SkipOrFail(t, reason) }
func writeTestFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	phpfpm.WriteFile(t, path, content, mode)
}
func hasLine(text, s string) bool { return phpfpm.HasLine(text, s) }

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
