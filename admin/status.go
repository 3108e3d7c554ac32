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
	// Time is when the report was made.
	Time time.Time `json:"time"`
	// Started is when upmedic started; omitted when unknown.
	Started time.Time `json:"started,omitzero"`
	// Config lists the settings in effect, in the order `upmedic env`
	// prints them; empty (never null) when none were given.
	Config []ConfigValue `json:"config"`
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
	// History holds the requests, latency and diagnoses of the last minute
	// and the last hour.
	History History `json:"history"`
	// AppTimers is what upmedic learned of the app's own timers.
	AppTimers AppTimersStatus `json:"app_timers"`
	// FastCGI is what upmedic saw of PHP-FPM; nil (absent) for an HTTP
	// upstream.
	FastCGI *FastCGIStatus `json:"fastcgi,omitempty"`
}

// FastCGIStderr is what /status asks of the proxy about PHP-FPM's STDERR
// (*proxy.Proxy).
type FastCGIStderr interface {
	FastCGIStderr() []proxy.StderrLine
}

// FastCGIStatus is the fastcgi part of Status.
type FastCGIStatus struct {
	// Stderr are the most recent texts PHP-FPM wrote to requests' STDERR,
	// oldest first; empty when none.
	Stderr []proxy.StderrLine `json:"stderr"`
	// Pool is the last read of PHP-FPM's status page (pm.status_path);
	// null when UPMEDIC_FASTCGI_STATUS_PATH is not set, health checks are
	// off, or no read has run yet.
	Pool *PoolStatusReport `json:"pool"`
}

// PoolStatusReport is the last read of PHP-FPM's status page.
type PoolStatusReport struct {
	// OK is true when the last read succeeded; the figures below are then
	// from it, else from the last one that did (zero if none did).
	OK bool `json:"ok"`
	// ReadAt is when the last read started, and AgeMS how long ago.
	ReadAt time.Time `json:"read_at"`
	AgeMS  int64     `json:"age_ms"`
	// Pool is the pool's name and ProcessManager its pm (static, dynamic,
	// ondemand).
	Pool           string `json:"pool"`
	ProcessManager string `json:"process_manager"`
	// ListenQueue is how many connections wait for a free worker
	// (reported by PHP-FPM for a TCP listen socket only), MaxListenQueue
	// the most since it started.
	ListenQueue    int `json:"listen_queue"`
	MaxListenQueue int `json:"max_listen_queue"`
	ListenQueueLen int `json:"listen_queue_len"`
	// IdleProcesses, ActiveProcesses and TotalProcesses count the workers.
	IdleProcesses      int `json:"idle_processes"`
	ActiveProcesses    int `json:"active_processes"`
	TotalProcesses     int `json:"total_processes"`
	MaxActiveProcesses int `json:"max_active_processes"`
	// MaxChildrenReached counts the times pm.max_children stopped a new
	// worker (dynamic and ondemand pools).
	MaxChildrenReached int   `json:"max_children_reached"`
	AcceptedConn       int64 `json:"accepted_conn"`
	SlowRequests       int64 `json:"slow_requests"`
}

// ConfigValue is one setting in effect.
type ConfigValue struct {
	// Name is the variable ("UPMEDIC_CONNECT_TIMEOUT").
	Name string `json:"name"`
	// Value is its value in effect, default or given ("2s").
	Value string `json:"value"`
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
	// Probes holds the most recent probes, newest first, at most
	// health.ProbeHistory (60); empty (never null) before the first.
	Probes []ProbeStatus `json:"probes"`
	// Flips holds the most recent state changes, newest first, at most
	// health.FlipHistory (20); empty (never null) before the first.
	Flips []FlipStatus `json:"flips"`
}

// FlipStatus is one change of the health state.
type FlipStatus struct {
	// At is when the probe that decided it started.
	At time.Time `json:"at"`
	// From and To are "unknown", "up" or "down".
	From string `json:"from"`
	To   string `json:"to"`
	// Cause is the failed probe's cause for a change to "down"; omitted
	// otherwise.
	Cause string `json:"cause,omitempty"`
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
	// Transitions holds the most recent state changes, newest first, at
	// most health.TransitionHistory (20); empty (never null) before the
	// first.
	Transitions []TransitionStatus `json:"transitions"`
}

