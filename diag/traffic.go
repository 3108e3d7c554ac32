package diag

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Traffic counts proxied requests by status and times them, since start and
// over the last minute and hour. Its zero value is ready to use; it is safe
// for concurrent use and must not be copied. Its counting methods allocate
// nothing and take no lock, so the proxy can call them on every request. Its
// memory is fixed: about 100 KB, whatever the traffic.
type Traffic struct {
	byStatus  [600]atomic.Uint64
	latency   Histogram
	openConns atomic.Int64
	parked    atomic.Int64
	retries   atomic.Uint64
	aborted   atomic.Uint64

	// fine counts every answered request by duration in the fine latency
	// buckets, since start; secs and mins snapshot it (see ring).
	fine [latencyBuckets]atomic.Uint64
	secs ring[[latencyBuckets]atomic.Uint64]
	mins ring[[latencyBuckets]atomic.Uint64]

	clientBodies atomic.Int64 // upstream connections carrying a body the client still sends

	rejectMu sync.Mutex        // guards rejected
	rejected map[string]uint64 // requests upmedic refused, by the rule they broke
}

// Done counts one request answered at time at with status code, which took
// d. A nil Traffic counts nothing.
func (t *Traffic) Done(status int, d time.Duration, at time.Time) {
	if t == nil {
		return
	}
	if status < 100 || status >= len(t.byStatus) {
		status = 0
	}
	t.byStatus[status].Add(1)
	t.latency.Observe(d)
	t.secs.tick(secondOf(at), &t.fine)
	t.mins.tick(minuteOf(at), &t.fine)
	t.fine[latencyBucket(d)].Add(1)
}

// TrafficWindow is what a Traffic counted from From until the time asked.
type TrafficWindow struct {
	// From is when the window begins: a whole second or minute.
	From time.Time
	// Latency counts the requests answered in the window by duration; its
	// Total is their number.
	Latency LatencyCounts
}

// TrafficHistory is what a Traffic counted over the last minute and the
// last hour, in whole units: the last minute is the 59 seconds before the
// current one and the current one so far, the last hour likewise in
// minutes.
type TrafficHistory struct {
	LastMinute TrafficWindow
	LastHour   TrafficWindow
	// Minutes counts the requests answered in each minute of LastHour,
	// oldest first: Minutes[i] began i minutes after LastHour.From, and the
	// last is the current minute so far.
	Minutes [ringUnits]uint64
}

// History returns what was counted over the last minute and hour before
// now. It allocates; it is for the admin API, not the hot path.
func (t *Traffic) History(now time.Time) TrafficHistory {
	sec, minute := secondOf(now), minuteOf(now)
	t.secs.tick(sec, &t.fine)
	t.mins.tick(minute, &t.fine)
	sb := t.secs.bounds(sec, &t.fine)
	mb := t.mins.bounds(minute, &t.fine)
	h := TrafficHistory{
		LastMinute: TrafficWindow{From: unitStart(sec-ringUnits+1, time.Second)},
		LastHour:   TrafficWindow{From: unitStart(minute-ringUnits+1, time.Minute)},
	}
	for k := range latencyBuckets {
		h.LastMinute.Latency.add(k, sb[ringUnits][k]-sb[0][k])
		h.LastHour.Latency.add(k, mb[ringUnits][k]-mb[0][k])
		for j := range ringUnits {
			h.Minutes[j] += mb[j+1][k] - mb[j][k]
		}
	}
	return h
}

// ConnOpened and ConnClosed track the number of open upstream connections.
func (t *Traffic) ConnOpened() {
	if t != nil {
		t.openConns.Add(1)
	}
}

// ConnClosed is the counterpart of ConnOpened.
func (t *Traffic) ConnClosed() {
	if t != nil {
		t.openConns.Add(-1)
	}
}

// Parked adds n (negative: removes) to the number of parked front
// connections: keep-alive connections from the front waiting, without
// buffers, for their next request.
func (t *Traffic) Parked(n int) {
	if t != nil {
		t.parked.Add(int64(n))
	}
}

// Retried counts one keep-alive race retry: a reused idle connection the
// upstream had closed, replaced by a fresh one.
func (t *Traffic) Retried() {
	if t != nil {
		t.retries.Add(1)
	}
}

// Aborted counts one response whose body failed after its status went
// downstream, so the downstream connection was cut.
func (t *Traffic) Aborted() {
	if t != nil {
		t.aborted.Add(1)
	}
}

// ClientBody adds n (negative: removes) to the upstream connections busy
// sending a request body the client is still streaming.
func (t *Traffic) ClientBody(n int) {
	if t != nil {
		t.clientBodies.Add(int64(n))
	}
}

// ClientBodies returns the upstream connections busy sending a request body
// the client is still streaming.
func (t *Traffic) ClientBodies() int64 { return t.clientBodies.Load() }

// Rejected counts one request refused for breaking rule (a short token such
// as "bare-lf" or "client-body-timeout"). It is off the hot path: it takes a
// lock and may allocate.
func (t *Traffic) Rejected(rule string) {
	if t == nil {
		return
	}
	t.rejectMu.Lock()
	if t.rejected == nil {
		t.rejected = make(map[string]uint64)
	}
	t.rejected[rule]++
	t.rejectMu.Unlock()
}

// Rejections returns the refused requests by rule.
func (t *Traffic) Rejections() map[string]uint64 {
	t.rejectMu.Lock()
	defer t.rejectMu.Unlock()
	return maps.Clone(t.rejected)
}

// StatusCount is the number of requests answered with one status code.
type StatusCount struct {
	Status int
	Count  uint64
}

// Statuses returns the count of every status seen at least once, in
// ascending order of status.
func (t *Traffic) Statuses() []StatusCount {
	var out []StatusCount
	for s := range t.byStatus {
		if n := t.byStatus[s].Load(); n > 0 {
			out = append(out, StatusCount{Status: s, Count: n})
		}
	}
	return out
}

// OpenConns returns the number of open upstream connections.
func (t *Traffic) OpenConns() int64 { return t.openConns.Load() }

// ParkedConns returns the number of parked front connections.
func (t *Traffic) ParkedConns() int64 { return t.parked.Load() }

// Retries returns the number of keep-alive race retries.
func (t *Traffic) Retries() uint64 { return t.retries.Load() }

// Aborts returns the number of responses cut after their status was sent.
func (t *Traffic) Aborts() uint64 { return t.aborted.Load() }

// Latency returns the request latency histogram.
func (t *Traffic) Latency() *Histogram { return &t.latency }

// HistogramBuckets are the upper bounds, in seconds, of a Histogram's
// buckets; the last, implicit bucket is +Inf.
var HistogramBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Histogram counts durations into HistogramBuckets. Its zero value is ready to
// use; it is safe for concurrent use and must not be copied. Observe
// allocates nothing.
type Histogram struct {
	counts [len(HistogramBuckets) + 1]atomic.Uint64 // not cumulative
	sumNs  atomic.Int64
}

// Observe counts one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(HistogramBuckets) && s > HistogramBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
}

// Snapshot returns the cumulative count for each bucket of HistogramBuckets
// (the +Inf bucket is total), the total count and the sum in seconds.
func (h *Histogram) Snapshot() (cumulative []uint64, total uint64, sumSeconds float64) {
	cumulative = make([]uint64, len(HistogramBuckets))
	var acc uint64
	for i := range HistogramBuckets {
		acc += h.counts[i].Load()
		cumulative[i] = acc
	}
	total = acc + h.counts[len(HistogramBuckets)].Load()
	return cumulative, total, time.Duration(h.sumNs.Load()).Seconds()
}
