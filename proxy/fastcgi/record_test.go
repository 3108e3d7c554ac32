package fastcgi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

// rec encodes one record the way the specification lays it out, padded to
// 8, independently of Writer: the expected bytes of the tests.
func rec(t RecordType, id uint16, content string) string {
	pad := (8 - len(content)%8) % 8
	return string([]byte{1, byte(t), byte(id >> 8), byte(id), byte(len(content) >> 8), byte(len(content)), byte(pad), 0}) +
		content + strings.Repeat("\x00", pad)
}

func endRequest(id uint16, appStatus uint32, ps ProtocolStatus) string {
	return rec(TypeEndRequest, id, string([]byte{byte(appStatus >> 24), byte(appStatus >> 16), byte(appStatus >> 8), byte(appStatus), byte(ps), 0, 0, 0}))
}

// record is one decoded record, for checking what Writer wrote.
type record struct {
	h       Header
	content []byte
}

// splitRecords decodes b into records, strictly: version 1, padding that
// brings each record to a multiple of 8, nothing left over.
func splitRecords(t *testing.T, b []byte) []record {
	t.Helper()
	var out []record
	for len(b) > 0 {
		if len(b) < HeaderLen {
			t.Fatalf("%d bytes left, short of a header", len(b))
		}
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		n := HeaderLen + int(h.ContentLength) + int(h.PaddingLength)
		if len(b) < n || (int(h.ContentLength)+int(h.PaddingLength))%8 != 0 || b[7] != 0 {
			t.Fatalf("record %+v: bad length or padding", h)
		}
		out = append(out, record{h, b[HeaderLen : HeaderLen+int(h.ContentLength)]})
		b = b[n:]
	}
	return out
}

func newTestWriter(dst io.Writer, id uint16) (*Writer, *bufio.Writer) {
	bw := bufio.NewWriterSize(dst, 4096)
	w := new(Writer)
	w.Reset(bw, id)
	return w, bw
}

func TestWriterRequestBytes(t *testing.T) {
	var out bytes.Buffer
	w, _ := newTestWriter(&out, 0x0102)
	pairs := AppendPair(AppendPair(nil, "REQUEST_METHOD", "GET"), "A", strings.Repeat("v", 200))
	if err := errors.Join(w.BeginRequest(true), w.Params(pairs), w.Stdin([]byte("body")), w.EndStdin()); err != nil {
		t.Fatal(err)
	}
	want := rec(TypeBeginRequest, 0x0102, "\x00\x01\x01\x00\x00\x00\x00\x00") +
		rec(TypeParams, 0x0102, "\x0e\x03REQUEST_METHODGET\x01\x80\x00\x00\xc8A"+strings.Repeat("v", 200)) +
		rec(TypeParams, 0x0102, "") +
		rec(TypeStdin, 0x0102, "body") +
		rec(TypeStdin, 0x0102, "")
	if out.String() != want {
		t.Errorf("wrote\n%q\nwant\n%q", out.String(), want)
	}

	out.Reset()
	w, _ = newTestWriter(&out, 1)
	if err := w.BeginRequest(false); err != nil {
		t.Fatal(err)
	}
	w.bw.Flush()
	if want := rec(TypeBeginRequest, 1, "\x00\x01\x00\x00\x00\x00\x00\x00"); out.String() != want {
		t.Errorf("without keep-conn: %q, want %q", out.String(), want)
	}
}

