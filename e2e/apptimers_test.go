package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// gunicornKillTimer: gunicorn --timeout 2 kills three requests in a row.
// The first two are premature closes like any other; the third, at the same
// age, is matched to the app's kill timer: timer-s=2 or 3 (the arbiter kills
// a silent worker between 2 and 3 s), with the timers that do this in the
// hint and upmedic's log line, and the kill timer listed in /status.
func gunicornKillTimer(t *testing.T, row *reportRow) {
	need(t, "nginx", "gunicorn")
	dir := scenarioDir(t)
	app := loopback(freePort(t))
	// Three workers: a booted one is always free while the arbiter replaces
	// the one it killed, so no request waits in the backlog and every kill
	// comes at the timer's age.
	startGunicorn(t, dir, app, "--workers", "3", "--timeout", "2", "--graceful-timeout", "1")
	s := newStack(t, dir, stackConfig{Upstream: app, Alone: "proxy_pass http://" + app + ";"})

	for i := range 2 {
		via := s.via.get(t, "/sleep?s=30")
		if ps := wantDiagnosed(t, via, http.StatusBadGateway, "connection_terminated", "connection_terminated"); ps["timer-s"] != "" {
			t.Errorf("kill %d: diag=%q carries timer-s: two closes are no timer yet", i+1, via.line.diagnosis)
		}
	}
	via, alone := both(t, s, "/sleep?s=30")
	ps := wantDiagnosed(t, via, http.StatusBadGateway, "connection_terminated", "connection_terminated")
	if ps["timer-s"] != "2" && ps["timer-s"] != "3" {
		t.Errorf("third kill: diag=%q, want timer-s=2 or 3", via.line.diagnosis)
	}
	line := waitUpmedicLogged(t, s.upmedic, `"cause":"connection_terminated"`, `"timer_s":`+ps["timer-s"],
		`"hint":"closed at `, `like the 2 before it: a timer in the app kills requests at ~`+ps["timer-s"]+` s: gunicorn --timeout`)
	t.Logf("third kill: diag=%q\nupmedic: %s", via.line.diagnosis, line)

	kt := status(t, s.admin).AppTimers.KillTimers
	if len(kt) != 1 || kt[0].Count != 3 || (kt[0].TimerS != 2 && kt[0].TimerS != 3) || kt[0].AgeMS < 2000 {
		t.Errorf("/status app_timers.kill_timers %+v, want one at 2 or 3 s with 3 closes", kt)
	}
	fill(row, via, alone)
}

// statusDoc is the part of upmedic's /status the suite reads.
type statusDoc struct {
	AppTimers struct {
		KillTimers []struct {
			TimerS int   `json:"timer_s"`
			AgeMS  int64 `json:"age_ms"`
			Count  int   `json:"count"`
		} `json:"kill_timers"`
		IdleLimit *struct {
			LimitMS       int64 `json:"limit_ms"`
			RetireAfterMS int64 `json:"retire_after_ms"`
			Deaths        int   `json:"deaths"`
		} `json:"idle_limit"`
		IdleDeaths uint64 `json:"idle_deaths"`
	} `json:"app_timers"`
	Requests struct {
		ByStatus map[string]uint64 `json:"by_status"`
		Retries  uint64            `json:"retries"`
	} `json:"requests"`
}

// status fetches upmedic's /status from the admin API at admin.
func status(t *testing.T, admin string) statusDoc {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st statusDoc
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("/status: %v", err)
	}
	return st
}

// gunicorn's threaded worker closes a keep-alive connection idle for
// --keep-alive seconds and announces nothing (no Keep-Alive: timeout=N).
// upmedic learns that limit from three idle connections it finds closed,
// shows it in /status, and from then on retires its pooled connections
// before gunicorn closes them: no later connection dies idle, no request
// is retried or fails.
func TestKeepAliveIdleLimitLearned(t *testing.T) {
	needRoot(t)
	need(t, "gunicorn")
	dir := scenarioDir(t)
	app := loopback(freePort(t))
	startGunicorn(t, dir, app, "--worker-class", "gthread", "--workers", "1", "--threads", "4", "--keep-alive", "1")
	listen, admin := loopback(freePort(t)), loopback(freePort(t))
	startUpmedic(t, dir, listen, []string{"UPMEDIC_UPSTREAM=" + app, "UPMEDIC_ADMIN_LISTEN=" + admin,
		"UPMEDIC_HEALTH_INTERVAL=1h"})
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(what string) {
		t.Helper()
		resp, err := client.Get("http://" + listen + "/")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "hello from gunicorn\n" {
			t.Fatalf("%s: %d %q %s", what, resp.StatusCode, body, resp.Header.Get("X-Upstream-Diagnosis"))
		}
	}
	// idleClosed waits until gunicorn has closed a keep-alive connection of
	// the suite's own that fell idle after upmedic's did: upmedic's pooled
	// connection is closed by then.
	idleClosed := func() {
		t.Helper()
		c, err := net.Dial("tcp", app)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(readyWithin))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.Header.Get("Keep-Alive") != "" || resp.Close {
			t.Fatalf("gunicorn answered Keep-Alive %q, close %v: want keep-alive with no timeout announced", resp.Header.Get("Keep-Alive"), resp.Close)
		}
		if n, err := br.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("the suite's idle connection: read %d, %v; want gunicorn's close (EOF)", n, err)
		}
	}

	get("first request")
	for i := range 3 {
		idleClosed()
		get("request after an idle close")
		if l := status(t, admin).AppTimers.IdleLimit; (l != nil) != (i == 2) {
			t.Fatalf("after %d idle deaths: idle_limit %+v, want it learned at the third", i+1, l)
		}
	}
	st := status(t, admin)
	l := st.AppTimers.IdleLimit
	// Both are whole milliseconds of nanosecond durations: 1 ms apart at most.
	if retire := l.LimitMS - min(1000, l.LimitMS/2); l.Deaths != 3 || l.LimitMS < 1000 || l.LimitMS > 5000 ||
		l.RetireAfterMS < retire-1 || l.RetireAfterMS > retire+1 {
		t.Errorf("idle_limit %+v, want gunicorn's 1 s (at least 1000 ms) from 3 deaths, retired at half of it", *l)
	}
	t.Logf("learned: idle_limit %+v, idle_deaths %d", *l, st.AppTimers.IdleDeaths)
	for range 3 {
		idleClosed()
		get("request once learned")
	}
	st = status(t, admin)
	if st.AppTimers.IdleDeaths != 3 || st.Requests.Retries != 0 || st.Requests.ByStatus["200"] != 7 || len(st.Requests.ByStatus) != 1 {
		t.Errorf("once learned: idle_deaths %d (want 3: connections retired before gunicorn closes them), retries %d, by_status %v; want 7 x 200",
			st.AppTimers.IdleDeaths, st.Requests.Retries, st.Requests.ByStatus)
	}
}
