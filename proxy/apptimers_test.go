package proxy

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// t0 is the injected clock's start; tests move it by hand.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// A kill timer shows at the third close of about the same age: the first two
// are premature closes like any other.
func TestKillTimerThirdClose(t *testing.T) {
	var k killTimers
	ages := []float64{30.4, 30.9, 30.2, 31.0, 30.6}
	for i, a := range ages {
		timer, prior := k.observe(secs(a), t0.Add(time.Duration(i)*time.Minute))
		switch {
		case i < 2 && timer != 0:
			t.Errorf("close %d at %.1fs: timer %v, want none yet", i+1, a, timer)
		case i >= 2 && (timer != 30*time.Second || prior != i):
			t.Errorf("close %d at %.1fs: timer %v after %d, want 30s after %d", i+1, a, timer, prior, i)
		}
	}
	got := k.report()
	if len(got) != 1 {
		t.Fatalf("report %+v, want one kill timer", got)
	}
	want := KillTimer{Timer: 30 * time.Second, Median: secs(30.6), Count: 5, First: t0, Last: t0.Add(4 * time.Minute)}
	if got[0] != want {
		t.Errorf("report %+v, want %+v", got[0], want)
	}
}

func TestKillTimerRules(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ages      []float64 // one a minute
		wantTimer time.Duration
		wantPrior int
	}{
		// Crashes on arrival are never a timer, however many.
		{"immediate closes", []float64{0.01, 0.2, 0.5, 0.9, 0.99, 0.3}, 0, 0},
		// Immediate closes are not kept: they cannot stand in for a timer at 1 s.
		{"immediate then one at 1s", []float64{0.9, 0.95, 1.0}, 0, 0},
		{"at 1s", []float64{1.0, 1.4, 1.9}, time.Second, 2},
		// max(1 s, 10%): at 30 s, 3 s either way.
		{"within 10% at 30s", []float64{27.1, 32.9, 30.0}, 30 * time.Second, 2},
		{"beyond 10% at 30s", []float64{26.9, 33.1, 30.0}, 0, 0},
		// At 5 s the floor of 1 s applies, not 0.5 s.
		{"within 1s at 5s", []float64{4.1, 5.9, 5.0}, 5 * time.Second, 2},
		{"beyond 1s at 5s", []float64{3.9, 6.1, 5.0}, 0, 0},
		// Two timers in one app stay apart.
		{"two timers", []float64{2.2, 30.1, 2.6, 30.5, 2.4}, 2 * time.Second, 2},
		// The median, rounded down: gunicorn --timeout 2 kills between 2 and 3 s.
		{"median rounds down", []float64{2.9, 2.8, 2.7}, 2 * time.Second, 2},
		{"four closes", []float64{3.0, 3.4, 3.6, 3.9}, 3 * time.Second, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k killTimers
			var timer time.Duration
			var prior int
			for i, a := range tc.ages {
				timer, prior = k.observe(secs(a), t0.Add(time.Duration(i)*time.Minute))
			}
			if timer != tc.wantTimer || prior != tc.wantPrior {
				t.Errorf("last close: timer %v after %d, want %v after %d", timer, prior, tc.wantTimer, tc.wantPrior)
			}
		})
	}
}

// Closes older than 15 minutes reveal nothing; the clusters they made stay
// in the report.
func TestKillTimerWindow(t *testing.T) {
	var k killTimers
	k.observe(secs(10), t0)
	k.observe(secs(10.2), t0.Add(10*time.Minute))
	if timer, _ := k.observe(secs(10.1), t0.Add(16*time.Minute)); timer != 0 {
		t.Errorf("a close 16 min after the first, 6 min after the second: timer %v, want none", timer)
	}
	if timer, prior := k.observe(secs(10.3), t0.Add(17*time.Minute)); timer != 10*time.Second || prior != 2 {
		t.Errorf("timer %v after %d, want 10s after 2 (the two within 15 min)", timer, prior)
	}
	for range 100 { // many more closes at another age: the ring is bounded
		k.observe(secs(2.5), t0.Add(18*time.Minute))
	}
	rep := k.report()
	if len(rep) != 2 || rep[0].Timer != 2*time.Second || rep[0].Count != 100 ||
		rep[1].Timer != 10*time.Second || rep[1].Count != 3 || !rep[1].First.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("report %+v, want 2s x100 first, then 10s x3 from t0+10m", rep)
	}
	if k.next != 104 {
		t.Errorf("kept %d closes, want all 104 counted", k.next)
	}
}

