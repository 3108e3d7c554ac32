package health

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/internal/sockfault"
)

// quiet returns a logger that drops everything.
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestCheckerRiseAndFall(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			up := newFakeUpstream(t, network)
			logs := &logRecorder{}
			st := newStepper(t, Settings{Network: network, Address: up.addr, Path: "/healthz",
				Timeout: waitFor, Rise: 2, Fall: 3, Logger: slog.New(logs)})

			steps := []struct {
				b          behaviour
				want       State
				succ, fail int
			}{
				{answer200, Unknown, 1, 0},
				{answer200, Up, 2, 0}, // Rise=2
				{answer503, Up, 0, 1},
				{answer503, Up, 0, 2},
				{answer200, Up, 1, 0}, // a success breaks the failure streak
				{answer503, Up, 0, 1},
				{answer503, Up, 0, 2},
				{answer503, Down, 0, 3}, // Fall=3
				{answer503, Down, 0, 4},
				{answer200, Down, 1, 0},
				{answer200, Up, 2, 0},
			}
			for i, s := range steps {
				up.next(s.b)
				snap := st.step()
				if snap.State != s.want || st.c.State() != s.want {
					t.Fatalf("step %d (%v): state %v (State() %v), want %v", i, s.b, snap.State, st.c.State(), s.want)
				}
				if snap.ConsecutiveSuccesses != s.succ || snap.ConsecutiveFailures != s.fail {
					t.Fatalf("step %d (%v): streaks %d/%d, want %d/%d", i, s.b,
						snap.ConsecutiveSuccesses, snap.ConsecutiveFailures, s.succ, s.fail)
				}
				if st.c.Down() != (s.want == Down) {
					t.Fatalf("step %d: Down() = %v with state %v", i, st.c.Down(), s.want)
				}
			}

			// Each flip is logged exactly once, with its cause.
			want := []string{"upstream up", "upstream down", "upstream up"}
			if got := logs.messages(); !slices.Equal(got, want) {
				t.Fatalf("logged %q, want %q", got, want)
			}
			down := logs.find("upstream down")[0]
			if down.level != slog.LevelWarn || down.attrs["cause"] != "upstream_status" || down.attrs["from"] != "up" {
				t.Fatalf("down record %+v, want warn with cause=upstream_status from=up", down)
			}
			// The last failure's cause outlives the recovery, for last-cause.
			if got := st.c.LastCause(); got != diag.UpstreamStatus {
				t.Fatalf("LastCause = %v after recovery, want upstream_status", got)
			}
		})
	}
}

func TestCheckerFallCauses(t *testing.T) {
	tests := []struct {
		name       string
		b          behaviour
		want       diag.Cause
		wantStatus int
		wantErrno  syscall.Errno // checked where set, and 0 for an answered probe
		timeout    time.Duration
	}{
		{name: "refused", b: refuse, want: diag.ConnectionRefused, wantErrno: syscall.ECONNREFUSED},
		{name: "close immediately", b: closeNow, want: diag.ConnectionTerminated},
		{name: "silent", b: silent, want: diag.HTTPResponseTimeout, timeout: 150 * time.Millisecond},
		{name: "503", b: answer503, want: diag.UpstreamStatus, wantStatus: 503},
		{name: "not HTTP", b: notHTTP, want: diag.HTTPProtocolError},
		{name: "header too large", b: hugeHeader, want: diag.HTTPResponseHeaderSectionSize},
	}
	for _, network := range []string{"tcp", "unix"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				timeout := tt.timeout
				if timeout == 0 {
					timeout = waitFor
				}
				up := newFakeUpstream(t, network)
				st := newStepper(t, Settings{Network: network, Address: up.addr, Path: "/healthz",
					Timeout: timeout, Rise: 1, Fall: 3, MaxHeaderBytes: 512, Logger: quiet()})
				up.next(answer200)
				if got := st.step().State; got != Up {
					t.Fatalf("after one success with Rise=1: %v, want up", got)
				}
				for i := 1; i <= 3; i++ {
					up.next(tt.b)
					snap := st.step()
					want := Up
					if i == 3 {
						want = Down
					}
					if snap.State != want {
						t.Fatalf("after %d failures: %v, want %v", i, snap.State, want)
					}
					if snap.LastProbe.OK || snap.LastProbe.Cause != tt.want {
						t.Fatalf("probe %d: ok=%v cause=%v, want failure %v (error %q)", i,
							snap.LastProbe.OK, snap.LastProbe.Cause, tt.want, snap.LastError)
					}
					if snap.LastProbe.Status != tt.wantStatus {
						t.Fatalf("probe %d: status %d, want %d", i, snap.LastProbe.Status, tt.wantStatus)
					}
				}
				if got := st.c.LastCause(); got != tt.want {
					t.Fatalf("LastCause = %v, want %v", got, tt.want)
				}
				// The errno travels with the cause, for upstream_unhealthy's
				// errno parameter.
				cause, errno := st.c.LastFailure()
				if cause != tt.want || errno != st.c.Snapshot().LastProbe.Errno {
					t.Fatalf("LastFailure = %v %v, last probe errno %v", cause, errno, st.c.Snapshot().LastProbe.Errno)
				}
				if (tt.wantErrno != 0 || tt.want == diag.UpstreamStatus) && errno != tt.wantErrno {
					t.Fatalf("LastFailure errno = %v (%d), want %v", diag.ErrnoName(errno), errno, diag.ErrnoName(tt.wantErrno))
				}
				if !st.c.Down() {
					t.Fatal("Down() = false after Fall failures")
				}
			})
		}
	}
}

