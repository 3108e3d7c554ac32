package admin

import (
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/health"
	"github.com/upmedic/upmedic/proxy"
)

// Status is the JSON document GET /status answers with. Times are RFC 3339
// in UTC. Its zero value is the report of an upmedic with nothing
// configured.
type Status struct {
	// Upstream is the upstream as configured ("unix:/run/app.sock").
	Upstream string `json:"upstream"`
	// Version is upmedic's version.
	Version string `json:"version"`
	// Health is the active health checker's view of the upstream.
	Health HealthStatus `json:"health"`
	// Breaker is the circuit breaker's state.
	Breaker BreakerStatus `json:"breaker"`
	// Causes counts every cause diagnosed at least once, in the order of
	// the cause table; empty (never null) when there were none.
	Causes []CauseCount `json:"causes"`
	// Recent holds the latest diagnoses, newest first, at most
	// diag.JournalSize (50); empty (never null) when there were none.
	Recent []RecentDiagnosis `json:"recent"`
	// Requests counts the requests upmedic answered.
	Requests RequestCounts `json:"requests"`
	// AppTimers is what upmedic learned of the app's own timers.
	AppTimers AppTimersStatus `json:"app_timers"`
}

// Timers is what /status asks of the proxy about the app's own timers
// (*proxy.Proxy).
type Timers interface {
	AppTimers() proxy.AppTimers
}

// AppTimersStatus is the app-timers part of Status.
type AppTimersStatus struct {
	// KillTimers are the timers in the app that kill requests at a fixed
	// age, each revealed by at least three premature closes at that age,
	// the latest seen first; empty (never null) when none.
	KillTimers []KillTimerStatus `json:"kill_timers"`
	// IdleLimit is the upstream's keep-alive idle limit learned from the
	// idle connections it closed; null until learned.
	IdleLimit *IdleLimitStatus `json:"idle_limit"`
	// IdleDeaths counts the idle keep-alive connections the upstream closed
	// (found closed before reuse, or lost to a keep-alive race).
	IdleDeaths uint64 `json:"idle_deaths"`
}

