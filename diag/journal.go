package diag

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"
)

// JournalSize is how many recent diagnoses a Journal keeps.
const JournalSize = 50

// Journal counts diagnoses per cause, since start and over the last minute
// and hour, and keeps the most recent ones with the request they answered.
// Its zero value is ready to use; it is safe for concurrent use and must not
// be copied. Record allocates nothing and takes no lock that another Record
// holds, but for the one writing the same slot 50 entries later. Its memory
// is fixed: about 45 KB, whatever the traffic.
type Journal struct {
	counts [numCauses]atomic.Uint64
	first  [numCauses]atomic.Int64 // unix nanoseconds, 0 when never seen
	last   [numCauses]atomic.Int64
	// secs and mins snapshot counts (see ring).
	secs ring[[numCauses]atomic.Uint64]
	mins ring[[numCauses]atomic.Uint64]

	next  atomic.Uint64 // entries ever recorded; entry i goes to slots[i%JournalSize]
	slots [JournalSize]journalSlot
}

// journalSlot holds one recent entry.
type journalSlot struct {
	mu  sync.Mutex // guards seq and e
	seq uint64     // e.Seq, 0 while the slot was never written
	e   Entry
}

// Entry is one recorded diagnosis.
type Entry struct {
	// Seq numbers the entries a Journal recorded, from 1.
	Seq       uint64
	At        time.Time
	Diagnosis Diagnosis
	// Phase is the exchange step the failure happened in.
	Phase Phase
	// Aborted is true when the failure came after the response status had
	// been sent, so the downstream connection was cut instead.
	Aborted bool
	// Request is the method and path of the request it answered; empty
	// when recorded without one.
	Request RequestLine
}

// Sizes of the copies a RequestLine keeps.
const (
	// MaxPathBytes is how much of a request's path a RequestLine keeps.
	MaxPathBytes   = 256
	maxMethodBytes = 16
)

// RequestLine is a request's method and path, copied into fixed-size arrays
// so that keeping it allocates nothing: the path without its query (which
// carries tokens) and both cut to their size. The bytes are as the client
// sent them and may hold anything: escape them for display. Its zero value
// is empty.
type RequestLine struct {
	method    [maxMethodBytes]byte
	path      [MaxPathBytes]byte
	methodLen uint8
	pathLen   uint16
	cut       bool // the method or the path was longer than kept
}

// Set copies method and the path of target, a request-target as the client
// sent it: everything before the first '?' (or '#').
func (r *RequestLine) Set(method, target []byte) {
	if i := bytes.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	r.methodLen = uint8(copy(r.method[:], method))
	r.pathLen = uint16(copy(r.path[:], target))
	r.cut = len(method) > len(r.method) || len(target) > len(r.path)
}

// Method returns the method kept.
func (r *RequestLine) Method() string { return string(r.method[:r.methodLen]) }

// Path returns the path kept.
func (r *RequestLine) Path() string { return string(r.path[:r.pathLen]) }

// Truncated reports whether the method or the path was cut to its size.
func (r *RequestLine) Truncated() bool { return r.cut }

// Bytes returns the method and path kept, as slices of r's own arrays: for
// passing r on to Journal.Record without allocating.
func (r *RequestLine) Bytes() (method, path []byte) {
	return r.method[:r.methodLen], r.path[:r.pathLen]
}

// Record counts d at time at and keeps it among the recent entries with the
// request it answered: its method and request-target as sent (the query is
// dropped, see RequestLine; both may be nil). A nil Journal records nothing.
func (j *Journal) Record(at time.Time, d *Diagnosis, p Phase, aborted bool, method, target []byte) {
	if j == nil || d.Cause >= numCauses {
		return
	}
	j.secs.tick(secondOf(at), &j.counts)
	j.mins.tick(minuteOf(at), &j.counts)
	c := d.Cause
	j.counts[c].Add(1)
	ns := at.UnixNano()
	j.first[c].CompareAndSwap(0, ns)
	j.last[c].Store(ns)

	seq := j.next.Add(1)
	s := &j.slots[(seq-1)%JournalSize]
	s.mu.Lock()
	if seq > s.seq { // else an entry 50 later got here first: keep it
		s.seq = seq
		s.e.Seq, s.e.At, s.e.Diagnosis, s.e.Phase, s.e.Aborted = seq, at, *d, p, aborted
		s.e.Request.Set(method, target)
	}
	s.mu.Unlock()
}

