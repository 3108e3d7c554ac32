package h1

import (
	"errors"
	"strings"
	"testing"
)

// scanAll feeds in to a fresh scanner in pieces of size step (0: whole) and
// returns how many bytes passed and the error.
func scanAll(in string, step int) (int, error, *RequestScanner) {
	var s RequestScanner
	b := []byte(in)
	if step <= 0 {
		step = len(b)
	}
	passed := 0
	for off := 0; off < len(b); off += step {
		end := min(off+step, len(b))
		n, err := s.Scan(b[off:end])
		passed += n
		if err != nil {
			return passed, err, &s
		}
		if n < end-off {
			return passed, nil, &s // paused
		}
	}
	return passed, nil, &s
}

const host = "Host: t\r\n"

func TestRequestScannerAccepts(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		state   State
		framing Framing
		cl      int64
	}{
		{"get", "GET / HTTP/1.1\r\n" + host + "\r\n", Idle, NoBody, 0},
		{"http/1.0 without host", "GET /x HTTP/1.0\r\n\r\n", Idle, NoBody, 0},
		{"leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\n" + host + "\r\n", Idle, NoBody, 0},
		{"content-length body", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello", Idle, Length, 5},
		{"content-length zero", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n", Idle, NoBody, 0},
		{"body still arriving", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 10\r\n\r\nhello", Body, Length, 10},
		{"chunked", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Idle, Chunked, 0},
		{"chunked in any case, tab OWS", "POST /a HTTP/1.1\r\n" + host + "TrAnSFer-EnCODinG:\tcHuNkeD\t\r\n\r\n0\r\n\r\n", Idle, Chunked, 0},
		{"chunk extensions and trailer", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3;a=b;c=\"q \\\" x\";d\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", Idle, Chunked, 0},
		{"pipelined", "GET /1 HTTP/1.1\r\n" + host + "\r\nGET /2 HTTP/1.1\r\n" + host + "\r\n", Idle, NoBody, 0},
		{"absolute-form", "GET http://good.example:8080/x?y HTTP/1.1\r\nHost: evil\r\n\r\n", Idle, NoBody, 0},
		{"absolute-form no path", "GET HTTP://good.example HTTP/1.1\r\n" + host + "\r\n", Idle, NoBody, 0},
		{"options star", "OPTIONS * HTTP/1.1\r\n" + host + "\r\n", Idle, NoBody, 0},
		{"ipv6 host", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", Idle, NoBody, 0},
		{"obs-text value", "GET / HTTP/1.1\r\n" + host + "X: caf\xc3\xa9\r\n\r\n", Idle, NoBody, 0},
		{"upgrade pauses", "GET /ws HTTP/1.1\r\n" + host + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\nFRAME", Paused, NoBody, 0},
		{"upgrade in 1.0 ignored", "GET /ws HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", Idle, NoBody, 0},
		{"braces and bars in a query", "GET /q?f={a|b}&x=^`\\ HTTP/1.1\r\n" + host + "\r\n", Idle, NoBody, 0},
		{"percent-encoded target", "GET /a%2Fb%20c?q=%41 HTTP/1.1\r\n" + host + "\r\n", Idle, NoBody, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, step := range []int{0, 1, 3, 7} {
				n, err, s := scanAll(tt.in, step)
				if err != nil {
					t.Fatalf("step %d: err = %v", step, err)
				}
				want := len(tt.in)
				if tt.state == Paused {
					want = strings.Index(tt.in, "\r\n\r\n") + 4
				}
				if n != want {
					t.Errorf("step %d: passed %d bytes, want %d", step, n, want)
				}
				if s.State() != tt.state {
					t.Errorf("step %d: state = %d, want %d", step, s.State(), tt.state)
				}
				if h := s.Head(); h.Framing != tt.framing || tt.framing == Length && h.ContentLength != tt.cl {
					t.Errorf("step %d: framing = %d cl %d, want %d cl %d", step, h.Framing, h.ContentLength, tt.framing, tt.cl)
				}
			}
		})
	}
}

func TestRequestScannerRejects(t *testing.T) {
	req := func(fields string) string { return "POST /a HTTP/1.1\r\n" + host + fields + "\r\n" }
	tests := []struct {
		name string
		in   string
		want *Error
	}{
		{"bare LF line", "GET / HTTP/1.1\n" + host + "\r\n", ErrBareLF},
		{"bare LF terminator", "GET / HTTP/1.1\r\n" + host + "\n", ErrBareLF},
		{"bare CR in a line", "GET / HTTP/1.1\r\nX: a\rb\r\n" + host + "\r\n", ErrBareCR},
		{"bare CR between lines", "GET / HTTP/1.1\r\r\n" + host + "\r\n", ErrBareCR},
		{"space in name", req("Foo Bar: x\r\n"), ErrFieldName},
		{"space in content length name", req("Content Length: 5\r\n"), ErrFieldName},
		{"space before colon", req("Transfer-Encoding : chunked\r\n"), ErrFieldName},
		{"tab before colon", req("Transfer-Encoding\t:\tchunked\r\n"), ErrFieldName},
		{"no colon", req("Foo\r\n"), ErrFieldName},
		{"empty name", req(": x\r\n"), ErrFieldName},
		{"obs-text in name", req("Transf\x82r-Encoding: chunked\r\n"), ErrFieldName},
		{"obs-fold", req("X: a\r\n b\r\n"), ErrObsFold},
		{"leading space field", "POST /a HTTP/1.1\r\n Transfer-Encoding: chunked\r\n" + host + "\r\n", ErrObsFold},
		{"NUL in value", req("X: a\x00b\r\n"), ErrFieldValue},
		{"VT in value", req("Transfer-Encoding:\x0bchunked\r\n"), ErrFieldValue},
		{"DEL in value", req("X: \x7f\r\n"), ErrFieldValue},
		{"underscore disguise", req("Transfer_Encoding: chunked\r\n"), ErrDisguisedField},
		{"CL and TE", req("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"), ErrCLAndTE},
		{"two CL", req("Content-Length: 4\r\nContent-Length: 4\r\n"), ErrContentLength},
		{"CL list", req("Content-Length: 4, 4\r\n"), ErrContentLength},
		{"CL sign", req("Content-Length: +4\r\n"), ErrContentLength},
		{"CL huge", req("Content-Length: 99999999999999999999\r\n"), ErrContentLength},
		{"two TE", req("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), ErrTransferCoding},
		{"TE cow", req("Transfer-Encoding: cow, chunked\r\n"), ErrTECodingUnsupp},
		{"TE quoted", req("Transfer-Encoding: \"chunked\"\r\n"), ErrTransferCoding},
		{"TE chunk", req("Transfer-Encoding: chunk\r\n"), ErrTECodingUnsupp},
		{"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", ErrTransferCoding},
		{"Connection lists CL", req("Connection: Content-Length\r\nContent-Length: 42\r\n"), ErrConnection},
		{"Connection lists TE", req("Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n"), ErrConnection},
		{"Connection lists Host", req("Connection: keep-alive, host\r\n"), ErrConnection},
		{"Connection not tokens", req("Connection: a b\r\n"), ErrConnection},
		{"no host", "GET / HTTP/1.1\r\n\r\n", ErrHost},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ErrHost},
		{"empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", ErrHost},
		{"userinfo host", "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", ErrHost},
		{"percent-encoded host", "GET / HTTP/1.1\r\nHost: a%2eb\r\n\r\n", ErrHost},
		{"percent-encoded target host", "GET http://%00/ HTTP/1.0\r\n\r\n", ErrTargetForm},
		{"method not token", "G(T / HTTP/1.1\r\n" + host + "\r\n", ErrMethod},
		{"double space", "GET  / HTTP/1.1\r\n" + host + "\r\n", ErrRequestLine},
		{"no version", "GET /\r\n" + host + "\r\n", ErrRequestLine},
		{"version 2", "GET / HTTP/2.0\r\n" + host + "\r\n", ErrVersionUnsupp},
		{"version lower", "GET / http/1.1\r\n" + host + "\r\n", ErrVersion},
		{"version trailing space", "GET / HTTP/1.1 \r\n" + host + "\r\n", ErrVersion},
		{"target quote", "GET /a\"b HTTP/1.1\r\n" + host + "\r\n", ErrTarget},
		{"target fragment", "GET /a#b HTTP/1.1\r\n" + host + "\r\n", ErrTarget},
		{"target high byte", "GET /caf\xc3\xa9 HTTP/1.1\r\n" + host + "\r\n", ErrTarget},
		{"target bad percent", "GET /a%zz HTTP/1.1\r\n" + host + "\r\n", ErrTarget},
		{"target short percent", "GET /a%4 HTTP/1.1\r\n" + host + "\r\n", ErrTarget},
		{"target relative", "GET a/b HTTP/1.1\r\n" + host + "\r\n", ErrTargetForm},
		{"target star for GET", "GET * HTTP/1.1\r\n" + host + "\r\n", ErrTargetForm},
		{"target ftp", "GET ftp://h/ HTTP/1.1\r\n" + host + "\r\n", ErrTargetForm},
		{"target userinfo", "GET http://u:p@h/ HTTP/1.1\r\n" + host + "\r\n", ErrTargetForm},
		{"target empty authority", "GET http:///x HTTP/1.1\r\n" + host + "\r\n", ErrTargetForm},
		{"connect", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", ErrConnect},
		{"chunk size junk", req("Transfer-Encoding: chunked\r\n") + "5x\r\nhello\r\n0\r\n\r\n", ErrChunkLine},
		{"chunk size space", req("Transfer-Encoding: chunked\r\n") + "5 \r\nhello\r\n0\r\n\r\n", ErrChunkLine},
		{"chunk ext space", req("Transfer-Encoding: chunked\r\n") + "5 ;a\r\nhello\r\n0\r\n\r\n", ErrChunkLine},
		{"chunk size too long", req("Transfer-Encoding: chunked\r\n") + "0000000000000005\r\nhello\r\n0\r\n\r\n", ErrChunkLine},
		{"chunk size bare LF", req("Transfer-Encoding: chunked\r\n") + "5\nhello\r\n0\r\n\r\n", ErrBareLF},
		{"chunk data no CRLF", req("Transfer-Encoding: chunked\r\n") + "5\r\nhelloX\r\n0\r\n\r\n", ErrChunkData},
		{"chunk data LF only", req("Transfer-Encoding: chunked\r\n") + "5\r\nhello\n0\r\n\r\n", ErrChunkData},
		{"chunk extension 5 KiB", req("Transfer-Encoding: chunked\r\n") + "5;a=" + strings.Repeat("x", 5000) + "\r\nhello\r\n0\r\n\r\n", ErrChunkLineLong},
		{"trailer framing field", req("Transfer-Encoding: chunked\r\n") + "0\r\nContent-Length: 5\r\n\r\n", ErrTrailer},
		{"trailer bad line", req("Transfer-Encoding: chunked\r\n") + "0\r\nbad line\r\n\r\n", ErrTrailer},
		{"header too large", "GET / HTTP/1.1\r\n" + host + "X: " + strings.Repeat("a", 8200) + "\r\n\r\n", ErrHeaderTooLarge},
		{"too many fields", "GET / HTTP/1.1\r\n" + host + strings.Repeat("X: a\r\n", 100) + "\r\n", ErrTooManyFields},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var first int
			for i, step := range []int{0, 1, 2, 5} {
				n, err, s := scanAll(tt.in, step)
				if !errors.Is(err, tt.want) {
					t.Fatalf("step %d: err = %v, want %v", step, err, tt.want)
				}
				if s.State() != Failed {
					t.Errorf("step %d: state = %d, want Failed", step, s.State())
				}
				if i == 0 {
					first = n
				} else if n != first {
					t.Errorf("step %d: passed %d bytes, whole passed %d", step, n, first)
				}
				if strings.Contains(tt.in[:n], "\r\n\r\n") && !strings.HasPrefix(tt.in, "POST /a HTTP/1.1\r\n"+host) {
					t.Errorf("step %d: passed a header terminator: %q", step, tt.in[:n])
				}
				if again, err2 := s.Scan([]byte("GET / HTTP/1.1\r\n")); again != 0 || err2 != err {
					t.Errorf("after failing: Scan = %d, %v; want 0, the same error", again, err2)
				}
			}
		})
	}
}

// TestRequestScannerHoldsBackLineEnds checks the property the front server
// relies on: a line's LF passes only once the line is accepted.
func TestRequestScannerHoldsBackLineEnds(t *testing.T) {
	in := "GET / HTTP/1.1\r\n" + host + "Foo Bar: x\r\n\r\n"
	n, err, _ := scanAll(in, 0)
	if !errors.Is(err, ErrFieldName) {
		t.Fatalf("err = %v", err)
	}
	want := len("GET / HTTP/1.1\r\n" + host + "Foo Bar: x\r")
	if n != want {
		t.Fatalf("passed %q, want the bad line up to its LF: %q", in[:n], in[:want])
	}
}

func TestRequestScannerPauseResume(t *testing.T) {
	var s RequestScanner
	in := []byte("GET /ws HTTP/1.1\r\n" + host + "Connection: upgrade\r\nUpgrade: websocket\r\n\r\nGET /next HTTP/1.1\r\n" + host + "\r\n")
	n, err := s.Scan(in)
	if err != nil || s.State() != Paused || !s.Head().Upgrade {
		t.Fatalf("Scan = %d, %v, state %d", n, err, s.State())
	}
	if m, _ := s.Scan(in[n:]); m != 0 {
		t.Fatalf("paused scanner passed %d bytes", m)
	}
	s.Resume()
	if m, err := s.Scan(in[n:]); m != len(in)-n || err != nil || s.State() != Idle {
		t.Fatalf("after Resume: %d, %v, state %d", m, err, s.State())
	}
	s.SetTunnel()
	if m, err := s.Scan([]byte("\x00\xff\n garbage")); m != 11 || err != nil {
		t.Fatalf("tunnel: %d, %v", m, err)
	}
}

func TestRequestScannerInRequest(t *testing.T) {
	var s RequestScanner
	if s.InRequest() {
		t.Fatal("fresh scanner in a request")
	}
	s.Scan([]byte("POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nab"))
	if !s.InRequest() {
		t.Fatal("body half sent: not in a request")
	}
	s.Scan([]byte("c"))
	if s.InRequest() {
		t.Fatal("body complete: still in a request")
	}
	s.Scan([]byte("GE"))
	if !s.InRequest() {
		t.Fatal("next request started: not in a request")
	}
}
