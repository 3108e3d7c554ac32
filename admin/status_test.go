package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/health"
	"github.com/upmedic/upmedic/proxy"
)

// getStatus serves GET /status on h and decodes it strictly.
func getStatus(t *testing.T, h http.Handler) (Status, string) {
	t.Helper()
	code, body := get(t, h, "/status")
	if code != http.StatusOK {
		t.Fatalf("GET /status = %d %q", code, body)
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields() // the structs document every field
	var st Status
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("decode /status: %v\n%s", err, body)
	}
	return st, body
}

func TestStatus(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	journal := new(diag.Journal)
	journal.Record(t0, &diag.Diagnosis{Cause: diag.ConnectionRefused, Errno: syscall.ECONNREFUSED,
		Elapsed: 3 * time.Millisecond, Upstream: "127.0.0.1:8000"}, diag.PhaseConnect, false, []byte("POST"), []byte("/login?next=/admin"))
	journal.Record(t0.Add(time.Second), &diag.Diagnosis{Cause: diag.UpstreamStatus, ReceivedStatus: 503},
		diag.PhaseHeader, false, nil, nil)
	journal.Record(t0.Add(2*time.Second), &diag.Diagnosis{Cause: diag.ConnectionRefused, Errno: syscall.ECONNREFUSED,
		Elapsed: 1 * time.Millisecond}, diag.PhaseConnect, false, nil, nil)
	journal.Record(t0.Add(3*time.Second), &diag.Diagnosis{Cause: diag.HTTPResponseIncomplete,
		Elapsed: 20 * time.Millisecond}, diag.PhaseBody, true, nil, nil)

	traffic := new(diag.Traffic)
	traffic.Done(200, time.Millisecond, time.Now())
	traffic.Done(200, time.Millisecond, time.Now())
	traffic.Done(502, time.Millisecond, time.Now())
	traffic.Done(503, time.Millisecond, time.Now())
	traffic.Retried()
	traffic.Aborted()
	traffic.ConnOpened()
	traffic.ConnOpened()
	traffic.ConnOpened()
	traffic.ConnClosed()

	checker := upChecker(t)
	breaker := openBreaker(t, time.Hour)
	st, raw := getStatus(t, NewHandler(Settings{Upstream: "unix:/run/app.sock", Version: "v1.2.3",
		Journal: journal, Traffic: traffic, Checker: checker, Breaker: breaker, Logger: quiet()}))

	if st.Upstream != "unix:/run/app.sock" || st.Version != "v1.2.3" {
		t.Errorf("upstream %q version %q", st.Upstream, st.Version)
	}

	// health
	hs := st.Health
	if hs.State != "up" || hs.Since.IsZero() || hs.Rise != 1 || hs.Fall != 3 ||
		hs.Consecutive != (Streak{Successes: 1}) || hs.LastCause != "" || hs.NextProbe.IsZero() {
		t.Errorf("health %+v", hs)
	}
	if p := hs.LastProbe; p == nil || !p.OK || p.Cause != "" || p.Status != 200 || p.LatencyMS <= 0 ||
		!p.At.Equal(hs.Since) || !hs.NextProbe.Equal(p.At.Add(time.Hour)) {
		t.Errorf("last probe %+v, health %+v", p, hs)
	}

	// breaker
	bs := st.Breaker
	if bs.State != "open" || bs.TrippedBy != "connection_refused" || bs.NextTry.Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("breaker %+v", bs)
	}

	// causes, in table order
	wantCauses := []CauseCount{
		{Cause: "connection_refused", Count: 2, FirstSeen: t0, LastSeen: t0.Add(2 * time.Second), Hint: diag.ConnectionRefused.Hint()},
		{Cause: "http_response_incomplete", Count: 1, FirstSeen: t0.Add(3 * time.Second), LastSeen: t0.Add(3 * time.Second), Hint: diag.HTTPResponseIncomplete.Hint()},
		{Cause: "upstream_status", Count: 1, FirstSeen: t0.Add(time.Second), LastSeen: t0.Add(time.Second), Hint: diag.UpstreamStatus.Hint()},
	}
	if len(st.Causes) != len(wantCauses) {
		t.Fatalf("causes %+v, want %+v", st.Causes, wantCauses)
	}
	for i, w := range wantCauses {
		if g := st.Causes[i]; g.Cause != w.Cause || g.Count != w.Count || !g.FirstSeen.Equal(w.FirstSeen) ||
			!g.LastSeen.Equal(w.LastSeen) || g.Hint != w.Hint {
			t.Errorf("causes[%d] = %+v, want %+v", i, g, w)
		}
	}

	// recent, newest first
	wantRecent := []RecentDiagnosis{
		{Seq: 4, At: t0.Add(3 * time.Second), Cause: "http_response_incomplete", ElapsedMS: 20, Status: 0,
			Phase: "response body", Aborted: true,
			Diagnosis: "http_response_incomplete;elapsed-ms=20", Hint: diag.HTTPResponseIncomplete.Hint()},
		{Seq: 3, At: t0.Add(2 * time.Second), Cause: "connection_refused", Errno: "ECONNREFUSED", ElapsedMS: 1, Status: 502,
			Phase:     "connect",
			Diagnosis: "connection_refused;errno=ECONNREFUSED;elapsed-ms=1", Hint: diag.ConnectionRefused.Hint()},
		{Seq: 2, At: t0.Add(time.Second), Cause: "upstream_status", Status: 503, Phase: "response header",
			Diagnosis: "upstream_status;received-status=503", Hint: diag.UpstreamStatus.Hint()},
		{Seq: 1, At: t0, Method: "POST", Path: "/login", Cause: "connection_refused", Errno: "ECONNREFUSED", ElapsedMS: 3,
			Status: 502, Phase: "connect",
			Diagnosis: "connection_refused;errno=ECONNREFUSED;elapsed-ms=3", Hint: diag.ConnectionRefused.Hint()},
	}
	if len(st.Recent) != len(wantRecent) {
		t.Fatalf("recent %+v, want %d entries", st.Recent, len(wantRecent))
	}
	for i, w := range wantRecent {
		g := st.Recent[i]
		if !g.At.Equal(w.At) {
			t.Errorf("recent[%d].At = %v, want %v", i, g.At, w.At)
		}
		g.At = w.At
		if g != w {
			t.Errorf("recent[%d] = %+v, want %+v", i, g, w)
		}
	}
	if strings.Contains(raw, "127.0.0.1:8000") {
		t.Error("/status shows a diagnosis's upstream parameter; it belongs in the top-level upstream field only")
	}

	// requests
	rq := st.Requests
	if len(rq.ByStatus) != 3 || rq.ByStatus[200] != 2 || rq.ByStatus[502] != 1 || rq.ByStatus[503] != 1 ||
		rq.Retries != 1 || rq.Aborts != 1 || rq.OpenUpstreamConns != 2 {
		t.Errorf("requests %+v", rq)
	}
	if !strings.Contains(raw, `"200": 2`) {
		t.Errorf("by_status keys are not status codes:\n%s", raw)
	}
}

