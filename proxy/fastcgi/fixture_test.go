package fastcgi

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// byteHeaders is a HeaderVisitor that allocates nothing.
type byteHeaders [][2][]byte

func (h *byteHeaders) VisitAll(fn func(key, value []byte)) {
	for _, kv := range *h {
		fn(kv[0], kv[1])
	}
}

func newByteHeaders(kv ...string) *byteHeaders {
	h := new(byteHeaders)
	for i := 0; i < len(kv); i += 2 {
		*h = append(*h, [2][]byte{[]byte(kv[i]), []byte(kv[i+1])})
	}
	return h
}

// exchangeFixture is one request and its answer, run the way the proxy
// runs them, with every buffer owned by the fixture.
type exchangeFixture struct {
	res     *Resolver
	target  []byte
	req     Request
	script  Script
	params  Params
	w       Writer
	bw      *bufio.Writer
	body    *bytes.Reader
	bodyRaw []byte
	r       Reader
	br      *bufio.Reader
	answer  *bytes.Reader
	raw     []byte
	h       ResponseHeader
	hbuf    []byte
	peer    net.Addr
	realIP  []byte
	trusted []netip.Prefix
}

func newExchangeFixture(tb testing.TB) *exchangeFixture {
	res, err := NewResolver("/srv/www/shop", "", "/index.php")
	if err != nil {
		tb.Fatal(err)
	}
	x := &exchangeFixture{
		res:    res,
		target: []byte("/cart.php/add/7?qty=2"),
		req: Request{
			Method: []byte("POST"), RequestURI: []byte("/cart.php/add/7?qty=2"), Protocol: []byte("HTTP/1.1"),
			ContentType: []byte("application/x-www-form-urlencoded"), ContentLength: 300, HTTPS: true,
			Host: []byte("shop.example"), ServerAddr: netip.MustParseAddr("127.0.0.1"),
			Header: newByteHeaders("Host", "shop.example", "User-Agent", "Mozilla/5.0", "Accept", "text/html",
				"Cookie", "session=abc", "Cookie", "theme=dark", "X-Real-IP", "203.0.113.9", "X-Forwarded-Proto", "https",
				"X_Spoof", "x", "Proxy", "http://evil", "Connection", "keep-alive"),
		},
		bw:      bufio.NewWriterSize(io.Discard, 16<<10),
		bodyRaw: bytes.Repeat([]byte("k=v&"), 75),
		raw: []byte(rec(TypeStderr, 1, "PHP message: PHP Notice: x") +
			rec(TypeStdout, 1, "Status: 201 Created\r\nX-Powered-By: PHP/8.2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-type: text/html\r\n\r\n") +
			rec(TypeStdout, 1, strings.Repeat("<p>hello</p>", 100)) + endRequest(1, 0, 0)),
		hbuf:    make([]byte, 0, 4096),
		peer:    &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41000},
		realIP:  []byte("203.0.113.9"),
		trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}
	x.body = bytes.NewReader(x.bodyRaw)
	x.answer = bytes.NewReader(x.raw)
	x.br = bufio.NewReaderSize(x.answer, 16<<10)
	return x
}

// run is one whole exchange; it reports a failure as an error.
func (x *exchangeFixture) run() error {
	if err := x.res.Resolve(&x.script, x.target); err != nil {
		return err
	}
	x.req.Remote, _ = ClientAddr(x.peer, x.realIP, x.trusted)
	pairs, err := x.params.Build(&x.req, &x.script)
	if err != nil {
		return err
	}
	x.w.Reset(x.bw, 1)
	x.body.Reset(x.bodyRaw)
	if err := x.w.BeginRequest(true); err != nil {
		return err
	}
	if err := x.w.Params(pairs); err != nil {
		return err
	}
	if _, err := x.w.ReadFrom(x.body); err != nil {
		return err
	}
	if err := x.w.EndStdin(); err != nil {
		return err
	}
	x.answer.Reset(x.raw)
	x.br.Reset(x.answer)
	x.r.Reset(x.br, 1)
	if _, err := x.r.ReadHeader(&x.h, x.hbuf); err != nil {
		return err
	}
	if _, err := x.r.WriteTo(io.Discard); err != nil {
		return err
	}
	if kind, _ := ClassifyStderr(x.r.Stderr); kind != StderrText || x.h.Status != 201 || len(x.h.Fields) != 4 {
		return io.ErrUnexpectedEOF
	}
	return nil
}