// Only the latest killClusterSlots timers are reported; the one seen longest
// ago gives way.
func TestKillTimerClustersBounded(t *testing.T) {
	var k killTimers
	at := t0
	for i := range killClusterSlots + 2 { // 2 s, 4 s, ... 1024 s: each beyond the others' tolerance
		age := time.Duration(2<<i) * time.Second
		for range 3 {
			at = at.Add(time.Second)
			k.observe(age, at)
		}
	}
	rep := k.report()
	if len(rep) != killClusterSlots {
		t.Fatalf("%d timers reported, want %d", len(rep), killClusterSlots)
	}
	if rep[0].Timer != time.Duration(2<<(killClusterSlots+1))*time.Second || rep[len(rep)-1].Timer != 8*time.Second {
		t.Errorf("reported %v ... %v, want the latest first and 2s, 4s dropped", rep[0].Timer, rep[len(rep)-1].Timer)
	}
}

func TestMedianOf(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{[]time.Duration{3}, 3},
		{[]time.Duration{9, 1, 5}, 5},
		{[]time.Duration{4, 1, 3, 2}, 2}, // (2+3)/2, in integer nanoseconds
		{[]time.Duration{10, 40, 20, 30}, 25},
	} {
		if got := medianOf(tc.in); got != tc.want {
			t.Errorf("medianOf %v = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// Three idle deaths at about one idle age teach the limit; a connection that
// survived longer, or deaths found together, do not.
func TestIdleLimitLearned(t *testing.T) {
	t.Run("three deaths", func(t *testing.T) {
		var l idleLimits
		l.survived(secs(4.2), t0)
		l.died(secs(5.3), t0.Add(time.Minute))
		l.died(secs(5.1), t0.Add(2*time.Minute))
		if got := l.retireAfter(); got != 0 {
			t.Fatalf("after two deaths: retire after %v, want nothing learned", got)
		}
		l.died(secs(6.0), t0.Add(3*time.Minute))
		rep := l.report()
		want := IdleLimit{Limit: secs(5.1), RetireAfter: secs(5.1) - time.Second, Support: 3, LearnedAt: t0.Add(3 * time.Minute), Deaths: 3}
		if rep != want || l.retireAfter() != want.RetireAfter {
			t.Errorf("report %+v, retire after %v; want %+v", rep, l.retireAfter(), want)
		}
	})
	t.Run("a sweep's jitter", func(t *testing.T) {
		// gunicorn --keep-alive 1 closes in a once-a-second sweep: deaths at
		// one limit are seen up to two seconds apart.
		var l idleLimits
		for i, a := range []float64{2.9, 1.0, 2.95} {
			l.died(secs(a), t0.Add(time.Duration(i)*time.Minute))
		}
		if got := l.report().Limit; got != secs(1) {
			t.Errorf("deaths at 1, 2.9, 2.95 s: limit %v, want 1s", got)
		}
		var far idleLimits
		for i, a := range []float64{3.1, 1.0, 3.2} {
			far.died(secs(a), t0.Add(time.Duration(i)*time.Minute))
		}
		if got := far.report().Limit; got != 0 {
			t.Errorf("deaths at 1, 3.1, 3.2 s: limit %v, want none (more than 2 s apart)", got)
		}
	})
	t.Run("spread deaths", func(t *testing.T) {
		var l idleLimits
		for i, a := range []float64{5.2, 8, 20, 12, 40} {
			l.died(secs(a), t0.Add(time.Duration(i)*time.Minute))
		}
		if rep := l.report(); rep.Limit != 0 || rep.Deaths != 5 {
			t.Errorf("deaths at scattered idle ages: %+v, want none learned, 5 counted", rep)
		}
	})
	t.Run("a longer survivor", func(t *testing.T) {
		var l idleLimits
		l.survived(secs(9), t0)
		for i := range 5 {
			l.died(secs(5+0.1*float64(i)), t0.Add(time.Duration(i+1)*time.Minute))
		}
		if got := l.retireAfter(); got != 0 {
			t.Errorf("deaths at 5s after a connection survived 9s: retire after %v, want none learned", got)
		}
		// Half an hour later that survivor is forgotten.
		for i := range 3 {
			l.died(secs(5+0.1*float64(i)), t0.Add(time.Duration(31+i)*time.Minute))
		}
		if got := l.retireAfter(); got != secs(4) {
			t.Errorf("after the survivor was forgotten: retire after %v, want 4s", got)
		}
	})
	t.Run("deaths older than 15 minutes", func(t *testing.T) {
		var l idleLimits
		l.died(secs(5), t0)
		l.died(secs(5), t0.Add(time.Minute))
		l.died(secs(5), t0.Add(17*time.Minute))
		if got := l.retireAfter(); got != 0 {
			t.Errorf("retire after %v, want none learned", got)
		}
	})
	t.Run("only lowers", func(t *testing.T) {
		var l idleLimits
		for i := range 3 {
			l.died(secs(5), t0.Add(time.Duration(i)*time.Second))
		}
		for i := range 3 {
			l.died(secs(20), t0.Add(time.Duration(10+i)*time.Second))
		}
		if got := l.report().Limit; got != secs(5) {
			t.Errorf("after deaths at 20s: limit %v, want 5s kept", got)
		}
		for i := range 3 {
			l.died(secs(2), t0.Add(time.Duration(20+i)*time.Second))
		}
		if rep := l.report(); rep.Limit != secs(2) || rep.RetireAfter != secs(1) {
			t.Errorf("after deaths at 2s: %+v, want 2s, retire after 1s", rep)
		}
	})
	t.Run("short limit", func(t *testing.T) {
		var l idleLimits
		for i := range 3 {
			l.died(300*time.Millisecond, t0.Add(time.Duration(i)*time.Second))
		}
		if got := l.retireAfter(); got != 150*time.Millisecond {
			t.Errorf("retire after %v, want 150ms (half of a limit under 2s)", got)
		}
	})
	t.Run("zero is no death", func(t *testing.T) {
		var l idleLimits
		l.died(0, t0)
		if rep := l.report(); rep.Deaths != 0 {
			t.Errorf("%+v", rep)
		}
	})
}

// A pool puts the learned limit, and an announced timeout, on the
// connections it keeps: the earlier of the two retires them.
func TestPutRetiresBeforeLearnedLimit(t *testing.T) {
	up := newFakeUpstream(t, "tcp", ok("x"))
	p := newPool("tcp", up.address(), 4, time.Second, 4096, nil)
	defer p.closeIdle()
	for i := range 3 {
		p.idles.died(5*time.Second, time.Now().Add(time.Duration(i)*time.Millisecond))
	}
	for _, tc := range []struct {
		announced, want time.Duration
	}{
		{0, 4 * time.Second},
		{60 * time.Second, 4 * time.Second},
		{2 * time.Second, time.Second},
	} {
		c, err := p.get(time.Now(), false)
		if err != nil {
			t.Fatal(err)
		}
		c.keepAlive = tc.announced
		p.put(c, true)
		if got := c.retireAt.Sub(c.idleSince); got != tc.want {
			t.Errorf("announced %v: retired after %v idle, want %v", tc.announced, got, tc.want)
		}
	}
}

// closeAfter reads the request and closes the connection without a byte
// once hold has passed: a timer in the app that kills requests at that age.
func (u *fakeUpstream) closeAfter(hold time.Duration) behaviour {
	return func(c net.Conn) {
		if _, _, err := readRequest(bufio.NewReader(c)); err != nil {
			return
		}
		u.wait(hold)
	}
}

// wait returns once d has passed or the test ended: the app's own timer.
func (u *fakeUpstream) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-u.done:
	}
}

// Three requests killed at the same age, at once: the last close to come
// carries timer-s, its hint and log line say so, and the proxy reports the
// kill timer. Requests closed at once never do.
func TestKillTimerThroughProxy(t *testing.T) {
	up := newFakeUpstream(t, "tcp")
	up.setScript(up.closeAfter(1100 * time.Millisecond))
	var log bytes.Buffer
	var logMu sync.Mutex
	addr, p := startProxy(t, Settings{Network: "tcp", Address: up.address(), ExposeDetails: true,
		Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: &log, mu: &logMu}, nil))})
	results := make(chan *response, 3)
	for range 3 {
		go func() { results <- get(t, addr, "/slow") }()
	}
	var timed []map[string]string
	for range 3 {
		params := wantDiagnosis(t, <-results, http.StatusBadGateway, diag.ConnectionTerminated)
		if _, ok := params["timer-s"]; ok {
			timed = append(timed, params)
		}
	}
	if len(timed) != 1 || timed[0]["timer-s"] != "1" {
		t.Fatalf("diagnoses with timer-s: %v, want exactly one, timer-s=1", timed)
	}
	if h := timed[0]["hint"]; !strings.HasPrefix(h, "closed at 1.") || !strings.Contains(h, "like the 2 before it: a timer in the app kills requests at ~1 s: gunicorn --timeout, php-fpm request_terminate_timeout, uwsgi harakiri") {
		t.Errorf("hint %q", h)
	}
	logMu.Lock()
	lines := strings.Count(log.String(), `"timer_s":1,`)
	logged := log.String()
	logMu.Unlock()
	if lines != 1 || !strings.Contains(logged, `"hint":"closed at 1.`) {
		t.Errorf("log lines with timer_s=1: %d, want 1:\n%s", lines, logged)
	}
	kt := p.AppTimers().KillTimers
	if len(kt) != 1 || kt[0].Timer != time.Second || kt[0].Count != 3 || kt[0].Median < 1100*time.Millisecond {
		t.Errorf("kill timers %+v, want one at 1s, 3 closes, median at least the app's 1.1s", kt)
	}

	t.Run("immediate closes", func(t *testing.T) {
		for _, b := range []behaviour{closeAfterRequest, resetAfterRequest} {
			up := newFakeUpstream(t, "tcp", b)
			addr, p := startProxy(t, Settings{Network: "tcp", Address: up.address()})
			for i := range 5 {
				if params := wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.ConnectionTerminated); params["timer-s"] != "" {
					t.Errorf("immediate close %d: timer-s=%s", i+1, params["timer-s"])
				}
			}
			if kt := p.AppTimers().KillTimers; len(kt) != 0 {
				t.Errorf("kill timers %+v after immediate closes, want none", kt)
			}
		}
	})
}

