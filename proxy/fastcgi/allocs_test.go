//go:build !race

package fastcgi

import (
	"net"
	"testing"
)

func TestFastCGIZeroAllocs(t *testing.T) {
	x := newExchangeFixture(t)
	if err := x.run(); err != nil { // grows the buffers
		t.Fatal(err)
	}
	var err error
	if n := testing.AllocsPerRun(200, func() { err = x.run() }); n != 0 || err != nil {
		t.Errorf("one exchange allocates %v times (err %v), want 0", n, err)
	}
	var h ResponseHeader
	hdr := []byte("Status: 404 Not Found\r\nSet-Cookie: a=1\r\n\r\n")
	if n := testing.AllocsPerRun(200, func() { h.Reset(); _, err = h.Parse(hdr) }); n != 0 || err != nil {
		t.Errorf("Parse allocates %v times (err %v)", n, err)
	}
	unix := &net.UnixAddr{Net: "unix"}
	ip6, http, stderr := []byte("2001:db8::1"), []byte("HTTP/1.1 400 Bad Request"), []byte("Access to the script '/x' has been denied (see security.limit_extensions)")
	if n := testing.AllocsPerRun(200, func() {
		_, _ = ClientAddr(unix, ip6, nil)
		_ = Sniff(http)
		_, _ = ClassifyStderr(stderr)
	}); n != 0 {
		t.Errorf("ClientAddr, Sniff and ClassifyStderr allocate %v times", n)
	}
}
