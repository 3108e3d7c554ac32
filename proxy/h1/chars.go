package h1

import "bytes"

// Character classes of RFC 9110 section 5.6 and RFC 3986, as tables.
var (
	tchar       [256]bool // token characters
	fieldVChar  [256]bool // VCHAR and obs-text: a field value's visible bytes
	targetChar  [256]bool // bytes a request-target may hold as they are
	regNameChar [256]bool // bytes an authority's host may hold (reg-name, IP-literal)
	hexVal      [256]int8 // the value of a hex digit, -1 for anything else
)

func init() {
	for c := 0; c < 256; c++ {
		hexVal[c] = -1
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		tchar[c] = alnum || c < 128 && contains("!#$%&'*+-.^_`|~", byte(c))
		fieldVChar[c] = 0x21 <= c && c <= 0x7e || c >= 0x80
		// RFC 3986 unreserved, sub-delims, ":", "@", "/", "?" and "%" (checked
		// apart), and the bytes browsers send raw in a query although RFC
		// 3986 excludes them: { } | ^ ` \. Not " < > (browsers always
		// encode them), "#" (a fragment is never sent), controls, space,
		// DEL or anything outside ASCII (whose charset nobody can know).
		targetChar[c] = alnum || c < 128 && contains("-._~!$&'()*+,;=:@/?%{}|^`\\", byte(c))
		regNameChar[c] = alnum || c < 128 && contains("-._~!$&'()*+,;=%[]:", byte(c))
	}
	for c := '0'; c <= '9'; c++ {
		hexVal[c] = int8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		hexVal[c] = int8(c - 'a' + 10)
		hexVal[c-'a'+'A'] = int8(c - 'a' + 10)
	}
}

func contains(set string, c byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}

// isToken reports whether b is a non-empty token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// trimOWS removes optional whitespace (SP and HTAB) from both ends of b.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// the case of b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// disguises reports whether the field name b, read with '_' as '-', is the
// lower-case name s while not being it: Transfer_Encoding for
// transfer-encoding.
func disguises(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	under := false
	for i := range len(b) {
		c := b[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			under, c = true, '-'
		}
		if c != s[i] {
			return false
		}
	}
	return under
}

// fieldValueOK reports whether v (already trimmed of OWS) holds only visible
// bytes, obs-text, SP and HTAB.
func fieldValueOK(v []byte) bool {
	for _, c := range v {
		if !fieldVChar[c] && c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

// parseDecimal parses 1*DIGIT of at most 18 digits (so it cannot overflow).
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// tokenList calls fn for each element of a comma-separated list of tokens
// (RFC 9110 section 5.6.1), skipping empty elements, and reports whether
// every element was a token.
func tokenList(v []byte, fn func(tok []byte)) bool {
	ok := true
	listElems(v, func(elem []byte) {
		if !isToken(elem) {
			ok = false
			return
		}
		fn(elem)
	})
	return ok
}

// listElems calls fn for each non-empty element of a comma-separated list,
// without its surrounding whitespace.
func listElems(v []byte, fn func(elem []byte)) {
	for len(v) > 0 {
		elem := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			elem, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if elem = trimOWS(elem); len(elem) > 0 {
			fn(elem)
		}
	}
}
