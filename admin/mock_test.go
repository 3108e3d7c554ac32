package admin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/health"
	"github.com/upmedic/upmedic/internal/sockfault"
	"github.com/upmedic/upmedic/proxy"
)

// waitFor is how long a test waits on a channel before it fails.
const waitFor = 5 * time.Second

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// flips is a slog.Handler that passes on the state attribute of every
// record, which the health checker logs once per state change.
type flips chan string

func (f flips) Enabled(context.Context, slog.Level) bool { return true }
func (f flips) WithAttrs([]slog.Attr) slog.Handler       { return f }
func (f flips) WithGroup(string) slog.Handler            { return f }

func (f flips) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "state" {
			select {
			case f <- a.Value.String():
			default:
			}
		}
		return true
	})
	return nil
}

// runChecker builds a Checker from s, runs it until the test ends, and
// returns it.
func runChecker(t *testing.T, s health.Settings) *health.Checker {
	t.Helper()
	c := health.NewChecker(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Error("checker did not stop")
		}
	})
	return c
}

// downChecker returns a running Checker that has found its upstream down:
// connection refused.
func downChecker(t *testing.T) *health.Checker {
	t.Helper()
	states := make(flips, 4)
	c := runChecker(t, health.Settings{Address: sockfault.ClosedTCPAddr(t), Fall: 1, Interval: time.Hour,
		Logger: slog.New(states)})
	select {
	case s := <-states:
		if s != "down" {
			t.Fatalf("checker went %s, want down", s)
		}
	case <-time.After(waitFor):
		t.Fatal("checker did not go down")
	}
	return c
}

// upChecker returns a running Checker whose HTTP probe of a test server got
// 200, so it is up.
func upChecker(t *testing.T) *health.Checker {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ping" || r.Header.Get("User-Agent") != "upmedic-health" {
			http.Error(w, "unexpected probe", http.StatusTeapot)
			return
		}
		io.WriteString(w, "pong")
	}))
	t.Cleanup(srv.Close)
	c := runChecker(t, health.Settings{Address: srv.Listener.Addr().String(), Path: "/ping",
		Rise: 1, Interval: time.Hour, Timeout: waitFor, Logger: quiet()})
	select {
	case <-c.WaitUp():
	case <-time.After(waitFor):
		t.Fatalf("checker did not come up: %+v", c.Snapshot())
	}
	return c
}

// openBreaker returns a Breaker opened by one connection_refused, open for
// openFor.
func openBreaker(t *testing.T, openFor time.Duration) *health.Breaker {
	t.Helper()
	b := health.NewBreaker(health.BreakerSettings{Failures: 1, OpenFor: openFor, Logger: quiet()})
	b.Do(func() diag.Cause { return diag.ConnectionRefused })
	if _, _, open := b.Open(); !open {
		t.Fatal("breaker did not open")
	}
	return b
}

// get serves GET path on h and returns the status and body.
func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// fixedTimers reports the same app timers every time.
type fixedTimers proxy.AppTimers

func (f fixedTimers) AppTimers() proxy.AppTimers { return proxy.AppTimers(f) }

// fixedStderr reports the same STDERR lines every time.
type fixedStderr []proxy.StderrLine

func (f fixedStderr) FastCGIStderr() []proxy.StderrLine { return f }
