// Package health watches the upstream: an active health Checker that probes
// it on a timer, and a circuit Breaker around the proxy's exchanges. It
// imports diag for causes and never the proxy.
package health

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/valyala/fasthttp"
)

// State is what the active health checker believes about the upstream. The
// zero State is Unknown.
type State int32

// The health states. A Checker starts Unknown and leaves it only after Rise
// consecutive successful or Fall consecutive failed probes; it never goes
// back to Unknown.
const (
	// Unknown means not enough probes have run yet to decide. The proxy
	// does not fail fast on Unknown; /readyz is not ready.
	Unknown State = iota
	// Up means the last Rise probes succeeded.
	Up
	// Down means the last Fall probes failed. The proxy fails fast.
	Down
)

// String returns "unknown", "up" or "down".
func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "unknown"
}

// Settings configures a Checker. Every zero field but Address gets a default.
type Settings struct {
	// Network is "tcp" or "unix". Empty means "tcp".
	Network string
	// Address is "127.0.0.1:8000" for tcp or "/run/app.sock" for unix. It is
	// required: NewChecker panics on an empty Address.
	Address string
	// Path is the origin-form request target probed with GET, such as
	// "/healthz"; a 2xx or 3xx answer is a success. Empty means a
	// connect-only probe. It must hold no spaces or control bytes: the
	// caller validates configuration.
	Path string
	// Host is the Host header of the HTTP probe. Empty means "localhost".
	Host string
	// Interval is the time from the start of one probe to the start of the
	// next. Zero means 2s.
	Interval time.Duration
	// Timeout bounds one probe: connect, request and response header
	// together. Zero means 1s.
	Timeout time.Duration
	// Rise is how many consecutive successes make the state Up. Zero means 2.
	Rise int
	// Fall is how many consecutive failures make the state Down. Zero
	// means 3.
	Fall int
	// MaxHeaderBytes caps the probe's response header section; a larger one
	// fails with diag.HTTPResponseHeaderSectionSize. Zero means 4096.
	MaxHeaderBytes int
	// Logger gets one line per state change, and a debug line per failed
	// probe. Nil means slog.Default().
	Logger *slog.Logger

	// FastCGI makes the probe speak FastCGI (PHP-FPM): without Path it
	// sends FCGI_GET_VALUES, which runs no PHP, and reads the answer; with
	// Path, PHP-FPM's ping.path, a FastCGI GET for it that must answer 2xx
	// with the body "pong". False means HTTP (or connect-only).
	FastCGI bool
	// StatusPath is PHP-FPM's pm.status_path ("/fpm-status"), read with the
	// query "json" after each probe, on a connection of its own and within
	// Timeout, for PoolStatus. A failed read does not fail the probe. Empty
	// means no status page is read. It is used only with FastCGI.
	StatusPath string
	// StatusNetwork and StatusAddress are where the status page is served
	// (PHP-FPM's pm.status_listen). Empty StatusAddress means Network and
	// Address; empty StatusNetwork then means "tcp".
	StatusNetwork, StatusAddress string
}

// ProbeResult is the outcome of one probe. Its zero value (zero At) means no
// probe has run.
type ProbeResult struct {
	// At is when the probe started.
	At time.Time
	// OK is true when the probe succeeded.
	OK bool
	// Cause is why the probe failed; diag.None when OK. A non-2xx/3xx
	// answer is diag.UpstreamStatus.
	Cause diag.Cause
	// Status is the HTTP status the upstream answered with; 0 for a
	// connect-only probe or when no header arrived.
	Status int
	// Errno is the errno the failed probe ended in (EACCES, ECONNREFUSED);
	// 0 when OK or when the failure had none.
	Errno syscall.Errno
	// Latency is how long the probe took.
	Latency time.Duration
}

