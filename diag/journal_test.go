package diag

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRequestLine(t *testing.T) {
	long := "/" + strings.Repeat("p", 300)
	tests := []struct {
		name, method, target string
		wantMethod, wantPath string
		wantCut              bool
	}{
		{"query dropped", "GET", "/api/items?token=s3cret&page=2", "GET", "/api/items", false},
		{"fragment dropped", "GET", "/a#frag?x", "GET", "/a", false},
		{"no query", "POST", "/login", "POST", "/login", false},
		{"empty query", "GET", "/x?", "GET", "/x", false},
		{"only a query", "GET", "?a=1", "GET", "", false},
		{"absolute form", "GET", "http://app.test/p?q", "GET", "http://app.test/p", false},
		{"markup kept as bytes", "GET", `/<script>alert(1)</script>"><img/src=x/onerror=alert(2)>`,
			"GET", `/<script>alert(1)</script>"><img/src=x/onerror=alert(2)>`, false},
		{"control and high bytes", "GET", "/a\x00b\x1b[31m\xff", "GET", "/a\x00b\x1b[31m\xff", false},
		{"long path cut", "GET", long + "?q", "GET", long[:MaxPathBytes], true},
		{"path of exactly the size", "GET", long[:MaxPathBytes], "GET", long[:MaxPathBytes], false},
		{"query past the cut", "GET", long + "?token=x", "GET", long[:MaxPathBytes], true},
		{"long method cut", "PROPPATCHPROPPATCHX", "/", "PROPPATCHPROPPAT", "/", true},
		{"nothing", "", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r RequestLine
			r.Set([]byte("PREVIOUS-METHOD"), []byte("/previous/path/that/is/longer"))
			r.Set([]byte(tt.method), []byte(tt.target))
			if r.Method() != tt.wantMethod || r.Path() != tt.wantPath || r.Truncated() != tt.wantCut {
				t.Fatalf("Set(%q, %q) = %q %q cut=%v, want %q %q cut=%v", tt.method, tt.target,
					r.Method(), r.Path(), r.Truncated(), tt.wantMethod, tt.wantPath, tt.wantCut)
			}
			m, p := r.Bytes()
			if string(m) != tt.wantMethod || string(p) != tt.wantPath {
				t.Fatalf("Bytes = %q %q", m, p)
			}
		})
	}
}

func FuzzRequestLine(f *testing.F) {
	f.Add([]byte("GET"), []byte("/api/items?token=s3cret"))
	f.Add([]byte("GET"), []byte(`/<script>x</script>#?`))
	f.Add([]byte("X"), bytes.Repeat([]byte("/a"), 200))
	f.Fuzz(func(t *testing.T, method, target []byte) {
		var r RequestLine
		r.Set(method, target)
		p := r.Path()
		if len(p) > MaxPathBytes || len(r.Method()) > maxMethodBytes {
			t.Fatalf("kept %d path bytes, %d method bytes", len(p), len(r.Method()))
		}
		if strings.ContainsAny(p, "?#") {
			t.Fatalf("path %q holds a query or fragment", p)
		}
		if !bytes.HasPrefix(target, []byte(p)) || !bytes.HasPrefix(method, []byte(r.Method())) {
			t.Fatalf("%q %q is not a prefix of %q %q", r.Method(), p, method, target)
		}
		whole := target
		if i := bytes.IndexAny(target, "?#"); i >= 0 {
			whole = target[:i]
		}
		if r.Truncated() != (len(whole) > MaxPathBytes || len(method) > maxMethodBytes) {
			t.Fatalf("Truncated = %v for %d path and %d method bytes", r.Truncated(), len(whole), len(method))
		}
	})
}

func TestJournalRecent(t *testing.T) {
	var j Journal
	if got := j.Recent(); len(got) != 0 {
		t.Fatalf("empty journal: %d entries", len(got))
	}
	for i := range 120 {
		j.Record(t0.Add(time.Duration(i)*time.Second), &Diagnosis{Cause: ConnectionTerminated, Attempts: i},
			PhaseHeader, i%2 == 1, []byte("GET"), []byte("/n/"+strings.Repeat("x", i)+"?secret"))
	}
	rec := j.Recent()
	if len(rec) != JournalSize {
		t.Fatalf("%d entries, want %d", len(rec), JournalSize)
	}
	for k, e := range rec {
		i := 119 - k
		if e.Seq != uint64(i+1) || !e.At.Equal(t0.Add(time.Duration(i)*time.Second)) || e.Diagnosis.Attempts != i ||
			e.Aborted != (i%2 == 1) || e.Request.Path() != ("/n/"+strings.Repeat("x", i)) {
			t.Fatalf("recent[%d] = seq %d at %v attempts %d path %q, want entry %d", k, e.Seq, e.At,
				e.Diagnosis.Attempts, e.Request.Path(), i)
		}
	}
	var nilJ *Journal
	nilJ.Record(t0, &Diagnosis{Cause: ConnectionRefused}, PhaseConnect, false, nil, nil) // must not panic
}