func TestCheckerStatusClasses(t *testing.T) {
	tests := []struct {
		b      behaviour
		ok     bool
		status int
	}{
		{answer200, true, 200},
		{answer302, true, 302},
		{answer404, false, 404},
		{answer503, false, 503},
	}
	for _, tt := range tests {
		t.Run(tt.b.String(), func(t *testing.T) {
			up := newFakeUpstream(t, "tcp")
			st := newStepper(t, Settings{Address: up.addr, Path: "/", Timeout: waitFor, Logger: quiet()})
			up.next(tt.b)
			p := st.step().LastProbe
			wantCause := diag.None
			if !tt.ok {
				wantCause = diag.UpstreamStatus
			}
			if p.OK != tt.ok || p.Status != tt.status || p.Cause != wantCause {
				t.Fatalf("probe answered %d: ok=%v status=%d cause=%v; want ok=%v status=%d cause=%v",
					tt.status, p.OK, p.Status, p.Cause, tt.ok, tt.status, wantCause)
			}
		})
	}
}

func TestCheckerFallFromUnknown(t *testing.T) {
	st := newStepper(t, Settings{Address: sockfault.ClosedTCPAddr(t), Fall: 3, Logger: quiet()})
	for i, want := range []State{Unknown, Unknown, Down} {
		if got := st.step().State; got != want {
			t.Fatalf("after %d refused probes: %v, want %v", i+1, got, want)
		}
	}
	if got := st.c.LastCause(); got != diag.ConnectionRefused {
		t.Fatalf("LastCause = %v, want connection_refused", got)
	}
}

func TestCheckerConnectOnly(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			up := newFakeUpstream(t, network)
			st := newStepper(t, Settings{Network: network, Address: up.addr, Timeout: waitFor,
				Rise: 1, Fall: 1, Logger: quiet()})
			up.next(answer200)
			snap := st.step()
			if snap.State != Up || !snap.LastProbe.OK || snap.LastProbe.Status != 0 {
				t.Fatalf("connect-only probe to a listener: %+v, want up, ok, status 0", snap)
			}
			up.next(refuse)
			snap = st.step()
			if snap.State != Down || snap.LastProbe.Cause != diag.ConnectionRefused {
				t.Fatalf("connect-only probe to a closed listener: state %v cause %v, want down connection_refused",
					snap.State, snap.LastProbe.Cause)
			}
			select {
			case req := <-up.requests:
				t.Fatalf("connect-only probe sent a request: %q", req)
			default:
			}
		})
	}
}

func TestCheckerUnixSocketNotFound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.sock")
	st := newStepper(t, Settings{Network: "unix", Address: path, Fall: 1, Logger: quiet()})
	snap := st.step()
	if snap.State != Down || snap.LastProbe.Cause != diag.SocketNotFound || st.c.LastCause() != diag.SocketNotFound {
		t.Fatalf("probe of a missing socket: state %v cause %v LastCause %v, want down socket_not_found",
			snap.State, snap.LastProbe.Cause, st.c.LastCause())
	}
}