// lockedWriter serializes writes to w: slog handlers may write from many
// goroutines.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// A reused connection the app closes a second after the request reached it
// is no keep-alive race: the app had the request, so even a GET is not sent
// again, and the close teaches nothing about idle limits.
func TestLateCloseOnReusedConnNotRetried(t *testing.T) {
	up := newFakeUpstream(t, "tcp")
	up.setScript(func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, _, err := readRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
		if _, _, err := readRequest(br); err != nil {
			return
		}
		up.wait(1100 * time.Millisecond) // then the connection closes, without a byte
	})
	tr := new(diag.Traffic)
	addr, p := startProxy(t, Settings{Network: "tcp", Address: up.address(), Traffic: tr})
	if r := get(t, addr, "/"); r.StatusCode != 200 {
		t.Fatalf("first: %d", r.StatusCode)
	}
	wantDiagnosis(t, get(t, addr, "/slow"), http.StatusBadGateway, diag.ConnectionTerminated)
	if tr.Retries() != 0 || up.accepted() != 1 {
		t.Errorf("retries %d, connections %d; want 0 and 1: the app had the request", tr.Retries(), up.accepted())
	}
	if d := p.AppTimers().IdleLimit.Deaths; d != 0 {
		t.Errorf("%d idle deaths counted, want 0", d)
	}
}

