package fastcgi

import (
	"io"
	"testing"
)

// Micro-benchmarks of the codec; the end-to-end FastCGI load belongs in
// bench/. Run: go test -run XXX -bench . -benchmem ./proxy/fastcgi

// BenchmarkExchange is one whole request and answer as the proxy runs them:
// resolve, parameters from 10 header fields, the records of a 300-byte
// body, an answer of 1.2 KB with STDERR, its header parsed and its body
// streamed.
func BenchmarkExchange(b *testing.B) {
	x := newExchangeFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := x.run(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParamsBuild(b *testing.B) {
	x := newExchangeFixture(b)
	if err := x.res.Resolve(&x.script, x.target); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x.params.Build(&x.req, &x.script); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolve(b *testing.B) {
	x := newExchangeFixture(b)
	target := []byte("/blog/2026/12/a%20post/view.php/extra?x=1")
	b.ReportAllocs()
	for b.Loop() {
		if err := x.res.Resolve(&x.script, target); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponseHeader(b *testing.B) {
	hdr := []byte("Status: 200 OK\r\nX-Powered-By: PHP/8.2.36\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\n" +
		"Cache-Control: no-store\r\nContent-type: text/html; charset=UTF-8\r\n\r\n")
	var h ResponseHeader
	b.ReportAllocs()
	b.SetBytes(int64(len(hdr)))
	for b.Loop() {
		h.Reset()
		if _, err := h.Parse(hdr); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadResponse reads an answer: records, STDERR, header, body.
func BenchmarkReadResponse(b *testing.B) {
	x := newExchangeFixture(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(x.raw)))
	for b.Loop() {
		x.answer.Reset(x.raw)
		x.br.Reset(x.answer)
		x.r.Reset(x.br, 1)
		if _, err := x.r.ReadHeader(&x.h, x.hbuf); err != nil {
			b.Fatal(err)
		}
		if _, err := x.r.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
