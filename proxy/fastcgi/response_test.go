package fastcgi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// fieldsOf renders fields as "Name: value" lines.
func fieldsOf(fs []Field) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, f.Value)
	}
	return b.String()
}

func TestResponseHeaderParse(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		status    int
		reason    string
		location  string
		cl        int64
		fields    string
		body      string
		err       error
	}{
		{"PHP's usual", "X-Powered-By: PHP/8.2.36\r\nContent-type: text/html; charset=UTF-8\r\n\r\nhello",
			200, "", "", -1, "X-Powered-By: PHP/8.2.36\nContent-type: text/html; charset=UTF-8\n", "hello", nil},
		{"LF only", "Status: 404 Not Found\nContent-Type: text/plain\n\nnope",
			404, "Not Found", "", -1, "Content-Type: text/plain\n", "nope", nil},
		{"mixed line ends", "A: 1\nB: 2\r\n\nbody", 200, "", "", -1, "A: 1\nB: 2\n", "body", nil},
		{"empty header section", "\r\nbody", 200, "", "", -1, "", "body", nil},
		{"status without reason", "Status: 503\r\n\r\n", 503, "", "", -1, "", "", nil},
		{"status case and spaces", "status:   201   Created  \r\n\r\n", 201, "Created", "", -1, "", "", nil},
		{"Location without Status", "Location: https://example.com/\r\n\r\n", 302, "", "https://example.com/", -1, "Location: https://example.com/\n", "", nil},
		{"local Location is a client redirect", "Location: /login\r\n\r\n", 302, "", "/login", -1, "Location: /login\n", "", nil},
		{"Location with Status", "Status: 301 Moved Permanently\r\nLocation: /new\r\n\r\n", 301, "Moved Permanently", "/new", -1, "Location: /new\n", "", nil},
		{"repeated Set-Cookie kept", "Set-Cookie: a=1\r\nSet-Cookie: b=2; Path=/\r\nset-cookie: c=3\r\n\r\n", 200, "", "", -1,
			"Set-Cookie: a=1\nSet-Cookie: b=2; Path=/\nset-cookie: c=3\n", "", nil},
		{"Content-Length", "Content-Length: 5\r\n\r\nhello", 200, "", "", 5, "", "hello", nil},
		{"Content-Length repeated alike", "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 200, "", "", 5, "", "", nil},
		{"hop-by-hop dropped", "Transfer-Encoding: chunked\r\nConnection: close, X-Secret\r\nKeep-Alive: 5\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nX-Secret: s\r\nX-Kept: k\r\n\r\n",
			200, "", "", -1, "X-Kept: k\n", "", nil},
		{"empty value", "X-Empty:\r\n\r\n", 200, "", "", -1, "X-Empty: \n", "", nil},
		{"value with tab and obs-text", "X-V: a\tb \xe9\r\n\r\n", 200, "", "", -1, "X-V: a\tb \xe9\n", "", nil},

		{"line folding", "X-A: 1\r\n  continued\r\n\r\n", 0, "", "", 0, "", "", ErrHeaderFold},
		{"space before colon", "X-A : 1\r\n\r\n", 0, "", "", 0, "", "", ErrHeaderName},
		{"no colon", "NoColon\r\n\r\n", 0, "", "", 0, "", "", ErrHeaderName},
		{"empty name", ": v\r\n\r\n", 0, "", "", 0, "", "", ErrHeaderName},
		{"HTTP status line", "HTTP/1.1 200 OK\r\n\r\n", 0, "", "", 0, "", "", ErrHeaderName},
		{"NUL in value", "X-A: a\x00b\r\n\r\n", 0, "", "", 0, "", "", ErrHeaderValue},
		{"bare CR in value", "X-A: a\rb\r\n\r\n", 0, "", "", 0, "", "", ErrHeaderValue},
		{"CR CR LF", "X-A: a\r\r\n\r\n", 0, "", "", 0, "", "", ErrHeaderValue},
		{"DEL in value", "0: \x7f\r\n\r\n", 0, "", "", 0, "", "", ErrHeaderValue},
		{"escape in value", "X-A: a\x1b[2Jb\r\n\r\n", 0, "", "", 0, "", "", ErrHeaderValue},
		{"status 600", "Status: 600 Nope\r\n\r\n", 0, "", "", 0, "", "", ErrStatus},
		{"status 199 interim", "Status: 199\r\n\r\n", 0, "", "", 0, "", "", ErrStatus},
		{"status 100", "Status: 100 Continue\r\n\r\n", 0, "", "", 0, "", "", ErrStatus},
		{"status two digits", "Status: 20\r\n\r\n", 0, "", "", 0, "", "", ErrStatus},
		{"status four digits", "Status: 2000\r\n\r\n", 0, "", "", 0, "", "", ErrStatus},
		{"status letters", "Status: OK\r\n\r\n", 0, "", "", 0, "", "", ErrStatus},
		{"status repeated", "Status: 200\r\nStatus: 500\r\n\r\n", 0, "", "", 0, "", "", ErrStatus},
		{"Content-Length not a number", "Content-Length: 5x\r\n\r\n", 0, "", "", 0, "", "", ErrResponseContentLength},
		{"Content-Length negative", "Content-Length: -1\r\n\r\n", 0, "", "", 0, "", "", ErrResponseContentLength},
		{"Content-Length too long", "Content-Length: 9999999999999999999\r\n\r\n", 0, "", "", 0, "", "", ErrResponseContentLength},
		{"Content-Length conflicting", "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, "", "", 0, "", "", ErrResponseContentLength},
		{"incomplete", "X-A: 1\r\nX-B: 2\r\n", 0, "", "", 0, "", "", ErrHeaderNeedMore},
		{"incomplete line", "X-A: 1", 0, "", "", 0, "", "", ErrHeaderNeedMore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h ResponseHeader
			h.Reset()
			n, err := h.Parse([]byte(tc.raw))
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Parse = %d, %v; want %v", n, err, tc.err)
			}
			if err != nil {
				return
			}
			if h.Status != tc.status || string(h.Reason) != tc.reason || string(h.Location) != tc.location ||
				h.ContentLength != tc.cl || fieldsOf(h.Fields) != tc.fields || tc.raw[n:] != tc.body || h.Size != n {
				t.Errorf("got %d %q loc %q cl %d size %d fields\n%s body %q", h.Status, h.Reason, h.Location, h.ContentLength, h.Size, fieldsOf(h.Fields), tc.raw[n:])
			}
		})
	}
}