func TestStatusHealthDown(t *testing.T) {
	st, _ := getStatus(t, NewHandler(Settings{Checker: downChecker(t), Logger: quiet()}))
	hs := st.Health
	if hs.State != "down" || hs.LastCause != "connection_refused" || hs.Consecutive != (Streak{Failures: 1}) {
		t.Fatalf("health %+v", hs)
	}
	if p := hs.LastProbe; p == nil || p.OK || p.Cause != "connection_refused" || p.Status != 0 {
		t.Fatalf("last probe %+v", p)
	}
}

func TestStatusNothingConfigured(t *testing.T) {
	st, raw := getStatus(t, NewHandler(Settings{}))
	if st.Health.State != "off" || st.Health.LastProbe != nil || st.Breaker.State != "off" {
		t.Errorf("health %+v breaker %+v, want off", st.Health, st.Breaker)
	}
	for _, want := range []string{`"causes": []`, `"recent": []`, `"by_status": {}`, `"last_probe": null`} {
		if !strings.Contains(raw, want) {
			t.Errorf("/status lacks %s:\n%s", want, raw)
		}
	}
	for _, absent := range []string{`"since"`, `"next_probe"`, `"next_try"`, `"tripped_by"`} {
		if strings.Contains(raw, absent) {
			t.Errorf("/status has %s with nothing configured:\n%s", absent, raw)
		}
	}
}

func TestStatusUnknownHealth(t *testing.T) {
	c := health.NewChecker(health.Settings{Address: "127.0.0.1:1", Rise: 2, Fall: 3})
	st, _ := getStatus(t, NewHandler(Settings{Checker: c}))
	if hs := st.Health; hs.State != "unknown" || hs.LastProbe != nil || hs.Rise != 2 || hs.Fall != 3 {
		t.Fatalf("health %+v", hs)
	}
}

func TestStatusRecentKeepsNewest50(t *testing.T) {
	journal := new(diag.Journal)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 60 {
		journal.Record(t0.Add(time.Duration(i)*time.Second), &diag.Diagnosis{Cause: diag.ConnectionTerminated}, diag.PhaseHeader, false, nil, nil)
	}
	st, _ := getStatus(t, NewHandler(Settings{Journal: journal}))
	if len(st.Recent) != diag.JournalSize {
		t.Fatalf("%d recent, want %d", len(st.Recent), diag.JournalSize)
	}
	if first, last := st.Recent[0].At, st.Recent[len(st.Recent)-1].At; !first.Equal(t0.Add(59*time.Second)) ||
		!last.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("recent from %v to %v, want newest (59s) first down to 10s", first, last)
	}
	if len(st.Causes) != 1 || st.Causes[0].Count != 60 {
		t.Fatalf("causes %+v, want connection_terminated × 60", st.Causes)
	}
}

