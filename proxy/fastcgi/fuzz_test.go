package fastcgi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz targets for the four parsers. Seeds: testdata/fuzz/<target>/ (real
// php-fpm 8.2 answers captured on the wire, and the cases that found bugs),
// plus the f.Add lines below.

// FuzzReader: whatever the bytes, the Reader ends with io.EOF only after a
// complete FCGI_END_REQUEST, never returns more STDOUT than arrived, and
// Read and WriteTo agree.
func FuzzReader(f *testing.F) {
	f.Add([]byte(rec(TypeStdout, 1, "Status: 200\r\n\r\nok") + rec(TypeStderr, 1, "warn") + endRequest(1, 0, 0)))
	f.Add([]byte(rec(TypeStdout, 1, "") + rec(TypeStdout, 1, "x")))
	f.Add([]byte(endRequest(1, 0, Overloaded)))
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Reader
		r.Reset(bufio.NewReaderSize(bytes.NewReader(data), 16), 1)
		out, err := io.ReadAll(&r)
		if (err == nil) != r.Done() {
			t.Fatalf("err %v but Done %v", err, r.Done())
		}
		if len(out)+int(r.StderrLen) > len(data) || len(r.Stderr) > defaultStderrCap {
			t.Fatalf("%d bytes of STDOUT and %d of STDERR from %d", len(out), r.StderrLen, len(data))
		}
		if r.Received() != (len(data) > 0) {
			t.Fatalf("Received %v for %d bytes", r.Received(), len(data))
		}
		var w Reader
		w.Reset(bufio.NewReaderSize(bytes.NewReader(data), 16), 1)
		var copied bytes.Buffer
		_, werr := w.WriteTo(&copied)
		if !bytes.Equal(copied.Bytes(), out) || (werr == nil) != (err == nil) || (err != nil && werr.Error() != err.Error()) {
			t.Fatalf("WriteTo %q, %v; Read %q, %v", copied.Bytes(), werr, out, err)
		}
	})
}

// FuzzResponseHeader: parsing at once and a byte at a time agree, and what
// is accepted is clean: a final status, token names, values without NUL,
// CR or LF, no framing or hop-by-hop field passed on.
func FuzzResponseHeader(f *testing.F) {
	f.Add([]byte("Status: 404 Not Found\nLocation: /x\n\nbody"))
	f.Add([]byte("Transfer-Encoding: chunked\r\nConnection: X-A\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("X: 1\r\n  folded\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var h ResponseHeader
		h.Reset()
		n, err := h.Parse(data)
		var inc ResponseHeader
		inc.Reset()
		var m int
		var ierr error
		for i := 0; i <= len(data); i++ {
			if m, ierr = inc.Parse(data[:i]); !errors.Is(ierr, ErrHeaderNeedMore) {
				break
			}
		}
		if n != m || !errors.Is(ierr, err) || fieldsOf(h.Fields) != fieldsOf(inc.Fields) || h.Status != inc.Status {
			t.Fatalf("at once: %d %v %d; incrementally: %d %v %d", n, err, h.Status, m, ierr, inc.Status)
		}
		if err != nil {
			return
		}
		if n > len(data) || n != h.Size || h.Status < 200 || h.Status > 599 || h.ContentLength < -1 {
			t.Fatalf("n %d size %d status %d cl %d", n, h.Size, h.Status, h.ContentLength)
		}
		for _, fl := range h.Fields {
			if len(fl.Name) == 0 || bytes.ContainsAny(fl.Value, "\x00\r\n") {
				t.Fatalf("field %q: %q", fl.Name, fl.Value)
			}
			for _, c := range fl.Name {
				if !isTokenChar(c) {
					t.Fatalf("name %q", fl.Name)
				}
			}
			if equalFold(fl.Name, "Status") || equalFold(fl.Name, "Content-Length") || equalFold(fl.Name, "Connection") || isHopByHop(fl.Name) {
				t.Fatalf("field %q passed on", fl.Name)
			}
		}
	})
}

