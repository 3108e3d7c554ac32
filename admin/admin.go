// Package admin serves upmedic's admin API on net/http: a status page for
// people, liveness, readiness, a JSON status report and Prometheus metrics.
// It is read-only (GET and HEAD) and off the hot path: it reads the proxy's
// counters (diag.Traffic, diag.Journal) and the health state
// (health.Checker, health.Breaker) only when asked.
package admin

import (
	"encoding/json"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/health"
)

// Settings configures the admin API. Every field may be left zero.
type Settings struct {
	// Upstream is the upstream as configured, shown in /status. Empty shows
	// an empty string.
	Upstream string
	// Journal holds the diagnoses counted in /status and /metrics. Nil means
	// none were recorded.
	Journal *diag.Journal
	// Traffic holds the request counters of /status and /metrics. Nil means
	// all zero.
	Traffic *diag.Traffic
	// Checker is the active health checker. Nil means health checks are
	// off: /readyz ignores health, /status reports state "off" and /metrics
	// has no upmedic_upstream_up or upmedic_probe_duration_seconds.
	Checker *health.Checker
	// Breaker is the circuit breaker. Nil means none: /readyz ignores it,
	// /status reports state "off" and /metrics has no upmedic_breaker_state.
	Breaker *health.Breaker
	// Timers is what the proxy learned of the app's own timers, shown in
	// /status as app_timers. Nil shows none learned.
	Timers Timers
	// Logger gets errors from serving /metrics. Nil means slog.Default().
	Logger *slog.Logger
	// Version is upmedic's version, shown in /status and in
	// upmedic_build_info. Empty shows an empty string.
	Version string
	// Started is when upmedic started: a rate over the last minute or hour
	// counts from it while upmedic is younger than that. Zero means the
	// windows are taken as full.
	Started time.Time
	// Config lists the settings in effect, shown in /status and on the
	// page as given. Nil shows none.
	Config []ConfigValue
	// FastCGI is set when the upstream is FastCGI (PHP-FPM): /status then
	// has a fastcgi object with PHP-FPM's recent STDERR texts, from it, and
	// the last pool status the Checker read. Nil means an HTTP upstream: no
	// fastcgi object.
	FastCGI FastCGIStderr
}

// handler serves the admin routes. It holds no state of its own.
type handler struct {
	s    Settings
	mux  *http.ServeMux
	tmpl *template.Template // the status page
	csp  string             // the status page's Content-Security-Policy
}

// NewHandler returns the admin API:
//
//	GET /         the status page for people (HTML)
//	GET /healthz  200 "ok" while upmedic serves
//	GET /readyz   200 "ready", or 503 with a one-line reason
//	GET /status   the Status document as JSON
//	GET /metrics  Prometheus text exposition
//
// Every route also answers HEAD; any other method gets 405: the admin API
// changes nothing. Each handler returned has its own Prometheus registry;
// it is safe for concurrent use.
func NewHandler(s Settings) http.Handler {
	if s.Journal == nil {
		s.Journal = new(diag.Journal)
	}
	if s.Traffic == nil {
		s.Traffic = new(diag.Traffic)
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	h := &handler{s: s, mux: http.NewServeMux(), tmpl: pageTemplate(), csp: pageCSP()}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.Logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})

	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	h.mux.HandleFunc("GET /{$}", h.page)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.HandleFunc("GET /status", h.status)
	h.mux.Handle("GET /metrics", metrics)
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeText(w, http.StatusMethodNotAllowed, "405 method not allowed: the admin API is read-only (GET, HEAD)")
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *handler) readyz(w http.ResponseWriter, _ *http.Request) {
	if reason := h.notReady(time.Now()); reason != "" {
		writeText(w, http.StatusServiceUnavailable, reason)
		return
	}
	writeText(w, http.StatusOK, "ready")
}

// notReady returns why upmedic should not get traffic, "" when it should:
// the health state is Up (or checks are off) and the breaker is not open.
//
// A half-open breaker is ready: it lets its trial through only when a
// request comes, and a load balancer that kept traffic away until the
// breaker closed would keep it open for ever.
func (h *handler) notReady(now time.Time) string {
	var reasons []string
	if c := h.s.Checker; c != nil {
		switch snap := c.Snapshot(); snap.State {
		case health.Down:
			reasons = append(reasons, "upstream down: "+c.LastCause().String())
		case health.Unknown:
			reasons = append(reasons, unknownReason(&snap))
		}
	}
	if b := h.s.Breaker; b != nil {
		// State, not the lock-free Open: it also moves a breaker whose
		// OpenFor has passed to half-open.
		if st := b.State(); st.State == "open" {
			reasons = append(reasons, "breaker open: tripped by "+st.TrippedBy.String()+
				", next try in "+roundUp(st.NextTry.Sub(now)).String())
		}
	}
	return strings.Join(reasons, "; ")
}

// unknownReason explains an Unknown health state.
func unknownReason(snap *health.CheckSnapshot) string {
	switch {
	case snap.LastProbe.At.IsZero():
		return "upstream state unknown: no probe has run yet"
	case snap.ConsecutiveSuccesses == 0:
		return "upstream state unknown: no probe has succeeded yet, last probe: " + snap.LastProbe.Cause.String()
	}
	return "upstream state unknown: " + strconv.Itoa(snap.ConsecutiveSuccesses) + " of " +
		strconv.Itoa(snap.Rise) + " successful probes needed"
}

// roundUp rounds d up to a whole second, so "next try in 0s" means now.
func roundUp(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Second - 1) / time.Second * time.Second
}

func (h *handler) status(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(h.report(time.Now())) // only fails when the client left
}

func writeText(w http.ResponseWriter, status int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, line+"\n")
}