// CheckSnapshot is a Checker's state at one moment, for /status. Its zero
// value is the snapshot of a Checker whose Run has not started.
type CheckSnapshot struct {
	// State is the current health state.
	State State
	// Since is when State began: the start of Run for Unknown. Zero before
	// Run.
	Since time.Time
	// LastProbe is the most recent probe's outcome; zero At if none ran.
	LastProbe ProbeResult
	// ConsecutiveSuccesses and ConsecutiveFailures count the current streak;
	// at most one of them is non-zero.
	ConsecutiveSuccesses, ConsecutiveFailures int
	// Rise and Fall are the configured streak lengths that flip State.
	Rise, Fall int
	// NextProbe is when the next probe starts; zero before Run.
	NextProbe time.Time
	// LastCause is the cause of the most recent failed probe, even if
	// later probes succeeded; diag.None if no probe has failed.
	LastCause diag.Cause
	// LastError is the text of the most recent failed probe's error. It is
	// for server-side logs only: it can hold addresses, paths and bytes sent
	// by the upstream, so never put it in a client-visible response.
	LastError string
	// Pool is the last read of PHP-FPM's status page; nil when
	// Settings.StatusPath is not set.
	Pool *PoolSnapshot
}

// Checker actively probes one upstream and keeps its health state. Build it
// with NewChecker (the zero Checker is not usable) and start it with Run.
// Its methods are safe for concurrent use; State, Down, LastCause, LastFailure
// and NextProbe take no lock and allocate nothing, so the proxy may call them on
// every request. A Checker must not be copied.
type Checker struct {
	network, address string
	interval         time.Duration
	rise, fall       int
	log              *slog.Logger
	dialer           net.Dialer
	req              []byte     // the HTTP probe request; nil for connect-only
	path             string     // Settings.Path
	fcgi             *fcgiProbe // nil unless Settings.FastCGI

	statusPath, statusNetwork, statusAddress string
	pool                                     poolState
	upNow                                    chan struct{} // always closed: WaitUp's answer while Up

	// after returns a channel that fires after d; nil means a real timer.
	// Tests replace it to step probes one at a time.
	after func(d time.Duration) <-chan time.Time
	// probed, when set, is called after each probe has updated the state.
	probed func()

	running atomic.Bool
	state   atomic.Int32 // State
	// lastFailure is the last failed probe's diag.Cause in the low 8 bits
	// and its errno above them: one word, so that a reader never pairs the
	// cause of one probe with the errno of another.
	lastFailure atomic.Uint64
	nextProbe   atomic.Int64 // unix nanoseconds; 0 before Run
	latency     diag.Histogram

	// Used only by the goroutine in Run.
	br  *bufio.Reader
	hdr fasthttp.ResponseHeader

	mu        sync.Mutex // guards the fields below, and orders state flips with upCh
	since     time.Time
	last      ProbeResult
	successes int
	failures  int
	lastError string
	upCh      chan struct{} // closed on the next flip to Up; nil until WaitUp asks

	probes *history[ProbeResult] // the last ProbeHistory probes
	flips  *history[Flip]        // the last FlipHistory state changes
}