// /status carries the last minute and hour, per minute, with the app's 5xx
// apart from upmedic's own failures. synctest's clock starts at
// 2000-01-01T00:00:00Z and moves only when the test sleeps.
func TestStatusHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		journal, traffic := new(diag.Journal), new(diag.Traffic)
		h := NewHandler(Settings{Journal: journal, Traffic: traffic, Started: start, Logger: quiet(),
			Breaker: health.NewBreaker(health.BreakerSettings{Failures: 1, OpenFor: time.Minute, Logger: quiet()})})
		answer := func(status int, d time.Duration, cause diag.Cause) {
			now := time.Now()
			traffic.Done(status, d, now)
			if cause != diag.None {
				journal.Record(now, &diag.Diagnosis{Cause: cause, ReceivedStatus: status}, diag.PhaseConnect, false,
					[]byte("GET"), []byte("/x?y"))
			}
		}
		for range 90 {
			answer(200, 2*time.Millisecond, diag.None)
		}
		answer(500, 40*time.Millisecond, diag.UpstreamStatus)
		time.Sleep(5 * time.Minute)
		for range 9 {
			answer(200, 2*time.Millisecond, diag.None)
		}
		answer(502, time.Millisecond, diag.ConnectionRefused)
		answer(502, time.Millisecond, diag.ConnectionRefused)
		time.Sleep(30 * time.Second)

		st, _ := getStatus(t, h)
		if !st.Time.Equal(start.Add(5*time.Minute+30*time.Second)) || !st.Started.Equal(start) {
			t.Errorf("time %v started %v", st.Time, st.Started)
		}
		lm, lh := st.History.LastMinute, st.History.LastHour
		if lm.Requests != 11 || lm.Failures != 2 || lm.App5xx != 0 || lm.Causes["connection_refused"] != 2 ||
			lm.Seconds != 59 || lm.PerSecond != 11.0/59 {
			t.Errorf("last minute %+v", lm)
		}
		// upmedic is 5m30s old: the hour is rated over that.
		if lh.Requests != 102 || lh.Failures != 2 || lh.App5xx != 1 || lh.Seconds != 330 ||
			lh.PerSecond != 102.0/330 || len(lh.Causes) != 2 {
			t.Errorf("last hour %+v", lh)
		}
		// 102 answers: two of 1 ms, 99 of 2 ms, one of 40 ms: the 51st and
		// the 101st are 2 ms. The last minute's p99 (11 answers) is 2 ms too,
		// its p50 the 6th: 2 ms.
		for _, q := range []*float64{lh.P50MS, lh.P99MS, lm.P50MS} {
			if q == nil || *q < 1.76 || *q > 2.24 {
				t.Errorf("a quantile is %v, want 2 ms ± 12%%", q)
			}
		}
		if len(st.History.Minutes) != 60 {
			t.Fatalf("%d minutes, want 60", len(st.History.Minutes))
		}
		cur, five := st.History.Minutes[59], st.History.Minutes[54]
		if !cur.Start.Equal(start.Add(5*time.Minute)) || cur.Requests != 11 || cur.Causes["connection_refused"] != 2 {
			t.Errorf("current minute %+v", cur)
		}
		if !five.Start.Equal(start) || five.Requests != 91 || five.Causes["upstream_status"] != 1 || len(five.Causes) != 1 {
			t.Errorf("first minute %+v", five)
		}
		if st.Recent[0].Method != "GET" || st.Recent[0].Path != "/x" {
			t.Errorf("recent[0] %+v", st.Recent[0])
		}
	})
}

// Nothing counted: windows of zero, null quantiles, empty cause maps.
func TestStatusHistoryEmpty(t *testing.T) {
	_, raw := getStatus(t, NewHandler(Settings{}))
	for _, want := range []string{`"p50_ms": null`, `"p99_ms": null`, `"causes": {}`, `"probes": []`,
		`"flips": []`, `"transitions": []`, `"config": []`} {
		if !strings.Contains(raw, want) {
			t.Errorf("/status lacks %s", want)
		}
	}
}