// Params never splits a pair: PHP-FPM parses each FCGI_PARAMS record alone.
func TestWriterParamsSplitAtPairs(t *testing.T) {
	var pairs []byte
	var want [][2]string
	for i := range 40 {
		name, value := "P"+strings.Repeat("x", i), strings.Repeat(string(rune('a'+i%26)), 3000+i)
		pairs = AppendPair(pairs, name, value)
		want = append(want, [2]string{name, value})
	}
	var out bytes.Buffer
	w, bw := newTestWriter(&out, 7)
	if err := w.Params(pairs); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	recs := splitRecords(t, out.Bytes())
	if n := len(recs); n < 3 || len(recs[n-1].content) != 0 {
		t.Fatalf("%d records, last %d bytes: want several and an empty one", n, len(recs[n-1].content))
	}
	var got [][2]string
	for _, r := range recs {
		if r.h.Type != TypeParams || r.h.RequestID != 7 {
			t.Fatalf("record %+v", r.h)
		}
		for c := r.content; len(c) > 0; {
			name, value, rest, err := NextPair(c)
			if err != nil {
				t.Fatalf("a record does not hold whole pairs: %v", err)
			}
			got = append(got, [2]string{string(name), string(value)})
			c = rest
		}
	}
	if !slices.Equal(got, want) {
		t.Error("pairs changed on the way")
	}

	out.Reset()
	w, bw = newTestWriter(&out, 7)
	if err := w.Params(AppendPair(nil, "BIG", strings.Repeat("x", MaxContentLength))); !errors.Is(err, ErrPairTooLarge) {
		t.Errorf("a pair over 65535 bytes: %v", err)
	}
	if err := w.Params([]byte{5, 1, 'a'}); !errors.Is(err, ErrPairLength) {
		t.Errorf("a malformed pair: %v", err)
	}
	bw.Flush()
	if out.Len() != 0 {
		t.Errorf("wrote %d bytes for refused pairs", out.Len())
	}
}

func TestWriterStdin(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 12500) // 200000 bytes
	for _, tc := range []struct {
		name  string
		write func(w *Writer) error
	}{
		{"Stdin", func(w *Writer) error { return w.Stdin(body) }},
		{"ReadFrom", func(w *Writer) error { _, err := w.ReadFrom(bytes.NewReader(body)); return err }},
		{"ReadFrom, one byte at a time", func(w *Writer) error {
			n, err := w.ReadFrom(iotest.OneByteReader(bytes.NewReader(body[:3000])))
			if n != 3000 {
				t.Errorf("ReadFrom = %d", n)
			}
			return err
		}},
		{"ReadFrom, data with EOF", func(w *Writer) error {
			_, err := w.ReadFrom(iotest.DataErrReader(bytes.NewReader(body)))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w, _ := newTestWriter(&out, 3)
			if err := errors.Join(tc.write(w), w.EndStdin()); err != nil {
				t.Fatal(err)
			}
			recs := splitRecords(t, out.Bytes())
			var got []byte
			for i, r := range recs {
				if r.h.Type != TypeStdin || r.h.RequestID != 3 || (len(r.content) == 0) != (i == len(recs)-1) {
					t.Fatalf("record %d: %+v", i, r.h)
				}
				got = append(got, r.content...)
			}
			want := body
			if strings.Contains(tc.name, "one byte") {
				want = body[:3000]
			}
			if !bytes.Equal(got, want) {
				t.Errorf("STDIN carried %d bytes, want %d", len(got), len(want))
			}
		})
	}
	// Records of at most 65535 bytes, whatever the buffer.
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 256<<10)
	var w Writer
	w.Reset(bw, 1)
	if _, err := w.ReadFrom(bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Stdin(body); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	for _, r := range splitRecords(t, out.Bytes()) {
		if r.h.ContentLength > MaxContentLength {
			t.Fatalf("record of %d bytes", r.h.ContentLength)
		}
	}
	if got := len(splitRecords(t, out.Bytes())); got != 8 {
		t.Errorf("%d records for 2 × 200000 bytes, want 8 (4 each: 3 × 65535 + 3395)", got)
	}
}

func TestWriterSmallBufferPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.HasPrefix(r.(string), "BUG:") {
			t.Errorf("recover() = %v", r)
		}
	}()
	var w Writer
	w.Reset(bufio.NewWriterSize(io.Discard, 64), 1)
}

// readAll reads a whole answer from raw with a fresh Reader: STDOUT, its
// error, STDERR.
func readAll(raw string, id uint16) (stdout []byte, err error, r *Reader) {
	r = new(Reader)
	r.Reset(bufio.NewReaderSize(strings.NewReader(raw), 64), id)
	stdout, err = io.ReadAll(r)
	return stdout, err, r
}