// TransitionStatus is one change of the breaker's state.
type TransitionStatus struct {
	// At is when it changed. An open breaker turns half-open lazily, at the
	// first request (or report) after UPMEDIC_BREAKER_OPEN_FOR.
	At time.Time `json:"at"`
	// From and To are "closed", "half-open" or "open".
	From string `json:"from"`
	To   string `json:"to"`
	// Cause is the failure that opened it, for a change to "open"; omitted
	// otherwise.
	Cause string `json:"cause,omitempty"`
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
	// Seq numbers the diagnoses since start, from 1: a script polling
	// /status can tell the new ones.
	Seq uint64 `json:"seq"`
	// At is when it was recorded.
	At time.Time `json:"at"`
	// Method is the request's method as sent; empty if unknown.
	Method string `json:"method"`
	// Path is the request's path as sent, without the query (which can
	// carry tokens), cut to diag.MaxPathBytes (256) bytes. It is the
	// client's bytes: escape it before display.
	Path string `json:"path"`
	// PathTruncated is true when the method or the path was longer than
	// kept.
	PathTruncated bool `json:"path_truncated,omitempty"`
	// Cause is the cause token.
	Cause string `json:"cause"`
	// Errno is the system error behind it ("ECONNREFUSED"); omitted when
	// none.
	Errno string `json:"errno,omitempty"`
	// ElapsedMS is the time from the request's arrival to the diagnosis, in
	// milliseconds.
	ElapsedMS float64 `json:"elapsed_ms"`
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
	// ClientBodies is how many of them carry a request body the client is
	// still sending (a full pool held by slow uploads says so here).
	ClientBodies int64 `json:"client_bodies"`
	// Rejected counts the requests upmedic refused, by the rule they broke
	// (README, "What upmedic rejects"); {} when none.
	Rejected map[string]uint64 `json:"rejected"`
}

// History is the recent-history part of Status.
type History struct {
	// LastMinute covers the 59 whole seconds before the current one and
	// the current one so far.
	LastMinute Window `json:"last_minute"`
	// LastHour covers the 59 whole minutes before the current one and the
	// current one so far.
	LastHour Window `json:"last_hour"`
	// Minutes holds the 60 minutes of LastHour, oldest first; the last is
	// the current minute so far.
	Minutes []Minute `json:"minutes"`
}

// Window is what happened over a recent stretch of time.
type Window struct {
	// From is when the window begins; it ends at Status.Time.
	From time.Time `json:"from"`
	// Seconds is how long the window covers: from From, or from Started
	// if upmedic started later, until Status.Time.
	Seconds float64 `json:"seconds"`
	// Requests counts the requests answered in it.
	Requests uint64 `json:"requests"`
	// PerSecond is Requests over Seconds.
	PerSecond float64 `json:"per_second"`
	// P50MS and P99MS are the median and 99th percentile of the time to
	// answer, in milliseconds, within about 12%; null without requests.
	P50MS *float64 `json:"p50_ms"`
	P99MS *float64 `json:"p99_ms"`
	// Failures counts upmedic's own diagnosed answers (502/503/504 and
	// cut streams): every cause but upstream_status.
	Failures uint64 `json:"failures"`
	// App5xx counts the app's own 5xx answers, passed through
	// (upstream_status).
	App5xx uint64 `json:"app_5xx"`
	// Causes counts the diagnoses per cause, upstream_status included;
	// only causes seen; {} when none.
	Causes map[string]uint64 `json:"causes"`
}

// Minute is what happened in one minute.
type Minute struct {
	// Start is when the minute began.
	Start time.Time `json:"start"`
	// Requests counts the requests answered in it.
	Requests uint64 `json:"requests"`
	// Causes counts the diagnoses per cause, as Window.Causes.
	Causes map[string]uint64 `json:"causes"`
}

