package fastcgi

import "bytes"

// Protocol is what the first bytes an upstream sent look like. The zero
// Protocol is ProtocolUnknown.
type Protocol uint8

// The protocols Sniff tells apart.
const (
	// ProtocolUnknown: neither, or too few bytes to say.
	ProtocolUnknown Protocol = iota
	// ProtocolFastCGI: a version-1 record header of a type an application
	// sends (STDOUT, STDERR, END_REQUEST, GET_VALUES_RESULT, UNKNOWN_TYPE).
	ProtocolFastCGI
	// ProtocolHTTP: an HTTP/1.x status line, such as nginx's or Node's
	// "HTTP/1.1 400 Bad Request" to FastCGI bytes.
	ProtocolHTTP
)

var protocolNames = [...]string{"unknown", "FastCGI", "HTTP"}

// String returns "FastCGI", "HTTP" or "unknown".
func (p Protocol) String() string {
	if int(p) < len(protocolNames) {
		return protocolNames[p]
	}
	return "unknown"
}

// Sniff says which protocol b, the first bytes an upstream sent, belongs to:
// for the hint "the address speaks HTTP, not FastCGI" (a Reader's
// ErrVersion leaves them to Peek at) and the reverse. What real servers do
// with the wrong protocol, measured: nginx 1.22 and Node answer FastCGI
// bytes with "HTTP/1.1 400 Bad Request" at once; gunicorn waits for a CRLF
// that never comes and closes the connection, silent, when its worker
// timeout kills the worker; PHP-FPM resets an HTTP request's connection at
// once without a byte. The last two cannot be sniffed: they send nothing.
func Sniff(b []byte) Protocol {
	if bytes.HasPrefix(b, []byte("HTTP/1.")) || bytes.HasPrefix(b, []byte("HTTP/2")) {
		return ProtocolHTTP
	}
	if len(b) < HeaderLen || b[0] != Version1 {
		return ProtocolUnknown
	}
	switch RecordType(b[1]) {
	case TypeStdout, TypeStderr, TypeEndRequest, TypeGetValuesResult, TypeUnknownType:
		return ProtocolFastCGI
	}
	return ProtocolUnknown
}
