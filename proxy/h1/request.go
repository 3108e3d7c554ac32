package h1

import (
	"bytes"
	"sync"
)

// State is where a RequestScanner is in its connection's stream.
type State uint8

// The scanner's states.
const (
	// Idle is between requests: the next byte starts one.
	Idle State = iota
	// Header is inside a request's header section.
	Header
	// Body is inside a request's body.
	Body
	// Paused follows a request that asked to switch protocols (Connection:
	// upgrade with Upgrade): what comes next is HTTP again only if the
	// server declines. Scan passes nothing until Resume or Tunnel.
	Paused
	// Tunnel is a connection that switched protocols: every byte passes.
	Tunnel
	// Failed is a stream that broke a rule: nothing more passes.
	Failed
)

// bodyPart is where a chunked body is.
type bodyPart uint8

const (
	partLength    bodyPart = iota // Content-Length bytes
	partChunkLine                 // a chunk-size line
	partChunkData                 // chunk data
	partChunkCRLF                 // the CRLF after chunk data
	partTrailer                   // the trailer section
)

// RequestHead is what a scanner learned from the header section of the
// request it is in, or last finished.
type RequestHead struct {
	HTTP10        bool
	Framing       Framing
	ContentLength int64 // with Framing Length
	// AbsoluteForm is true when the request-target is absolute-form
	// (http://host/path); the server must take Host from it (RFC 9112
	// section 3.2.2).
	AbsoluteForm bool
	// Upgrade is true when the request asks to switch protocols.
	Upgrade bool

	started      bool // the request line was seen
	hostSeen     bool
	clSeen       bool
	teSeen       bool
	connUpgrade  bool // Connection lists upgrade
	upgradeField bool // an Upgrade field is present
	fields       int
}

