package fastcgi

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// decodePairs decodes a parameter stream into name=value strings, in order.
func decodePairs(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for len(b) > 0 {
		name, value, rest, err := NextPair(b)
		if err != nil {
			t.Fatalf("%v at %q", err, b)
		}
		out = append(out, string(name)+"="+string(value))
		b = rest
	}
	return out
}

func TestPairEncoding(t *testing.T) {
	for _, tc := range []struct {
		nameLen, valueLen int
		prefix            string
	}{
		{0, 0, "\x00\x00"},
		{1, 127, "\x01\x7f"},
		{127, 128, "\x7f\x80\x00\x00\x80"},
		{128, 1, "\x80\x00\x00\x80\x01"},
		{3, 70000, "\x03\x80\x01\x11\x70"},
	} {
		name, value := strings.Repeat("n", tc.nameLen), strings.Repeat("v", tc.valueLen)
		b := AppendPair(nil, name, []byte(value))
		if !strings.HasPrefix(string(b), tc.prefix) || len(b) != len(tc.prefix)+tc.nameLen+tc.valueLen {
			t.Errorf("AppendPair(%d, %d) = %q...", tc.nameLen, tc.valueLen, b[:min(len(b), 8)])
		}
		n, v, rest, err := NextPair(append(b, "next"...))
		if err != nil || string(n) != name || string(v) != value || string(rest) != "next" {
			t.Errorf("NextPair(%d, %d): %v", tc.nameLen, tc.valueLen, err)
		}
	}
	for _, bad := range []string{"", "\x05", "\x80\x00\x00", "\x02\x00a", "\x00\x02a", "\x80\x00\x00\x05\x00abcd", "\xff\xff\xff\xff\x00"} {
		if _, _, _, err := NextPair([]byte(bad)); !errors.Is(err, ErrPairLength) {
			t.Errorf("NextPair(%q) = %v", bad, err)
		}
	}
	// A non-minimal four-byte length is still a length.
	if n, _, _, err := NextPair([]byte("\x80\x00\x00\x01\x00a")); err != nil || string(n) != "a" {
		t.Errorf("non-minimal length: %q %v", n, err)
	}
}

func TestParamsBuild(t *testing.T) {
	res, err := NewResolver("/srv/www/", "", "")
	if err != nil {
		t.Fatal(err)
	}
	var s Script
	if err := res.Resolve(&s, []byte("/shop/cart.php/add/7?qty=2&x=%20")); err != nil {
		t.Fatal(err)
	}
	req := &Request{
		Method:        []byte("POST"),
		RequestURI:    []byte("/shop/cart.php/add/7?qty=2&x=%20"),
		Protocol:      []byte("HTTP/1.0"),
		ContentType:   []byte("application/x-www-form-urlencoded"),
		ContentLength: 11,
		HTTPS:         true,
		Host:          []byte("WWW.Example.com"),
		Remote:        netip.MustParseAddrPort("[2001:db8::1]:0"),
		Header: headerList{
			{"Host", "WWW.Example.com"},
			{"User-Agent", "curl/8"},
			{"X-Forwarded-For", "203.0.113.1"},
			{"Cookie", "a=1"},
			{"x-forwarded-for", "10.0.0.1"},
			{"Cookie", "b=2"},
			{"X_Forwarded_For", "spoof"},
			{"Proxy", "http://evil:3128"},
			{"proxy", "http://evil:3128"},
			{"Connection", "close"},
			{"Transfer-Encoding", "chunked"},
			{"Keep-Alive", "5"},
			{"TE", "trailers"},
			{"Upgrade", "websocket"},
			{"Proxy-Connection", "keep-alive"},
			{"Trailer", "X"},
			{"X-Bad\x01", "v"},
			{"X-Nul", "a\x00b"},
			{"X-Cr", "a\rb"},
			{"", "empty name"},
			{"Authorization", "Basic dTpw"},
			{"Content-Length", "11"},
		},
	}
	var p Params
	b, err := p.Build(req, &s)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"SCRIPT_FILENAME=/srv/www/shop/cart.php",
		"QUERY_STRING=qty=2&x=%20",
		"REQUEST_METHOD=POST",
		"CONTENT_TYPE=application/x-www-form-urlencoded",
		"CONTENT_LENGTH=11",
		"SCRIPT_NAME=/shop/cart.php",
		"PATH_INFO=/add/7",
		"REQUEST_URI=/shop/cart.php/add/7?qty=2&x=%20",
		"DOCUMENT_URI=/shop/cart.php/add/7",
		"DOCUMENT_ROOT=/srv/www",
		"SERVER_PROTOCOL=HTTP/1.0",
		"REQUEST_SCHEME=https",
		"HTTPS=on",
		"GATEWAY_INTERFACE=CGI/1.1",
		"SERVER_SOFTWARE=upmedic",
		"REMOTE_ADDR=2001:db8::1",
		"REMOTE_PORT=",
		"SERVER_PORT=443",
		"SERVER_NAME=www.example.com",
		"REDIRECT_STATUS=200",
		"HTTP_HOST=WWW.Example.com",
		"HTTP_USER_AGENT=curl/8",
		"HTTP_X_FORWARDED_FOR=203.0.113.1, 10.0.0.1",
		"HTTP_COOKIE=a=1; b=2",
		"HTTP_AUTHORIZATION=Basic dTpw",
		"HTTP_CONTENT_LENGTH=11",
	}
	if got := decodePairs(t, b); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The defaults, and no header visitor.
	plain := &Request{Method: []byte("GET"), RequestURI: []byte("/x.php"), Remote: netip.MustParseAddrPort("192.0.2.1:5000"),
		ServerAddr: netip.MustParseAddr("127.0.0.1"), ServerSoftware: "upmedic/1.2"}
	res.Resolve(&s, plain.RequestURI)
	b, _ = p.Build(plain, &s)
	got := decodePairs(t, b)
	for _, kv := range []string{"QUERY_STRING=", "CONTENT_TYPE=", "CONTENT_LENGTH=0", "PATH_INFO=", "SERVER_PROTOCOL=HTTP/1.1",
		"REQUEST_SCHEME=http", "SERVER_SOFTWARE=upmedic/1.2", "REMOTE_ADDR=192.0.2.1", "REMOTE_PORT=5000",
		"SERVER_ADDR=127.0.0.1", "SERVER_PORT=80", "SERVER_NAME="} {
		if !slices.Contains(got, kv) {
			t.Errorf("missing %s in %q", kv, got)
		}
	}
	for _, kv := range got {
		if strings.HasPrefix(kv, "HTTPS=") || strings.HasPrefix(kv, "HTTP_") || strings.HasPrefix(kv, "REMOTE_USER") {
			t.Errorf("unexpected %s", kv)
		}
	}

	if _, err := p.Build(&Request{ContentLength: -1}, &s); !errors.Is(err, ErrContentLength) {
		t.Errorf("unknown length: %v", err)
	}
}