// NewChecker returns an Unknown Checker configured by s. It probes nothing
// until Run.
func NewChecker(s Settings) *Checker {
	if s.Address == "" {
		panic("BUG: health: NewChecker needs an Address")
	}
	if s.Network == "" {
		s.Network = "tcp"
	}
	if s.Host == "" {
		s.Host = "localhost"
	}
	if s.Interval <= 0 {
		s.Interval = 2 * time.Second
	}
	if s.Timeout <= 0 {
		s.Timeout = time.Second
	}
	if s.Rise <= 0 {
		s.Rise = 2
	}
	if s.Fall <= 0 {
		s.Fall = 3
	}
	if s.MaxHeaderBytes <= 0 {
		s.MaxHeaderBytes = 4096
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	c := &Checker{
		network:  s.Network,
		address:  s.Address,
		interval: s.Interval,
		rise:     s.Rise,
		fall:     s.Fall,
		log:      s.Logger,
		dialer:   net.Dialer{Timeout: s.Timeout},
		upNow:    make(chan struct{}),
		probes:   newHistory[ProbeResult](ProbeHistory),
		flips:    newHistory[Flip](FlipHistory),
	}
	close(c.upNow)
	c.path = s.Path
	if s.FastCGI {
		c.fcgi = newFCGIProbe(s.MaxHeaderBytes)
		if s.StatusPath != "" {
			c.statusPath, c.statusNetwork, c.statusAddress = s.StatusPath, s.StatusNetwork, s.StatusAddress
			if c.statusAddress == "" {
				c.statusNetwork, c.statusAddress = s.Network, s.Address
			}
			if c.statusNetwork == "" {
				c.statusNetwork = "tcp"
			}
		}
	} else if s.Path != "" {
		c.req = []byte("GET " + s.Path + " HTTP/1.1\r\nHost: " + s.Host +
			"\r\nUser-Agent: upmedic-health\r\nConnection: close\r\n\r\n")
		c.br = bufio.NewReaderSize(nil, s.MaxHeaderBytes)
	}
	return c
}

// Run probes the upstream at once and then every Interval, updating the
// state, until ctx ends; then it returns nil. A failed probe is state, not
// an error. Run must not be called twice on one Checker.
func (c *Checker) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		panic("BUG: health: Checker.Run called twice")
	}
	after := c.after
	if after == nil {
		t := time.NewTimer(time.Hour)
		t.Stop()
		defer t.Stop()
		after = func(d time.Duration) <-chan time.Time {
			t.Reset(d) // since Go 1.23, Reset leaves no stale tick behind
			return t.C
		}
	}
	c.mu.Lock()
	c.since = time.Now()
	c.mu.Unlock()
	for {
		start := time.Now()
		c.nextProbe.Store(start.Add(c.interval).UnixNano())
		res, err := c.probe(ctx, start)
		if ctx.Err() != nil {
			return nil // the probe was cut short by shutdown: not a result
		}
		res.Latency = time.Since(start)
		if err != nil {
			res.Errno = diag.Errno(err)
		}
		c.latency.Observe(res.Latency)
		c.record(res, err)
		if c.statusPath != "" {
			c.readStatus(ctx)
		}
		if c.probed != nil {
			c.probed()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-after(time.Until(start.Add(c.interval))):
		}
	}
}

// probe runs one probe started at start. It leaves res.Latency to the caller.
func (c *Checker) probe(ctx context.Context, start time.Time) (ProbeResult, error) {
	res := ProbeResult{At: start}
	conn, err := c.dialer.DialContext(ctx, c.network, c.address)
	if err != nil {
		res.Cause = diag.ClassifyIn(diag.PhaseConnect, err)
		return res, fmt.Errorf("dial upstream: %w", err)
	}
	defer conn.Close()
	if c.req == nil && c.fcgi == nil {
		res.OK = true
		return res, nil
	}
	if err := conn.SetDeadline(start.Add(c.dialer.Timeout)); err != nil {
		res.Cause = diag.ClassifyIn(diag.PhaseRequest, err)
		return res, fmt.Errorf("set deadline: %w", err)
	}
	// The dial watched ctx; the exchange does not, so cut it short when ctx
	// ends rather than hold shutdown for up to Timeout.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if c.fcgi != nil {
		if err := c.fcgiExchange(conn, &res); err != nil {
			return res, err
		}
		res.OK = true
		return res, nil
	}
	if _, err := conn.Write(c.req); err != nil {
		res.Cause = diag.ClassifyIn(diag.PhaseRequest, err)
		return res, fmt.Errorf("write probe request: %w", err)
	}
	c.br.Reset(conn)
	defer c.br.Reset(nil)
	c.hdr.Reset()
	if err := c.hdr.Read(c.br); err != nil {
		res.Cause = diag.ClassifyIn(diag.PhaseHeader, err)
		return res, fmt.Errorf("read probe response header: %w", err)
	}
	res.Status = c.hdr.StatusCode()
	if res.Status < 200 || res.Status >= 400 {
		res.Cause = diag.UpstreamStatus
		return res, fmt.Errorf("probe answered with status %d", res.Status)
	}
	res.OK = true
	return res, nil
}

