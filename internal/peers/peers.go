// Package peers names the real programs upmedic's tests drive (nginx,
// gunicorn, php-fpm, Node.js, buildah, the benchmark's contenders), finds
// them on this machine, and says what skips without each. A test that needs
// a missing one calls Need and is skipped, saying why and how to get it; with
// CI=true (.ci/run installs them all) it fails instead, so that a skipped
// suite never passes for a tested one there. `go run ./internal/peers/list`,
// the first step of the README's test command, prints the whole table.
package peers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Peer is one program the tests drive.
type Peer struct {
	// Name is the name tests need it by ("php-fpm").
	Name string
	// Programs are looked up in order, the first found wins: an absolute
	// path, or a name searched on PATH and then in the sbin directories
	// (which a non-root PATH lacks).
	Programs []string
	// Requires are absolute paths it cannot run without (Debian's gunicorn
	// runs /usr/bin/python3).
	Requires []string
	// Package is the Debian package that installs it.
	Package string
	// Suites says what skips without it; empty when no test uses it yet.
	Suites string
}

// All returns every peer, in the order the table lists them. A peer with
// Suites must be present in CI: .ci/run installs its Package unless the
// machine ships it (systemd).
func All() []Peer {
	return []Peer{
		{Name: "nginx", Programs: []string{"nginx"}, Package: "nginx",
			Suites: "e2e: every scenario behind real nginx (TestScenarios); bench -smoke"},
		{Name: "gunicorn", Programs: []string{"/usr/bin/gunicorn", "gunicorn"}, Requires: []string{"/usr/bin/python3"}, Package: "gunicorn",
			Suites: "e2e: the gunicorn scenarios (healthy app, socket 0600, worker timeout, the kill timer named, 40 KiB of Set-Cookie, slow view) and the keep-alive idle limit learned (TestKeepAliveIdleLimitLearned)"},
		{Name: "php-fpm", Programs: []string{"php-fpm8.2", "php-fpm8.3", "php-fpm8.4", "php-fpm"}, Package: "php8.2-fpm",
			Suites: "e2e: the PHP-FPM scenario"},
		{Name: "node", Programs: []string{"/usr/bin/node", "node"}, Package: "nodejs",
			Suites: "e2e: the Node.js scenarios (bodies cut mid-way, upmedic stopped, WebSocket, server-sent events) and TestBinaryInEmptyChroot"},
		{Name: "buildah", Programs: []string{"buildah"}, Package: "buildah",
			Suites: "e2e: the image's final stage built and inspected (TestImageFinalStage)"},
		{Name: "systemd-analyze", Programs: []string{"systemd-analyze"}, Package: "systemd",
			Suites: "e2e: systemd's verdict on the unit (TestSystemdUnit: verify, security)"},
		{Name: "haproxy", Programs: []string{"haproxy"}, Package: "haproxy", Suites: "bench -smoke"},
		{Name: "caddy", Programs: []string{"caddy"}, Package: "caddy", Suites: "bench -smoke"},
		{Name: "wrk", Programs: []string{"wrk"}, Package: "wrk", Suites: "bench -smoke"},
		{Name: "chromium", Programs: []string{"chromium"}, Package: "chromium"},
	}
}

// RootSuites says what skips when the tests do not run as root.
const RootSuites = "e2e: nginx with www-data workers, the image and the chroot; " +
	"cmd, proxy, diag: upmedic as another uid (socket modes and permissions), network namespaces"

// InCI reports whether the tests run in CI (CI=true), where every peer must
// be present.
func InCI() bool { return os.Getenv("CI") == "true" }

// Get returns the peer named name. It panics on a name not in All: a test
// that needs an unlisted program is a bug.
func Get(name string) Peer {
	for _, p := range All() {
		if p.Name == name {
			return p
		}
	}
	panic("BUG: peers: no peer named " + name)
}

// Find returns the path of the peer's program, or "" when it (or a program
// it requires) is not installed.
func (p Peer) Find() string {
	for _, r := range p.Requires {
		if !executable(r) {
			return ""
		}
	}
	for _, name := range p.Programs {
		if path := lookPath(name); path != "" {
			return path
		}
	}
	return ""
}

// lookPath finds an executable regular file by absolute path, on PATH, or in
// the sbin directories.
func lookPath(name string) string {
	if filepath.IsAbs(name) {
		if executable(name) {
			return name
		}
		return ""
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if p := filepath.Join(dir, name); executable(p) {
			return p
		}
	}
	return ""
}

// executable reports whether path is a regular file someone may execute (not
// /dev/null bound over a program to hide it).
func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Need returns the paths of the named peers, by name. When one is missing it
// skips t, naming what is missing, what it skips and the apt-get line; with
// CI=true it fails t instead.
func Need(t testing.TB, names ...string) map[string]string {
	t.Helper()
	found := make(map[string]string, len(names))
	var missing, pkgs []string
	for _, n := range names {
		p := Get(n)
		if path := p.Find(); path != "" {
			found[n] = path
			continue
		}
		missing = append(missing, n)
		pkgs = append(pkgs, p.Package)
	}
	if len(missing) > 0 {
		SkipOrFail(t, strings.Join(missing, ", ")+" not installed (apt-get install "+strings.Join(pkgs, " ")+
			"; `go run ./internal/peers/list` shows every peer)")
	}
	return found
}

// NeedRoot skips t, saying why it needs root, unless it runs as root; with
// CI=true (CI runs as root) it fails t instead.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root: "+why+"; CI runs as root")
	}
}

// SkipOrFail skips t for reason, or fails it with CI=true.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatal("CI=true but " + reason)
	}
	t.Skip("skipped: " + reason)
}