func TestSplitHost(t *testing.T) {
	for host, want := range map[string][2]string{
		"example.com":      {"example.com", ""},
		"example.com:8080": {"example.com", "8080"},
		"[::1]:8443":       {"[::1]", "8443"},
		"[::1]":            {"[::1]", ""},
		"[::1":             {"[::1", ""},
		"":                 {"", ""},
		"127.0.0.1:80":     {"127.0.0.1", "80"},
		"[2001:db8::1]:":   {"[2001:db8::1]", ""},
	} {
		name, port := splitHost([]byte(host))
		if string(name) != want[0] || string(port) != want[1] {
			t.Errorf("splitHost(%q) = %q, %q", host, name, port)
		}
	}
}

func TestClientAddr(t *testing.T) {
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	loop6 := &net.TCPAddr{IP: net.IPv6loopback, Port: 40001}
	unix := &net.UnixAddr{Name: "", Net: "unix"}
	far := &net.TCPAddr{IP: net.IPv4(198, 51, 100, 4), Port: 5000}
	front := &net.TCPAddr{IP: net.IPv4(10, 9, 8, 7), Port: 6000}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	for _, tc := range []struct {
		name       string
		peer       net.Addr
		realIP     string
		want       string
		fromHeader bool
	}{
		{"loopback front", loop, "203.0.113.5", "203.0.113.5:0", true},
		{"IPv6 loopback front", loop6, "2001:db8::5", "[2001:db8::5]:0", true},
		{"unix socket front", unix, "203.0.113.5", "203.0.113.5:0", true},
		{"configured front", front, "203.0.113.5", "203.0.113.5:0", true},
		{"spaces trimmed", loop, " 203.0.113.5 ", "203.0.113.5:0", true},
		{"IPv4-mapped unmapped", loop, "::ffff:203.0.113.5", "203.0.113.5:0", true},
		{"untrusted peer keeps its own", far, "203.0.113.5", "198.51.100.4:5000", false},
		{"no header", loop, "", "127.0.0.1:40000", false},
		{"with a port", loop, "203.0.113.5:80", "127.0.0.1:40000", false},
		{"a list", loop, "203.0.113.5, 10.0.0.1", "127.0.0.1:40000", false},
		{"a zone", loop6, "fe80::1%eth0", "[::1]:40001", false},
		{"a name", loop, "client.example", "127.0.0.1:40000", false},
		{"unix without header", unix, "", "invalid AddrPort", false},
		{"no peer", nil, "203.0.113.5", "invalid AddrPort", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, fromHeader := ClientAddr(tc.peer, []byte(tc.realIP), trusted)
			if got.String() != tc.want || fromHeader != tc.fromHeader {
				t.Errorf("ClientAddr = %s, %v; want %s, %v", got, fromHeader, tc.want, tc.fromHeader)
			}
		})
	}
	if Trusted(far, nil) || !Trusted(loop, nil) || !Trusted(unix, nil) || Trusted(front, nil) || !Trusted(front, trusted) {
		t.Error("Trusted")
	}
	mapped := &net.TCPAddr{IP: net.ParseIP("::ffff:10.1.1.1"), Port: 1}
	if !Trusted(mapped, trusted) {
		t.Error("an IPv4-mapped peer in a trusted IPv4 prefix")
	}
}

// headerList is a HeaderVisitor over fixed fields.
type headerList [][2]string

func (h headerList) VisitAll(fn func(key, value []byte)) {
	for _, kv := range h {
		fn([]byte(kv[0]), []byte(kv[1]))
	}
}
