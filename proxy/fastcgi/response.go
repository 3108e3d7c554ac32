package fastcgi

import (
	"bytes"
	"errors"
	"io"
)

// maxMeasure bounds how much STDOUT ReadHeader reads past the limit to
// measure an oversized header section.
const maxMeasure = 1 << 20

// ResponseHeader is the header section of a CGI response (RFC 3875 6) as
// PHP-FPM writes it to STDOUT. Its zero value is ready to use; reuse it, so
// that Fields keeps its capacity. Its byte slices point into the buffer
// given to Parse or ReadHeader and are valid as long as that buffer is.
//
// The parser is strict, and what it accepts:
//   - Lines end in LF or CRLF, mixed as they come: RFC 3875 calls for NL,
//     which scripts write either way. A CR anywhere else is ErrHeaderValue.
//   - A name is an RFC 9110 token directly followed by ':'
//     (ErrHeaderName); a line starting with whitespace, obsolete folding,
//     is ErrHeaderFold; a value may not hold a control byte but HTAB: NUL, DEL
//     and the rest (ErrHeaderValue).
//     Whitespace around a value is trimmed.
//   - Status is three digits 200-599, optionally a space and a reason
//     (ErrStatus). 1xx is refused too: an interim status cannot be a
//     script's final answer, and passed on it would break the framing of
//     the response downstream.
//   - Without Status the status is 302 when Location is present (as PHP
//     and nginx do), else 200. A Location that is a local path
//     ("/login") is not re-run as a new request inside the server (RFC
//     3875 6.2.2 "local redirect"): like nginx's FastCGI module, upmedic
//     sends it to the client as a redirect, so one request runs one script.
//   - Content-Length is parsed into ContentLength (ErrResponseContentLength
//     when not one decimal number) and kept out of Fields: the FastCGI
//     stream frames the body, and the proxy decides how to frame it
//     downstream.
//   - Hop-by-hop fields (RFC 9110 7.6.1: Connection and the names it
//     lists, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
//     Upgrade) are dropped, not rejected: there is no HTTP hop between the
//     script and upmedic for them to describe, and PHP scripts that relay
//     another server's headers send them in good faith (a Transfer-Encoding:
//     chunked over a body that is not chunked). Passed on, they would make
//     the downstream framing lie.
type ResponseHeader struct {
	// Status is the response status.
	Status int
	// Reason is the Status line's reason phrase, empty when none was sent.
	Reason []byte
	// Location is the Location field's value, nil when none was sent. The
	// field is in Fields too.
	Location []byte
	// ContentLength is the script's Content-Length, -1 when none was sent.
	ContentLength int64
	// Fields are the fields to pass on, in order, repeated ones (Set-Cookie)
	// kept repeated; without Status, Content-Length and hop-by-hop fields.
	Fields []Field
	// Size is the header section's length in bytes, blank line included,
	// once parsed; after ErrHeaderTooLarge, the measured size, or 0 when it
	// could not be measured.
	Size int

	off        int      // where the next line starts
	statusSeen bool     // a Status field was parsed
	conn       [][]byte // values of Connection fields: names to drop
}

// Field is one response header field.
type Field struct {
	Name, Value []byte
}

// Reset empties h for the next response.
func (h *ResponseHeader) Reset() {
	*h = ResponseHeader{ContentLength: -1, Fields: h.Fields[:0], conn: h.conn[:0]}
}

// Parse parses the header section at the start of b, which holds STDOUT
// from its first byte. It returns the length of the header section, or
// ErrHeaderNeedMore when b holds no complete section yet: call Parse again
// with b extended (the same bytes and more); it resumes where it stopped. A
// malformed line is an error as soon as it is complete. Call Reset before
// parsing a new response.
func (h *ResponseHeader) Parse(b []byte) (int, error) {
	for {
		i := bytes.IndexByte(b[h.off:], '\n')
		if i < 0 {
			return 0, ErrHeaderNeedMore
		}
		line := b[h.off : h.off+i]
		h.off += i + 1
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			h.finish()
			return h.off, nil
		}
		if err := h.line(line); err != nil {
			return 0, err
		}
	}
}

