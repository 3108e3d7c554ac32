package proxy

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The app's own timers, learned from what it does to upmedic's connections:
// a kill timer that closes requests still running at a fixed age (gunicorn
// --timeout, php-fpm request_terminate_timeout, uwsgi harakiri), and a
// keep-alive idle limit that closes connections idle for a fixed time
// (Node's keepAliveTimeout, gunicorn's --keep-alive, uvicorn's
// --timeout-keep-alive). Both are pure bookkeeping, told the time by their
// callers.

// immediateClose is the age under which a close is "at once": a crash on
// arrival or a keep-alive race, never a timer. A reused connection that
// closes this soon after the request was written may be retried; one that
// closes later had the request (see run).
const immediateClose = time.Second

// timerWindow is how far back the closes that reveal a timer may lie.
const timerWindow = 15 * time.Minute

// timerSupport is how many closes at one age reveal a timer: the latest and
// at least two before it.
const timerSupport = 3

// timerTolerance is how far from age a close may lie and still count as
// the same timer: max(1 s, 10%).
func timerTolerance(age time.Duration) time.Duration { return max(time.Second, age/10) }

const (
	killRingSize     = 64 // premature closes kept
	killClusterSlots = 8  // kill timers reported
	idleDeathSize    = 32 // idle deaths kept
)

// killTimers keeps the ages of the latest premature closes (connection
// terminated with no response byte, after at least immediateClose) and the
// kill timers they revealed. Its zero value is ready; it is safe for
// concurrent use, and observe allocates nothing.
type killTimers struct {
	mu       sync.Mutex // guards every field
	ring     [killRingSize]timedAge
	next     int // closes ever kept; ring[next%killRingSize] is the oldest once full
	clusters [killClusterSlots]KillTimer
}

// timedAge is one observed age and when it was observed.
type timedAge struct {
	age time.Duration
	at  time.Time
}

// observe keeps a premature close that came age after the request was
// written, at now. When at least two earlier closes within timerWindow lie
// within timerTolerance(age) of it, and age is at least immediateClose, it
// returns the timer they reveal (their median with this one, in whole
// seconds, rounded down: app timers fire at or a little after their
// setting) and how many earlier closes matched; otherwise zero.
func (k *killTimers) observe(age time.Duration, now time.Time) (timer time.Duration, prior int) {
	if age < immediateClose {
		return 0, 0
	}
	tol := timerTolerance(age)
	var near [killRingSize + 1]time.Duration
	first := now
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range min(k.next, killRingSize) {
		e := &k.ring[i]
		if now.Sub(e.at) > timerWindow || absDuration(e.age-age) > tol {
			continue
		}
		near[prior] = e.age
		prior++
		if e.at.Before(first) {
			first = e.at
		}
	}
	k.ring[k.next%killRingSize] = timedAge{age: age, at: now}
	k.next++
	if prior+1 < timerSupport {
		return 0, 0
	}
	near[prior] = age
	median := medianOf(near[:prior+1])
	timer = median.Truncate(time.Second)
	k.count(timer, median, prior, first, now)
	return timer, prior
}

// count adds a close at the kill timer timer (median age median, prior
// earlier closes, the first of them at first) to the clusters: to the one
// within tolerance of median, or as a new one that replaces the one seen
// longest ago. The caller holds k.mu.
func (k *killTimers) count(timer, median time.Duration, prior int, first, now time.Time) {
	slot := 0
	for i := range k.clusters {
		c := &k.clusters[i]
		if c.Count > 0 && absDuration(c.Median-median) <= timerTolerance(median) {
			c.Timer, c.Median, c.Last = timer, median, now
			c.Count++
			return
		}
		if s := &k.clusters[slot]; s.Count > 0 && (c.Count == 0 || c.Last.Before(s.Last)) {
			slot = i // an empty slot, else the one seen longest ago
		}
	}
	k.clusters[slot] = KillTimer{Timer: timer, Median: median, Count: prior + 1, First: first, Last: now}
}

// report returns the kill timers seen, the latest first.
func (k *killTimers) report() []KillTimer {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []KillTimer
	for _, c := range k.clusters {
		if c.Count > 0 {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b KillTimer) int { return b.Last.Compare(a.Last) })
	return out
}

// idleTolerance is how far past the shortest idle death another may lie and
// still show the same limit: wider than a kill timer's, as an idle death is
// seen only when the connection is next wanted, and apps close idle
// connections in sweeps (gunicorn once a second), so deaths at one limit are
// seen up to a sweep and a request gap apart.
func idleTolerance(shortest time.Duration) time.Duration {
	return max(2*time.Second, shortest/4)
}

// idleLimits learns the upstream's keep-alive idle limit from idle deaths:
// pooled connections the upstream closed while they sat idle, found closed
// by the check before reuse (at an idle age no shorter than the limit) or
// lost to a keep-alive race (at about the limit). When at least timerSupport
// deaths within timerWindow lie within idleTolerance of the shortest of
// them, and no connection carried a request after a longer idle time in the
// current or the previous quarter hour, that shortest idle age is the
// learned limit. A shorter one learned later replaces it; it is kept
// otherwise, as connections retired before it no longer show whether the
// app's limit grew. Its zero value is ready; it is safe for concurrent use,
// and its hot-path methods (survived, retireAfter) are lock-free and
// allocate nothing.
type idleLimits struct {
	// limit is the learned limit in nanoseconds, 0 until learned.
	limit atomic.Int64
	// survivors holds, per quarter hour (index%2), the longest idle time
	// after which a connection carried a request: quarter-hour index << 32 |
	// milliseconds.
	survivors [2]atomic.Uint64
	// deaths counts every idle death seen.
	deaths atomic.Uint64

	mu        sync.Mutex // guards ring, next, learnedAt and support
	ring      [idleDeathSize]timedAge
	next      int
	learnedAt time.Time
	support   int // deaths that showed the limit
}

