package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"
)

// FuzzRequestScanner checks that the scanner gives the same verdict however
// the stream is cut into reads, and that every request it accepted whole
// reads the same way to Go's net/http parser, an independent one: the same
// length of header and body, consumed exactly.
func FuzzRequestScanner(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: t\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;x=\"y\"\r\nhello\r\n0\r\nT: 1\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: t\r\nConnection: Content-Length\r\nContent-Length: 42\r\n\r\nGET /STOLEN HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET http://good.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
		"GET / HTTP/1.1\nHost: t\n\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		var whole RequestScanner
		n, err := whole.Scan(in)
		var split RequestScanner
		st := int(step)%16 + 1
		m := 0
		var err2 error
		for off := 0; off < len(in) && err2 == nil; off += st {
			end := min(off+st, len(in))
			k, e := split.Scan(in[off:end])
			m += k
			err2 = e
			if k < end-off {
				break
			}
		}
		if n != m || err != err2 {
			t.Fatalf("whole: %d, %v; in reads of %d: %d, %v", n, err, st, m, err2)
		}
		checkWithNetHTTP(t, in[:n])
	})
}

// checkWithNetHTTP splits what the scanner passed into the requests it
// completed, feeding it a byte at a time, and has net/http read each.
func checkWithNetHTTP(t *testing.T, passed []byte) {
	var s RequestScanner
	start := 0
	for i := range passed {
		before := s.State()
		if _, err := s.Scan(passed[i : i+1]); err != nil {
			t.Fatalf("byte %d failed a second scanner: %v", i, err)
		}
		after := s.State()
		if (before == Header || before == Body) && (after == Idle || after == Paused) {
			reqBytes := bytes.TrimLeft(passed[start:i+1], "\r\n")
			br := bufio.NewReader(bytes.NewReader(reqBytes))
			req, err := http.ReadRequest(br)
			if err != nil {
				t.Fatalf("accepted %q; net/http: %v", reqBytes, err)
			}
			body, err := io.ReadAll(req.Body)
			if err != nil {
				t.Fatalf("accepted %q; net/http body: %v", reqBytes, err)
			}
			if rest := br.Buffered(); rest != 0 {
				t.Fatalf("accepted %q; net/http left %d bytes unread", reqBytes, rest)
			}
			if h := s.Head(); h.Framing == Length && int64(len(body)) != h.ContentLength {
				t.Fatalf("accepted %q; body %d bytes, want %d", reqBytes, len(body), h.ContentLength)
			}
			start = i + 1
			if after == Paused {
				return
			}
		}
	}
}

// FuzzResponseParse checks that Parse never reads past what it was given,
// that a header it accepts reads the same to net/http, and that cutting the
// bytes short never turns an accepted header into an error.
func FuzzResponseParse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 099 Weird\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",
		"HTTP/1.1 200 OK\r\nX-Upstream-Diagnosis: connection_refused\r\nProxy-Status: upmedic; error=connection_refused\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, head bool) {
		var r Response
		n, err := r.Parse(in, head)
		if err != nil {
			return
		}
		if n > len(in) {
			t.Fatalf("n = %d > %d", n, len(in))
		}
		for _, cut := range []int{n - 1, n / 2} {
			if cut >= 0 {
				var p Response
				if _, err := p.Parse(in[:cut], head); err != ErrIncomplete {
					t.Fatalf("prefix %q of an accepted header: %v", in[:cut], err)
				}
			}
		}
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(in[:n])), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("accepted %q; net/http: %v", in[:n], err)
		}
		if resp.StatusCode != r.Status {
			t.Fatalf("status %d, net/http %d", r.Status, resp.StatusCode)
		}
		if head || r.Status == 204 || r.Status == 304 {
			return // no body, whatever the framing fields say
		}
		chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
		if (r.Framing == Chunked) != chunked {
			t.Fatalf("framing %d, net/http TE %v", r.Framing, resp.TransferEncoding)
		}
		if r.Framing == Length && resp.ContentLength != r.ContentLength {
			t.Fatalf("content-length %d, net/http %d", r.ContentLength, resp.ContentLength)
		}
	})
}

// FuzzParseChunkLine checks sizes against strconv.
func FuzzParseChunkLine(f *testing.F) {
	for _, s := range []string{"0", "5;x=y", `a;q="x\"y"`, "00000000000000f", "5 ;x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		size, err := ParseChunkLine(line)
		if err != nil {
			return
		}
		digits := line
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			digits = line[:i]
		}
		want, perr := strconv.ParseInt(string(digits), 16, 64)
		if perr != nil || want != size || len(digits) > maxChunkSizeDigits {
			t.Fatalf("ParseChunkLine(%q) = %d; strconv %d, %v", line, size, want, perr)
		}
	})
}