// Parse resumes: a header fed a byte at a time parses as the whole.
func TestResponseHeaderResumes(t *testing.T) {
	raw := "Status: 404 Not Found\r\nSet-Cookie: a=1\nSet-Cookie: b=2\r\nLocation: /x\r\n\r\nbody"
	var h ResponseHeader
	h.Reset()
	for i := 1; i <= len(raw); i++ {
		n, err := h.Parse([]byte(raw[:i]))
		if errors.Is(err, ErrHeaderNeedMore) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if i != len(raw)-4 || n != i || h.Status != 404 || fieldsOf(h.Fields) != "Set-Cookie: a=1\nSet-Cookie: b=2\nLocation: /x\n" {
			t.Errorf("at %d: n %d status %d fields %s", i, n, h.Status, fieldsOf(h.Fields))
		}
		return
	}
	t.Fatal("never complete")
}

// stdoutRecords splits s into STDOUT records of size bytes, with a STDERR
// record after each, and ends the answer.
func stdoutRecords(id uint16, s string, size int) string {
	var b strings.Builder
	for len(s) > 0 {
		n := min(size, len(s))
		b.WriteString(rec(TypeStdout, id, s[:n]))
		b.WriteString(rec(TypeStderr, id, "e"))
		s = s[n:]
	}
	b.WriteString(rec(TypeStdout, id, ""))
	b.WriteString(endRequest(id, 0, 0))
	return b.String()
}

