package h1

import "bytes"

// Field is one header field as it stood in the message: the slices point
// into the bytes that were parsed.
type Field struct {
	Name, Value []byte
}

// crlfLine checks that raw, a line up to but not including its LF, ends in
// CR and holds no other CR, and returns it without the CR.
func crlfLine(raw []byte) ([]byte, error) {
	if len(raw) == 0 || raw[len(raw)-1] != '\r' {
		return nil, ErrBareLF
	}
	line := raw[:len(raw)-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, ErrBareCR
	}
	return line, nil
}

// splitField splits a field line (RFC 9112 section 5: field-name ":" OWS
// field-value OWS), without its CRLF, and checks both parts.
func splitField(line []byte) (Field, error) {
	if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		return Field{}, ErrObsFold
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 || !isToken(line[:colon]) {
		return Field{}, ErrFieldName
	}
	v := trimOWS(line[colon+1:])
	if !fieldValueOK(v) {
		return Field{}, ErrFieldValue
	}
	return Field{Name: line[:colon], Value: v}, nil
}

// ValidFieldLine reports whether line, without its CRLF, is a well-formed
// field line (a trailer field, say) that names no framing field.
func ValidFieldLine(line []byte) bool {
	f, err := splitField(line)
	if err != nil {
		return false
	}
	for _, name := range framingFields {
		if equalFold(f.Name, name) || disguises(f.Name, name) {
			return false
		}
	}
	return true
}

// framingFields are the fields whose names a message may not disguise by
// writing '_' for '-': a peer that folds the two would frame or route the
// message differently.
var framingFields = [...]string{"content-length", "transfer-encoding", "host", "connection", "upgrade", "te", "trailer", "keep-alive", "proxy-connection"}

func disguisedFraming(name []byte) bool {
	if bytes.IndexByte(name, '_') < 0 {
		return false
	}
	for _, f := range framingFields {
		if disguises(name, f) {
			return true
		}
	}
	return false
}

// validAuthority reports whether b is uri-host [ ":" port ] (RFC 3986
// section 3.2.2) without userinfo and without pct-encoding: reg-name or
// IPv4 characters, or an IP-literal in brackets, and a port of at most five
// digits.
func validAuthority(b []byte) bool {
	host := b
	if len(b) > 0 && b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 2 {
			return false
		}
		for _, c := range b[1:end] {
			if !(hexVal[c] >= 0 || c == ':' || c == '.') {
				return false
			}
		}
		host, b = b[:end+1], b[end+1:]
		if len(b) > 0 && b[0] != ':' {
			return false
		}
	} else if i := bytes.LastIndexByte(b, ':'); i >= 0 {
		host, b = b[:i], b[i:]
	} else {
		b = nil
	}
	if len(host) == 0 {
		return false
	}
	if host[0] != '[' {
		// reg-name without pct-encoding: a host spelled %2e or %00 reads
		// differently to every resolver and router behind.
		for _, c := range host {
			if !regNameChar[c] || c == '[' || c == ']' || c == ':' || c == '%' {
				return false
			}
		}
	}
	if len(b) > 0 { // ":" port
		port := b[1:]
		if len(port) > 5 {
			return false
		}
		for _, c := range port {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// pctEncodingOK reports whether every '%' in b starts a %XX escape.
func pctEncodingOK(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] == '%' {
			if i+2 >= len(b) || hexVal[b[i+1]] < 0 || hexVal[b[i+2]] < 0 {
				return false
			}
			i += 2
		}
	}
	return true
}
