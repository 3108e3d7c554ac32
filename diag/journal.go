package diag

import (
	"sync"
	"sync/atomic"
	"time"
)

// JournalSize is how many recent diagnoses a Journal keeps.
const JournalSize = 50

// Journal counts diagnoses per cause and keeps the most recent ones. Its zero
// value is ready to use; it is safe for concurrent use and must not be copied.
// Record allocates nothing.
type Journal struct {
	counts [numCauses]causeCount

	mu     sync.Mutex // guards recent and next
	recent [JournalSize]Entry
	next   int // total entries ever written; recent[next%JournalSize] is the oldest once full
}

type causeCount struct {
	n     atomic.Uint64
	first atomic.Int64 // unix nanoseconds, 0 when never seen
	last  atomic.Int64
}

// Entry is one recorded diagnosis.
type Entry struct {
	At        time.Time
	Diagnosis Diagnosis
	// Phase is the exchange step the failure happened in.
	Phase Phase
	// Aborted is true when the failure came after the response status had
	// been sent, so the downstream connection was cut instead.
	Aborted bool
}

// Record counts d at time at and keeps it among the recent entries. A nil
// Journal records nothing.
func (j *Journal) Record(at time.Time, d *Diagnosis, p Phase, aborted bool) {
	if j == nil || d.Cause >= numCauses {
		return
	}
	c := &j.counts[d.Cause]
	c.n.Add(1)
	ns := at.UnixNano()
	c.first.CompareAndSwap(0, ns)
	c.last.Store(ns)

	j.mu.Lock()
	j.recent[j.next%JournalSize] = Entry{At: at, Diagnosis: *d, Phase: p, Aborted: aborted}
	j.next++
	j.mu.Unlock()
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
		cc := &j.counts[c]
		n := cc.n.Load()
		if n == 0 {
			continue
		}
		out = append(out, CauseCount{Cause: c, Count: n,
			First: time.Unix(0, cc.first.Load()), Last: time.Unix(0, cc.last.Load())})
	}
	return out
}

// Count returns how often c was recorded.
func (j *Journal) Count(c Cause) uint64 {
	if c >= numCauses {
		return 0
	}
	return j.counts[c].n.Load()
}

// Recent returns up to JournalSize recorded entries, newest first.
func (j *Journal) Recent() []Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := min(j.next, JournalSize)
	out := make([]Entry, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, j.recent[(j.next-i)%JournalSize])
	}
	return out
}
