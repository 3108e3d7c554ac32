package diag

import (
	"sync/atomic"
	"time"
)

// The per-second and per-minute history behind Traffic and Journal.
//
// Their counters are cumulative (counts since start), as the hot path only
// adds to them. A ring remembers what the counters stood at when each of the
// last 60 units (seconds or minutes) began: the first count, or the first
// read, in a new unit copies the counters into that unit's slot. What was
// counted in one unit is then the difference of two snapshots, and what was
// counted over the last minute or hour the difference between the counters
// now and a snapshot. Counting stays one atomic add and a comparison with
// the current unit; a count made while a snapshot is taken lands in one unit
// or the next, never nowhere; memory is fixed.

// ringUnits is how many units a ring keeps: 60 seconds, or 60 minutes.
const ringUnits = 60

// counterRow is a set of cumulative counters that a ring snapshots.
type counterRow interface {
	[numCauses]atomic.Uint64 | [latencyBuckets]atomic.Uint64
}

// ring holds the snapshots of one counterRow taken when each of the last
// ringUnits units began. Units are whole seconds or minutes since the Unix
// epoch. Its zero value is ready; it is safe for concurrent use.
type ring[R counterRow] struct {
	// last is the latest unit whose snapshot was started, 0 before any.
	last atomic.Int64
	// label[i] is the unit whose snapshot snap[i] holds; 0 while it is
	// being written. A reader checks it before and after reading snap[i].
	label [ringUnits]atomic.Int64
	snap  [ringUnits]R
}

// tick notes that unit u has begun. The first caller to see it copies live
// into u's slot; everyone else returns at once. A unit more than two units
// behind the latest one is taken for a step of the wall clock back, and
// starts over; a caller that is only a little late (it read the clock just
// before another moved on) changes nothing, and its count lands in the
// newer unit.
func (r *ring[R]) tick(u int64, live *R) {
	for {
		last := r.last.Load()
		if u <= last && u >= last-2 {
			return
		}
		if r.last.CompareAndSwap(last, u) {
			break
		}
	}
	i := slotOf(u)
	r.label[i].Store(0)
	s := &r.snap[i]
	for k := range rowLen[R]() {
		(*s)[k].Store((*live)[k].Load())
	}
	r.label[i].Store(u)
}

// rowLen returns how many counters R holds. len(*p) of a type parameter
// would read the whole array, racing with the atomic adds.
func rowLen[R counterRow]() int {
	var zero R
	return len(zero)
}

// slotOf returns the slot of unit u, which may be negative after a clock
// step to before 1970.
func slotOf(u int64) int {
	i := int(u % ringUnits)
	if i < 0 {
		i += ringUnits
	}
	return i
}

// bounds returns what the counters stood at when each of the units
// u-ringUnits+1 .. u began, oldest first, and as they stand now (live) last:
// ringUnits+1 rows. A unit with no snapshot had no count in it (every count
// ticks first), so it takes the next unit's value. It allocates; it is for
// readers, not the hot path. The caller ticks u first.
func (r *ring[R]) bounds(u int64, live *R) [][]uint64 {
	n := rowLen[R]()
	out := make([][]uint64, ringUnits+1)
	backing := make([]uint64, (ringUnits+1)*n)
	for j := range out {
		out[j] = backing[j*n : (j+1)*n : (j+1)*n]
	}
	now := out[ringUnits]
	for k := range n {
		now[k] = (*live)[k].Load()
	}
	for j := ringUnits - 1; j >= 0; j-- {
		m := u - ringUnits + 1 + int64(j)
		if !r.read(m, out[j]) {
			copy(out[j], out[j+1])
			continue
		}
		// A snapshot taken while an older one was still being copied can
		// be behind it by a few counts: keep the rows non-decreasing.
		for k := range n {
			out[j][k] = min(out[j][k], out[j+1][k])
		}
	}
	return out
}

// read copies unit m's snapshot into dst and reports whether it had one
// that was not being rewritten meanwhile.
func (r *ring[R]) read(m int64, dst []uint64) bool {
	i := slotOf(m)
	if r.label[i].Load() != m {
		return false
	}
	s := &r.snap[i]
	for k := range dst {
		dst[k] = (*s)[k].Load()
	}
	return r.label[i].Load() == m
}

// unitStart returns when second or minute u began.
func unitStart(u int64, unit time.Duration) time.Time {
	return time.Unix(u*int64(unit/time.Second), 0)
}

// secondOf and minuteOf are the units of the two rings of Traffic and
// Journal.
func secondOf(t time.Time) int64 { return t.Unix() }
func minuteOf(t time.Time) int64 { return floorDiv(t.Unix(), 60) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) {
		q--
	}
	return q
}
