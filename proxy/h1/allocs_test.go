//go:build !race

package h1

import "testing"

// TestZeroAllocs guards the hot path: scanning a request with a body and a
// pipelined one, and parsing a response header, allocate nothing once the
// Fields slice has grown.
func TestZeroAllocs(t *testing.T) {
	req := []byte("POST /api/items?x=1 HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive\r\n" +
		"Content-Length: 5\r\nX-Real-IP: 203.0.113.9\r\n\r\nhelloGET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
	chunked := []byte("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n")
	var s RequestScanner
	for name, in := range map[string][]byte{"request": req, "chunked": chunked} {
		if n := testing.AllocsPerRun(200, func() {
			s = RequestScanner{}
			if m, err := s.Scan(in); err != nil || m != len(in) {
				t.Fatalf("%s: Scan = %d, %v", name, m, err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per scan, want 0", name, n)
		}
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\n" +
		"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 5\r\n\r\nhello")
	var r Response
	if _, err := r.Parse(resp, false); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() {
		if _, err := r.Parse(resp, false); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per response parse, want 0", n)
	}
}