// KillTimerStatus is one kill timer.
type KillTimerStatus struct {
	// TimerS is the timer-s value the closes at it carry: AgeMS in whole
	// seconds, rounded down.
	TimerS int64 `json:"timer_s"`
	// AgeMS is the median age of the closes that last matched it, in
	// milliseconds since the request was sent.
	AgeMS int64 `json:"age_ms"`
	// Count is how many closes came at it, the ones that revealed it
	// included.
	Count int `json:"count"`
	// FirstSeen and LastSeen are when the first and the latest came.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// IdleLimitStatus is the learned keep-alive idle limit.
type IdleLimitStatus struct {
	// LimitMS is the shortest idle time after which the upstream was seen
	// to close idle connections, in milliseconds.
	LimitMS int64 `json:"limit_ms"`
	// RetireAfterMS is how long a pooled connection may sit idle before
	// upmedic retires it: the limit less min(1 s, half of it).
	RetireAfterMS int64 `json:"retire_after_ms"`
	// Deaths is how many idle deaths showed the limit.
	Deaths int `json:"deaths"`
	// LearnedAt is when it was learned.
	LearnedAt time.Time `json:"learned_at"`
}

// HealthStatus is the health part of Status.
type HealthStatus struct {
	// State is "up", "down", "unknown" (not enough probes yet to decide) or
	// "off" (no health checker; every other field is then zero).
	State string `json:"state"`
	// Since is when State began; for "unknown", when checks started.
	// Omitted before the checker runs.
	Since time.Time `json:"since,omitzero"`
	// LastProbe is the most recent probe; null before the first.
	LastProbe *ProbeStatus `json:"last_probe"`
	// Consecutive is the current streak of probe results.
	Consecutive Streak `json:"consecutive"`
	// Rise is how many consecutive successes make State "up"; 0 when off.
	Rise int `json:"rise"`
	// Fall is how many consecutive failures make State "down"; 0 when off.
	Fall int `json:"fall"`
	// NextProbe is when the next probe starts. Omitted before the checker
	// runs.
	NextProbe time.Time `json:"next_probe,omitzero"`
	// LastCause is the cause of the most recent failed probe, even if later
	// probes succeeded; omitted if none has failed.
	LastCause string `json:"last_cause,omitempty"`
}

// ProbeStatus is one health probe's outcome.
type ProbeStatus struct {
	// At is when the probe started.
	At time.Time `json:"at"`
	// OK is true when the probe succeeded.
	OK bool `json:"ok"`
	// Cause is why it failed (a cause token, "upstream_status" for a
	// non-2xx/3xx answer); omitted when OK.
	Cause string `json:"cause,omitempty"`
	// LatencyMS is how long the probe took, in milliseconds.
	LatencyMS float64 `json:"latency_ms"`
	// Status is the HTTP status the upstream answered the probe with;
	// omitted (0) for a connect-only probe or when no header came.
	Status int `json:"status,omitempty"`
}

// Streak counts consecutive probe results; at most one field is non-zero.
type Streak struct {
	// Successes counts consecutive successful probes.
	Successes int `json:"successes"`
	// Failures counts consecutive failed probes.
	Failures int `json:"failures"`
}

// BreakerStatus is the circuit breaker part of Status.
type BreakerStatus struct {
	// State is "closed", "half-open" (the next request is a trial), "open"
	// or "off" (no breaker; every other field is then zero).
	State string `json:"state"`
	// TrippedBy is the cause that last opened the breaker, kept after it
	// closed again; omitted if it never opened.
	TrippedBy string `json:"tripped_by,omitempty"`
	// ConsecutiveFailures counts the counted failures since the last
	// success or state change.
	ConsecutiveFailures uint32 `json:"consecutive_failures"`
	// NextTry is when an open breaker lets a trial request through; omitted
	// unless open.
	NextTry time.Time `json:"next_try,omitzero"`
}

// CauseCount is how often one cause was diagnosed.
type CauseCount struct {
	// Cause is the cause token ("connection_refused").
	Cause string `json:"cause"`
	// Count is how many diagnoses had this cause since upmedic started.
	Count uint64 `json:"count"`
	// FirstSeen is when the first such diagnosis was recorded.
	FirstSeen time.Time `json:"first_seen"`
	// LastSeen is when the latest such diagnosis was recorded.
	LastSeen time.Time `json:"last_seen"`
	// Hint is what the operator should check for this cause.
	Hint string `json:"hint"`
}

// RecentDiagnosis is one recorded diagnosis.
type RecentDiagnosis struct {
	// At is when it was recorded.
	At time.Time `json:"at"`
	// Cause is the cause token.
	Cause string `json:"cause"`
	// Status is the status the client got: upmedic's own for a diagnosed
	// failure, the upstream's for upstream_status; 0 when Aborted, as the
	// upstream's status had already gone out.
	Status int `json:"status"`
	// Phase is the exchange step it happened in: "connect", "request",
	// "response header" or "response body".
	Phase string `json:"phase"`
	// Aborted is true when the failure came after the response status had
	// been sent, so the downstream connection was cut instead.
	Aborted bool `json:"aborted"`
	// Diagnosis is the X-Upstream-Diagnosis value with its parameters
	// ("connection_refused;errno=ECONNREFUSED;elapsed-ms=3").
	Diagnosis string `json:"diagnosis"`
	// Hint is what the operator should check for this cause.
	Hint string `json:"hint"`
}

// RequestCounts is the request part of Status.
type RequestCounts struct {
	// ByStatus counts answered requests per status code (JSON keys are the
	// codes as strings, "0" for codes outside 100-599); only codes seen.
	ByStatus map[int]uint64 `json:"by_status"`
	// Retries counts keep-alive race retries: a reused connection the
	// upstream had closed, replaced by a fresh one.
	Retries uint64 `json:"retries"`
	// Aborts counts responses cut after their status had gone downstream.
	Aborts uint64 `json:"aborts"`
	// OpenUpstreamConns is the number of open upstream connections now.
	OpenUpstreamConns int64 `json:"open_upstream_conns"`
}

// report builds the Status document.
func (h *handler) report() Status {
	st := Status{
		Upstream: h.s.Upstream,
		Version:  h.s.Version,
		Health:   healthStatus(h.s.Checker),
		Breaker:  breakerStatus(h.s.Breaker),
		Causes:   []CauseCount{},
		Recent:   []RecentDiagnosis{},
		Requests: RequestCounts{
			ByStatus:          map[int]uint64{},
			Retries:           h.s.Traffic.Retries(),
			Aborts:            h.s.Traffic.Aborts(),
			OpenUpstreamConns: h.s.Traffic.OpenConns(),
		},
	}
	for _, cc := range h.s.Journal.Counts() {
		st.Causes = append(st.Causes, CauseCount{Cause: cc.Cause.String(), Count: cc.Count,
			FirstSeen: cc.First.UTC(), LastSeen: cc.Last.UTC(), Hint: cc.Cause.Hint()})
	}
	var buf []byte
	for _, e := range h.s.Journal.Recent() {
		buf = e.Diagnosis.AppendHeader(buf[:0], false)
		st.Recent = append(st.Recent, RecentDiagnosis{
			At:        e.At.UTC(),
			Cause:     e.Diagnosis.Cause.String(),
			Status:    answeredStatus(&e),
			Phase:     e.Phase.String(),
			Aborted:   e.Aborted,
			Diagnosis: string(buf),
			Hint:      e.Diagnosis.Hint(),
		})
	}
	for _, sc := range h.s.Traffic.Statuses() {
		st.Requests.ByStatus[sc.Status] = sc.Count
	}
	st.AppTimers = appTimersStatus(h.s.Timers)
	return st
}

func appTimersStatus(t Timers) AppTimersStatus {
	s := AppTimersStatus{KillTimers: []KillTimerStatus{}}
	if t == nil {
		return s
	}
	at := t.AppTimers()
	for _, k := range at.KillTimers {
		s.KillTimers = append(s.KillTimers, KillTimerStatus{TimerS: int64(k.Timer / time.Second),
			AgeMS: k.Median.Milliseconds(), Count: k.Count, FirstSeen: k.First.UTC(), LastSeen: k.Last.UTC()})
	}
	s.IdleDeaths = at.IdleLimit.Deaths
	if l := at.IdleLimit; l.Limit > 0 {
		s.IdleLimit = &IdleLimitStatus{LimitMS: l.Limit.Milliseconds(), RetireAfterMS: l.RetireAfter.Milliseconds(),
			Deaths: l.Support, LearnedAt: l.LearnedAt.UTC()}
	}
	return s
}

// answeredStatus is the status the client got for e.
func answeredStatus(e *diag.Entry) int {
	switch {
	case e.Aborted:
		return 0
	case e.Diagnosis.Cause == diag.UpstreamStatus:
		return e.Diagnosis.ReceivedStatus
	}
	return e.Diagnosis.Cause.Status()
}

func healthStatus(c *health.Checker) HealthStatus {
	if c == nil {
		return HealthStatus{State: "off"}
	}
	snap := c.Snapshot()
	hs := HealthStatus{
		State:       snap.State.String(),
		Since:       utc(snap.Since),
		Consecutive: Streak{Successes: snap.ConsecutiveSuccesses, Failures: snap.ConsecutiveFailures},
		Rise:        snap.Rise,
		Fall:        snap.Fall,
		NextProbe:   utc(snap.NextProbe),
	}
	if snap.LastCause != diag.None {
		hs.LastCause = snap.LastCause.String()
	}
	if p := snap.LastProbe; !p.At.IsZero() {
		hs.LastProbe = &ProbeStatus{
			At:        p.At.UTC(),
			OK:        p.OK,
			LatencyMS: float64(p.Latency) / float64(time.Millisecond),
			Status:    p.Status,
		}
		if !p.OK {
			hs.LastProbe.Cause = p.Cause.String()
		}
	}
	return hs
}

func breakerStatus(b *health.Breaker) BreakerStatus {
	if b == nil {
		return BreakerStatus{State: "off"}
	}
	st := b.State()
	bs := BreakerStatus{
		State:               st.State,
		ConsecutiveFailures: st.ConsecutiveFailures,
		NextTry:             utc(st.NextTry),
	}
	if st.TrippedBy != diag.None {
		bs.TrippedBy = st.TrippedBy.String()
	}
	return bs
}

// utc returns t in UTC, keeping the zero time zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
