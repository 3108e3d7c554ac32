package h1

import (
	"bytes"
	"errors"
)

// ErrIncomplete is returned by Response.Parse while the header section has
// not arrived whole: read more and parse again.
var ErrIncomplete = errors.New("h1: header section incomplete")

// statusPrefix is how every status line h1 accepts begins.
const statusPrefix = "HTTP/1."

// Response is an upstream response's header section. Its zero value is
// ready; Parse fills it, reusing Fields. The slices point into the bytes
// parsed and are valid as long as those are.
type Response struct {
	HTTP11 bool
	Status int
	Reason []byte
	// Fields are the header fields in order, repeated ones repeated.
	Fields []Field
	// Framing is how the body is delimited; NoBody for 1xx, 204, 304 and
	// answers to HEAD.
	Framing       Framing
	ContentLength int64 // with Framing Length; as announced otherwise
	// HasContentLength reports whether a Content-Length field was sent.
	HasContentLength bool
	// KeepAlive reports whether the connection can carry another exchange
	// once this response is complete: HTTP/1.1, no Connection: close, a body
	// that is not delimited by the close.
	KeepAlive bool
	// KeepAliveTimeout is the N of a Keep-Alive: timeout=N field, in
	// seconds; 0 when there is none.
	KeepAliveTimeout int
	// BodyAnnounced reports whether a response that has no body (NoBody)
	// announced one anyway: a positive Content-Length, or Transfer-Encoding.
	BodyAnnounced bool
}

// Parse parses the response header section at the start of b, the answer to
// a HEAD request when head is set. It returns the section's length in bytes,
// ErrIncomplete when b does not hold all of it yet, or an *Error as soon as
// the bytes in b break a rule, even before the section is complete: a
// status line that cannot become HTTP/1.x is refused at its first bytes.
//
// It accepts only what RFC 9112 reads one way: CRLF line endings, a
// three-digit status from 100 to 599, token field names with the colon
// right after them, field values without control characters, no obs-fold,
// one Content-Length of digits or one Transfer-Encoding: chunked (never
// both, never in HTTP/1.0).
func (r *Response) Parse(b []byte, head bool) (int, error) {
	fields := r.Fields[:0]
	*r = Response{Fields: fields}
	if n := min(len(b), len(statusPrefix)); string(b[:n]) != statusPrefix[:n] {
		return 0, ErrStatusLine
	}
	var clSeen, teSeen, connClose bool
	i := 0
	for first := true; ; first = false {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			// Refuse a bare CR or a control byte in the partial line now,
			// rather than when a line end that may never come arrives.
			if bytes.IndexByte(b[i:max(len(b)-1, i)], '\r') >= 0 {
				return 0, ErrBareCR
			}
			return 0, ErrIncomplete
		}
		line, err := crlfLine(b[i : i+j])
		if err != nil {
			return 0, err
		}
		i += j + 1
		if first {
			if err := r.statusLine(line); err != nil {
				return 0, err
			}
			continue
		}
		if len(line) == 0 {
			break
		}
		f, err := splitField(line)
		if err != nil {
			return 0, err
		}
		r.Fields = append(r.Fields, f)
		switch name := f.Name; {
		case equalFold(name, "content-length"):
			n, ok := parseDecimal(f.Value)
			if clSeen || !ok {
				return 0, ErrContentLength
			}
			clSeen, r.ContentLength = true, n
		case equalFold(name, "transfer-encoding"):
			if teSeen {
				return 0, ErrTransferCoding
			}
			teSeen = true
			if !equalFold(f.Value, "chunked") {
				return 0, ErrTECodingUnsupp
			}
		case equalFold(name, "connection"):
			bad := false
			ok := tokenList(f.Value, func(tok []byte) {
				switch {
				case equalFold(tok, "close"):
					connClose = true
				case equalFold(tok, "content-length"), equalFold(tok, "transfer-encoding"), equalFold(tok, "host"):
					bad = true
				}
			})
			if !ok || bad {
				return 0, ErrConnection
			}
		case equalFold(name, "keep-alive"):
			r.KeepAliveTimeout = keepAliveTimeout(f.Value)
		case disguisedFraming(name):
			return 0, ErrDisguisedField
		}
	}
	switch {
	case teSeen && !r.HTTP11:
		return 0, ErrTransferCoding
	case teSeen && clSeen:
		return 0, ErrCLAndTE
	case r.Status < 200 && teSeen:
		// An interim response has no body (RFC 9110 section 15.2): framing
		// on one says the sender frames something upmedic cannot see.
		return 0, ErrTransferCoding
	case r.Status < 200 && clSeen:
		return 0, ErrContentLength
	}
	switch {
	case head || r.Status < 200 || r.Status == 204 || r.Status == 304:
		r.Framing = NoBody
		r.BodyAnnounced = teSeen || r.ContentLength > 0 && r.Status != 304
	case teSeen:
		r.Framing = Chunked
	case clSeen:
		r.Framing = Length
	default:
		r.Framing = Close
	}
	r.HasContentLength = clSeen
	r.KeepAlive = r.HTTP11 && !connClose && r.Framing != Close
	return i, nil
}

// statusLine checks HTTP-version SP 3DIGIT [ SP reason-phrase ]. The space
// before an empty reason may be missing, as nginx and HAProxy also accept.
func (r *Response) statusLine(line []byte) error {
	if len(line) < 12 || line[8] != ' ' {
		return ErrStatusLine
	}
	switch string(line[:8]) {
	case "HTTP/1.1":
		r.HTTP11 = true
	case "HTTP/1.0":
	default:
		return ErrStatusLine
	}
	code := line[9:12]
	if !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) {
		return ErrStatusCode
	}
	r.Status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if r.Status < 100 || r.Status > 599 {
		return ErrStatusCode
	}
	rest := line[12:]
	if len(rest) == 0 {
		return nil
	}
	if rest[0] != ' ' {
		return ErrStatusCode // a fourth digit, or junk after the code
	}
	r.Reason = rest[1:]
	if !fieldValueOK(r.Reason) {
		return ErrReasonPhrase
	}
	return nil
}

// keepAliveTimeout returns the timeout parameter of a Keep-Alive field
// value ("timeout=5, max=1000"), or 0.
func keepAliveTimeout(v []byte) int {
	timeout := 0
	listElems(v, func(elem []byte) {
		if len(elem) > 8 && equalFold(elem[:8], "timeout=") {
			if n, ok := parseDecimal(elem[8:]); ok && n < 1<<20 && timeout == 0 {
				timeout = int(n)
			}
		}
	})
	return timeout
}