func TestReaderRecords(t *testing.T) {
	const id = 9
	ok := endRequest(id, 0, RequestComplete)
	for _, tc := range []struct {
		name, raw      string
		stdout, stderr string
		err            error
		received, done bool
		appStatus      uint32
	}{
		{"stdout, stderr interleaved, end",
			rec(TypeStdout, id, "Status: 200\r\n") + rec(TypeStderr, id, "PHP message: x") + rec(TypeStdout, id, "\r\nbody") +
				rec(TypeStderr, id, "") + rec(TypeStdout, id, "") + ok,
			"Status: 200\r\n\r\nbody", "PHP message: x", nil, true, true, 0},
		{"a record larger than the bufio.Reader", rec(TypeStdout, id, strings.Repeat("z", 1000)) + ok,
			strings.Repeat("z", 1000), "", nil, true, true, 0},
		{"padding other than 8's", "\x01\x06\x00\x09\x00\x02\x05\x00ab\x00\x00\x00\x00\x00" + ok, "ab", "", nil, true, true, 0},
		{"appStatus kept", rec(TypeStdout, id, "x") + endRequest(id, 0x01020304, RequestComplete), "x", "", nil, true, true, 0x01020304},
		{"nothing", "", "", "", ErrNoEndRequest, false, false, 0},
		{"closed after stdout", rec(TypeStdout, id, "partial") + rec(TypeStdout, id, ""), "partial", "", ErrNoEndRequest, true, false, 0},
		{"closed inside content", rec(TypeStdout, id, "partial")[:12], "part", "", ErrTruncatedRecord, true, false, 0},
		{"closed inside a header", rec(TypeStdout, id, "ab")[:5], "", "", ErrTruncatedRecord, true, false, 0},
		{"closed inside padding", rec(TypeStdout, id, "ab")[:12], "ab", "", ErrTruncatedRecord, true, false, 0},
		{"closed inside end request", ok[:12], "", "", ErrTruncatedRecord, true, false, 0},
		{"version 2", "\x02\x06\x00\x09\x00\x00\x00\x00", "", "", ErrVersion, true, false, 0},
		{"HTTP", "HTTP/1.1 400 Bad Request\r\n\r\n", "", "", ErrVersion, true, false, 0},
		{"type 0", rec(0, id, ""), "", "", ErrUnknownType, true, false, 0},
		{"type 12", rec(12, id, "x"), "", "", ErrUnknownType, true, false, 0},
		{"params from the application", rec(TypeParams, id, ""), "", "", ErrUnexpectedType, true, false, 0},
		{"begin request from the application", rec(TypeBeginRequest, id, "\x00\x01\x00\x00\x00\x00\x00\x00"), "", "", ErrUnexpectedType, true, false, 0},
		{"management record mid-request", rec(TypeGetValuesResult, 0, ""), "", "", ErrUnexpectedType, true, false, 0},
		{"another request's stdout", rec(TypeStdout, id+1, "x"), "", "", ErrRequestID, true, false, 0},
		{"stdout for id 0", rec(TypeStdout, 0, "x"), "", "", ErrRequestID, true, false, 0},
		{"another request's end", rec(TypeStdout, id, "x") + endRequest(id+1, 0, 0), "x", "", ErrRequestID, true, false, 0},
		{"end request of 7 bytes", rec(TypeEndRequest, id, "\x00\x00\x00\x00\x00\x00\x00"), "", "", ErrEndRequestLength, true, false, 0},
		{"end request of 16 bytes", rec(TypeEndRequest, id, strings.Repeat("\x00", 16)), "", "", ErrEndRequestLength, true, false, 0},
		{"stdout after its end", rec(TypeStdout, id, "") + rec(TypeStdout, id, "x") + ok, "", "", ErrStdoutAfterEnd, true, false, 0},
		{"cannot multiplex", endRequest(id, 0, CantMpxConn), "", "", ErrCantMpxConn, true, false, 0},
		{"overloaded", endRequest(id, 0, Overloaded), "", "", ErrOverloaded, true, false, 0},
		{"unknown role", endRequest(id, 0, UnknownRole), "", "", ErrUnknownRole, true, false, 0},
		{"undefined protocol status", endRequest(id, 0, 4), "", "", ErrProtocolStatus, true, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, err, r := readAll(tc.raw, id)
			if string(stdout) != tc.stdout || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Errorf("ReadAll = %q, %v; want %q, %v", stdout, err, tc.stdout, tc.err)
			}
			if string(r.Stderr) != tc.stderr || r.StderrLen != int64(len(tc.stderr)) {
				t.Errorf("Stderr = %q (%d), want %q", r.Stderr, r.StderrLen, tc.stderr)
			}
			if r.Received() != tc.received || r.Done() != tc.done || r.End().AppStatus != tc.appStatus {
				t.Errorf("Received %v Done %v End %+v; want %v %v appStatus %#x", r.Received(), r.Done(), r.End(), tc.received, tc.done, tc.appStatus)
			}
			if errors.Is(err, ErrNoEndRequest) || errors.Is(err, ErrTruncatedRecord) {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("%v is not io.ErrUnexpectedEOF", err)
				}
			}
			// Sticky: the error again, and nothing more.
			if n, again := r.Read(make([]byte, 8)); n != 0 || !errors.Is(again, err) && !(err == nil && again == io.EOF) {
				t.Errorf("Read after the end = %d, %v", n, again)
			}
		})
	}
}