// report builds the Status document as of now.
func (h *handler) report(now time.Time) Status {
	st := Status{
		Upstream: h.s.Upstream,
		Version:  h.s.Version,
		Time:     now.UTC(),
		Started:  utc(h.s.Started),
		Config:   []ConfigValue{},
		Health:   healthStatus(h.s.Checker),
		Breaker:  breakerStatus(h.s.Breaker),
		Causes:   []CauseCount{},
		Recent:   []RecentDiagnosis{},
		Requests: RequestCounts{
			ByStatus:          map[int]uint64{},
			Retries:           h.s.Traffic.Retries(),
			Aborts:            h.s.Traffic.Aborts(),
			OpenUpstreamConns: h.s.Traffic.OpenConns(),
			ClientBodies:      h.s.Traffic.ClientBodies(),
			Rejected:          map[string]uint64{},
		},
		History: h.history(now),
	}
	st.Config = append(st.Config, h.s.Config...)
	for rule, n := range h.s.Traffic.Rejections() {
		st.Requests.Rejected[rule] = n
	}
	for _, cc := range h.s.Journal.Counts() {
		st.Causes = append(st.Causes, CauseCount{Cause: cc.Cause.String(), Count: cc.Count,
			FirstSeen: cc.First.UTC(), LastSeen: cc.Last.UTC(), Hint: cc.Cause.Hint()})
	}
	var buf []byte
	for _, e := range h.s.Journal.Recent() {
		buf = e.Diagnosis.AppendHeader(buf[:0], false)
		st.Recent = append(st.Recent, RecentDiagnosis{
			Seq:           e.Seq,
			At:            e.At.UTC(),
			Method:        e.Request.Method(),
			Path:          e.Request.Path(),
			PathTruncated: e.Request.Truncated(),
			Cause:         e.Diagnosis.Cause.String(),
			Errno:         diag.ErrnoName(e.Diagnosis.Errno),
			ElapsedMS:     ms(e.Diagnosis.Elapsed),
			Status:        answeredStatus(&e),
			Phase:         e.Phase.String(),
			Aborted:       e.Aborted,
			Diagnosis:     string(buf),
			Hint:          e.Diagnosis.Hint(),
		})
	}
	for _, sc := range h.s.Traffic.Statuses() {
		st.Requests.ByStatus[sc.Status] = sc.Count
	}
	st.AppTimers = appTimersStatus(h.s.Timers)
	st.FastCGI = fastCGIStatus(h.s.FastCGI, h.s.Checker, now)
	return st
}

func fastCGIStatus(f FastCGIStderr, c *health.Checker, now time.Time) *FastCGIStatus {
	if f == nil {
		return nil
	}
	fs := &FastCGIStatus{Stderr: []proxy.StderrLine{}}
	for _, l := range f.FastCGIStderr() {
		l.At = l.At.UTC()
		fs.Stderr = append(fs.Stderr, l)
	}
	if c == nil {
		return fs
	}
	ps := c.Snapshot().Pool
	if ps == nil || ps.At.IsZero() {
		return fs
	}
	p := ps.Status
	fs.Pool = &PoolStatusReport{OK: ps.OK, ReadAt: ps.At.UTC(), AgeMS: now.Sub(ps.At).Milliseconds(),
		Pool: p.Pool, ProcessManager: p.ProcessManager,
		ListenQueue: p.ListenQueue, MaxListenQueue: p.MaxListenQueue, ListenQueueLen: p.ListenQueueLen,
		IdleProcesses: p.IdleProcesses, ActiveProcesses: p.ActiveProcesses, TotalProcesses: p.TotalProcesses,
		MaxActiveProcesses: p.MaxActiveProcesses, MaxChildrenReached: p.MaxChildrenReached,
		AcceptedConn: p.AcceptedConn, SlowRequests: p.SlowRequests}
	return fs
}