// validValue reports whether v may be a field value (RFC 9110 section 5.5):
// no control byte but HTAB, DEL included, as proxy/h1 holds the fields
// upmedic passes on to.
func validValue(v []byte) bool {
	for _, c := range v {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func (h *ResponseHeader) line(line []byte) error {
	if line[0] == ' ' || line[0] == '\t' {
		return ErrHeaderFold
	}
	colon := 0
	for colon < len(line) && isTokenChar(line[colon]) {
		colon++
	}
	if colon == 0 || colon == len(line) || line[colon] != ':' {
		return ErrHeaderName
	}
	name, value := line[:colon], trimOWS(line[colon+1:])
	if !validValue(value) {
		return ErrHeaderValue
	}
	switch {
	case equalFold(name, "Status"):
		return h.status(value)
	case equalFold(name, "Content-Length"):
		return h.contentLength(value)
	case equalFold(name, "Connection"):
		h.conn = append(h.conn, value)
		return nil
	case isHopByHop(name):
		return nil
	case equalFold(name, "Location"):
		h.Location = value
	}
	h.Fields = append(h.Fields, Field{Name: name, Value: value})
	return nil
}

func (h *ResponseHeader) status(v []byte) error {
	if h.statusSeen || len(v) < 3 || v[0] < '2' || v[0] > '5' || !isDigit(v[1]) || !isDigit(v[2]) {
		return ErrStatus
	}
	if len(v) > 3 && v[3] != ' ' {
		return ErrStatus
	}
	h.statusSeen = true
	h.Status = int(v[0]-'0')*100 + int(v[1]-'0')*10 + int(v[2]-'0')
	if len(v) > 3 {
		h.Reason = trimOWS(v[4:])
	}
	return nil
}

func (h *ResponseHeader) contentLength(v []byte) error {
	if len(v) == 0 || len(v) > 18 {
		return ErrResponseContentLength
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return ErrResponseContentLength
		}
		n = n*10 + int64(c-'0')
	}
	if h.ContentLength >= 0 && h.ContentLength != n {
		return ErrResponseContentLength
	}
	h.ContentLength = n
	return nil
}

// finish applies the defaults and drops the fields Connection named.
func (h *ResponseHeader) finish() {
	h.Size = h.off
	if !h.statusSeen {
		h.Status = 200
		if h.Location != nil {
			h.Status = 302
		}
	}
	if len(h.conn) == 0 {
		return
	}
	kept := h.Fields[:0]
	for _, f := range h.Fields {
		if !h.connectionListed(f.Name) {
			kept = append(kept, f)
		}
	}
	clear(h.Fields[len(kept):])
	h.Fields = kept
	if h.Location != nil && h.connectionListed([]byte("Location")) {
		h.Location = nil
	}
}

// connectionListed reports whether a Connection field named name.
func (h *ResponseHeader) connectionListed(name []byte) bool {
	for _, v := range h.conn {
		for len(v) > 0 {
			var tok []byte
			if i := bytes.IndexByte(v, ','); i >= 0 {
				tok, v = v[:i], v[i+1:]
			} else {
				tok, v = v, nil
			}
			if tok = trimOWS(tok); len(tok) > 0 && bytes.EqualFold(tok, name) {
				return true
			}
		}
	}
	return false
}

// ReadHeader reads STDOUT from r into buf until h holds its whole header
// section, and returns the body bytes that arrived after it (a slice of
// buf). cap(buf) is the limit of the header section: when STDOUT fills it
// without ending the section, ReadHeader reads on (discarding, at most 1
// MiB) to measure the real size into h.Size and returns ErrHeaderTooLarge;
// h's slices are not valid then. STDOUT that ends inside the section is
// ErrHeaderIncomplete; errors of the record layer come from Read.
func (r *Reader) ReadHeader(h *ResponseHeader, buf []byte) (body []byte, err error) {
	h.Reset()
	b := buf[:0]
	for {
		if len(b) == cap(b) {
			h.Size = r.measure(b)
			return nil, ErrHeaderTooLarge
		}
		n, rerr := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if n > 0 {
			hn, perr := h.Parse(b)
			if perr == nil {
				return b[hn:], nil
			}
			if !errors.Is(perr, ErrHeaderNeedMore) {
				return nil, perr
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil, ErrHeaderIncomplete
		}
		if rerr != nil {
			return nil, rerr
		}
	}
}

// measure reads STDOUT on after the full buffer b, looking for the blank
// line that ends the header section, and returns its size: 0 when it is not
// found within maxMeasure bytes or the connection fails, the whole of
// STDOUT when STDOUT ends first.
func (r *Reader) measure(b []byte) int {
	// Line-start state: after '\n', atStart; after "\n\r", atStart and cr.
	atStart, cr := true, false
	end := func(chunk []byte) int {
		for i, c := range chunk {
			switch {
			case c == '\n' && atStart:
				return i + 1
			case c == '\n':
				atStart, cr = true, false
			case c == '\r' && atStart && !cr:
				cr = true
			default:
				atStart, cr = false, false
			}
		}
		return -1
	}
	end(b) // b has no blank line: this only sets the state at its end
	total := len(b)
	for total < maxMeasure {
		n, err := r.Read(b[:min(cap(b), maxMeasure-total)])
		if i := end(b[:n]); i >= 0 {
			return total + i
		}
		total += n
		if errors.Is(err, io.EOF) {
			return total
		}
		if err != nil {
			return 0
		}
	}
	return 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isHopByHop reports whether name is a hop-by-hop field (RFC 9110 7.6.1)
// or the framing field Transfer-Encoding. Connection is handled apart.
func isHopByHop(name []byte) bool {
	for _, s := range [...]string{"Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade"} {
		if equalFold(name, s) {
			return true
		}
	}
	return false
}
