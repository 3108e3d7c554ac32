package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/upmedic/upmedic/health"
	"github.com/upmedic/upmedic/internal/phpfpm"
	"github.com/upmedic/upmedic/proxy"
)

// fpmChecker returns a Checker probing a real php-fpm over FastCGI and
// reading its status page, once it is up and has read the page once.
func fpmChecker(t *testing.T, statusPath string) *health.Checker {
	t.Helper()
	f := phpfpm.StartWith(t, phpfpm.DefaultPool, "unix", "fpm.sock")
	c := runChecker(t, health.Settings{Network: "unix", Address: f.Sock, FastCGI: true, Path: "/fpm-ping",
		StatusPath: statusPath, Rise: 1, Interval: time.Hour, Timeout: waitFor, Logger: quiet()})
	select {
	case <-c.WaitUp():
	case <-time.After(waitFor):
		t.Fatalf("checker did not come up: %+v", c.Snapshot())
	}
	// The status page is read right after the probe that flipped it up.
	deadline := time.Now().Add(waitFor)
	for c.Snapshot().Pool.At.IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("no status page read: %+v", c.Snapshot())
		}
		time.Sleep(5 * time.Millisecond) // a poll interval, not a wait for the event
	}
	return c
}

func TestStatusFastCGI(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	stderr := fixedStderr{{At: at, Method: "GET", Path: "/missing.php", Kind: "primary script unknown", Text: "Primary script unknown"}}

	t.Run("pool read", func(t *testing.T) {
		c := fpmChecker(t, "/fpm-status")
		st, raw := getStatusCompact(t, NewHandler(Settings{Upstream: "fastcgi://unix:/run/php.sock", Checker: c, FastCGI: stderr, Logger: quiet()}))
		f := st.FastCGI
		if f == nil || len(f.Stderr) != 1 || f.Stderr[0].Kind != "primary script unknown" || !f.Stderr[0].At.Equal(at) || f.Stderr[0].At.Location() != time.UTC {
			t.Fatalf("fastcgi: %+v\n%s", f, raw)
		}
		if p := f.Pool; p == nil || !p.OK || p.Pool != "test" || p.ProcessManager != "static" || p.TotalProcesses < 1 || p.TotalProcesses > 2 || p.AgeMS < 0 || p.ReadAt.IsZero() {
			t.Fatalf("pool: %+v\n%s", f.Pool, raw)
		}
		for _, key := range []string{`"fastcgi":{"stderr":[{"at":"2026-03-01T11:00:00Z","method":"GET","path":"/missing.php","kind":"primary script unknown","text":"Primary script unknown"}]`, `"listen_queue":0`} {
			if !strings.Contains(raw, key) {
				t.Errorf("/status lacks %s:\n%s", key, raw)
			}
		}
	})
	t.Run("pool read fails", func(t *testing.T) {
		c := fpmChecker(t, "/not-the-status-page")
		st, raw := getStatus(t, NewHandler(Settings{Checker: c, FastCGI: fixedStderr(nil), Logger: quiet()}))
		if f := st.FastCGI; f == nil || f.Stderr == nil || len(f.Stderr) != 0 || f.Pool == nil || f.Pool.OK || f.Pool.Pool != "" {
			t.Fatalf("fastcgi: %+v\n%s", st.FastCGI, raw)
		}
		if st.Health.State != "up" {
			t.Errorf("health %q: a failed status read must not make it down", st.Health.State)
		}
	})
	t.Run("no status path", func(t *testing.T) {
		st, raw := getStatusCompact(t, NewHandler(Settings{Checker: upChecker(t), FastCGI: stderr, Logger: quiet()}))
		if st.FastCGI == nil || st.FastCGI.Pool != nil || !strings.Contains(raw, `"pool":null`) {
			t.Fatalf("fastcgi: %+v\n%s", st.FastCGI, raw)
		}
	})
	t.Run("http upstream", func(t *testing.T) {
		st, raw := getStatus(t, NewHandler(Settings{Checker: upChecker(t), Logger: quiet()}))
		if st.FastCGI != nil || strings.Contains(raw, `"fastcgi"`) {
			t.Fatalf("an HTTP upstream has a fastcgi object:\n%s", raw)
		}
	})
}

func TestPageFastCGI(t *testing.T) {
	c := fpmChecker(t, "/fpm-status")
	stderr := fixedStderr{{At: time.Now(), Method: "GET", Path: "/x.php", Kind: "text", Text: "PHP Warning: <b>x</b>"}}
	code, body := get(t, NewHandler(Settings{Checker: c, FastCGI: stderr, Logger: quiet()}), "/")
	if code != http.StatusOK || !strings.Contains(body, "<h2>PHP-FPM</h2>") || !strings.Contains(body, "pool test: ") ||
		!strings.Contains(body, "1 recent STDERR texts") || strings.Contains(body, "<b>x</b>") {
		t.Errorf("page %d lacks the PHP-FPM card or shows STDERR text:\n%s", code, body)
	}
	_, body = get(t, NewHandler(Settings{Checker: upChecker(t), Logger: quiet()}), "/")
	if strings.Contains(body, "PHP-FPM</h2>") {
		t.Errorf("an HTTP upstream's page has a PHP-FPM card")
	}
}

// getStatusCompact is getStatus with the JSON text compacted.
func getStatusCompact(t *testing.T, h http.Handler) (Status, string) {
	t.Helper()
	st, raw := getStatus(t, h)
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	return st, b.String()
}

// *proxy.Proxy is what serve passes.
var _ FastCGIStderr = (*proxy.Proxy)(nil)
