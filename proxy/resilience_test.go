package proxy

import (
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/health"
	"github.com/upmedic/upmedic/internal/sockfault"
)

// A hold that spans a restart of the app: every request sent while nothing
// listened gets the app's 200 once it is back.
func TestHoldSpansRestart(t *testing.T) {
	addr := sockfault.ClosedTCPAddr(t)
	proxyAddr, p := startProxy(t, Settings{Network: "tcp", Address: addr, Hold: 10 * time.Second})
	results := make(chan *response, 3)
	for range 3 {
		go func() { results <- get(t, proxyAddr, "/") }()
	}
	waitFor(t, "three requests to be held", func() bool { return len(p.holdSlots) == 3 })

	ln, err := net.Listen("tcp", addr) // the app comes back on its port
	if err != nil {
		t.Skipf("the app's port was taken meanwhile: %v", err)
	}
	serveBehaviour(t, ln, ok("back"))
	for range 3 {
		r := <-results
		if r.StatusCode != 200 || string(r.body) != "back" {
			t.Errorf("held request: %d %q %s", r.StatusCode, r.body, r.Header.Get(diag.HeaderDiagnosis))
		}
	}
}

// A hold that outlasts UPMEDIC_HOLD answers with the real cause, counting
// the attempts and the time held.
func TestHoldExpires(t *testing.T) {
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: sockfault.ClosedTCPAddr(t), Hold: 350 * time.Millisecond})
	params := wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.ConnectionRefused)
	attempts, _ := strconv.Atoi(params["attempts"])
	held, _ := strconv.Atoi(params["held-ms"])
	if attempts < 3 || held < 300 {
		t.Errorf("attempts=%q held-ms=%q: want about one attempt per 100ms over 350ms", params["attempts"], params["held-ms"])
	}
}

// While the health checker says down and no hold is set, requests fail fast
// without touching the upstream.
func TestFailFastWhileUnhealthy(t *testing.T) {
	up := newFakeUpstream(t, "tcp", ok("fine"))
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), Health: downHealth{}})
	r := get(t, addr, "/")
	params := wantDiagnosis(t, r, http.StatusServiceUnavailable, diag.UpstreamUnhealthy)
	if params["last-cause"] != "connection_refused" || params["errno"] != "ECONNREFUSED" || r.Header.Get("Retry-After") != "2" {
		t.Errorf("params %v, Retry-After %q", params, r.Header.Get("Retry-After"))
	}
	if up.accepted() != 0 {
		t.Error("a fail-fast request reached the upstream")
	}
}

// With a hold set, a down health state does not fail fast: the request is
// held, and wakes at once when health flips up.
func TestHoldWakesOnHealthUp(t *testing.T) {
	addr := sockfault.ClosedTCPAddr(t)
	h := downHealth{up: make(chan struct{})}
	proxyAddr, p := startProxy(t, Settings{Network: "tcp", Address: addr, Hold: 10 * time.Second, Health: h})
	result := make(chan *response, 1)
	go func() { result <- get(t, proxyAddr, "/") }()
	waitFor(t, "the request to be held", func() bool { return len(p.holdSlots) == 1 })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port taken: %v", err)
	}
	serveBehaviour(t, ln, ok("up"))
	close(h.up)
	if r := <-result; r.StatusCode != 200 || string(r.body) != "up" {
		t.Errorf("got %d %q", r.StatusCode, r.body)
	}
}

// The breaker opens after exactly N proxy-made failures, answers
// breaker_open naming the tripping cause without touching the upstream, lets
// one trial through after OpenFor and closes when it succeeds.
func TestBreakerThroughProxy(t *testing.T) {
	up := newFakeUpstream(t, "tcp", closeAfterRequest)
	b := health.NewBreaker(health.BreakerSettings{Failures: 3, OpenFor: 300 * time.Millisecond, Logger: quietLogger()})
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), Breaker: b})
	for i := range 3 {
		wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.ConnectionTerminated)
		if _, _, open := b.Open(); open != (i == 2) {
			t.Fatalf("after %d failures open=%v", i+1, open)
		}
	}
	r := get(t, addr, "/")
	params := wantDiagnosis(t, r, http.StatusServiceUnavailable, diag.BreakerOpen)
	if params["tripped-by"] != "connection_terminated" || params["retry-in-ms"] == "" || r.Header.Get("Retry-After") != "1" {
		t.Errorf("breaker_open params %v Retry-After %q", params, r.Header.Get("Retry-After"))
	}
	if up.accepted() != 3 {
		t.Errorf("upstream saw %d connections, want 3: an open breaker must not call it", up.accepted())
	}
	// The app recovers; after OpenFor one trial goes through and closes it.
	up.setScript(ok("recovered"))
	waitFor(t, "OpenFor to pass", func() bool { _, _, open := b.Open(); return !open })
	if r := get(t, addr, "/"); r.StatusCode != 200 || string(r.body) != "recovered" {
		t.Fatalf("trial: %d %q", r.StatusCode, r.body)
	}
	if st := b.State().State; st != "closed" {
		t.Errorf("breaker %s after a successful trial, want closed", st)
	}
}

