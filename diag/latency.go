package diag

import (
	"math/bits"
	"time"
)

// Latency buckets for quantiles. Prometheus gets the coarse, documented
// HistogramBuckets; the status page's p50 and p99 come from these finer
// ones: four per doubling (each at most 25% wide, so a quantile is within
// about 12% of the truth) from 4 µs to 60 s, with four 1 µs buckets below
// and one above. A duration d falls in bucket latencyBucket(d).
const (
	latencyUnitShift = 10 // bucket arithmetic counts in units of 1024 ns
	latencyBuckets   = 100
)

// latencyBucket returns the index of d's bucket, from 0 to
// latencyBuckets-1.
func latencyBucket(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	v := uint64(d) >> latencyUnitShift
	if v < 4 {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v is in [2^e, 2^(e+1)), e >= 2
	sub := int(v>>(e-2)) & 3
	return min(4*(e-1)+sub, latencyBuckets-1)
}

// latencyBounds returns bucket i's lower and upper bound. The last bucket
// has no upper bound; it returns its lower bound twice.
func latencyBounds(i int) (lo, hi time.Duration) {
	edge := func(i int) time.Duration {
		if i < 4 {
			return time.Duration(i) << latencyUnitShift
		}
		e, sub := i/4+1, i%4
		return time.Duration(4+sub) << (e - 2) << latencyUnitShift
	}
	if i >= latencyBuckets-1 {
		return edge(latencyBuckets - 1), edge(latencyBuckets - 1)
	}
	return edge(i), edge(i + 1)
}

// LatencyCounts counts request durations over one window, in the fine
// buckets. Its zero value holds no requests.
type LatencyCounts struct {
	buckets [latencyBuckets]uint64
}

// Total returns how many durations were counted.
func (l *LatencyCounts) Total() uint64 {
	var n uint64
	for _, c := range l.buckets {
		n += c
	}
	return n
}

// Quantile returns the duration below which a fraction q (0 < q <= 1) of
// the counted durations fall, interpolated linearly inside its bucket; ok is
// false when nothing was counted.
func (l *LatencyCounts) Quantile(q float64) (d time.Duration, ok bool) {
	total := l.Total()
	if total == 0 {
		return 0, false
	}
	rank := q * float64(total) // the rank-th smallest duration, 1-based
	rank = min(max(rank, 1), float64(total))
	var below uint64
	for i, c := range l.buckets {
		if c == 0 || float64(below+c) < rank {
			below += c
			continue
		}
		lo, hi := latencyBounds(i)
		frac := (rank - float64(below)) / float64(c)
		return lo + time.Duration(frac*float64(hi-lo)), true
	}
	lo, _ := latencyBounds(latencyBuckets - 1)
	return lo, true
}

// add counts n durations in bucket i; for tests and windows.
func (l *LatencyCounts) add(i int, n uint64) { l.buckets[i] += n }