// RequestScanner follows the stream of HTTP/1.1 requests a client sends on
// one connection, as it arrives, and stops it at the first byte that breaks
// a rule of RFC 9112 or that would let two readers frame it differently.
//
// Scan returns how many bytes may go on to the server that parses the
// requests. What passes is always a prefix of a stream the scanner checked
// whole: a line goes on only up to, not including, its LF until the scanner
// has checked it, so no reader can end a header section, a chunk-size line
// or a chunk the scanner would reject. The server therefore never sees a
// complete request the scanner did not accept, and never frames one
// differently, since each accepted request has exactly one framing.
//
// The zero value is ready, at the start of a connection. A RequestScanner
// is not safe for concurrent use. It holds no buffer between requests; one
// is borrowed while a line spans two Scan calls.
type RequestScanner struct {
	state     State
	part      bodyPart
	head      RequestHead
	seen      int     // bytes of the header or trailer section so far
	remaining int64   // body or chunk bytes still to come
	crlf      int8    // partChunkCRLF: bytes of the CRLF seen
	line      *[]byte // the start of a line that spans Scan calls
	err       error
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// State returns where the scanner is.
func (s *RequestScanner) State() State { return s.state }

// Head returns what the scanner learned of the current or last request.
func (s *RequestScanner) Head() *RequestHead { return &s.head }

// Err returns the error that failed the stream, or nil.
func (s *RequestScanner) Err() error { return s.err }

// InRequest reports whether the scanner is part-way through a request: some
// of it arrived, not all.
func (s *RequestScanner) InRequest() bool {
	return s.state == Body || s.state == Header && (s.head.started || s.seen > 0 || s.line != nil)
}

// Resume ends a pause: the server declined to switch protocols, so what
// follows is the next request.
func (s *RequestScanner) Resume() {
	if s.state == Paused {
		s.state = Idle
	}
}

// SetTunnel makes every byte from now on pass unchecked: the connection
// switched protocols.
func (s *RequestScanner) SetTunnel() {
	if s.state != Failed {
		s.state = Tunnel
		s.releaseLine()
	}
}

// Scan checks p, the next bytes of the stream, and returns how many of them
// may pass. n is less than len(p) when the scanner paused (the rest is for
// after Resume or SetTunnel) or failed (err is then one of the *Error
// sentinels, and it is returned again by every later call).
func (s *RequestScanner) Scan(p []byte) (n int, err error) {
	for n < len(p) {
		var m int
		switch s.state {
		case Failed:
			return n, s.err
		case Tunnel:
			return len(p), nil
		case Paused:
			return n, nil
		case Idle:
			s.head = RequestHead{}
			s.seen = 0
			s.state = Header
			continue
		case Header:
			m, err = s.lines(p[n:], MaxRequestHeaderBytes, ErrHeaderTooLarge, s.headerLine)
		case Body:
			m, err = s.body(p[n:])
		}
		n += m
		if err != nil {
			s.fail(err)
			return n, err
		}
	}
	return n, nil
}

func (s *RequestScanner) fail(err error) {
	s.state, s.err = Failed, err
	s.releaseLine()
}

// lines checks the complete lines at the start of b with handle, as long as
// the scanner stays in the state it was in, and keeps a trailing incomplete
// line for the next call. A section (header or trailer) may hold at most
// limit bytes. It returns the bytes that may pass: on an error, those before
// the LF of the line that broke a rule.
func (s *RequestScanner) lines(b []byte, limit int, tooLarge error, handle func(line []byte) error) (int, error) {
	state, part := s.state, s.part
	i := 0
	for i < len(b) && s.state == state && s.part == part {
		j := bytes.IndexByte(b[i:], '\n')
		if s.state == Header && !s.head.started {
			// A request line is refused at its first bad method byte, not
			// when a line end arrives: a TLS handshake or another binary
			// protocol may never send one.
			end := len(b)
			if j >= 0 {
				end = i + j
			}
			if k, err := s.badMethodByte(b[i:end]); err != nil {
				return i + k, err
			}
		}
		if j < 0 {
			rest := b[i:]
			if s.seen+s.lineLen()+len(rest) > limit {
				return i + max(limit-s.seen-s.lineLen(), 0), tooLarge
			}
			if s.line == nil {
				s.line = lineBufs.Get().(*[]byte)
			}
			*s.line = append(*s.line, rest...)
			return len(b), nil
		}
		if room := limit - s.seen - s.lineLen(); j+1 > room {
			return i + min(j, max(room, 0)), tooLarge
		}
		raw := b[i : i+j]
		if s.line != nil {
			*s.line = append(*s.line, raw...)
			raw = *s.line
		}
		s.seen += len(raw) + 1
		err := handle(raw)
		s.releaseLine()
		if err != nil {
			return i + j, err
		}
		i += j + 1
	}
	return i, nil
}

// badMethodByte checks rest, the next bytes of a request line that has not
// ended yet, and returns the offset of the first byte that cannot belong to
// it with the rule it breaks, or -1: a method byte that is not a tchar, or
// a byte after a CR that begins the line (an empty line is CRLF only).
func (s *RequestScanner) badMethodByte(rest []byte) (int, error) {
	done := s.lineLen() // bytes of the line kept from earlier calls
	var first byte
	if done > 0 {
		first = (*s.line)[0]
		if first != '\r' && bytes.IndexByte(*s.line, ' ') >= 0 {
			return -1, nil // the method is complete
		}
	}
	for k, c := range rest {
		pos := done + k
		switch {
		case pos == 0:
			first = c
			if c == '\r' {
				continue // an empty line, if LF follows
			}
		case first == '\r':
			return k, ErrBareCR // LF would have ended the line
		case c == ' ':
			return -1, nil
		}
		if !tchar[c] {
			return k, ErrMethod
		}
	}
	return -1, nil
}

func (s *RequestScanner) lineLen() int {
	if s.line == nil {
		return 0
	}
	return len(*s.line)
}

func (s *RequestScanner) releaseLine() {
	if s.line != nil {
		*s.line = (*s.line)[:0]
		lineBufs.Put(s.line)
		s.line = nil
	}
}

// headerLine checks one line of a header section.
func (s *RequestScanner) headerLine(raw []byte) error {
	line, err := crlfLine(raw)
	if err != nil {
		return err
	}
	h := &s.head
	if !h.started {
		if len(line) == 0 {
			return nil // an empty line before the request line (RFC 9112 section 2.2)
		}
		h.started = true
		return s.requestLine(line)
	}
	if len(line) == 0 {
		return s.endHeader()
	}
	if h.fields++; h.fields > MaxRequestFields {
		return ErrTooManyFields
	}
	f, err := splitField(line)
	if err != nil {
		return err
	}
	return s.field(f)
}

// requestLine checks method SP request-target SP HTTP-version.
func (s *RequestScanner) requestLine(line []byte) error {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return ErrRequestLine
	}
	method, rest := line[:sp], line[sp+1:]
	if !isToken(method) {
		return ErrMethod
	}
	sp = bytes.IndexByte(rest, ' ')
	if sp < 0 {
		return ErrRequestLine
	}
	target, version := rest[:sp], rest[sp+1:]
	if len(target) == 0 {
		return ErrRequestLine
	}
	switch string(version) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		s.head.HTTP10 = true
	default:
		if len(version) == 8 && string(version[:5]) == "HTTP/" && isDigit(version[5]) && version[6] == '.' && isDigit(version[7]) {
			return ErrVersionUnsupp
		}
		return ErrVersion
	}
	if string(method) == "CONNECT" {
		return ErrConnect
	}
	return s.requestTarget(method, target)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// requestTarget checks the form and the bytes of the request-target.
