package fastcgi

import "strconv"

// Name-value pairs (spec 3.4): each length in one byte when below 128, else
// in four bytes with the high bit set; then the name; then the value.

// AppendPair appends one name-value pair to dst.
func AppendPair[N, V ~string | ~[]byte](dst []byte, name N, value V) []byte {
	dst = appendPairLen(dst, len(name))
	dst = appendPairLen(dst, len(value))
	dst = append(dst, name...)
	return append(dst, value...)
}

func appendPairLen(dst []byte, n int) []byte {
	if n < 128 {
		return append(dst, byte(n))
	}
	return append(dst, byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n))
}

// appendPairInt appends a pair whose value is n in decimal.
func appendPairInt(dst []byte, name string, n int64) []byte {
	var digits [20]byte
	return AppendPair(dst, name, strconv.AppendInt(digits[:0], n, 10))
}

// NextPair decodes the name-value pair at the start of b and returns it and
// the bytes after it. It returns ErrPairLength when the lengths run past the
// end of b; name and value are slices of b.
func NextPair(b []byte) (name, value, rest []byte, err error) {
	nl, b, ok := pairLen(b)
	if !ok {
		return nil, nil, nil, ErrPairLength
	}
	vl, b, ok := pairLen(b)
	if !ok || nl > len(b) || vl > len(b)-nl {
		return nil, nil, nil, ErrPairLength
	}
	return b[:nl:nl], b[nl : nl+vl : nl+vl], b[nl+vl:], nil
}

func pairLen(b []byte) (int, []byte, bool) {
	if len(b) == 0 {
		return 0, nil, false
	}
	if b[0] < 0x80 {
		return int(b[0]), b[1:], true
	}
	if len(b) < 4 {
		return 0, nil, false
	}
	n := int(b[0]&0x7f)<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	return n, b[4:], true
}
