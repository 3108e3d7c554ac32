package admin

import (
	"math"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/health"
)

// scrape serves GET /metrics on h and parses the text exposition.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %q", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return mfs
}

// sample returns the metric of family name whose labels are exactly
// labels ("k", "v", ...), failing the test if there is none.
func sample(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("no metric family %s", name)
	}
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		match := true
		for i, l := range m.GetLabel() {
			if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
				match = false
			}
		}
		if match {
			return m
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return nil
}

func TestMetrics(t *testing.T) {
	traffic := new(diag.Traffic)
	for range 3 {
		traffic.Done(200, 3*time.Millisecond, time.Now())
	}
	traffic.Done(502, 40*time.Millisecond, time.Now())
	traffic.Done(504, 90*time.Second, time.Now()) // past the last bucket (60s): +Inf only
	traffic.Retried()
	traffic.Retried()
	traffic.Aborted()
	for range 3 {
		traffic.ConnOpened()
	}
	traffic.ConnClosed()
	traffic.Parked(5)
	traffic.Parked(-1)

	journal := new(diag.Journal)
	now := time.Now()
	journal.Record(now, &diag.Diagnosis{Cause: diag.ConnectionRefused, Errno: syscall.ECONNREFUSED}, diag.PhaseConnect, false, nil, nil)
	journal.Record(now, &diag.Diagnosis{Cause: diag.ConnectionRefused, Errno: syscall.ECONNREFUSED}, diag.PhaseConnect, false, nil, nil)
	journal.Record(now, &diag.Diagnosis{Cause: diag.UpstreamStatus, ReceivedStatus: 502}, diag.PhaseHeader, false, nil, nil)

	checker := downChecker(t)
	mfs := scrape(t, NewHandler(Settings{Journal: journal, Traffic: traffic, Checker: checker,
		Breaker: openBreaker(t, time.Hour), Version: "v1.2.3", Logger: quiet()}))

	counters := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"upmedic_requests_total", []string{"code", "200"}, 3},
		{"upmedic_requests_total", []string{"code", "502"}, 1},
		{"upmedic_requests_total", []string{"code", "504"}, 1},
		{"upmedic_diagnoses_total", []string{"cause", "connection_refused"}, 2},
		{"upmedic_diagnoses_total", []string{"cause", "upstream_status"}, 1},
		{"upmedic_diagnoses_total", []string{"cause", "socket_not_found"}, 0},
		{"upmedic_keepalive_retries_total", nil, 2},
		{"upmedic_aborted_responses_total", nil, 1},
	}
	for _, c := range counters {
		if mfs[c.name].GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s is a %v, want a counter", c.name, mfs[c.name].GetType())
		}
		if got := sample(t, mfs, c.name, c.labels...).GetCounter().GetValue(); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := len(mfs["upmedic_requests_total"].GetMetric()); got != 3 {
		t.Errorf("%d upmedic_requests_total series, want 3 (codes seen only)", got)
	}
	if got, want := len(mfs["upmedic_diagnoses_total"].GetMetric()), len(diag.Causes()); got != want {
		t.Errorf("%d upmedic_diagnoses_total series, want one per cause (%d)", got, want)
	}

	gauges := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"upmedic_upstream_up", nil, 0},
		{"upmedic_breaker_state", nil, 2},
		{"upmedic_upstream_open_connections", nil, 2},
		{"upmedic_front_parked_connections", nil, 4},
		{"upmedic_build_info", []string{"version", "v1.2.3"}, 1},
	}
	for _, g := range gauges {
		if got := sample(t, mfs, g.name, g.labels...).GetGauge().GetValue(); got != g.want {
			t.Errorf("%s%v = %v, want %v", g.name, g.labels, got, g.want)
		}
	}

	// The request histogram: 3 × 3ms, 1 × 40ms, 1 × 90s.
	h := sample(t, mfs, "upmedic_request_duration_seconds").GetHistogram()
	if h.GetSampleCount() != 5 || math.Abs(h.GetSampleSum()-(0.009+0.04+90)) > 1e-9 {
		t.Errorf("request histogram count %d sum %v, want 5 and 90.049", h.GetSampleCount(), h.GetSampleSum())
	}
	wantBuckets := map[float64]uint64{0.0025: 0, 0.005: 3, 0.025: 3, 0.05: 4, 30: 4, 60: 4, math.Inf(1): 5}
	if len(h.GetBucket()) != len(diag.HistogramBuckets)+1 { // the text format lists +Inf too
		t.Errorf("%d buckets, want %d and +Inf", len(h.GetBucket()), len(diag.HistogramBuckets))
	}
	seen := 0
	for _, b := range h.GetBucket() {
		if want, ok := wantBuckets[b.GetUpperBound()]; ok {
			seen++
			if b.GetCumulativeCount() != want {
				t.Errorf("le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
	if seen != len(wantBuckets) {
		t.Errorf("found %d of the %d buckets checked", seen, len(wantBuckets))
	}

	// One probe ran.
	if p := sample(t, mfs, "upmedic_probe_duration_seconds").GetHistogram(); p.GetSampleCount() != 1 || p.GetSampleSum() <= 0 {
		t.Errorf("probe histogram count %d sum %v, want 1 and positive", p.GetSampleCount(), p.GetSampleSum())
	}

	// Go runtime and process collectors.
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
}

func TestMetricsUpstreamUp(t *testing.T) {
	tests := []struct {
		name    string
		checker func(t *testing.T) *health.Checker
		want    float64
	}{
		{"unknown", func(*testing.T) *health.Checker { return health.NewChecker(health.Settings{Address: "127.0.0.1:1"}) }, -1},
		{"down", downChecker, 0},
		{"up", upChecker, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mfs := scrape(t, NewHandler(Settings{Checker: tt.checker(t), Logger: quiet()}))
			if got := sample(t, mfs, "upmedic_upstream_up").GetGauge().GetValue(); got != tt.want {
				t.Fatalf("upmedic_upstream_up = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMetricsBreakerState(t *testing.T) {
	b := health.NewBreaker(health.BreakerSettings{Failures: 1, OpenFor: time.Hour, Logger: quiet()})
	h := NewHandler(Settings{Breaker: b, Logger: quiet()})
	if got := sample(t, scrape(t, h), "upmedic_breaker_state").GetGauge().GetValue(); got != 0 {
		t.Fatalf("closed breaker: upmedic_breaker_state = %v, want 0", got)
	}
	b.Do(func() diag.Cause { return diag.ConnectionTimeout })
	if got := sample(t, scrape(t, h), "upmedic_breaker_state").GetGauge().GetValue(); got != 2 {
		t.Fatalf("open breaker: upmedic_breaker_state = %v, want 2", got)
	}
}

func TestMetricsOff(t *testing.T) {
	mfs := scrape(t, NewHandler(Settings{}))
	for _, name := range []string{"upmedic_upstream_up", "upmedic_probe_duration_seconds", "upmedic_breaker_state"} {
		if _, ok := mfs[name]; ok {
			t.Errorf("%s present without a checker or breaker", name)
		}
	}
	if got := sample(t, mfs, "upmedic_request_duration_seconds").GetHistogram().GetSampleCount(); got != 0 {
		t.Errorf("request histogram count %d with no traffic", got)
	}
}

// TestMetricsLint runs Prometheus' own naming and help checks.
func TestMetricsLint(t *testing.T) {
	c := newCollector(Settings{Journal: new(diag.Journal), Traffic: new(diag.Traffic),
		Checker: health.NewChecker(health.Settings{Address: "127.0.0.1:1"}),
		Breaker: health.NewBreaker(health.BreakerSettings{Logger: quiet()})})
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
