//go:build !race

package diag

import (
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// What the proxy calls per request allocates nothing (the race detector
// allocates, hence the build tag), including the calls that begin a new
// second or minute and so take a snapshot.
func TestZeroAllocs(t *testing.T) {
	var tr Traffic
	var j Journal
	d := Diagnosis{Cause: ConnectionRefused, Upstream: "127.0.0.1:8000"}
	method, target := []byte("GET"), []byte("/api/items/42?token=s3cret")
	at := t0
	if n := testing.AllocsPerRun(1000, func() {
		at = at.Add(700 * time.Millisecond) // a new second most calls, a new minute every ~86
		tr.Done(502, 3*time.Millisecond, at)
		j.Record(at, &d, PhaseConnect, false, method, target)
	}); n != 0 {
		t.Errorf("Traffic.Done + Journal.Record: %v allocs per request, want 0", n)
	}
	var r RequestLine
	if n := testing.AllocsPerRun(1000, func() { r.Set(method, target) }); n != 0 {
		t.Errorf("RequestLine.Set: %v allocs, want 0", n)
	}
}

// Memory does not grow with traffic: a million requests and diagnoses over
// three hours leave the heap where it was, and the structures have a fixed
// size.
func TestMemoryBound(t *testing.T) {
	tr, j := new(Traffic), new(Journal)
	if size := unsafe.Sizeof(*tr); size > 128<<10 {
		t.Errorf("Traffic is %d bytes, want at most 128 KiB", size)
	}
	if size := unsafe.Sizeof(*j); size > 64<<10 {
		t.Errorf("Journal is %d bytes, want at most 64 KiB", size)
	}
	t.Logf("Traffic %d bytes, Journal %d bytes", unsafe.Sizeof(*tr), unsafe.Sizeof(*j))

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	d := Diagnosis{Cause: ConnectionRefused}
	method, target := []byte("GET"), []byte("/a/rather/long/path/to/some/resource?q=1")
	const n = 1_000_000
	step := 3 * time.Hour / n
	before := heap()
	at := t0
	for i := range n {
		at = at.Add(step)
		tr.Done(200+i%400, time.Duration(i%5000)*time.Microsecond, at)
		d.Cause = Cause(1 + i%int(numCauses-1))
		j.Record(at, &d, PhaseConnect, i%7 == 0, method, target)
	}
	after := heap()
	if after > before+64<<10 {
		t.Errorf("heap grew from %d to %d bytes over %d requests", before, after, n)
	}
	runtime.KeepAlive(tr)
	runtime.KeepAlive(j)
	if got := len(j.Recent()); got != JournalSize {
		t.Errorf("%d recent entries, want %d", got, JournalSize)
	}
	h := tr.History(at)
	want := uint64(at.Sub(h.LastHour.From)/step) + 1 // the counts at or after From
	if total := h.LastHour.Latency.Total(); total != want {
		t.Errorf("last hour holds %d requests, want %d", total, want)
	}
}
