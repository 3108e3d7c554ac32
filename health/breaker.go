package health

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/upmedic/upmedic/diag"
)

// BreakerSettings configures a Breaker. Every zero field gets a default.
type BreakerSettings struct {
	// Failures is how many consecutive proxy-made failures open the breaker.
	// Zero means 5.
	Failures uint32
	// OpenFor is how long the breaker stays open before it lets one trial
	// request through. Zero means 10s.
	OpenFor time.Duration
	// Logger gets one line per state change. Nil means slog.Default().
	Logger *slog.Logger
}

// errFailed and errExcluded tell gobreaker how an exchange went; they never
// leave this package.
var (
	errFailed   = errors.New("health: upstream exchange failed")
	errExcluded = errors.New("health: exchange not counted")
)

// Breaker is a circuit breaker around upstream exchanges, on sony/gobreaker.
// It remembers which cause opened it. It is safe for concurrent use; Do
// allocates nothing.
type Breaker struct {
	cb      *gobreaker.CircuitBreaker[struct{}]
	openFor time.Duration
	log     *slog.Logger

	lastFailure atomic.Uint32 // diag.Cause of the most recent counted failure
	trippedBy   atomic.Uint32 // diag.Cause that last opened the breaker
	openedAt    atomic.Int64  // unix nanoseconds of the last opening
	state       atomic.Int32  // mirror of the gobreaker state as of the last change

	transitions *history[Transition] // the last TransitionHistory state changes
}

// NewBreaker returns a closed Breaker configured by s.
func NewBreaker(s BreakerSettings) *Breaker {
	if s.Failures == 0 {
		s.Failures = 5
	}
	if s.OpenFor <= 0 {
		s.OpenFor = 10 * time.Second
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	b := &Breaker{openFor: s.OpenFor, log: s.Logger, transitions: newHistory[Transition](TransitionHistory)}
	failures := s.Failures
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:    "upstream",
		Timeout: s.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= failures
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errExcluded) },
		// OnStateChange runs under gobreaker's mutex: it must not call back
		// into the breaker.
		OnStateChange: b.onStateChange,
	})
	return b
}

func (b *Breaker) onStateChange(_ string, from, to gobreaker.State) {
	b.state.Store(int32(to))
	now := time.Now()
	tr := Transition{At: now, From: from.String(), To: to.String()}
	if to == gobreaker.StateOpen {
		b.openedAt.Store(now.UnixNano())
		// Closed -> open, or a failed half-open trial re-opening it.
		b.trippedBy.Store(b.lastFailure.Load())
		tr.Cause = diag.Cause(b.lastFailure.Load())
	}
	b.transitions.add(tr)
	b.log.Warn("circuit breaker "+to.String(), "from", from.String(),
		"tripped_by", diag.Cause(b.trippedBy.Load()).String())
}

// Do runs fn unless the breaker is open, and counts its outcome: fn returns
// the cause of the exchange's failure, diag.None when the upstream answered.
// Failures that say nothing about the upstream's health (a passed-through
// upstream status, the local connection cap) are not counted. ran is false
// when the breaker refused; fn did not run then.
func (b *Breaker) Do(fn func() diag.Cause) (cause diag.Cause, ran bool) {
	_, err := b.cb.Execute(func() (struct{}, error) {
		ran = true
		cause = fn()
		switch {
		case !cause.IsFailure():
			return struct{}{}, nil
		case !Counts(cause):
			return struct{}{}, errExcluded
		}
		b.lastFailure.Store(uint32(cause))
		return struct{}{}, errFailed
	})
	_ = err // the outcome is in cause and ran
	return cause, ran
}

// Counts reports whether a failure with cause c counts towards opening the
// breaker: failures of the upstream to connect or answer do; the local
// connection cap and upmedic's own fast-fail answers are left out (neither a
// success nor a failure). A passed-through upstream status (the app's own
// 5xx) is not a failure at all: the app answered, so Do counts it as a
// success.
func Counts(c diag.Cause) bool {
	switch c {
	case diag.ConnectionLimitReached, diag.UpstreamUnhealthy, diag.BreakerOpen:
		return false
	}
	return c.IsFailure()
}

// BreakerState is a snapshot of a Breaker for /status and /metrics.
type BreakerState struct {
	// State is "closed", "half-open" or "open".
	State string
	// TrippedBy is the cause that last opened the breaker, None if never.
	TrippedBy diag.Cause
	// ConsecutiveFailures counts counted failures since the last success.
	ConsecutiveFailures uint32
	// NextTry is when an open breaker lets a trial request through; zero
	// unless open.
	NextTry time.Time
}

// Open reports whether the breaker refuses requests right now and how long
// until the next trial request, and the cause that last opened it (also
// while half-open, when only the trial goes through). Once OpenFor has
// passed it reports false, so a caller that checks Open before Do lets the
// trial through. It allocates nothing and takes no lock.
func (b *Breaker) Open() (trippedBy diag.Cause, retryIn time.Duration, open bool) {
	st := gobreaker.State(b.state.Load())
	if st == gobreaker.StateClosed {
		return diag.None, 0, false
	}
	trippedBy = diag.Cause(b.trippedBy.Load())
	retryIn = time.Until(time.Unix(0, b.openedAt.Load()).Add(b.openFor))
	if st != gobreaker.StateOpen || retryIn <= 0 {
		// Half-open, or OpenFor has passed: gobreaker turns half-open lazily,
		// on the next call, so that call must be let through as the trial.
		return trippedBy, 0, false
	}
	return trippedBy, retryIn, true
}

// State returns a snapshot of the breaker.
func (b *Breaker) State() BreakerState {
	st := b.cb.State() // moves open to half-open when OpenFor has passed
	s := BreakerState{
		State:               st.String(),
		TrippedBy:           diag.Cause(b.trippedBy.Load()),
		ConsecutiveFailures: b.cb.Counts().ConsecutiveFailures,
	}
	if st == gobreaker.StateOpen {
		s.NextTry = time.Unix(0, b.openedAt.Load()).Add(b.openFor)
	}
	return s
}