// An app's own 5xx never opens the breaker, and is counted and kept in the
// journal like every diagnosis.
func TestUpstreamStatusDoesNotTrip(t *testing.T) {
	up := newFakeUpstream(t, "tcp", respond(func(*http.Request, []byte) string {
		return "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
	}))
	b := health.NewBreaker(health.BreakerSettings{Failures: 2, OpenFor: time.Hour, Logger: quietLogger()})
	journal := new(diag.Journal)
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), Breaker: b, Journal: journal})
	for range 5 {
		if r := get(t, addr, "/"); r.StatusCode != 503 || r.Header.Get(diag.HeaderDiagnosis) != "upstream_status;received-status=503" {
			t.Fatalf("got %d %v", r.StatusCode, r.Header)
		}
	}
	if _, _, open := b.Open(); open {
		t.Error("the app's own 503s opened the breaker")
	}
	if st := b.State(); st.State != "closed" || st.ConsecutiveFailures != 0 {
		t.Errorf("breaker %+v after five app 503s, want closed with no failure counted", st)
	}
	if n := journal.Count(diag.UpstreamStatus); n != 5 {
		t.Errorf("journal counts %d upstream_status, want 5", n)
	}
	recent := journal.Recent()
	if len(recent) != 5 {
		t.Fatalf("journal keeps %d entries, want 5", len(recent))
	}
	e := recent[0]
	if e.Diagnosis.Cause != diag.UpstreamStatus || e.Diagnosis.ReceivedStatus != 503 || e.Phase != diag.PhaseHeader || e.Aborted {
		t.Errorf("newest entry %+v, want upstream_status with received-status 503 in the response header phase", e)
	}
}

// The breaker still opens on real failures after the app's own 5xx, which
// count as successes in its streak.
func TestUpstreamStatusBetweenFailures(t *testing.T) {
	up := newFakeUpstream(t, "tcp", closeAfterRequest,
		raw("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
		closeAfterRequest)
	b := health.NewBreaker(health.BreakerSettings{Failures: 2, OpenFor: time.Hour, Logger: quietLogger()})
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), Breaker: b})
	wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.ConnectionTerminated)
	if r := get(t, addr, "/"); r.StatusCode != 500 {
		t.Fatalf("the app's 500: got %d", r.StatusCode)
	}
	wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.ConnectionTerminated)
	if _, _, open := b.Open(); open {
		t.Fatal("open after failure, app 500, failure: the 500 should have broken the streak")
	}
	wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.ConnectionTerminated)
	if _, _, open := b.Open(); !open {
		t.Error("not open after two consecutive failures")
	}
}

// serveBehaviour serves b on every connection ln accepts until the test ends.
func serveBehaviour(t *testing.T, ln net.Listener, b behaviour) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b(c)
			}()
		}
	}()
}

// A connect refused at once is remembered: the requests right after it get
// the same diagnosis, marked with age-ms, without a connect of their own,
// until a connect succeeds.
func TestRefusalMemo(t *testing.T) {
	addr := sockfault.ClosedTCPAddr(t)
	proxyAddr, p := startProxy(t, Settings{Network: "tcp", Address: addr},
		func(p *Proxy) { p.pool.memo = time.Hour }) // no expiry within the test
	first := wantDiagnosis(t, get(t, proxyAddr, "/"), http.StatusBadGateway, diag.ConnectionRefused)
	if _, ok := first["age-ms"]; ok {
		t.Errorf("the first refusal is reported as remembered: %v", first)
	}

	ln, err := net.Listen("tcp", addr) // the app is back, but nobody has connected yet
	if err != nil {
		t.Skipf("the app's port was taken meanwhile: %v", err)
	}
	var accepted atomic.Int32
	serveBehaviour(t, ln, func(c net.Conn) { accepted.Add(1); ok("back")(c) })
	again := wantDiagnosis(t, get(t, proxyAddr, "/"), http.StatusBadGateway, diag.ConnectionRefused)
	if age, err := strconv.Atoi(again["age-ms"]); err != nil || age < 0 || again["errno"] != "ECONNREFUSED" {
		t.Errorf("remembered refusal: params %v", again)
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("a remembered refusal connected %d times", n)
	}

	// A connect that does not recall (as a held request's) gets through and
	// clears the memory; the next request connects again.
	c, err := p.pool.get(time.Now(), false)
	if err != nil {
		t.Fatalf("fresh connect: %v", err)
	}
	p.pool.close(c)
	if r := get(t, proxyAddr, "/"); r.StatusCode != 200 || string(r.body) != "back" {
		t.Errorf("after a successful connect: %d %q %s", r.StatusCode, r.body, r.Header.Get(diag.HeaderDiagnosis))
	}
}

// Slow connect failures are not remembered: each request tries its own.
func TestConnectTimeoutNotRemembered(t *testing.T) {
	addr, p := startProxy(t, Settings{Network: "tcp", Address: blackholeAddr(t), ConnectTimeout: 100 * time.Millisecond})
	wantDiagnosis(t, get(t, addr, "/"), http.StatusGatewayTimeout, diag.ConnectionTimeout)
	if r := p.pool.refused.Load(); r != nil {
		t.Errorf("a connect timeout was remembered: %v", r)
	}
}
