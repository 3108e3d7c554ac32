package h1

// maxChunkSizeDigits is the most hex digits a chunk size may have, leading
// zeros included: fifteen, so that no reader on either side (fasthttp's
// stops there) can read the size differently or overflow.
const maxChunkSizeDigits = 15

// ParseChunkLine parses a chunk-size line, without its CRLF (RFC 9112
// section 7.1):
//
//	chunk-size [ chunk-ext ]
//	chunk-ext = *( ";" chunk-ext-name [ "=" chunk-ext-val ] )
//	chunk-ext-val = token / quoted-string
//
// and returns the size. It is stricter than the RFC in one point: it accepts
// no whitespace (BWS) around the ";" and "=" of extensions, as fasthttp does
// not either, so the front server never reads a line this accepts otherwise.
func ParseChunkLine(line []byte) (int64, error) {
	i := 0
	var size int64
	for i < len(line) && hexVal[line[i]] >= 0 {
		if i == maxChunkSizeDigits {
			return 0, ErrChunkLine
		}
		size = size<<4 | int64(hexVal[line[i]])
		i++
	}
	if i == 0 {
		return 0, ErrChunkLine
	}
	for i < len(line) {
		if line[i] != ';' {
			return 0, ErrChunkLine
		}
		i++
		start := i
		for i < len(line) && tchar[line[i]] {
			i++
		}
		if i == start {
			return 0, ErrChunkLine
		}
		if i == len(line) || line[i] != '=' {
			continue
		}
		i++
		if i < len(line) && line[i] == '"' {
			n, ok := quotedString(line[i:])
			if !ok {
				return 0, ErrChunkLine
			}
			i += n
			continue
		}
		start = i
		for i < len(line) && tchar[line[i]] {
			i++
		}
		if i == start {
			return 0, ErrChunkLine
		}
	}
	return size, nil
}

// quotedString returns the length of the quoted-string (RFC 9110 section
// 5.6.4) at the start of b, which starts with '"'.
func quotedString(b []byte) (int, bool) {
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			i++
			if i == len(b) || !(fieldVChar[b[i]] || b[i] == ' ' || b[i] == '\t') {
				return 0, false
			}
		case !(fieldVChar[c] || c == ' ' || c == '\t'):
			return 0, false
		}
	}
	return 0, false
}