// ErrVersion consumes nothing: the bytes are there to Sniff.
func TestReaderVersionLeavesBytes(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n"))
	var r Reader
	r.Reset(br, 1)
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, ErrVersion) {
		t.Fatalf("Read: %v", err)
	}
	b, _ := br.Peek(16)
	if Sniff(b) != ProtocolHTTP {
		t.Errorf("Sniff(%q) = %v", b, Sniff(b))
	}
}

func TestReaderStderrBounded(t *testing.T) {
	const id = 1
	raw := rec(TypeStderr, id, strings.Repeat("a", 3000)) + rec(TypeStdout, id, "out") + rec(TypeStderr, id, strings.Repeat("b", 100)) + endRequest(id, 0, 0)
	stdout, err, r := readAll(raw, id)
	if err != nil || string(stdout) != "out" {
		t.Fatalf("%q %v", stdout, err)
	}
	if len(r.Stderr) != defaultStderrCap || r.StderrLen != 3100 || strings.Trim(string(r.Stderr), "a") != "" {
		t.Errorf("kept %d bytes of %d", len(r.Stderr), r.StderrLen)
	}
	// A capacity of the caller's own, kept across Reset.
	r.Stderr = make([]byte, 0, 10)
	r.Reset(bufio.NewReaderSize(strings.NewReader(raw), 64), id)
	_, _ = io.ReadAll(r)
	if string(r.Stderr) != "aaaaaaaaaa" || cap(r.Stderr) != 10 {
		t.Errorf("with cap 10: %q", r.Stderr)
	}
}

func TestReaderWriteTo(t *testing.T) {
	const id = 2
	raw := rec(TypeStdout, id, "hello ") + rec(TypeStderr, id, "warn") + rec(TypeStdout, id, strings.Repeat("w", 500)) + endRequest(id, 0, 0)
	var r Reader
	r.Reset(bufio.NewReaderSize(iotest.HalfReader(strings.NewReader(raw)), 64), id)
	var out bytes.Buffer
	n, err := r.WriteTo(&out)
	if err != nil || n != 506 || out.String() != "hello "+strings.Repeat("w", 500) || string(r.Stderr) != "warn" || !r.Done() {
		t.Errorf("WriteTo = %d, %v; %q", n, err, out.String())
	}
	r.Reset(bufio.NewReaderSize(strings.NewReader(rec(TypeStdout, id, "cut")), 64), id)
	if n, err := r.WriteTo(io.Discard); n != 3 || !errors.Is(err, ErrNoEndRequest) {
		t.Errorf("WriteTo of a cut answer = %d, %v", n, err)
	}
}

