package diag

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestTrafficHistory(t *testing.T) {
	var tr Traffic
	done := func(at time.Time, n int, d time.Duration) {
		for range n {
			tr.Done(200, d, at)
		}
	}
	done(t0.Add(-90*time.Minute), 3, time.Millisecond) // before the hour
	done(t0.Add(-30*time.Minute), 5, 3*time.Millisecond)
	done(t0.Add(-30*time.Second), 2, 3*time.Millisecond)
	done(t0.Add(-10*time.Second), 4, 3*time.Millisecond)
	done(t0.Add(5*time.Second), 1, 300*time.Millisecond)
	now := t0.Add(20 * time.Second)

	h := tr.History(now)
	if want := t0.Add(-59*time.Minute + 0); !h.LastHour.From.Equal(want) {
		t.Errorf("LastHour.From = %v, want %v", h.LastHour.From, want)
	}
	if want := t0.Add(-39 * time.Second); !h.LastMinute.From.Equal(want) {
		t.Errorf("LastMinute.From = %v, want %v", h.LastMinute.From, want)
	}
	if got := h.LastMinute.Latency.Total(); got != 7 {
		t.Errorf("last minute: %d requests, want 7 (2 + 4 + 1)", got)
	}
	if got := h.LastHour.Latency.Total(); got != 12 {
		t.Errorf("last hour: %d requests, want 12 (5 + 2 + 4 + 1)", got)
	}
	want := [ringUnits]uint64{29: 5, 58: 6, 59: 1}
	if h.Minutes != want {
		t.Errorf("minutes = %v, want %v", h.Minutes, want)
	}
	// p50 is one of the 3 ms requests; p99 the one of 300 ms.
	wantNear(t, "p50", &h.LastHour.Latency, 0.5, 3*time.Millisecond)
	wantNear(t, "p99", &h.LastHour.Latency, 0.99, 300*time.Millisecond)

	// The statuses and the Prometheus histogram still count since start.
	if _, total, _ := tr.Latency().Snapshot(); total != 15 {
		t.Errorf("histogram total %d, want 15", total)
	}
}

// wantNear checks that quantile q of l is within the 12% the fine buckets
// promise of want.
func wantNear(t *testing.T, name string, l *LatencyCounts, q float64, want time.Duration) {
	t.Helper()
	got, ok := l.Quantile(q)
	if !ok || got < want*88/100 || got > want*112/100 {
		t.Errorf("%s = %v (ok %v), want %v ± 12%%", name, got, ok, want)
	}
}

func TestJournalHistory(t *testing.T) {
	var j Journal
	rec := func(at time.Time, c Cause, n int) {
		for range n {
			j.Record(at, &Diagnosis{Cause: c}, PhaseConnect, false, nil, nil)
		}
	}
	rec(t0.Add(-2*time.Hour), ConnectionRefused, 9)
	rec(t0.Add(-45*time.Minute), ConnectionRefused, 2)
	rec(t0.Add(-45*time.Minute), UpstreamStatus, 1)
	rec(t0.Add(-45*time.Second), BreakerOpen, 4)
	rec(t0.Add(3*time.Second), UpstreamStatus, 3)
	h := j.History(t0.Add(10 * time.Second))

	if c := h.LastMinute.Counts; c.Of(BreakerOpen) != 4 || c.Of(UpstreamStatus) != 3 || c.Of(ConnectionRefused) != 0 ||
		c.Failures() != 4 {
		t.Errorf("last minute %v", c)
	}
	if c := h.LastHour.Counts; c.Of(ConnectionRefused) != 2 || c.Of(UpstreamStatus) != 4 || c.Failures() != 6 {
		t.Errorf("last hour %v", c)
	}
	if m := h.Minutes[14]; m.Of(ConnectionRefused) != 2 || m.Of(UpstreamStatus) != 1 {
		t.Errorf("minute 11:15 = %v, want 2 refused, 1 app 5xx", m)
	}
	if m := h.Minutes[58]; m.Of(BreakerOpen) != 4 || m.Failures() != 4 {
		t.Errorf("minute 11:59 = %v, want 4 breaker_open", m)
	}
	if m := h.Minutes[59]; m.Of(UpstreamStatus) != 3 || m.Failures() != 0 {
		t.Errorf("minute 12:00 = %v, want 3 app 5xx", m)
	}
	for i, m := range h.Minutes {
		if i != 14 && i != 58 && i != 59 && m != (CauseCounts{}) {
			t.Errorf("minute %d = %v, want none", i, m)
		}
	}
	if got := j.Count(ConnectionRefused); got != 11 {
		t.Errorf("since start: %d refused, want 11", got)
	}
}

// A read long after the last count sees empty windows: the snapshots are
// older than the hour, and nothing was counted since.
func TestHistoryAfterIdleHour(t *testing.T) {
	var tr Traffic
	tr.Done(200, time.Millisecond, t0)
	for _, later := range []time.Duration{61 * time.Minute, 5 * time.Hour} {
		h := tr.History(t0.Add(later))
		if h.LastHour.Latency.Total() != 0 || h.LastMinute.Latency.Total() != 0 || h.Minutes != ([ringUnits]uint64{}) {
			t.Errorf("%v later: %+v, want empty windows", later, h)
		}
	}
}

