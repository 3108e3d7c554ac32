package fastcgi

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"unsafe"
)

// HeaderVisitor calls fn once for each request header field, in order.
// *fasthttp.RequestHeader satisfies it (VisitAll); the slices passed to fn
// need only be valid while fn runs.
type HeaderVisitor interface {
	VisitAll(fn func(key, value []byte))
}

// Request is what the CGI parameters of one request are built from: the
// request as upmedic received it from the front proxy, and what the caller
// decided about it (the client's address, the scheme). Its byte slices are
// read only during Params.Build.
type Request struct {
	// Method is REQUEST_METHOD.
	Method []byte
	// RequestURI is the raw request-target, with its query: REQUEST_URI.
	// QUERY_STRING is what follows its first '?', raw.
	RequestURI []byte
	// Protocol is SERVER_PROTOCOL, the front request's version
	// ("HTTP/1.1"); empty means "HTTP/1.1".
	Protocol []byte
	// ContentType is CONTENT_TYPE, sent empty when there is none.
	ContentType []byte
	// ContentLength is CONTENT_LENGTH, the exact length of the body that
	// STDIN will carry, 0 for none. It is always sent: PHP-FPM reads no
	// body without it. Negative is ErrContentLength.
	ContentLength int64
	// HTTPS sets REQUEST_SCHEME to "https" and HTTPS to "on"; otherwise
	// REQUEST_SCHEME is "http" and HTTPS is not sent. Set it from
	// X-Forwarded-Proto only when the front is Trusted.
	HTTPS bool
	// Host is the Host header. SERVER_NAME is it without its port, in lower
	// case; SERVER_PORT is its port, or 443 or 80 by scheme.
	Host []byte
	// ServerAddr is SERVER_ADDR, the address the request came in on; not
	// sent when zero.
	ServerAddr netip.Addr
	// Remote is REMOTE_ADDR and REMOTE_PORT, the client as ClientAddr
	// decided. A zero port sends REMOTE_PORT empty (the client's port is
	// unknown behind X-Real-IP); a zero address sends REMOTE_ADDR empty.
	Remote netip.AddrPort
	// Header gives the request header fields, each sent as HTTP_*; nil
	// sends none.
	Header HeaderVisitor
	// ServerSoftware is SERVER_SOFTWARE; empty means "upmedic".
	ServerSoftware string
}

// Params builds the CGI/1.1 parameters (RFC 3875 4.1) of requests as
// FastCGI name-value pairs, for Writer.Params. Its zero value is ready to
// use; reuse it, so that its buffers keep their capacity. It is not safe for
// concurrent use.
type Params struct {
	pairs []byte
	names []byte               // HTTP_* names of the fields kept, back to back
	vals  []byte               // their values, back to back
	refs  []hdrRef             // one per field kept, in order
	visit func([]byte, []byte) // collect, bound once
}

type hdrRef struct{ name, nameEnd, val, valEnd int }