// Closes and resets from a real connection: the upstream writes raw, then
// closes (FIN) or resets (SO_LINGER 0: RST).
func TestReaderRealClose(t *testing.T) {
	const id = 5
	for _, tc := range []struct {
		name        string
		sent        string
		reset       bool
		want        error
		errno       bool
		wantStdout  string
		wantReceive bool
	}{
		{"FIN before any byte", "", false, ErrNoEndRequest, false, "", false},
		{"RST before any byte", "", true, ErrNoEndRequest, true, "", false},
		{"FIN after stdout", rec(TypeStdout, id, "Status: 200\r\n\r\npart"), false, ErrNoEndRequest, false, "Status: 200\r\n\r\npart", true},
		{"FIN inside a record", rec(TypeStdout, id, "Status: 200\r\n\r\npartial")[:20], false, ErrTruncatedRecord, false, "Status: 200\r", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := fakeUpstream(t, func(c *net.TCPConn) {
				io.WriteString(c, tc.sent)
				if tc.reset {
					// Unread bytes from the client make the close a reset
					// too; SO_LINGER 0 makes sure.
					_ = c.SetLinger(0)
				}
			})
			var r Reader
			r.Reset(bufio.NewReader(conn), id)
			stdout, err := io.ReadAll(&r)
			if string(stdout) != tc.wantStdout || !errors.Is(err, tc.want) || errors.Is(err, syscall.ECONNRESET) != tc.errno ||
				!errors.Is(err, io.ErrUnexpectedEOF) || r.Received() != tc.wantReceive {
				t.Errorf("got %q, %v (received %v); want %q, %v, ECONNRESET %v", stdout, err, r.Received(), tc.wantStdout, tc.want, tc.errno)
			}
		})
	}
}

// fakeUpstream returns a client connection to a loopback server that, once
// the client's first byte (the request) has arrived, runs serve on its one
// connection and then closes it.
func fakeUpstream(t *testing.T, serve func(c *net.TCPConn)) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if _, err := c.Read(make([]byte, 1)); err != nil {
			return
		}
		serve(c.(*net.TCPConn))
		c.Close()
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // a safety net
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("fake upstream did not finish")
	}
	return conn
}

func TestParseHeader(t *testing.T) {
	h, err := ParseHeader([]byte{1, 6, 0xab, 0xcd, 0x12, 0x34, 7, 9})
	if err != nil || h != (Header{Version: 1, Type: TypeStdout, RequestID: 0xabcd, ContentLength: 0x1234, PaddingLength: 7}) {
		t.Errorf("ParseHeader = %+v, %v", h, err)
	}
	if got := string(h.AppendTo(nil)); got != "\x01\x06\xab\xcd\x12\x34\x07\x00" {
		t.Errorf("AppendTo = %q", got)
	}
	if _, err := ParseHeader([]byte("GET / HT")); !errors.Is(err, ErrVersion) {
		t.Errorf("ParseHeader(GET) = %v", err)
	}
	if TypeGetValuesResult.String() != "FCGI_GET_VALUES_RESULT" || RecordType(0).String() != "unknown" || RecordType(200).String() != "unknown" {
		t.Error("RecordType.String")
	}
}

// A deadline inside a record is sticky: the Reader does not resume reading
// a record it lost track of.
func TestReaderStickyAfterTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	release := make(chan struct{})
	defer close(release)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, rec(TypeStdout, 1, "Status: 200\r\n\r\nbody")[:12])
		<-release
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var r Reader
	r.Reset(bufio.NewReader(conn), 1)
	p := make([]byte, 64)
	if n, err := r.Read(p); err != nil || string(p[:n]) != "Stat" {
		t.Fatalf("first Read = %q, %v", p[:n], err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(-time.Second)) // already past: the next read fails at once
	if _, err := r.Read(p); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if n, err := r.Read(p); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read after the deadline error = %d, %v; want it again", n, err)
	}
	if n, err := r.WriteTo(io.Discard); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("WriteTo after the deadline error = %d, %v", n, err)
	}
}

// Every record-layer error says ErrProtocol; a premature close and the CGI
// header errors do not.
func TestErrProtocol(t *testing.T) {
	for _, err := range []error{ErrVersion, ErrUnknownType, ErrUnexpectedType, ErrRequestID, ErrEndRequestLength,
		ErrStdoutAfterEnd, ErrCantMpxConn, ErrOverloaded, ErrUnknownRole, ErrProtocolStatus} {
		if !errors.Is(err, ErrProtocol) || !errors.Is(fmt.Errorf("read: %w", err), err) {
			t.Errorf("%v: not ErrProtocol, or not itself when wrapped", err)
		}
	}
	for _, err := range []error{ErrNoEndRequest, ErrTruncatedRecord, ErrHeaderTooLarge, ErrHeaderName, io.EOF} {
		if errors.Is(err, ErrProtocol) {
			t.Errorf("%v is ErrProtocol", err)
		}
	}
}
