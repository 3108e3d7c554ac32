package health

import (
	"sync"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// How much history a Checker and a Breaker keep for /status.
const (
	// ProbeHistory is how many recent probes a Checker keeps: two minutes
	// at the default 2s interval.
	ProbeHistory = 60
	// FlipHistory is how many health state changes a Checker keeps.
	FlipHistory = 20
	// TransitionHistory is how many state changes a Breaker keeps.
	TransitionHistory = 20
)

// history keeps the last len(buf) values added. It is safe for concurrent
// use; its memory is fixed by newHistory.
type history[T any] struct {
	mu  sync.Mutex // guards buf and n
	buf []T
	n   int // values ever added; buf[n%len(buf)] is the oldest once full
}

func newHistory[T any](size int) *history[T] {
	return &history[T]{buf: make([]T, size)}
}

func (h *history[T]) add(v T) {
	h.mu.Lock()
	h.buf[h.n%len(h.buf)] = v
	h.n++
	h.mu.Unlock()
}

// newestFirst returns a copy of the values kept, newest first.
func (h *history[T]) newestFirst() []T {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := min(h.n, len(h.buf))
	out := make([]T, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, h.buf[(h.n-i)%len(h.buf)])
	}
	return out
}

// Flip is one change of a Checker's health state.
type Flip struct {
	// At is when it changed: the start of the probe that decided it.
	At time.Time
	// From and To are the states before and after.
	From, To State
	// Cause is the failed probe's cause for a flip to Down; diag.None for
	// a flip to Up.
	Cause diag.Cause
}

// Probes returns the last ProbeHistory probes, newest first.
func (c *Checker) Probes() []ProbeResult { return c.probes.newestFirst() }

// Flips returns the last FlipHistory state changes, newest first.
func (c *Checker) Flips() []Flip { return c.flips.newestFirst() }

// Transition is one change of a Breaker's state.
type Transition struct {
	// At is when it changed. Open becomes half-open lazily, on the first
	// request or State call after OpenFor: At is that moment.
	At time.Time
	// From and To are "closed", "half-open" or "open".
	From, To string
	// Cause is what opened it, for a change to "open": the failure that
	// tripped a closed breaker, or failed a half-open one's trial.
	// diag.None otherwise.
	Cause diag.Cause
}

// Transitions returns the last TransitionHistory state changes, newest
// first.
func (b *Breaker) Transitions() []Transition { return b.transitions.newestFirst() }
