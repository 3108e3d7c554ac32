//go:build !race

package fastcgi_test

import (
	"bufio"
	"strings"
	"testing"

	"github.com/upmedic/upmedic/proxy/fastcgi"
	"github.com/valyala/fasthttp"
)

// The seam with the proxy: a fasthttp request header is the HeaderVisitor,
// and building the parameters from it allocates nothing.
func TestFasthttpHeaderZeroAllocs(t *testing.T) {
	var req fasthttp.Request
	raw := "POST /cart.php?x=1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: curl/8\r\nCookie: a=1\r\nCookie: b=2\r\n" +
		"X-Real-IP: 203.0.113.9\r\nX-Foo: 1\r\nX_Foo: 2\r\nProxy: http://evil\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n"
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	res, err := fastcgi.NewResolver("/srv/www", "", "/index.php")
	if err != nil {
		t.Fatal(err)
	}
	var s fastcgi.Script
	var p fastcgi.Params
	r := fastcgi.Request{Header: &req.Header}
	build := func() ([]byte, error) {
		r.Method, r.RequestURI, r.Host = req.Header.Method(), req.Header.RequestURI(), req.Header.Host()
		r.ContentType, r.ContentLength = req.Header.ContentType(), int64(req.Header.ContentLength())
		if err := res.Resolve(&s, r.RequestURI); err != nil {
			return nil, err
		}
		return p.Build(&r, &s)
	}
	pairs, err := build()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for b := pairs; len(b) > 0; {
		name, value, rest, _ := fastcgi.NextPair(b)
		if strings.HasPrefix(string(name), "HTTP_") {
			names = append(names, string(name)+"="+string(value))
		}
		b = rest
	}
	if got, want := strings.Join(names, " "), "HTTP_HOST=shop.example HTTP_CONTENT_LENGTH=0 HTTP_CONTENT_TYPE=text/plain HTTP_USER_AGENT=curl/8 HTTP_COOKIE=a=1; b=2 HTTP_X_REAL_IP=203.0.113.9 HTTP_X_FOO=1"; got != want {
		t.Errorf("from fasthttp:\n got  %s\n want %s", got, want)
	}
	if n := testing.AllocsPerRun(200, func() { _, err = build() }); n != 0 || err != nil {
		t.Errorf("Build from a fasthttp header allocates %v times (err %v)", n, err)
	}
}