func TestStatusProbesAndTransitions(t *testing.T) {
	b := openBreaker(t, time.Hour)
	st, _ := getStatus(t, NewHandler(Settings{Checker: downChecker(t), Breaker: b, Logger: quiet(),
		Config: []ConfigValue{{"UPMEDIC_HOLD", "0s"}}}))
	hs := st.Health
	if len(hs.Probes) != 1 || hs.Probes[0].OK || hs.Probes[0].Cause != "connection_refused" || *hs.LastProbe != hs.Probes[0] {
		t.Errorf("probes %+v, last %+v", hs.Probes, hs.LastProbe)
	}
	if len(hs.Flips) != 1 || hs.Flips[0] != (FlipStatus{At: hs.Probes[0].At, From: "unknown", To: "down", Cause: "connection_refused"}) {
		t.Errorf("flips %+v", hs.Flips)
	}
	tr := st.Breaker.Transitions
	if len(tr) != 1 || tr[0].From != "closed" || tr[0].To != "open" || tr[0].Cause != "connection_refused" {
		t.Errorf("transitions %+v", tr)
	}
	if len(st.Config) != 1 || st.Config[0] != (ConfigValue{"UPMEDIC_HOLD", "0s"}) {
		t.Errorf("config %+v", st.Config)
	}
}

// /status lists the kill timers and the learned idle limit as the proxy
// reports them, and the hint of a close at a kill timer says so.
func TestStatusAppTimers(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	local := time.FixedZone("UTC+2", 2*3600)
	timers := fixedTimers{
		KillTimers: []proxy.KillTimer{
			{Timer: 30 * time.Second, Median: 30412 * time.Millisecond, Count: 5, First: t0.In(local), Last: t0.Add(4 * time.Minute).In(local)},
			{Timer: 2 * time.Second, Median: 2590 * time.Millisecond, Count: 3, First: t0, Last: t0.Add(time.Minute)},
		},
		IdleLimit: proxy.IdleLimit{Limit: 5021 * time.Millisecond, RetireAfter: 4021 * time.Millisecond, Support: 3,
			LearnedAt: t0.Add(time.Hour), Deaths: 7},
	}
	journal := new(diag.Journal)
	d := diag.Diagnosis{Cause: diag.ConnectionTerminated, Elapsed: 30420 * time.Millisecond,
		Timer: 30 * time.Second, ClosedAt: 30418 * time.Millisecond, TimerPrior: 4}
	journal.Record(t0.Add(4*time.Minute), &d, diag.PhaseHeader, false, nil, nil)

	st, raw := getStatus(t, NewHandler(Settings{Journal: journal, Timers: timers, Logger: quiet()}))
	want := AppTimersStatus{
		KillTimers: []KillTimerStatus{
			{TimerS: 30, AgeMS: 30412, Count: 5, FirstSeen: t0, LastSeen: t0.Add(4 * time.Minute)},
			{TimerS: 2, AgeMS: 2590, Count: 3, FirstSeen: t0, LastSeen: t0.Add(time.Minute)},
		},
		IdleLimit:  &IdleLimitStatus{LimitMS: 5021, RetireAfterMS: 4021, Deaths: 3, LearnedAt: t0.Add(time.Hour)},
		IdleDeaths: 7,
	}
	got := st.AppTimers
	if len(got.KillTimers) != 2 || got.KillTimers[0] != want.KillTimers[0] || got.KillTimers[1] != want.KillTimers[1] ||
		got.IdleLimit == nil || *got.IdleLimit != *want.IdleLimit || got.IdleDeaths != 7 {
		t.Errorf("app_timers %+v, want %+v\n%s", got, want, raw)
	}
	for _, s := range []string{`"timer_s": 30,`, `"age_ms": 30412,`, `"first_seen": "2026-03-01T12:00:00Z"`,
		`"limit_ms": 5021,`, `"retire_after_ms": 4021,`, `"learned_at": "2026-03-01T13:00:00Z"`, `"idle_deaths": 7`} {
		if !strings.Contains(raw, s) {
			t.Errorf("/status lacks %s:\n%s", s, raw)
		}
	}
	if len(st.Recent) != 1 || st.Recent[0].Diagnosis != "connection_terminated;elapsed-ms=30420;timer-s=30" ||
		!strings.HasPrefix(st.Recent[0].Hint, "closed at 30.4 s like the 4 before it: a timer in the app kills requests at ~30 s") {
		t.Errorf("recent %+v", st.Recent)
	}

	// Nothing learned, or no proxy to ask: empty, never null, and no limit.
	for _, s := range []Settings{{Timers: fixedTimers{}}, {}} {
		st, raw := getStatus(t, NewHandler(s))
		if st.AppTimers.KillTimers == nil || len(st.AppTimers.KillTimers) != 0 || st.AppTimers.IdleLimit != nil ||
			!strings.Contains(raw, `"kill_timers": [],`) || !strings.Contains(raw, `"idle_limit": null,`) {
			t.Errorf("app_timers %+v\n%s", st.AppTimers, raw)
		}
	}
}