// idleTimer is an upstream that keeps a keep-alive connection open for idle
// after each answer, and no longer, announcing nothing (as uvicorn, Go's
// net/http or gunicorn's --keep-alive do). expired gets a value each time a
// connection's idle time runs out.
//
// With raceOnNext, the idle timer fires as the next request arrives: that
// request is met with a close and no byte, the keep-alive race made
// deterministic. Without it, the connection is closed when the timer fires,
// and the proxy's check before reuse finds it closed.
type idleTimer struct {
	idle       time.Duration
	raceOnNext bool
	expired    chan struct{}
}

func (it *idleTimer) behaviour(u *fakeUpstream) behaviour {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
			u.wait(it.idle)
			if !it.raceOnNext {
				c.Close() // before telling the test, which then sends the next request
				it.expired <- struct{}{}
				return
			}
			it.expired <- struct{}{}
			// The next request finds the connection's time up.
			_, _, _ = readRequest(br)
			return
		}
	}
}

// An upstream that closes idle keep-alive connections after 300 ms without
// announcing it: three idle deaths teach the limit, after which connections
// are retired before it and no request meets the race: no retry, no 502,
// even for a POST.
func TestIdleLimitThroughProxy(t *testing.T) {
	const idle = 300 * time.Millisecond
	for _, tc := range []struct {
		name       string
		raceOnNext bool
		retries    uint64 // while learning: GETs lost to the race and sent again
	}{
		{"keep-alive races", true, 3},
		{"closes found before reuse", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := &idleTimer{idle: idle, raceOnNext: tc.raceOnNext, expired: make(chan struct{}, 16)}
			up := newFakeUpstream(t, "tcp")
			up.setScript(it.behaviour(up))
			tr := new(diag.Traffic)
			addr, p := startProxy(t, Settings{Network: "tcp", Address: up.address(), Traffic: tr})
			expired := func() {
				t.Helper()
				select {
				case <-it.expired:
				case <-time.After(10 * time.Second):
					t.Fatal("the upstream's idle timer never ran out")
				}
			}
			if r := get(t, addr, "/"); r.StatusCode != 200 {
				t.Fatalf("first: %d %s", r.StatusCode, r.Header.Get(diag.HeaderDiagnosis))
			}
			for i := range 3 {
				expired()
				if r := get(t, addr, "/"); r.StatusCode != 200 {
					t.Fatalf("request %d after the idle limit: %d %s", i+2, r.StatusCode, r.Header.Get(diag.HeaderDiagnosis))
				}
			}
			learned := p.AppTimers().IdleLimit
			if learned.Support != 3 || learned.Deaths != 3 || learned.Limit < idle-50*time.Millisecond ||
				learned.RetireAfter != learned.Limit-learned.Limit/2 {
				t.Fatalf("learned %+v, want the 300ms limit from 3 deaths, retired at half of it", learned)
			}
			if tr.Retries() != tc.retries {
				t.Errorf("retries while learning: %d, want %d", tr.Retries(), tc.retries)
			}
			for i, req := range []string{
				"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
				"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
				"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
			} {
				expired()
				if r := send(t, addr, req); r.StatusCode != 200 {
					t.Errorf("request %d once learned: %d %s, want 200", i+1, r.StatusCode, r.Header.Get(diag.HeaderDiagnosis))
				}
			}
			if tr.Retries() != tc.retries || p.AppTimers().IdleLimit.Deaths != 3 {
				t.Errorf("once learned: retries %d, idle deaths %d; want %d and 3: no request met the race",
					tr.Retries(), p.AppTimers().IdleLimit.Deaths, tc.retries)
			}
		})
	}
}