// history builds the History part of the report as of now.
func (h *handler) history(now time.Time) History {
	th := h.s.Traffic.History(now)
	ch := h.s.Journal.History(now)
	hist := History{
		LastMinute: window(th.LastMinute, ch.LastMinute, h.s.Started, now),
		LastHour:   window(th.LastHour, ch.LastHour, h.s.Started, now),
		Minutes:    make([]Minute, len(th.Minutes)),
	}
	for i := range th.Minutes {
		hist.Minutes[i] = Minute{
			Start:    th.LastHour.From.Add(time.Duration(i) * time.Minute).UTC(),
			Requests: th.Minutes[i],
			Causes:   causeMap(&ch.Minutes[i]),
		}
	}
	return hist
}

func window(tw diag.TrafficWindow, cw diag.CauseWindow, started, now time.Time) Window {
	from := tw.From
	if started.After(from) {
		from = started
	}
	w := Window{
		From:     tw.From.UTC(),
		Seconds:  max(now.Sub(from).Seconds(), 0),
		Requests: tw.Latency.Total(),
		Failures: cw.Counts.Failures(),
		App5xx:   cw.Counts.Of(diag.UpstreamStatus),
		Causes:   causeMap(&cw.Counts),
	}
	if w.Seconds > 0 {
		w.PerSecond = float64(w.Requests) / w.Seconds
	}
	if d, ok := tw.Latency.Quantile(0.5); ok {
		v := ms(d)
		w.P50MS = &v
	}
	if d, ok := tw.Latency.Quantile(0.99); ok {
		v := ms(d)
		w.P99MS = &v
	}
	return w
}

// causeMap returns the non-zero counts of cc by cause token.
func causeMap(cc *diag.CauseCounts) map[string]uint64 {
	m := map[string]uint64{}
	for _, c := range diag.Causes() {
		if n := cc.Of(c); n > 0 {
			m[c.String()] = n
		}
	}
	return m
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

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
		return HealthStatus{State: "off", Probes: []ProbeStatus{}, Flips: []FlipStatus{}}
	}
	snap := c.Snapshot()
	hs := HealthStatus{
		State:       snap.State.String(),
		Since:       utc(snap.Since),
		Consecutive: Streak{Successes: snap.ConsecutiveSuccesses, Failures: snap.ConsecutiveFailures},
		Rise:        snap.Rise,
		Fall:        snap.Fall,
		NextProbe:   utc(snap.NextProbe),
		Probes:      []ProbeStatus{},
		Flips:       []FlipStatus{},
	}
	for _, p := range c.Probes() {
		hs.Probes = append(hs.Probes, probeStatus(&p))
	}
	for _, f := range c.Flips() {
		fs := FlipStatus{At: f.At.UTC(), From: f.From.String(), To: f.To.String()}
		if f.To == health.Down {
			fs.Cause = f.Cause.String()
		}
		hs.Flips = append(hs.Flips, fs)
	}
	if snap.LastCause != diag.None {
		hs.LastCause = snap.LastCause.String()
	}
	if p := snap.LastProbe; !p.At.IsZero() {
		ps := probeStatus(&p)
		hs.LastProbe = &ps
	}
	return hs
}

func probeStatus(p *health.ProbeResult) ProbeStatus {
	ps := ProbeStatus{At: p.At.UTC(), OK: p.OK, LatencyMS: ms(p.Latency), Status: p.Status}
	if !p.OK {
		ps.Cause = p.Cause.String()
	}
	return ps
}

func breakerStatus(b *health.Breaker) BreakerStatus {
	if b == nil {
		return BreakerStatus{State: "off", Transitions: []TransitionStatus{}}
	}
	st := b.State()
	bs := BreakerStatus{
		State:               st.State,
		ConsecutiveFailures: st.ConsecutiveFailures,
		NextTry:             utc(st.NextTry),
		Transitions:         []TransitionStatus{},
	}
	for _, tr := range b.Transitions() {
		ts := TransitionStatus{At: tr.At.UTC(), From: tr.From, To: tr.To}
		if tr.To == "open" {
			ts.Cause = tr.Cause.String()
		}
		bs.Transitions = append(bs.Transitions, ts)
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