func TestCheckerProbeRequest(t *testing.T) {
	tests := []struct {
		name, host, want string
	}{
		{"default host", "", "GET /health?full=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: upmedic-health\r\nConnection: close\r\n\r\n"},
		{"host set", "app.internal", "GET /health?full=1 HTTP/1.1\r\nHost: app.internal\r\nUser-Agent: upmedic-health\r\nConnection: close\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newFakeUpstream(t, "tcp")
			st := newStepper(t, Settings{Address: up.addr, Path: "/health?full=1", Host: tt.host,
				Timeout: waitFor, Logger: quiet()})
			up.next(answer200)
			st.step()
			select {
			case got := <-up.requests:
				if got != tt.want {
					t.Fatalf("probe request %q, want %q", got, tt.want)
				}
			case <-time.After(waitFor):
				t.Fatal("no probe request arrived")
			}
		})
	}
}

func TestCheckerWaitUp(t *testing.T) {
	up := newFakeUpstream(t, "tcp")
	st := newStepper(t, Settings{Address: up.addr, Path: "/", Timeout: waitFor, Rise: 2, Fall: 1, Logger: quiet()})

	// A waiter started before any probe wakes on the flip, not before.
	woke := make(chan struct{})
	go func() {
		<-st.c.WaitUp()
		close(woke)
	}()
	first := st.c.WaitUp()

	up.next(answer200)
	st.step()
	select {
	case <-first:
		t.Fatal("WaitUp closed after 1 success with Rise=2")
	default:
	}
	up.next(answer200)
	st.step()
	for _, ch := range []<-chan struct{}{first, woke} {
		select {
		case <-ch:
		case <-time.After(waitFor):
			t.Fatal("WaitUp did not wake when the state became up")
		}
	}
	select {
	case <-st.c.WaitUp():
	default:
		t.Fatal("WaitUp is not closed while up")
	}

	// Down again: a new wait for the next flip.
	up.next(answer503)
	if got := st.step().State; got != Down {
		t.Fatalf("state %v after a 503 with Fall=1, want down", got)
	}
	again := st.c.WaitUp()
	if again == first {
		t.Fatal("WaitUp returned the already-closed channel while down")
	}
	for i := range 2 {
		select {
		case <-again:
			t.Fatalf("WaitUp closed after %d successes with Rise=2", i)
		default:
		}
		up.next(answer200)
		st.step()
	}
	select {
	case <-again:
	case <-time.After(waitFor):
		t.Fatal("WaitUp did not wake on the second flip up")
	}
}

func TestCheckerSnapshot(t *testing.T) {
	up := newFakeUpstream(t, "tcp")
	st := newStepper(t, Settings{Address: up.addr, Path: "/", Interval: time.Minute, Timeout: waitFor,
		Rise: 1, Fall: 2, Logger: quiet()})
	if snap := st.c.Snapshot(); snap.State != Unknown || !snap.Since.IsZero() || !snap.LastProbe.At.IsZero() ||
		!st.c.NextProbe().IsZero() || snap.Rise != 1 || snap.Fall != 2 {
		t.Fatalf("before Run: %+v", snap)
	}

	up.next(answer200)
	before := time.Now()
	snap := st.step()
	if snap.State != Up || !snap.LastProbe.OK || snap.LastProbe.Status != 200 || snap.LastProbe.Cause != diag.None {
		t.Fatalf("after a 200: %+v", snap)
	}
	if snap.LastProbe.At.Before(before) || snap.LastProbe.Latency <= 0 {
		t.Fatalf("probe at %v latency %v, want at or after %v and positive", snap.LastProbe.At, snap.LastProbe.Latency, before)
	}
	if !snap.Since.Equal(snap.LastProbe.At) {
		t.Fatalf("Since %v, want the flipping probe's start %v", snap.Since, snap.LastProbe.At)
	}
	if want := snap.LastProbe.At.Add(time.Minute); !snap.NextProbe.Equal(want) || !st.c.NextProbe().Equal(want) {
		t.Fatalf("NextProbe %v, want %v", snap.NextProbe, want)
	}
	upSince := snap.Since

	up.next(answer503)
	snap = st.step()
	if snap.State != Up || snap.ConsecutiveFailures != 1 || snap.LastCause != diag.UpstreamStatus ||
		snap.LastError != "probe answered with status 503" || !snap.Since.Equal(upSince) {
		t.Fatalf("after one 503 with Fall=2: %+v", snap)
	}
	up.next(answer200)
	snap = st.step()
	if !snap.LastProbe.OK || snap.LastCause != diag.UpstreamStatus || snap.LastError == "" {
		t.Fatalf("a success must keep the last failure's cause and error: %+v", snap)
	}
	if _, total, sum := st.c.ProbeLatency().Snapshot(); total != 3 || sum <= 0 {
		t.Fatalf("probe latency histogram: %d probes, sum %v; want 3 and positive", total, sum)
	}
}