// quarterHour is the survivors' slot length.
const quarterHour = 15 * 60 // seconds

// survived notes that a connection carried a whole exchange after idling
// for age: the upstream keeps idle connections at least that long.
func (l *idleLimits) survived(age time.Duration, now time.Time) {
	q := uint64(now.Unix() / quarterHour)
	ms := uint64(min(max(age.Milliseconds(), 0), 1<<32-1))
	s := &l.survivors[q%2]
	for range 4 { // a lost race with another survivor gives up soon: a maximum, not a count
		v := s.Load()
		if v>>32 == q && v&(1<<32-1) >= ms {
			return
		}
		if s.CompareAndSwap(v, q<<32|ms) {
			return
		}
	}
}

// longestSurvivor is the longest idle time after which a connection carried
// a request, in the current or the previous quarter hour.
func (l *idleLimits) longestSurvivor(now time.Time) time.Duration {
	q := uint64(now.Unix() / quarterHour)
	var longest uint64
	for i := range l.survivors {
		if v := l.survivors[i].Load(); v>>32 == q || v>>32+1 == q {
			longest = max(longest, v&(1<<32-1))
		}
	}
	return time.Duration(longest) * time.Millisecond
}

// died notes an idle death at idle age age, at now. Zero age notes nothing.
func (l *idleLimits) died(age time.Duration, now time.Time) {
	if age <= 0 {
		return
	}
	l.deaths.Add(1)
	survivor := l.longestSurvivor(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next%idleDeathSize] = timedAge{age: age, at: now}
	l.next++
	var ages [idleDeathSize]time.Duration
	n := 0
	for i := range min(l.next, idleDeathSize) {
		if e := &l.ring[i]; now.Sub(e.at) <= timerWindow && e.age > survivor {
			ages[n] = e.age
			n++
		}
	}
	slices.Sort(ages[:n])
	for i := 0; i+timerSupport <= n; i++ {
		shortest, support := ages[i], 0
		for _, a := range ages[i:n] {
			if a-shortest > idleTolerance(shortest) {
				break
			}
			support++
		}
		if support < timerSupport {
			continue
		}
		if cur := time.Duration(l.limit.Load()); cur == 0 || shortest < cur {
			l.limit.Store(int64(shortest))
			l.learnedAt, l.support = now, support
		}
		return
	}
}

// retireAfter returns how long a connection may sit idle before it is
// retired, by the learned limit: the limit less min(1 s, half of it), as
// for an announced Keep-Alive timeout. Zero means no limit was learned.
func (l *idleLimits) retireAfter() time.Duration {
	limit := time.Duration(l.limit.Load())
	if limit <= 0 {
		return 0
	}
	return limit - retireMargin(limit)
}

// retireMargin is how long before an idle limit a connection is retired.
func retireMargin(limit time.Duration) time.Duration { return min(time.Second, limit/2) }

// report returns what was learned.
func (l *idleLimits) report() IdleLimit {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := IdleLimit{Deaths: l.deaths.Load()}
	if limit := time.Duration(l.limit.Load()); limit > 0 {
		r.Limit, r.RetireAfter, r.Support, r.LearnedAt = limit, limit-retireMargin(limit), l.support, l.learnedAt
	}
	return r
}

// AppTimers is what the proxy has learned of the app's own timers.
type AppTimers struct {
	// KillTimers are the kill timers premature closes revealed since
	// upmedic started, the latest seen first; nil when none.
	KillTimers []KillTimer
	// IdleLimit is the learned keep-alive idle limit.
	IdleLimit IdleLimit
}

// KillTimer is a timer in the app that kills requests at a fixed age,
// revealed by premature closes at that age.
type KillTimer struct {
	// Timer is the timer-s value: Median in whole seconds, rounded down.
	Timer time.Duration
	// Median is the median age of the closes that last matched it.
	Median time.Duration
	// Count is how many closes came at it, the ones that revealed it
	// included.
	Count int
	// First and Last are when the first and the latest of them came.
	First, Last time.Time
}

// IdleLimit is the upstream's keep-alive idle limit as learned from idle
// deaths. Its zero Limit means none was learned.
type IdleLimit struct {
	// Limit is the learned limit: the shortest idle time after which the
	// upstream was seen to close idle connections.
	Limit time.Duration
	// RetireAfter is how long a pooled connection may now sit idle before
	// upmedic retires it: Limit less min(1 s, half of it).
	RetireAfter time.Duration
	// Support is how many idle deaths showed Limit.
	Support int
	// LearnedAt is when Limit was learned.
	LearnedAt time.Time
	// Deaths counts every idle death seen since upmedic started.
	Deaths uint64
}

// AppTimers returns what p has learned of the app's own timers. It is safe
// for concurrent use.
func (p *Proxy) AppTimers() AppTimers {
	return AppTimers{KillTimers: p.kills.report(), IdleLimit: p.pool.idles.report()}
}

// medianOf sorts ds and returns their median; ds must not be empty.
func medianOf(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