func (s *RequestScanner) requestTarget(method, t []byte) error {
	switch {
	case t[0] == '/':
	case len(t) == 1 && t[0] == '*':
		if string(method) != "OPTIONS" {
			return ErrTargetForm
		}
		return nil
	default:
		rest, ok := cutScheme(t)
		if !ok {
			return ErrTargetForm
		}
		end := bytes.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		if !validAuthority(rest[:end]) { // also refuses userinfo: '@' is not a host byte
			return ErrTargetForm
		}
		s.head.AbsoluteForm = true
	}
	for _, c := range t {
		if !targetChar[c] {
			return ErrTarget
		}
	}
	if !pctEncodingOK(t) {
		return ErrTarget
	}
	return nil
}

// cutScheme removes "http://" or "https://", in any case, from the front of
// t.
func cutScheme(t []byte) ([]byte, bool) {
	for _, scheme := range [...]string{"http://", "https://"} {
		if len(t) > len(scheme) && equalFold(t[:len(scheme)], scheme) {
			return t[len(scheme):], true
		}
	}
	return nil, false
}

// field records what a field line says about framing and routing, and
// rejects fields that could be read two ways.
func (s *RequestScanner) field(f Field) error {
	h := &s.head
	switch name := f.Name; {
	case equalFold(name, "content-length"):
		n, ok := parseDecimal(f.Value)
		if h.clSeen || !ok {
			return ErrContentLength
		}
		h.clSeen, h.ContentLength = true, n
	case equalFold(name, "transfer-encoding"):
		if h.teSeen {
			return ErrTransferCoding
		}
		h.teSeen = true
		if !equalFold(f.Value, "chunked") {
			if tokenList(f.Value, func([]byte) {}) && len(f.Value) > 0 {
				return ErrTECodingUnsupp
			}
			return ErrTransferCoding
		}
	case equalFold(name, "host"):
		if h.hostSeen || !validAuthority(f.Value) {
			return ErrHost
		}
		h.hostSeen = true
	case equalFold(name, "connection"):
		bad := false
		ok := tokenList(f.Value, func(tok []byte) {
			switch {
			case equalFold(tok, "content-length"), equalFold(tok, "transfer-encoding"), equalFold(tok, "host"):
				bad = true
			case equalFold(tok, "upgrade"):
				h.connUpgrade = true
			}
		})
		if !ok || bad {
			return ErrConnection
		}
	case equalFold(name, "upgrade"):
		h.upgradeField = true
	case disguisedFraming(name):
		return ErrDisguisedField
	}
	return nil
}

// endHeader decides the request's framing, in the one place it is decided.
func (s *RequestScanner) endHeader() error {
	h := &s.head
	if !h.HTTP10 && !h.hostSeen {
		return ErrHost
	}
	// RFC 9110 section 7.8: an Upgrade in HTTP/1.0 is ignored.
	h.Upgrade = h.connUpgrade && h.upgradeField && !h.HTTP10
	switch {
	case h.teSeen && h.HTTP10:
		return ErrTransferCoding
	case h.teSeen && h.clSeen:
		return ErrCLAndTE
	case h.teSeen:
		h.Framing = Chunked
		s.state, s.part = Body, partChunkLine
	case h.clSeen && h.ContentLength > 0:
		h.Framing = Length
		s.state, s.part, s.remaining = Body, partLength, h.ContentLength
	default:
		h.Framing = NoBody
		s.endRequest()
	}
	return nil
}

func (s *RequestScanner) endRequest() {
	s.state = Idle
	if s.head.Upgrade {
		s.state = Paused
	}
}

// body checks the body bytes at the start of b.
func (s *RequestScanner) body(b []byte) (int, error) {
	switch s.part {
	case partLength, partChunkData:
		take := int(min(int64(len(b)), s.remaining))
		if s.remaining -= int64(take); s.remaining == 0 {
			if s.part == partLength {
				s.endRequest()
			} else {
				s.part, s.crlf = partChunkCRLF, 0
			}
		}
		return take, nil
	case partChunkCRLF:
		i := 0
		for ; i < len(b) && s.crlf < 2; i++ {
			if b[i] != "\r\n"[s.crlf] {
				return i, ErrChunkData
			}
			s.crlf++
		}
		if s.crlf == 2 {
			s.part = partChunkLine
		}
		return i, nil
	case partChunkLine:
		s.seen = 0
		return s.lines(b, MaxChunkLineBytes, ErrChunkLineLong, s.chunkLine)
	default: // partTrailer
		return s.lines(b, MaxTrailerBytes, ErrTrailer, s.trailerLine)
	}
}

func (s *RequestScanner) chunkLine(raw []byte) error {
	line, err := crlfLine(raw)
	if err != nil {
		return err
	}
	size, err := ParseChunkLine(line)
	if err != nil {
		return err
	}
	if size == 0 {
		s.part, s.seen = partTrailer, 0
		return nil
	}
	s.part, s.remaining = partChunkData, size
	return nil
}

func (s *RequestScanner) trailerLine(raw []byte) error {
	line, err := crlfLine(raw)
	if err != nil {
		return err
	}
	if len(line) == 0 {
		s.endRequest()
		return nil
	}
	if !ValidFieldLine(line) {
		return ErrTrailer
	}
	return nil
}
