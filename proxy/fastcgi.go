package proxy

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/upmedic/upmedic/proxy/fastcgi"
)

// FastCGI configures a FastCGI upstream (PHP-FPM): what the CGI parameters
// of a request are built from. Settings.FastCGI set makes the proxy speak
// FastCGI to the upstream instead of HTTP.
type FastCGI struct {
	// Root is the document root as PHP-FPM sees it, an absolute path:
	// DOCUMENT_ROOT, and the directory no SCRIPT_FILENAME leaves.
	Root string
	// Index is the script a path ending in '/' runs. Empty means
	// "index.php".
	Index string
	// FrontController is the script a path naming no .php script runs
	// ("/index.php", as nginx's `try_files $uri /index.php`); empty means
	// such a path is answered 404 without running anything.
	FrontController string
	// Trusted are the front addresses, besides loopback and unix sockets,
	// whose X-Real-IP and X-Forwarded-Proto are believed.
	Trusted []netip.Prefix
	// Pool, when set, reports PHP-FPM's pool status (pm.status_path, read by
	// the health checker), so that a 504 can say the request waited for a
	// worker. Nil means no pool status.
	Pool PoolState
}

// PoolState is what the proxy asks of whoever reads PHP-FPM's status page
// (*health.Checker). Its methods must not allocate.
type PoolState interface {
	// PoolStatus returns the last status page read and when it was read;
	// ok is false when none was read yet or the last read failed.
	PoolStatus() (st fastcgi.PoolStatus, at time.Time, ok bool)
}

// CheckFastCGI reports what is wrong with f, naming the setting.
func CheckFastCGI(f *FastCGI) error {
	_, err := fastcgi.NewResolver(f.Root, f.Index, f.FrontController)
	return err
}

// StderrLine is one text PHP-FPM wrote to a request's STDERR, as /status
// shows it.
type StderrLine struct {
	At     time.Time `json:"at"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	// Kind is what upmedic recognized in it: "primary script unknown",
	// "text", ...
	Kind string `json:"kind"`
	// Script is the script path PHP-FPM named, if any.
	Script string `json:"script,omitempty"`
	Text   string `json:"text"`
}

// stderrRing keeps the most recent STDERR texts.
type stderrRing struct {
	mu    sync.Mutex
	lines []StderrLine
	next  int
	full  bool
}

// FastCGIStderr returns the most recent STDERR texts of PHP-FPM, oldest
// first; nil for an HTTP upstream.
func (p *Proxy) FastCGIStderr() []StderrLine { return nil }

var errFastCGINotYet = errors.New("proxy: FastCGI transport not wired yet")
