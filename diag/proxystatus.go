package diag

// FilterProxyStatus appends to dst the members of value, a Proxy-Status
// field value (an RFC 9651 List; repeated field lines joined with ", "),
// except those whose bare item is name as a token or a string: the members
// another upstream proxy may have added stay, and none can speak for upmedic.
// Members are copied byte for byte and joined with ", ". ok is false, and
// dst unchanged, when value is not a valid List: then none of it can be
// trusted and the caller drops the field. It allocates nothing when dst has
// room.
func FilterProxyStatus(dst, value []byte, name string) (out []byte, ok bool) {
	start := len(dst)
	p := sfParser{b: value}
	p.skipSP()
	first := true
	for p.i < len(p.b) {
		mStart := p.i
		ours, ok := p.member(name)
		if !ok {
			return dst[:start], false
		}
		if !ours {
			if !first {
				dst = append(dst, ", "...)
			}
			dst = append(dst, p.b[mStart:p.i]...)
			first = false
		}
		p.skipOWS()
		if p.i == len(p.b) {
			break
		}
		if p.b[p.i] != ',' {
			return dst[:start], false
		}
		p.i++
		p.skipOWS()
		if p.i == len(p.b) { // a trailing comma
			return dst[:start], false
		}
	}
	return dst, true
}

// sfParser reads RFC 9651 structured-field syntax from b at i.
type sfParser struct {
	b []byte
	i int
}

func (p *sfParser) skipSP() {
	for p.i < len(p.b) && p.b[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t') {
		p.i++
	}
}

// member reads a list member (an item or an inner list, with parameters)
// and reports whether it is an item whose bare item is name.
func (p *sfParser) member(name string) (ours, ok bool) {
	if p.i < len(p.b) && p.b[p.i] == '(' {
		p.i++
		for {
			p.skipSP()
			if p.i == len(p.b) {
				return false, false
			}
			if p.b[p.i] == ')' {
				p.i++
				break
			}
			if _, ok := p.bareItem(); !ok || !p.params() {
				return false, false
			}
			if p.i < len(p.b) && p.b[p.i] != ' ' && p.b[p.i] != ')' {
				return false, false
			}
		}
		return false, p.params()
	}
	s := p.i
	kind, ok := p.bareItem()
	if !ok {
		return false, false
	}
	item := p.b[s:p.i]
	switch kind {
	case 't':
		ours = string(item) == name
	case 's':
		ours = len(item) == len(name)+2 && string(item[1:len(item)-1]) == name
	}
	return ours, p.params()
}

// params reads *( ";" *SP key [ "=" bare-item ] ).
func (p *sfParser) params() bool {
	for p.i < len(p.b) && p.b[p.i] == ';' {
		p.i++
		p.skipSP()
		if p.i == len(p.b) || !(isLCAlpha(p.b[p.i]) || p.b[p.i] == '*') {
			return false
		}
		for p.i < len(p.b) && isKeyChar(p.b[p.i]) {
			p.i++
		}
		if p.i < len(p.b) && p.b[p.i] == '=' {
			p.i++
			if _, ok := p.bareItem(); !ok {
				return false
			}
		}
	}
	return true
}

// bareItem reads one bare item and returns its kind: 'i' integer or
// decimal, 's' string, 't' token, 'b' byte sequence, '?' boolean, '@' date,
// '%' display string.
func (p *sfParser) bareItem() (byte, bool) {
	if p.i == len(p.b) {
		return 0, false
	}
	switch c := p.b[p.i]; {
	case c == '-' || isDigit(c):
		return 'i', p.number()
	case c == '"':
		p.i++
		return 's', p.stringBody(false)
	case c == '%':
		p.i++
		if p.i == len(p.b) || p.b[p.i] != '"' {
			return 0, false
		}
		p.i++
		return '%', p.stringBody(true)
	case c == '*' || isAlpha(c):
		p.i++
		for p.i < len(p.b) && (isTokenChar(p.b[p.i])) {
			p.i++
		}
		return 't', true
	case c == ':':
		p.i++
		for p.i < len(p.b) && isBase64(p.b[p.i]) {
			p.i++
		}
		if p.i == len(p.b) || p.b[p.i] != ':' {
			return 0, false
		}
		p.i++
		return 'b', true
	case c == '?':
		if p.i+1 < len(p.b) && (p.b[p.i+1] == '0' || p.b[p.i+1] == '1') {
			p.i += 2
			return '?', true
		}
		return 0, false
	case c == '@':
		p.i++
		return '@', p.i < len(p.b) && (p.b[p.i] == '-' || isDigit(p.b[p.i])) && p.number()
	}
	return 0, false
}

// number reads an sf-integer (up to 15 digits) or sf-decimal (up to 12
// digits, a dot, 1 to 3 digits).
func (p *sfParser) number() bool {
	if p.b[p.i] == '-' {
		p.i++
	}
	s := p.i
	for p.i < len(p.b) && isDigit(p.b[p.i]) {
		p.i++
	}
	whole := p.i - s
	if whole == 0 {
		return false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		f := p.i
		for p.i < len(p.b) && isDigit(p.b[p.i]) {
			p.i++
		}
		frac := p.i - f
		return whole <= 12 && frac >= 1 && frac <= 3
	}
	return whole <= 15
}

// stringBody reads the rest of a string after its opening quote; display
// strings allow %xx escapes in place of escaped quotes.
func (p *sfParser) stringBody(display bool) bool {
	for p.i < len(p.b) {
		c := p.b[p.i]
		p.i++
		switch {
		case c == '"':
			return true
		case c == '\\' && !display:
			if p.i == len(p.b) || (p.b[p.i] != '"' && p.b[p.i] != '\\') {
				return false
			}
			p.i++
		case c == '%' && display:
			if p.i+1 >= len(p.b) || !isLowerHex(p.b[p.i]) || !isLowerHex(p.b[p.i+1]) {
				return false
			}
			p.i += 2
		case c < 0x20 || c > 0x7e:
			return false
		}
	}
	return false
}

func isDigit(c byte) bool    { return '0' <= c && c <= '9' }
func isLCAlpha(c byte) bool  { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool    { return isLCAlpha(c) || 'A' <= c && c <= 'Z' }
func isLowerHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' }
func isKeyChar(c byte) bool {
	return isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*'
}
func isBase64(c byte) bool { return isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '=' }
