package fastcgi

import (
	"bufio"
	"strconv"
)

// Values is an application's answer to FCGI_GET_VALUES (spec 4.1). A field
// the application did not answer is -1.
type Values struct {
	// MaxConns is FCGI_MAX_CONNS, the most concurrent connections it
	// accepts. PHP-FPM does not answer it.
	MaxConns int
	// MaxReqs is FCGI_MAX_REQS, the most concurrent requests. PHP-FPM does
	// not answer it.
	MaxReqs int
	// MpxsConns is FCGI_MPXS_CONNS: 1 when it multiplexes requests on one
	// connection, 0 when not (PHP-FPM).
	MpxsConns int
}

// AppendGetValues appends an FCGI_GET_VALUES record asking for
// FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS to dst. It is a
// management record (request id 0): the application answers it without
// running a script. PHP-FPM answers it from a worker and then keeps the
// connection, and the worker, for a request: close it after ReadValues.
func AppendGetValues(dst []byte) []byte {
	start := len(dst)
	dst = Header{Version: Version1, Type: TypeGetValues}.AppendTo(dst)
	dst = AppendPair(dst, MaxConns, "")
	dst = AppendPair(dst, MaxReqs, "")
	dst = AppendPair(dst, MpxsConns, "")
	n := len(dst) - start - HeaderLen
	pad := padding(n)
	dst[start+4], dst[start+5], dst[start+6] = byte(n>>8), byte(n), pad
	return append(dst, make([]byte, pad)...)
}

// ReadValues reads the answer to FCGI_GET_VALUES from br: one
// FCGI_GET_VALUES_RESULT record with request id 0, or ErrValuesResult.
func ReadValues(br *bufio.Reader) (Values, error) {
	b, err := br.Peek(HeaderLen)
	if err != nil {
		return Values{}, closed(err, len(b) > 0)
	}
	h, err := ParseHeader(b)
	if err != nil {
		return Values{}, err
	}
	if h.Type != TypeGetValuesResult || h.RequestID != NullRequestID {
		return Values{}, ErrValuesResult
	}
	_, _ = br.Discard(HeaderLen)
	n := int(h.ContentLength) + int(h.PaddingLength)
	if n > br.Size() {
		return Values{}, ErrValuesResult
	}
	c, err := br.Peek(n)
	if err != nil {
		return Values{}, closed(err, true)
	}
	v, err := ParseValues(c[:h.ContentLength])
	_, _ = br.Discard(n)
	return v, err
}

// ParseValues decodes the content of FCGI_GET_VALUES_RESULT. Unknown names
// are ignored; a value that is not a decimal number is ErrValuesResult.
func ParseValues(content []byte) (Values, error) {
	v := Values{MaxConns: -1, MaxReqs: -1, MpxsConns: -1}
	for len(content) > 0 {
		name, value, rest, err := NextPair(content)
		if err != nil {
			return v, err
		}
		content = rest
		var dst *int
		switch string(name) {
		case MaxConns:
			dst = &v.MaxConns
		case MaxReqs:
			dst = &v.MaxReqs
		case MpxsConns:
			dst = &v.MpxsConns
		default:
			continue
		}
		n, err := strconv.Atoi(string(value))
		if err != nil || n < 0 {
			return v, ErrValuesResult
		}
		*dst = n
	}
	return v, nil
}