// CauseCount is how often one cause was seen, and when first and last.
type CauseCount struct {
	Cause       Cause
	Count       uint64
	First, Last time.Time
}

// Counts returns the count of every cause seen at least once, in table order.
func (j *Journal) Counts() []CauseCount {
	var out []CauseCount
	for c := None + 1; c < numCauses; c++ {
		n := j.counts[c].Load()
		if n == 0 {
			continue
		}
		out = append(out, CauseCount{Cause: c, Count: n,
			First: time.Unix(0, j.first[c].Load()), Last: time.Unix(0, j.last[c].Load())})
	}
	return out
}

// Count returns how often c was recorded.
func (j *Journal) Count(c Cause) uint64 {
	if c >= numCauses {
		return 0
	}
	return j.counts[c].Load()
}

// Recent returns up to JournalSize recorded entries, newest first. An entry
// still being written is left out.
func (j *Journal) Recent() []Entry {
	n := j.next.Load()
	out := make([]Entry, 0, min(n, JournalSize))
	for seq := n; seq > 0 && n-seq < JournalSize; seq-- {
		s := &j.slots[(seq-1)%JournalSize]
		s.mu.Lock()
		if s.seq == seq {
			out = append(out, s.e)
		}
		s.mu.Unlock()
	}
	return out
}

// CauseCounts holds a count per cause, indexed by Cause.
type CauseCounts [numCauses]uint64

// Of returns the count of c.
func (cc *CauseCounts) Of(c Cause) uint64 {
	if c >= numCauses {
		return 0
	}
	return cc[c]
}

// Failures returns the count of every failure cause (IsFailure): the
// answers upmedic made itself, not the app's own 5xx (UpstreamStatus).
func (cc *CauseCounts) Failures() uint64 {
	var n uint64
	for c := None + 1; c < numCauses; c++ {
		if c.IsFailure() {
			n += cc[c]
		}
	}
	return n
}

// CauseWindow is what a Journal counted from From until the time asked.
type CauseWindow struct {
	// From is when the window begins: a whole second or minute.
	From time.Time
	// Counts counts the diagnoses recorded in the window, per cause.
	Counts CauseCounts
}

// CauseHistory is what a Journal counted over the last minute and the last
// hour, in whole units as TrafficHistory.
type CauseHistory struct {
	LastMinute CauseWindow
	LastHour   CauseWindow
	// Minutes counts the diagnoses of each minute of LastHour, oldest
	// first: Minutes[i] began i minutes after LastHour.From, and the last
	// is the current minute so far.
	Minutes [ringUnits]CauseCounts
}

// History returns what was recorded over the last minute and hour before
// now. It allocates; it is for the admin API, not the hot path.
func (j *Journal) History(now time.Time) CauseHistory {
	sec, minute := secondOf(now), minuteOf(now)
	j.secs.tick(sec, &j.counts)
	j.mins.tick(minute, &j.counts)
	sb := j.secs.bounds(sec, &j.counts)
	mb := j.mins.bounds(minute, &j.counts)
	h := CauseHistory{
		LastMinute: CauseWindow{From: unitStart(sec-ringUnits+1, time.Second)},
		LastHour:   CauseWindow{From: unitStart(minute-ringUnits+1, time.Minute)},
	}
	for c := range numCauses {
		h.LastMinute.Counts[c] = sb[ringUnits][c] - sb[0][c]
		h.LastHour.Counts[c] = mb[ringUnits][c] - mb[0][c]
		for i := range ringUnits {
			h.Minutes[i][c] = mb[i+1][c] - mb[i][c]
		}
	}
	return h
}
