package health

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// The Checker keeps its recent probes and its flips, newest first, each
// with what a real fault made of it.
func TestCheckerHistory(t *testing.T) {
	up := newFakeUpstream(t, "tcp")
	st := newStepper(t, Settings{Address: up.addr, Path: "/healthz", Timeout: waitFor, Rise: 1, Fall: 2, Logger: quiet()})
	script := []behaviour{answer200, answer503, notHTTP, answer200}
	for _, b := range script {
		up.next(b)
		st.step()
	}
	probes := st.c.Probes()
	want := []struct {
		ok     bool
		cause  diag.Cause
		status int
	}{ // newest first
		{true, diag.None, 200},
		{false, diag.HTTPProtocolError, 0},
		{false, diag.UpstreamStatus, 503},
		{true, diag.None, 200},
	}
	if len(probes) != len(want) {
		t.Fatalf("%d probes, want %d: %+v", len(probes), len(want), probes)
	}
	for i, w := range want {
		p := probes[i]
		if p.OK != w.ok || p.Cause != w.cause || p.Status != w.status || p.At.IsZero() || p.Latency <= 0 {
			t.Errorf("probes[%d] = %+v, want ok=%v cause=%v status=%d", i, p, w.ok, w.cause, w.status)
		}
		if i > 0 && p.At.After(probes[i-1].At) {
			t.Errorf("probes[%d] at %v is newer than probes[%d]", i, p.At, i-1)
		}
	}
	flips := st.c.Flips()
	wantFlips := []Flip{ // newest first
		{From: Down, To: Up, Cause: diag.None},
		{From: Up, To: Down, Cause: diag.HTTPProtocolError},
		{From: Unknown, To: Up, Cause: diag.None},
	}
	if len(flips) != len(wantFlips) {
		t.Fatalf("flips %+v, want %d", flips, len(wantFlips))
	}
	for i, w := range wantFlips {
		f := flips[i]
		if f.From != w.From || f.To != w.To || f.Cause != w.Cause {
			t.Errorf("flips[%d] = %v -> %v (%v), want %v -> %v (%v)", i, f.From, f.To, f.Cause, w.From, w.To, w.Cause)
		}
	}
	// A flip is dated by the probe that decided it.
	if !flips[0].At.Equal(probes[0].At) || !flips[1].At.Equal(probes[1].At) || !flips[2].At.Equal(probes[3].At) {
		t.Errorf("flip times %v, %v, %v; probe times %v", flips[0].At, flips[1].At, flips[2].At, probes)
	}
}

// The probe history is a fixed ring: the newest ProbeHistory probes.
func TestCheckerHistoryBound(t *testing.T) {
	up := newFakeUpstream(t, "tcp")
	st := newStepper(t, Settings{Address: up.addr, Timeout: waitFor, Logger: quiet()})
	for range ProbeHistory + 15 {
		up.next(closeNow)
		st.step() // connect-only: every probe succeeds
	}
	probes := st.c.Probes()
	if len(probes) != ProbeHistory {
		t.Fatalf("%d probes kept, want %d", len(probes), ProbeHistory)
	}
	if last := st.c.Snapshot().LastProbe; !probes[0].At.Equal(last.At) {
		t.Fatalf("newest probe %v, last probe %v", probes[0].At, last.At)
	}
	if cap(st.c.probes.buf) != ProbeHistory {
		t.Fatalf("ring grew to %d", cap(st.c.probes.buf))
	}
}

// The Breaker keeps its transitions with what tripped each opening, and
// dates the lazy open -> half-open change when it happened.
func TestBreakerTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBreaker(2)
		start := time.Now()
		trip(t, b, 2, diag.ConnectionRefused)
		time.Sleep(testOpenFor + time.Second)
		b.Do(fail(diag.ConnectionTerminated)) // the trial fails
		time.Sleep(testOpenFor + time.Second)
		b.Do(fail(diag.None)) // the trial succeeds

		trial1, trial2 := start.Add(testOpenFor+time.Second), start.Add(2*(testOpenFor+time.Second))
		want := []Transition{ // newest first
			{At: trial2, From: "half-open", To: "closed"},
			{At: trial2, From: "open", To: "half-open"},
			{At: trial1, From: "half-open", To: "open", Cause: diag.ConnectionTerminated},
			{At: trial1, From: "open", To: "half-open"},
			{At: start, From: "closed", To: "open", Cause: diag.ConnectionRefused},
		}
		got := b.Transitions()
		if len(got) != len(want) {
			t.Fatalf("transitions %+v, want %d", got, len(want))
		}
		for i, w := range want {
			if g := got[i]; !g.At.Equal(w.At) || g.From != w.From || g.To != w.To || g.Cause != w.Cause {
				t.Errorf("transitions[%d] = %+v, want %+v", i, g, w)
			}
		}
		for range TransitionHistory {
			b.Do(fail(diag.ConnectionRefused))
			b.Do(fail(diag.ConnectionRefused))
			time.Sleep(testOpenFor + time.Second)
			b.Do(fail(diag.None))
		}
		if n := len(b.Transitions()); n != TransitionHistory {
			t.Fatalf("%d transitions kept, want %d", n, TransitionHistory)
		}
	})
}