// FuzzNextPair: decoding never reads past its input, and what decodes
// re-encodes to pairs that decode the same.
func FuzzNextPair(f *testing.F) {
	f.Add([]byte("\x0e\x03REQUEST_METHODGET\x01\x80\x00\x00\x02Avv"))
	f.Add([]byte("\x80\x00\x00\x01\x00a"))
	f.Add([]byte("\xff\xff\xff\xff\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var pairs [][2][]byte
		for b := data; len(b) > 0; {
			name, value, rest, err := NextPair(b)
			if err != nil {
				if !errors.Is(err, ErrPairLength) {
					t.Fatal(err)
				}
				break
			}
			if len(rest) >= len(b) || len(name)+len(value) > len(b) {
				t.Fatalf("no progress or overlong pair at %q", b)
			}
			pairs = append(pairs, [2][]byte{name, value})
			b = rest
		}
		var enc []byte
		for _, p := range pairs {
			enc = AppendPair(enc, p[0], p[1])
		}
		for i, b := 0, enc; len(b) > 0; i++ {
			name, value, rest, err := NextPair(b)
			if err != nil || !bytes.Equal(name, pairs[i][0]) || !bytes.Equal(value, pairs[i][1]) {
				t.Fatalf("pair %d does not survive re-encoding: %v", i, err)
			}
			b = rest
		}
	})
}

// FuzzResolve is the proof that no path escapes the root: for any
// request-target, Resolve either fails or gives a SCRIPT_FILENAME under the
// root, clean (no dot segment, no empty segment), naming a .php file, with
// SCRIPT_NAME and PATH_INFO the target's path, decoded.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"/index.php", "/../etc/passwd", "/%2e%2e/x.php", "/a.php/b/../c", "//x//y.php/", "/", "/blog/x", "/a%00.php", `/a\..\b.php`, "/%2f.php"} {
		f.Add(s)
	}
	const root = "/srv/www"
	res, err := NewResolver(root, "", "/index.php")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, target string) {
		var s Script
		if err := res.Resolve(&s, []byte(target)); err != nil {
			return
		}
		fn := string(s.Filename)
		if !strings.HasPrefix(fn, root+"/") || filepath.Clean(fn) != fn || fn != root+string(s.Name) {
			t.Fatalf("%q: SCRIPT_FILENAME %q", target, fn)
		}
		for _, seg := range strings.Split(fn[len(root)+1:], "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("%q: SCRIPT_FILENAME %q has segment %q", target, fn, seg)
			}
		}
		if strings.ContainsAny(fn, "\x00\\") || !strings.HasSuffix(fn, ".php") || string(s.URI) != string(s.Name)+string(s.PathInfo) {
			t.Fatalf("%q: %q %q %q", target, fn, s.Name, s.PathInfo)
		}
		for _, c := range []byte(string(s.URI)) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("%q: control byte in %q", target, s.URI)
			}
		}
		// The path as url.PathUnescape reads it, slashes merged, is what
		// runs, unless the index or the front controller stood in.
		path, _, _ := strings.Cut(target, "?")
		dec, err := url.PathUnescape(path)
		if err != nil {
			t.Fatalf("%q resolved but does not unescape: %v", target, err)
		}
		for strings.Contains(dec, "//") {
			dec = strings.ReplaceAll(dec, "//", "/")
		}
		if string(s.URI) != dec && string(s.URI) != dec+"index.php" && string(s.URI) != "/index.php" {
			t.Fatalf("%q: runs %q, but the path says %q", target, s.URI, dec)
		}
	})
}

// TestFuzzSeedsPresent keeps the seed corpus from being lost: each target
// has real captured seeds.
func TestFuzzSeedsPresent(t *testing.T) {
	for _, target := range []string{"FuzzReader", "FuzzResponseHeader", "FuzzNextPair", "FuzzResolve"} {
		entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", target))
		if err != nil || len(entries) < 3 {
			t.Errorf("%s: %d seeds, %v", target, len(entries), err)
		}
	}
}