func readHeader(raw string, id uint16, limit int) (*ResponseHeader, []byte, []byte, error, *Reader) {
	var r Reader
	r.Reset(bufio.NewReaderSize(strings.NewReader(raw), 64), id)
	h := new(ResponseHeader)
	first, err := r.ReadHeader(h, make([]byte, 0, limit))
	var rest []byte
	if err == nil {
		rest, err = io.ReadAll(&r)
	}
	return h, first, rest, err, &r
}

func TestReadHeaderAcrossRecords(t *testing.T) {
	const id = 4
	stdout := "Status: 201 Created\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n" + strings.Repeat("B", 300)
	for _, size := range []int{1, 2, 3, 7, 64, 1000} {
		h, first, rest, err, r := readHeader(stdoutRecords(id, stdout, size), id, 4096)
		body := string(first) + string(rest)
		if err != nil || h.Status != 201 || fieldsOf(h.Fields) != "Set-Cookie: a=1\nSet-Cookie: b=2\n" || body != strings.Repeat("B", 300) || !r.Done() {
			t.Errorf("records of %d: %v %d %s body %d bytes", size, err, h.Status, fieldsOf(h.Fields), len(body))
		}
		if want := int64((len(stdout) + size - 1) / size); r.StderrLen != want {
			t.Errorf("records of %d: %d bytes of STDERR, want %d", size, r.StderrLen, want)
		}
	}
}

func TestReadHeaderLimits(t *testing.T) {
	const id = 1
	big := "X-Powered-By: PHP\r\nX-Big: " + strings.Repeat("a", 40960) + "\r\nContent-type: text/html\r\n\r\n"
	for _, tc := range []struct {
		name   string
		stdout string
		limit  int
		size   int
		err    error
	}{
		{"fits exactly", "A: 1\r\n\r\n", 8, 8, nil},
		{"40 KiB over 4 KiB", big + "body", 4096, len(big), ErrHeaderTooLarge},
		{"the blank line past the limit", "A: 1\r\n\r\nbody", 7, 8, ErrHeaderTooLarge},
		{"LF LF past the limit", "A: 1\n\nbody", 5, 6, ErrHeaderTooLarge},
		{"stdout ends inside, over the limit", "X: " + strings.Repeat("x", 5000), 4096, 5003, ErrHeaderTooLarge},
		{"stdout ends inside", "X-A: 1\r\n", 4096, 0, ErrHeaderIncomplete},
		{"stdout empty", "", 4096, 0, ErrHeaderIncomplete},
		{"a bad line is found before the limit", "bad line\r\n" + strings.Repeat("x", 9000), 4096, 0, ErrHeaderName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{3, 4096, 65535} {
				raw := stdoutRecords(id, tc.stdout, size)
				if tc.stdout == "" {
					raw = rec(TypeStdout, id, "") + endRequest(id, 0, 0)
				}
				h, _, _, err, _ := readHeader(raw, id, tc.limit)
				if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) || h.Size != tc.size {
					t.Errorf("records of %d: %v, size %d; want %v, size %d", size, err, h.Size, tc.err, tc.size)
				}
			}
		})
	}
	// Beyond 1 MiB the size is not measured.
	h, _, _, err, _ := readHeader(stdoutRecords(id, "X: "+strings.Repeat("x", 2<<20)+"\r\n\r\n", 65535), id, 4096)
	if !errors.Is(err, ErrHeaderTooLarge) || h.Size != 0 {
		t.Errorf("over 1 MiB: %v, size %d", err, h.Size)
	}
	// A connection that fails while measuring: size unknown.
	raw := stdoutRecords(id, big, 65535)
	h, _, _, err, _ = readHeader(raw[:10000], id, 4096)
	if !errors.Is(err, ErrHeaderTooLarge) || h.Size != 0 {
		t.Errorf("cut while measuring: %v, size %d", err, h.Size)
	}
}