// Build returns the parameters of r running s: what nginx's stock
// fastcgi_params with `fastcgi_param SCRIPT_FILENAME
// $document_root$fastcgi_script_name` and `fastcgi_param PATH_INFO
// $fastcgi_path_info` sends, in that order, except REMOTE_USER (nginx takes
// it from an unverified Basic Authorization header; PHP derives
// PHP_AUTH_USER from HTTP_AUTHORIZATION itself). The result is valid until
// the next Build. It allocates nothing once its buffers have grown.
//
// Header fields become HTTP_<NAME>, upper case, '-' turned into '_' (RFC
// 3875 4.1.18), except:
//   - Proxy, never sent: HTTP_PROXY would be taken for the proxy setting of
//     the script's own outgoing requests (httpoxy, CVE-2016-5385);
//   - a name holding '_' or any byte that is not a token character, as
//     nginx's underscores_in_headers off and ignore_invalid_headers do:
//     "X_Foo" would otherwise arrive as HTTP_X_FOO, spoofing a trusted
//     "X-Foo" set by the front;
//   - the hop-by-hop fields of the connection from the front (Connection,
//     Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
//     Upgrade), which say nothing about the client's request;
//   - a value holding NUL, CR or LF.
//
// Fields that map to the same name are sent once, their values joined with
// ", " ("; " for Cookie) as nginx 1.23 and later do, where PHP-FPM would
// keep only the last.
func (p *Params) Build(r *Request, s *Script) ([]byte, error) {
	if r.ContentLength < 0 {
		return nil, ErrContentLength
	}
	var query []byte
	if i := bytes.IndexByte(r.RequestURI, '?'); i >= 0 {
		query = r.RequestURI[i+1:]
	}
	proto := r.Protocol
	if len(proto) == 0 {
		proto = []byte("HTTP/1.1")
	}
	scheme, defaultPort := "http", "80"
	if r.HTTPS {
		scheme, defaultPort = "https", "443"
	}
	serverName, serverPort := splitHost(r.Host)
	if len(serverPort) == 0 {
		serverPort = []byte(defaultPort)
	}
	software := r.ServerSoftware
	if software == "" {
		software = "upmedic"
	}

	b := p.pairs[:0]
	b = AppendPair(b, "SCRIPT_FILENAME", s.Filename)
	b = AppendPair(b, "QUERY_STRING", query)
	b = AppendPair(b, "REQUEST_METHOD", r.Method)
	b = AppendPair(b, "CONTENT_TYPE", r.ContentType)
	b = appendPairInt(b, "CONTENT_LENGTH", r.ContentLength)
	b = AppendPair(b, "SCRIPT_NAME", s.Name)
	b = AppendPair(b, "PATH_INFO", s.PathInfo)
	b = AppendPair(b, "REQUEST_URI", r.RequestURI)
	b = AppendPair(b, "DOCUMENT_URI", s.URI)
	b = AppendPair(b, "DOCUMENT_ROOT", s.Root)
	b = AppendPair(b, "SERVER_PROTOCOL", proto)
	b = AppendPair(b, "REQUEST_SCHEME", scheme)
	if r.HTTPS {
		b = AppendPair(b, "HTTPS", "on")
	}
	b = AppendPair(b, "GATEWAY_INTERFACE", "CGI/1.1")
	b = AppendPair(b, "SERVER_SOFTWARE", software)
	b = appendPairAddr(b, "REMOTE_ADDR", r.Remote.Addr())
	b = appendPairPort(b, "REMOTE_PORT", r.Remote.Port())
	if r.ServerAddr.IsValid() {
		b = appendPairAddr(b, "SERVER_ADDR", r.ServerAddr)
	}
	b = AppendPair(b, "SERVER_PORT", serverPort)
	b = appendPairLower(b, "SERVER_NAME", serverName)
	b = AppendPair(b, "REDIRECT_STATUS", "200")
	b = p.appendHeaders(b, r.Header)
	p.pairs = b
	return b, nil
}

// appendHeaders appends the HTTP_* parameters of h's fields.
func (p *Params) appendHeaders(b []byte, h HeaderVisitor) []byte {
	if h == nil {
		return b
	}
	if p.visit == nil {
		p.visit = p.collect
	}
	p.names, p.vals, p.refs = p.names[:0], p.vals[:0], p.refs[:0]
	h.VisitAll(p.visit)
	for i, ref := range p.refs {
		name := p.names[ref.name:ref.nameEnd]
		if p.seenBefore(i, name) {
			continue
		}
		sep := ", "
		if string(name) == "HTTP_COOKIE" {
			sep = "; "
		}
		n := 0
		for _, o := range p.refs[i:] {
			if string(p.names[o.name:o.nameEnd]) == string(name) {
				if n > 0 {
					n += len(sep)
				}
				n += o.valEnd - o.val
			}
		}
		b = appendPairLen(b, len(name))
		b = appendPairLen(b, n)
		b = append(b, name...)
		first := true
		for _, o := range p.refs[i:] {
			if string(p.names[o.name:o.nameEnd]) == string(name) {
				if !first {
					b = append(b, sep...)
				}
				first = false
				b = append(b, p.vals[o.val:o.valEnd]...)
			}
		}
	}
	return b
}

// seenBefore reports whether a field before the i-th has the same name.
func (p *Params) seenBefore(i int, name []byte) bool {
	for _, o := range p.refs[:i] {
		if string(p.names[o.name:o.nameEnd]) == string(name) {
			return true
		}
	}
	return false
}