// record counts res into the streaks and flips the state when one is long
// enough. err is res's error, kept for the log and the snapshot.
func (c *Checker) record(res ProbeResult, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = res
	c.probes.add(res)
	if res.OK {
		c.successes++
		c.failures = 0
		if c.successes >= c.rise {
			c.flip(Up, res)
		}
		return
	}
	c.lastFailure.Store(uint64(res.Cause) | uint64(res.Errno)<<8)
	c.lastError = err.Error()
	c.failures++
	c.successes = 0
	c.log.Debug("health probe failed", "cause", res.Cause.String(), "errno", diag.ErrnoName(res.Errno),
		"consecutive_failures", c.failures, "error", c.lastError)
	if c.failures >= c.fall {
		c.flip(Down, res)
	}
}

// flip moves the state to `to` unless it is there already. The
// CompareAndSwap makes each change happen, and be logged, exactly once. c.mu
// is held.
func (c *Checker) flip(to State, res ProbeResult) {
	from := State(c.state.Load())
	if from == to || !c.state.CompareAndSwap(int32(from), int32(to)) {
		return
	}
	c.since = res.At
	c.flips.add(Flip{At: res.At, From: from, To: to, Cause: res.Cause})
	switch to {
	case Up:
		if c.upCh != nil {
			close(c.upCh)
			c.upCh = nil
		}
		c.log.Info("upstream up", "state", to.String(), "from", from.String(),
			"consecutive_successes", c.successes, "address", c.address)
	case Down:
		c.log.Warn("upstream down", "state", to.String(), "from", from.String(),
			"cause", res.Cause.String(), "consecutive_failures", c.failures,
			"address", c.address, "error", c.lastError)
	}
}

// State returns the current health state. It takes no lock and allocates
// nothing.
func (c *Checker) State() State { return State(c.state.Load()) }

// Down reports whether the state is Down, when the proxy fails fast. It
// takes no lock and allocates nothing.
func (c *Checker) Down() bool { return c.State() == Down }

// LastCause returns the cause of the most recent failed probe, even if later
// probes succeeded (it is the last-cause parameter of an upstream_unhealthy
// diagnosis); diag.None if no probe has failed. It takes no lock.
func (c *Checker) LastCause() diag.Cause { cause, _ := c.LastFailure(); return cause }

// LastFailure returns the cause and the errno of the most recent failed
// probe, even if later probes succeeded (the last-cause and errno
// parameters of an upstream_unhealthy diagnosis): diag.None and 0 if no
// probe has failed, an errno of 0 when that failure had none. It takes no
// lock and allocates nothing.
func (c *Checker) LastFailure() (diag.Cause, syscall.Errno) {
	v := c.lastFailure.Load()
	return diag.Cause(v & 0xff), syscall.Errno(v >> 8)
}

// WaitUp returns a channel that is closed when the state next becomes Up,
// already closed if it is Up now. Every caller waiting for the same flip
// gets the same channel.
func (c *Checker) WaitUp() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.State() == Up {
		return c.upNow
	}
	if c.upCh == nil {
		c.upCh = make(chan struct{})
	}
	return c.upCh
}

// NextProbe returns when the next probe starts: during a probe, when the one
// after it starts. It may be in the past while a probe overruns. It is zero
// before Run. It takes no lock and allocates nothing.
func (c *Checker) NextProbe() time.Time {
	ns := c.nextProbe.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Snapshot returns the checker's state, streaks and last probe.
func (c *Checker) Snapshot() CheckSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CheckSnapshot{
		State:                c.State(),
		Since:                c.since,
		LastProbe:            c.last,
		ConsecutiveSuccesses: c.successes,
		ConsecutiveFailures:  c.failures,
		Rise:                 c.rise,
		Fall:                 c.fall,
		NextProbe:            c.NextProbe(),
		LastCause:            c.LastCause(),
		LastError:            c.lastError,
		Pool:                 c.poolSnapshot(),
	}
}

// ProbeLatency returns the histogram of probe durations, failed probes
// included.
func (c *Checker) ProbeLatency() *diag.Histogram { return &c.latency }
