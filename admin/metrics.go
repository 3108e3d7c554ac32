package admin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/health"
)

// collector is a prometheus.Collector that reads upmedic's counters at
// scrape time, so the proxy's hot path touches nothing but atomics.
type collector struct {
	traffic *diag.Traffic
	journal *diag.Journal
	checker *health.Checker // nil: no health metrics
	breaker *health.Breaker // nil: no breaker metric
	version string

	requests, diagnoses, upstreamUp, breakerState, requestDuration, probeDuration,
	openConns, parked, retries, aborted, clientBodies, rejected, buildInfo *prometheus.Desc
}

// The values of upmedic_upstream_up and upmedic_breaker_state.
const (
	upstreamUnknown = -1
	upstreamDown    = 0
	upstreamUp      = 1

	breakerClosed   = 0
	breakerHalfOpen = 1
	breakerOpen     = 2
)

func newCollector(s Settings) *collector {
	return &collector{
		traffic: s.Traffic,
		journal: s.Journal,
		checker: s.Checker,
		breaker: s.Breaker,
		version: s.Version,

		requests: prometheus.NewDesc("upmedic_requests_total",
			"Requests answered, by HTTP status code (0: outside 100-599).", []string{"code"}, nil),
		diagnoses: prometheus.NewDesc("upmedic_diagnoses_total",
			"Diagnoses recorded, by cause.", []string{"cause"}, nil),
		upstreamUp: prometheus.NewDesc("upmedic_upstream_up",
			"Active health check state: 1 up, 0 down, -1 unknown (not enough probes yet). Absent when health checks are off.", nil, nil),
		breakerState: prometheus.NewDesc("upmedic_breaker_state",
			"Circuit breaker state: 0 closed, 1 half-open, 2 open.", nil, nil),
		requestDuration: prometheus.NewDesc("upmedic_request_duration_seconds",
			"Time from receiving a request to answering it.", nil, nil),
		probeDuration: prometheus.NewDesc("upmedic_probe_duration_seconds",
			"Duration of active health probes, failed ones included.", nil, nil),
		openConns: prometheus.NewDesc("upmedic_upstream_open_connections",
			"Open connections to the upstream.", nil, nil),
		parked: prometheus.NewDesc("upmedic_front_parked_connections",
			"Keep-alive connections from the front idle for over 1s, waiting for a request without buffers.", nil, nil),
		retries: prometheus.NewDesc("upmedic_keepalive_retries_total",
			"Requests retried on a fresh connection after a reused one turned out closed by the upstream.", nil, nil),
		aborted: prometheus.NewDesc("upmedic_aborted_responses_total",
			"Responses whose body failed after the status had gone downstream, so the connection was cut.", nil, nil),
		clientBodies: prometheus.NewDesc("upmedic_upstream_client_body_connections",
			"Open upstream connections carrying a request body the client is still sending.", nil, nil),
		rejected: prometheus.NewDesc("upmedic_rejected_requests_total",
			"Requests upmedic refused and never forwarded, by the rule they broke.", []string{"rule"}, nil),
		buildInfo: prometheus.NewDesc("upmedic_build_info",
			"Always 1; the version label is upmedic's version.", []string{"version"}, nil),
	}
}

// Describe sends the descriptors of every metric Collect may send.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.diagnoses
	ch <- c.requestDuration
	ch <- c.openConns
	ch <- c.parked
	ch <- c.retries
	ch <- c.aborted
	ch <- c.clientBodies
	ch <- c.rejected
	ch <- c.buildInfo
	if c.checker != nil {
		ch <- c.upstreamUp
		ch <- c.probeDuration
	}
	if c.breaker != nil {
		ch <- c.breakerState
	}
}

// Collect reads the counters now.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, sc := range c.traffic.Statuses() {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(sc.Count), strconv.Itoa(sc.Status))
	}
	// Every cause, seen or not, so rate() and absent-series alerts work
	// from the first scrape.
	for _, cause := range diag.Causes() {
		ch <- prometheus.MustNewConstMetric(c.diagnoses, prometheus.CounterValue, float64(c.journal.Count(cause)), cause.String())
	}
	ch <- constHistogram(c.requestDuration, c.traffic.Latency())
	ch <- prometheus.MustNewConstMetric(c.openConns, prometheus.GaugeValue, float64(c.traffic.OpenConns()))
	ch <- prometheus.MustNewConstMetric(c.parked, prometheus.GaugeValue, float64(c.traffic.ParkedConns()))
	ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(c.traffic.Retries()))
	ch <- prometheus.MustNewConstMetric(c.aborted, prometheus.CounterValue, float64(c.traffic.Aborts()))
	ch <- prometheus.MustNewConstMetric(c.clientBodies, prometheus.GaugeValue, float64(c.traffic.ClientBodies()))
	for rule, n := range c.traffic.Rejections() {
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(n), rule)
	}
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, c.version)

	if c.checker != nil {
		up := upstreamUnknown
		switch c.checker.State() {
		case health.Up:
			up = upstreamUp
		case health.Down:
			up = upstreamDown
		}
		ch <- prometheus.MustNewConstMetric(c.upstreamUp, prometheus.GaugeValue, float64(up))
		ch <- constHistogram(c.probeDuration, c.checker.ProbeLatency())
	}
	if c.breaker != nil {
		state := breakerClosed
		switch c.breaker.State().State {
		case "half-open":
			state = breakerHalfOpen
		case "open":
			state = breakerOpen
		}
		ch <- prometheus.MustNewConstMetric(c.breakerState, prometheus.GaugeValue, float64(state))
	}
}

// constHistogram turns h into a Prometheus histogram with le buckets
// diag.HistogramBuckets.
func constHistogram(desc *prometheus.Desc, h *diag.Histogram) prometheus.Metric {
	cumulative, total, sum := h.Snapshot()
	buckets := make(map[float64]uint64, len(cumulative))
	for i, n := range cumulative {
		buckets[diag.HistogramBuckets[i]] = n
	}
	return prometheus.MustNewConstHistogram(desc, total, sum, buckets)
}
