package fastcgi

import (
	"io"
	"testing"
)

// BenchmarkPHPFPM is a round trip to a real php-fpm over one kept unix
// socket connection, a tiny script: the codec's share is the difference
// from BenchmarkExchange's.
func BenchmarkPHPFPM(b *testing.B) {
	f := startFPM(b)
	res, err := NewResolver(f.root, "", "")
	if err != nil {
		b.Fatal(err)
	}
	c := dialClient(b, "unix", f.sock, 4096)
	var s Script
	if err := res.Resolve(&s, []byte("/index.php")); err != nil {
		b.Fatal(err)
	}
	req := &Request{Method: []byte("GET"), RequestURI: []byte("/index.php"), Host: []byte("localhost")}
	b.ReportAllocs()
	for b.Loop() {
		pairs, _ := c.p.Build(req, &s)
		if err := c.send(pairs, nil); err != nil {
			b.Fatal(err)
		}
		c.r.Reset(c.br, c.id)
		if _, err := c.r.ReadHeader(&c.h, c.hbuf); err != nil {
			b.Fatal(err)
		}
		if _, err := c.r.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