// collect keeps one request header field, mapped to its CGI name, unless
// Build's rules drop it.
func (p *Params) collect(key, value []byte) {
	if len(key) == 0 || equalFold(key, "Proxy") || equalFold(key, "Connection") || isHopByHop(key) {
		return
	}
	for _, c := range key {
		if c == '_' || !isTokenChar(c) {
			return
		}
	}
	for _, c := range value {
		if c == 0 || c == '\r' || c == '\n' {
			return
		}
	}
	ref := hdrRef{name: len(p.names), val: len(p.vals)}
	p.names = append(p.names, "HTTP_"...)
	for _, c := range key {
		switch {
		case c == '-':
			c = '_'
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		p.names = append(p.names, c)
	}
	p.vals = append(p.vals, value...)
	ref.nameEnd, ref.valEnd = len(p.names), len(p.vals)
	p.refs = append(p.refs, ref)
}

func appendPairAddr(b []byte, name string, a netip.Addr) []byte {
	var buf [64]byte
	v := buf[:0]
	if a.IsValid() {
		v = a.AppendTo(v)
	}
	return AppendPair(b, name, v)
}

func appendPairPort(b []byte, name string, port uint16) []byte {
	var buf [8]byte
	v := buf[:0]
	if port != 0 {
		v = strconv.AppendUint(v, uint64(port), 10)
	}
	return AppendPair(b, name, v)
}

func appendPairLower(b []byte, name string, v []byte) []byte {
	b = appendPairLen(b, len(name))
	b = appendPairLen(b, len(v))
	b = append(b, name...)
	for _, c := range v {
		b = append(b, lower(c))
	}
	return b
}

// splitHost splits a Host header into name and port: "example.com:8080",
// "[::1]:8080", "example.com".
func splitHost(host []byte) (name, port []byte) {
	if len(host) > 0 && host[0] == '[' {
		if i := bytes.IndexByte(host, ']'); i >= 0 {
			name, rest := host[:i+1], host[i+1:]
			if len(rest) > 1 && rest[0] == ':' {
				port = rest[1:]
			}
			return name, port
		}
		return host, nil
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		return host[:i], host[i+1:]
	}
	return host, nil
}

// Trusted reports whether peer, the address of the connection a request
// came on, is a front proxy whose X-Real-IP and X-Forwarded-Proto upmedic
// believes: a unix socket, a loopback address, or an address within one of
// trusted.
func Trusted(peer net.Addr, trusted []netip.Prefix) bool {
	switch a := peer.(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		ip := a.AddrPort().Addr().Unmap()
		if ip.IsLoopback() {
			return true
		}
		for _, p := range trusted {
			if p.Contains(ip) {
				return true
			}
		}
	}
	return false
}

// ClientAddr returns the client's address for REMOTE_ADDR and REMOTE_PORT:
// realIP, the X-Real-IP header, when peer is Trusted and realIP holds one IP
// address (no port, no zone), with port 0 since the client's is unknown;
// otherwise peer's own address and port (zero for a unix socket).
// fromHeader says which. It allocates nothing.
func ClientAddr(peer net.Addr, realIP []byte, trusted []netip.Prefix) (addr netip.AddrPort, fromHeader bool) {
	if realIP = trimOWS(realIP); len(realIP) > 0 && len(realIP) <= 64 && Trusted(peer, trusted) {
		// The string aliases realIP for the call only: ParseAddr keeps no
		// reference to it in a valid Addr (a zone, which it would intern,
		// is refused below), and its error is dropped.
		ip, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(realIP), len(realIP)))
		if err == nil && ip.Zone() == "" {
			return netip.AddrPortFrom(ip.Unmap(), 0), true
		}
	}
	if a, ok := peer.(*net.TCPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), false
	}
	return netip.AddrPort{}, false
}

// WriteNamelessGet writes with w, which must be Reset, a whole GET for
// path?query that names no file: PHP-FPM's ping.path and pm.status_path,
// which it answers without a script. SCRIPT_NAME, SCRIPT_FILENAME and
// DOCUMENT_URI are path, CONTENT_LENGTH is 0, the client is loopback and
// SERVER_SOFTWARE is software. It asks for no FCGI_KEEP_CONN, so PHP-FPM
// closes the connection after its answer. params builds the pairs; it
// flushes.
func WriteNamelessGet(w *Writer, params *Params, path, query, software string) error {
	uri := path
	if query != "" {
		uri += "?" + query
	}
	pairs, err := params.Build(&Request{Method: []byte("GET"), RequestURI: []byte(uri), Host: []byte("localhost"),
		Remote: netip.AddrPortFrom(netip.IPv6Loopback(), 0), ServerSoftware: software},
		&Script{Filename: []byte(path), Name: []byte(path), URI: []byte(path)})
	if err != nil {
		return err
	}
	if err := w.BeginRequest(false); err != nil {
		return err
	}
	if err := w.Params(pairs); err != nil {
		return err
	}
	return w.EndStdin()
}
