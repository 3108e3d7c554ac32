package health

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/upmedic/upmedic/diag"
)

const testOpenFor = 10 * time.Second

// fail returns a Do function that fails with cause c.
func fail(c diag.Cause) func() diag.Cause { return func() diag.Cause { return c } }

func newTestBreaker(failures uint32) *Breaker {
	return NewBreaker(BreakerSettings{Failures: failures, OpenFor: testOpenFor, Logger: quiet()})
}

// trip opens b with n failures of cause c, checking that it stays closed
// until the n-th.
func trip(t *testing.T, b *Breaker, n int, c diag.Cause) {
	t.Helper()
	for i := 1; i <= n; i++ {
		cause, ran := b.Do(fail(c))
		if !ran || cause != c {
			t.Fatalf("failure %d: Do = %v, ran %v; want %v, ran", i, cause, ran, c)
		}
		want := "closed"
		if i == n {
			want = "open"
		}
		if got := b.State().State; got != want {
			t.Fatalf("after %d failures of %d: %s, want %s", i, n, got, want)
		}
	}
}

func TestBreakerOpensAfterExactlyNFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBreaker(3)
		if _, _, open := b.Open(); open {
			t.Fatal("a new breaker is open")
		}
		trip(t, b, 3, diag.ConnectionRefused)

		trippedBy, retryIn, open := b.Open()
		if !open || trippedBy != diag.ConnectionRefused || retryIn != testOpenFor {
			t.Fatalf("Open() = %v, %v, %v; want connection_refused, %v, true", trippedBy, retryIn, open, testOpenFor)
		}
		st := b.State()
		if st.TrippedBy != diag.ConnectionRefused || !st.NextTry.Equal(time.Now().Add(testOpenFor)) {
			t.Fatalf("State() = %+v, want tripped by connection_refused, next try in %v", st, testOpenFor)
		}

		// While open, fn does not run.
		time.Sleep(testOpenFor - time.Second)
		ran := false
		cause, did := b.Do(func() diag.Cause { ran = true; return diag.None })
		if ran || did || cause != diag.None {
			t.Fatalf("Do while open: fn ran %v, ran %v, cause %v; want refused", ran, did, cause)
		}
		if _, retryIn, open := b.Open(); !open || retryIn != time.Second {
			t.Fatalf("Open() after %v: retryIn %v, open %v; want 1s, true", testOpenFor-time.Second, retryIn, open)
		}
	})
}

func TestBreakerSuccessResetsStreak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBreaker(3)
		b.Do(fail(diag.ConnectionRefused))
		b.Do(fail(diag.ConnectionTimeout))
		if got := b.State().ConsecutiveFailures; got != 2 {
			t.Fatalf("ConsecutiveFailures = %d, want 2", got)
		}
		b.Do(fail(diag.None))
		if got := b.State().ConsecutiveFailures; got != 0 {
			t.Fatalf("ConsecutiveFailures after a success = %d, want 0", got)
		}
		trip(t, b, 3, diag.ConnectionTerminated)
	})
}

func TestBreakerOneTrialAfterOpenFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBreaker(2)
		trip(t, b, 2, diag.ConnectionRefused)
		time.Sleep(testOpenFor + time.Millisecond)

		// Once OpenFor has passed, the lock-free Open() must not keep
		// callers that gate on it away from the trial.
		if trippedBy, retryIn, open := b.Open(); open {
			t.Fatalf("Open() after OpenFor = %v, %v, true; want not open", trippedBy, retryIn)
		}

		// The trial runs; while it is in flight nothing else gets through.
		release := make(chan diag.Cause)
		trialDone := make(chan bool)
		go func() {
			_, ran := b.Do(func() diag.Cause { return <-release })
			trialDone <- ran
		}()
		synctest.Wait() // the trial is blocked inside fn
		if got := b.State().State; got != "half-open" {
			t.Fatalf("during the trial: %s, want half-open", got)
		}
		ran := false
		if _, did := b.Do(func() diag.Cause { ran = true; return diag.None }); did || ran {
			t.Fatal("a second request got through while the trial was in flight")
		}
		release <- diag.None
		if !<-trialDone {
			t.Fatal("the trial did not run")
		}
		st := b.State()
		if st.State != "closed" || st.ConsecutiveFailures != 0 || !st.NextTry.IsZero() {
			t.Fatalf("after a successful trial: %+v, want closed", st)
		}
		if _, _, open := b.Open(); open {
			t.Fatal("Open() after a successful trial: open")
		}
		trip(t, b, 2, diag.ConnectionRefused) // counting starts again from zero
	})
}

func TestBreakerReopensOnTrialFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBreaker(2)
		trip(t, b, 2, diag.ConnectionRefused)
		time.Sleep(testOpenFor + time.Millisecond)

		cause, ran := b.Do(fail(diag.ConnectionTimeout))
		if !ran || cause != diag.ConnectionTimeout {
			t.Fatalf("trial: %v, ran %v; want connection_timeout, ran", cause, ran)
		}
		trippedBy, retryIn, open := b.Open()
		if !open || retryIn != testOpenFor {
			t.Fatalf("after a failed trial: Open() = %v, %v, %v; want open for %v", trippedBy, retryIn, open, testOpenFor)
		}
		// TrippedBy is the cause that last opened the breaker: the trial's.
		if trippedBy != diag.ConnectionTimeout || b.State().TrippedBy != diag.ConnectionTimeout {
			t.Fatalf("tripped by %v (State %v), want connection_timeout", trippedBy, b.State().TrippedBy)
		}
		if _, ran := b.Do(fail(diag.None)); ran {
			t.Fatal("Do ran right after the breaker re-opened")
		}
	})
}

func TestBreakerUncountedCauses(t *testing.T) {
	for _, c := range []diag.Cause{diag.UpstreamStatus, diag.ScriptNotFound, diag.ScriptAccessDenied, diag.ConnectionLimitReached, diag.UpstreamUnhealthy, diag.BreakerOpen} {
		t.Run(c.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newTestBreaker(2)
				for range 10 {
					if cause, ran := b.Do(fail(c)); !ran || cause != c {
						t.Fatalf("Do = %v, ran %v; want %v, ran", cause, ran, c)
					}
				}
				if st := b.State(); st.State != "closed" || st.ConsecutiveFailures != 0 {
					t.Fatalf("after 10 × %v: %+v, want closed with no counted failure", c, st)
				}
				if Counts(c) {
					t.Fatalf("Counts(%v) = true", c)
				}
			})
		})
	}
}

// TestBreakerConnectionLimitKeepsStreak: an excluded failure neither counts
// nor breaks a streak of counted ones.
func TestBreakerConnectionLimitKeepsStreak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBreaker(2)
		b.Do(fail(diag.ConnectionRefused))
		b.Do(fail(diag.ConnectionLimitReached))
		if got := b.State().State; got != "closed" {
			t.Fatalf("after refused + limit: %s, want closed", got)
		}
		b.Do(fail(diag.ConnectionRefused))
		if trippedBy, _, open := b.Open(); !open || trippedBy != diag.ConnectionRefused {
			t.Fatalf("after refused + limit + refused: open %v tripped by %v; want open by connection_refused", open, trippedBy)
		}
	})
}

// TestBreakerUpstreamStatusIsAnAnswer pins that a passed-through upstream
// 5xx counts as the upstream answering: it ends a failure streak.
func TestBreakerUpstreamStatusIsAnAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestBreaker(2)
		b.Do(fail(diag.ConnectionRefused))
		b.Do(fail(diag.UpstreamStatus))
		b.Do(fail(diag.ConnectionRefused))
		if st := b.State(); st.State != "closed" || st.ConsecutiveFailures != 1 {
			t.Fatalf("after refused + upstream_status + refused: %+v, want closed with 1 failure", st)
		}
	})
}

func TestCounts(t *testing.T) {
	for _, c := range diag.Causes() {
		want := true
		switch c {
		case diag.ConnectionLimitReached, diag.UpstreamUnhealthy, diag.BreakerOpen, diag.UpstreamStatus,
			diag.ScriptNotFound, diag.ScriptAccessDenied:
			want = false
		}
		if got := Counts(c); got != want {
			t.Errorf("Counts(%v) = %v, want %v", c, got, want)
		}
	}
	if Counts(diag.None) {
		t.Error("Counts(None) = true")
	}
}
