package diag

import (
	"testing"
	"time"
)

// The per-request calls, from all cores at once: what the proxy pays.
func BenchmarkTrafficDone(b *testing.B) {
	var tr Traffic
	at := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr.Done(200, 3*time.Millisecond, at)
		}
	})
}

func BenchmarkJournalRecord(b *testing.B) {
	var j Journal
	d := Diagnosis{Cause: ConnectionRefused}
	method, target := []byte("GET"), []byte("/api/items/42?token=s3cret")
	at := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			j.Record(at, &d, PhaseConnect, false, method, target)
		}
	})
}