// When the wall clock steps back (NTP), counting starts over from the new
// time instead of waiting for the clock to catch up with the old snapshots.
func TestHistoryClockStepBack(t *testing.T) {
	var tr Traffic
	tr.Done(200, time.Millisecond, t0.Add(time.Hour))
	tr.History(t0.Add(time.Hour))
	tr.Done(200, time.Millisecond, t0) // one hour back
	tr.Done(200, time.Millisecond, t0.Add(time.Second))
	h := tr.History(t0.Add(2 * time.Second))
	if got := h.LastMinute.Latency.Total(); got != 2 {
		t.Errorf("last minute after a step back: %d, want 2", got)
	}
	if h.Minutes[59] != 2 {
		t.Errorf("current minute %d, want 2", h.Minutes[59])
	}
}

// Writers on many goroutines and a reader at the same time: no count is
// lost, the minutes add up to the hour, and (under -race) nothing races.
func TestHistoryConcurrent(t *testing.T) {
	var tr Traffic
	var j Journal
	var clock atomic.Int64 // tens of milliseconds after t0
	now := func() time.Time { return t0.Add(time.Duration(clock.Load()) * 10 * time.Millisecond) }
	tr.History(now()) // the first snapshot, taken before any count
	j.History(now())

	const writers, each = 4, 3000 // 12000 ticks of 10 ms: two minutes of clock
	var wg sync.WaitGroup
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			h := tr.History(now())
			var sum uint64
			for _, m := range h.Minutes {
				sum += m
			}
			if total := h.LastHour.Latency.Total(); sum != total {
				t.Errorf("minutes add up to %d, the hour says %d", sum, total)
				return
			}
			j.Recent()
		}
	}()
	for range writers {
		wg.Go(func() {
			for range each {
				at := t0.Add(time.Duration(clock.Add(1)) * 10 * time.Millisecond)
				tr.Done(200, 2*time.Millisecond, at)
				j.Record(at, &Diagnosis{Cause: ConnectionRefused}, PhaseConnect, false, []byte("GET"), []byte("/x"))
			}
		})
	}
	wg.Wait()
	close(stop)
	<-readerDone

	h := tr.History(now())
	if got := h.LastHour.Latency.Total(); got != writers*each {
		t.Errorf("last hour: %d requests, want %d", got, writers*each)
	}
	ch := j.History(now())
	if got := ch.LastHour.Counts.Of(ConnectionRefused); got != writers*each {
		t.Errorf("last hour: %d diagnoses, want %d", got, writers*each)
	}
	rec := j.Recent()
	if len(rec) != JournalSize {
		t.Fatalf("%d recent entries, want %d", len(rec), JournalSize)
	}
	for i, e := range rec {
		if e.Seq != writers*each-uint64(i) || e.Request.Path() != "/x" {
			t.Fatalf("recent[%d]: seq %d path %q, want seq %d path /x", i, e.Seq, e.Request.Path(), writers*each-i)
		}
	}
}

func TestLatencyBuckets(t *testing.T) {
	prevHi := time.Duration(0)
	for i := range latencyBuckets - 1 {
		lo, hi := latencyBounds(i)
		if lo != prevHi || hi <= lo {
			t.Fatalf("bucket %d = [%v, %v): not contiguous after %v", i, lo, hi, prevHi)
		}
		if i >= 4 && float64(hi-lo) > 0.25*float64(hi) {
			t.Fatalf("bucket %d = [%v, %v): wider than 25%%", i, lo, hi)
		}
		prevHi = hi
	}
	if lo, _ := latencyBounds(latencyBuckets - 1); lo < 60*time.Second {
		t.Fatalf("the last bucket starts at %v, before 60s", lo)
	}
	for d := time.Duration(1); d < 100*time.Second; d = d*9/8 + 1 {
		i := latencyBucket(d)
		lo, hi := latencyBounds(i)
		if d < lo || (d >= hi && i < latencyBuckets-1) {
			t.Fatalf("%v went to bucket %d = [%v, %v)", d, i, lo, hi)
		}
	}
	if latencyBucket(0) != 0 || latencyBucket(-time.Second) != 0 || latencyBucket(time.Hour) != latencyBuckets-1 {
		t.Fatal("out-of-range durations are not clamped")
	}
}

func TestQuantile(t *testing.T) {
	var l LatencyCounts
	if _, ok := l.Quantile(0.5); ok {
		t.Fatal("quantile of nothing is ok")
	}
	for range 98 {
		l.add(latencyBucket(time.Millisecond), 1)
	}
	l.add(latencyBucket(50*time.Millisecond), 1)
	l.add(latencyBucket(2*time.Second), 1)
	wantNear(t, "p50", &l, 0.5, time.Millisecond)
	wantNear(t, "p98", &l, 0.98, time.Millisecond)
	wantNear(t, "p99", &l, 0.99, 50*time.Millisecond)
	wantNear(t, "p100", &l, 1, 2*time.Second)
}
