package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/health"
)

func TestHealthz(t *testing.T) {
	h := NewHandler(Settings{Checker: health.NewChecker(health.Settings{Address: "127.0.0.1:1"}), Logger: quiet()})
	code, body := get(t, h, "/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /healthz = %d %q, want 200 \"ok\\n\"", code, body)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/healthz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz = %d, want 405", rec.Code)
	}
	if code, _ := get(t, h, "/nope"); code != http.StatusNotFound {
		t.Fatalf("GET /nope = %d, want 404", code)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q, want no-store", cc)
	}
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name     string
		settings func(t *testing.T) Settings
		code     int
		body     string
	}{
		{"health checks off, no breaker", func(*testing.T) Settings { return Settings{} },
			200, "ready\n"},
		{"unknown", func(*testing.T) Settings {
			return Settings{Checker: health.NewChecker(health.Settings{Address: "127.0.0.1:1"})}
		}, 503, "upstream state unknown: no probe has run yet\n"},
		{"down", func(t *testing.T) Settings { return Settings{Checker: downChecker(t)} },
			503, "upstream down: connection_refused\n"},
		{"up, breaker closed", func(t *testing.T) Settings {
			return Settings{Checker: upChecker(t), Breaker: health.NewBreaker(health.BreakerSettings{Logger: quiet()})}
		}, 200, "ready\n"},
		{"up, breaker open", func(t *testing.T) Settings {
			return Settings{Checker: upChecker(t), Breaker: openBreaker(t, time.Hour)}
		}, 503, "breaker open: tripped by connection_refused, next try in 1h0m0s\n"},
		{"down, breaker open", func(t *testing.T) Settings {
			return Settings{Checker: downChecker(t), Breaker: openBreaker(t, time.Hour)}
		}, 503, "upstream down: connection_refused; breaker open: tripped by connection_refused, next try in 1h0m0s\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.settings(t)
			s.Logger = quiet()
			code, body := get(t, NewHandler(s), "/readyz")
			if code != tt.code || body != tt.body {
				t.Fatalf("GET /readyz = %d %q, want %d %q", code, body, tt.code, tt.body)
			}
		})
	}
}

// TestReadyzBreakerCountdown moves time with synctest: the reason counts
// down, and once OpenFor has passed the half-open breaker is ready, so a
// load balancer sends the request that becomes its trial.
func TestReadyzBreakerCountdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := openBreaker(t, 4*time.Second)
		h := NewHandler(Settings{Breaker: b, Logger: quiet()})
		want := []string{
			"breaker open: tripped by connection_refused, next try in 4s\n",
			"breaker open: tripped by connection_refused, next try in 3s\n",
			"breaker open: tripped by connection_refused, next try in 2s\n",
		}
		for _, w := range want {
			if code, body := get(t, h, "/readyz"); code != 503 || body != w {
				t.Fatalf("GET /readyz = %d %q, want 503 %q", code, body, w)
			}
			time.Sleep(time.Second)
		}
		time.Sleep(2 * time.Second)
		if code, body := get(t, h, "/readyz"); code != 200 || body != "ready\n" {
			t.Fatalf("GET /readyz after OpenFor = %d %q, want 200 ready", code, body)
		}
		if got := b.State().State; got != "half-open" {
			t.Fatalf("breaker %s after OpenFor, want half-open", got)
		}
		b.Do(func() diag.Cause { return diag.ConnectionTerminated }) // the trial fails
		if code, body := get(t, h, "/readyz"); code != 503 ||
			body != "breaker open: tripped by connection_terminated, next try in 4s\n" {
			t.Fatalf("GET /readyz after a failed trial = %d %q", code, body)
		}
	})
}

func TestUnknownReason(t *testing.T) {
	tests := []struct {
		name string
		snap health.CheckSnapshot
		want string
	}{
		{"no probe", health.CheckSnapshot{Rise: 2},
			"upstream state unknown: no probe has run yet"},
		{"failed", health.CheckSnapshot{Rise: 2, ConsecutiveFailures: 1,
			LastProbe: health.ProbeResult{At: time.Now(), Cause: diag.ConnectionRefused}},
			"upstream state unknown: no probe has succeeded yet, last probe: connection_refused"},
		{"rising", health.CheckSnapshot{Rise: 3, ConsecutiveSuccesses: 2,
			LastProbe: health.ProbeResult{At: time.Now(), OK: true}},
			"upstream state unknown: 2 of 3 successful probes needed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unknownReason(&tt.snap); got != tt.want {
				t.Fatalf("unknownReason = %q, want %q", got, tt.want)
			}
		})
	}
}
