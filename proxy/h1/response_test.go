package h1

import (
	"errors"
	"strings"
	"testing"
)

func TestResponseParse(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		head      bool
		status    int
		framing   Framing
		keepAlive bool
		announced bool
		timeout   int
		fields    int
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 200, Length, true, false, 0, 1},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, 200, Chunked, true, false, 0, 1},
		{"close-delimited", "HTTP/1.1 200 OK\r\n\r\n", false, 200, Close, false, false, 0, 0},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, 200, Length, false, false, 0, 1},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false, 200, Length, false, false, 0, 2},
		{"no reason", "HTTP/1.1 204\r\n\r\n", false, 204, NoBody, true, false, 0, 0},
		{"empty reason", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", false, 200, Length, true, false, 0, 1},
		{"head with length", "HTTP/1.1 200 OK\r\nContent-Length: 32\r\n\r\n", true, 200, NoBody, true, true, 0, 1},
		{"304 with length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 32\r\n\r\n", false, 304, NoBody, true, false, 0, 1},
		{"204 with length", "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", false, 204, NoBody, true, true, 0, 1},
		{"keep-alive timeout", "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n", false, 200, Length, true, false, 5, 2},
		{"repeated set-cookie", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n", false, 200, Length, true, false, 0, 3},
		{"interim", "HTTP/1.1 100 Continue\r\n\r\n", false, 100, NoBody, true, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Response
			n, err := r.Parse([]byte(tt.in), tt.head)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Index(tt.in, "\r\n\r\n") + 4; n != want {
				t.Errorf("n = %d, want %d", n, want)
			}
			if r.Status != tt.status || r.Framing != tt.framing || r.KeepAlive != tt.keepAlive ||
				r.BodyAnnounced != tt.announced || r.KeepAliveTimeout != tt.timeout || len(r.Fields) != tt.fields {
				t.Errorf("got status %d framing %d keep-alive %v announced %v timeout %d fields %d",
					r.Status, r.Framing, r.KeepAlive, r.BodyAnnounced, r.KeepAliveTimeout, len(r.Fields))
			}
			// Every prefix is incomplete, never an error.
			for i := range n {
				if _, err := r.Parse([]byte(tt.in[:i]), tt.head); err != ErrIncomplete {
					t.Fatalf("prefix %q: err = %v, want ErrIncomplete", tt.in[:i], err)
				}
			}
		})
	}
}

func TestResponseParseRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Error
	}{
		{"not http", "SSH-2.0-OpenSSH_9.2\r\n", ErrStatusLine},
		{"not http, first byte", "S", ErrStatusLine},
		{"fastcgi record", "\x01\x06\x00\x01\x00\x10\x00\x00", ErrStatusLine},
		{"http/2", "HTTP/2 200\r\n\r\n", ErrStatusLine},
		{"status 099", "HTTP/1.1 099 Weird\r\n\r\n", ErrStatusCode},
		{"status 000", "HTTP/1.1 000 Zero\r\n\r\n", ErrStatusCode},
		{"status 600", "HTTP/1.1 600 Big\r\n\r\n", ErrStatusCode},
		{"status 4 digits", "HTTP/1.1 2000 OK\r\n\r\n", ErrStatusCode},
		{"status letters", "HTTP/1.1 2x0 OK\r\n\r\n", ErrStatusCode},
		{"status two digits", "HTTP/1.1 20\r\n\r\n", ErrStatusLine},
		{"NUL in reason", "HTTP/1.1 200 O\x00K\r\n\r\n", ErrReasonPhrase},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", ErrBareLF},
		{"bare CR early", "HTTP/1.1 200 O\rK", ErrBareCR},
		{"space in name", "HTTP/1.1 200 OK\r\nX Bad: v\r\n\r\n", ErrFieldName},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", ErrObsFold},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n", ErrFieldValue},
		{"two CL", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", ErrContentLength},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", ErrCLAndTE},
		{"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ErrTECodingUnsupp},
		{"TE in 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", ErrTransferCoding},
		{"connection lists CL", "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 1\r\n\r\n", ErrConnection},
		{"disguised TE", "HTTP/1.1 200 OK\r\nTransfer_Encoding: chunked\r\n\r\n", ErrDisguisedField},
		{"interim with TE", "HTTP/1.1 100\r\nTrAnsfer-EnCoding:Chunked\r\n\r\n", ErrTransferCoding},
		{"interim with CL", "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\n", ErrContentLength},
		{"leading CRLF", "\r\nHTTP/1.1 200 OK\r\n\r\n", ErrStatusLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Response
			_, err := r.Parse([]byte(tt.in), false)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseChunkLine(t *testing.T) {
	good := map[string]int64{"0": 0, "a": 10, "FF": 255, "00000000000000f": 15, "5;x": 5, "5;x=y": 5, `5;x="a;b\"c"`: 5, "5;a;b=c": 5}
	for in, want := range good {
		if got, err := ParseChunkLine([]byte(in)); err != nil || got != want {
			t.Errorf("ParseChunkLine(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "5 ", " 5", "5 ;x", "5; x", "5;x =y", "5;", "5;=y", "5;x=", `5;x="a`, "-5", "0x5", "0000000000000005", "5;x=y z", "5\x00"} {
		if _, err := ParseChunkLine([]byte(in)); err != ErrChunkLine {
			t.Errorf("ParseChunkLine(%q) err = %v, want ErrChunkLine", in, err)
		}
	}
}