// TestCheckerRunTimer runs the real timer: probes at once, then again after
// Interval.
func TestCheckerRunTimer(t *testing.T) {
	up := newFakeUpstream(t, "tcp")
	for range 2 {
		up.next(answer200)
	}
	c := NewChecker(Settings{Address: up.addr, Interval: 20 * time.Millisecond, Timeout: waitFor, Logger: quiet()})
	probed := make(chan ProbeResult, 2)
	c.probed = func() {
		select {
		case probed <- c.Snapshot().LastProbe:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Run(ctx) }()
	var at []time.Time
	for range 2 {
		select {
		case p := <-probed:
			at = append(at, p.At)
		case <-time.After(waitFor):
			t.Fatal("Run did not probe")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return after cancel")
	}
	if at[0].Sub(start) > time.Second {
		t.Fatalf("first probe %v after Run, want at once", at[0].Sub(start))
	}
	if gap := at[1].Sub(at[0]); gap < 20*time.Millisecond {
		t.Fatalf("probes %v apart, want at least Interval", gap)
	}
	if c.State() != Up {
		t.Fatalf("state %v after two successes, want up", c.State())
	}
}

// TestCheckerCancelDuringProbe: a probe cut short by shutdown is not a
// failure.
func TestCheckerCancelDuringProbe(t *testing.T) {
	up := newFakeUpstream(t, "tcp")
	up.next(silent)
	st := newStepper(t, Settings{Address: up.addr, Path: "/", Timeout: time.Minute, Fall: 1, Logger: quiet()})
	st.start()
	select {
	case <-up.requests:
	case <-time.After(waitFor):
		t.Fatal("probe request did not arrive")
	}
	st.stop() // fails the test unless Run returns nil promptly
	if snap := st.c.Snapshot(); snap.State != Unknown || snap.ConsecutiveFailures != 0 || st.c.LastCause() != diag.None {
		t.Fatalf("after a cancelled probe: %+v, want unknown with no failure", snap)
	}
}

func TestCheckerRunTwicePanics(t *testing.T) {
	c := NewChecker(Settings{Address: sockfault.ClosedTCPAddr(t), Interval: time.Hour, Logger: quiet()})
	c.running.Store(true) // as if Run were running
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("second Run did not panic")
		}
	}()
	c.Run(context.Background())
}

func TestNewCheckerDefaults(t *testing.T) {
	c := NewChecker(Settings{Address: "127.0.0.1:1"})
	if c.network != "tcp" || c.interval != 2*time.Second || c.dialer.Timeout != time.Second ||
		c.rise != 2 || c.fall != 3 || c.req != nil || c.log != slog.Default() {
		t.Fatalf("defaults: network %q interval %v timeout %v rise %d fall %d req %q",
			c.network, c.interval, c.dialer.Timeout, c.rise, c.fall, c.req)
	}
	c = NewChecker(Settings{Address: "127.0.0.1:1", Path: "/"})
	if c.br.Size() != 4096 {
		t.Fatalf("header buffer %d, want 4096", c.br.Size())
	}
}

func TestCheckerHotPathAllocs(t *testing.T) {
	c := NewChecker(Settings{Address: "127.0.0.1:1"})
	c.nextProbe.Store(time.Now().UnixNano())
	var sink bool
	allocs := testing.AllocsPerRun(100, func() {
		sink = c.Down() || c.State() == Up || c.LastCause() != diag.None || c.NextProbe().IsZero()
		_, _, ok := c.PoolStatus()
		sink = sink || ok
	})
	_ = sink
	if allocs != 0 {
		t.Fatalf("State/Down/LastCause/NextProbe/PoolStatus allocate %v times, want 0", allocs)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Unknown: "unknown", Up: "up", Down: "down", State(9): "unknown"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}
