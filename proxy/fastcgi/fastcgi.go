// Package fastcgi is upmedic's FastCGI client codec: the records of the
// FastCGI 1.0 protocol as a web server speaks them to a responder such as
// PHP-FPM, the CGI/1.1 parameters of a request, the resolution of a request
// path to a script under the document root, and the parsing of what the
// application answers (the CGI response on STDOUT, its STDERR lines,
// FCGI_GET_VALUES results, PHP-FPM's status page).
//
// It imports only the standard library and holds no connections, pools or
// timers: the proxy dials, sets deadlines and owns the buffers; this package
// turns bytes into records and records into bytes. Nothing in it allocates
// per request once its caller-owned buffers have grown to their working size.
//
// The protocol is the FastCGI Specification 1.0 (Open Market, 1996); section
// numbers in comments refer to it ("spec 3.3") or to RFC 3875 (CGI/1.1).
//
// # PHP-FPM on the wire
//
// What php-fpm 8.2 does, as the tests against a real one (phpfpm_test.go)
// pin it; a proxy that speaks FastCGI to it must allow for each:
//   - It answers STDERR first, then STDOUT, then FCGI_END_REQUEST, and sends
//     no empty STDOUT record to end the stream: the end of a response is
//     FCGI_END_REQUEST alone.
//   - It parses each FCGI_PARAMS record on its own: a name-value pair may
//     not span two records.
//   - Without CONTENT_LENGTH it reads no body: the script sees none, the
//     STDIN records stay on the connection, and PHP-FPM resets the
//     connection when they arrive in place of the next request.
//   - With FCGI_KEEP_CONN one connection is one worker: the worker that
//     accepted it serves every request on it, and waits on it between
//     requests. That wait counts against request_terminate_timeout, so an
//     idle kept connection is closed (FIN) when that timer kills its
//     worker; and every idle kept connection is a worker no other
//     connection can have. A pool of kept connections must stay below
//     pm.max_children and close idle ones before request_terminate_timeout.
//   - A worker killed mid-request (request_terminate_timeout, a crash)
//     leaves the connection with our final empty STDIN record unread, so
//     the kernel resets it: ECONNRESET, with no FCGI_END_REQUEST, after
//     whatever the script had flushed.
//   - FCGI_GET_VALUES is answered by a worker, with FCGI_MPXS_CONNS=0 only
//     (no FCGI_MAX_CONNS or FCGI_MAX_REQS), and the connection is then kept
//     for a request: a probe must close it, or it holds a worker.
//   - Its status page (pm.status_path) is served by a worker of the pool, so
//     it waits in the same queue when every worker is busy; pm.status_listen
//     answers it from a socket of its own. The listen queue is reported for
//     a TCP listen socket only (0 on a unix socket), updated about once a
//     second. "active processes" and "total processes" count a request on a
//     kept connection as a process that stays active, past
//     pm.max_children: with FCGI_KEEP_CONN they cannot be believed.
//   - Sent HTTP, it resets the connection without a byte.
package fastcgi

import (
	"encoding/binary"
	"errors"
	"io"
)

// The protocol's constants (spec 8).
const (
	// HeaderLen is the length of a record header.
	HeaderLen = 8
	// Version1 is the only protocol version.
	Version1 = 1
	// MaxContentLength is the largest content a record can carry.
	MaxContentLength = 65535
	// NullRequestID is the request id of management records
	// (FCGI_GET_VALUES and its result, FCGI_UNKNOWN_TYPE).
	NullRequestID = 0

	// FlagKeepConn in FCGI_BEGIN_REQUEST asks the application to keep the
	// connection open after the request.
	FlagKeepConn = 1

	// RoleResponder is the role upmedic asks for: a CGI/1.1 responder.
	RoleResponder = 1
	// RoleAuthorizer and RoleFilter are the other roles, never used.
	RoleAuthorizer = 2
	RoleFilter     = 3

	// TypeBeginRequest and the rest are the record types.
	TypeBeginRequest    RecordType = 1
	TypeAbortRequest    RecordType = 2
	TypeEndRequest      RecordType = 3
	TypeParams          RecordType = 4
	TypeStdin           RecordType = 5
	TypeStdout          RecordType = 6
	TypeStderr          RecordType = 7
	TypeData            RecordType = 8
	TypeGetValues       RecordType = 9
	TypeGetValuesResult RecordType = 10
	TypeUnknownType     RecordType = 11

	// RequestComplete and the rest are FCGI_END_REQUEST's protocolStatus.
	RequestComplete ProtocolStatus = 0
	CantMpxConn     ProtocolStatus = 1
	Overloaded      ProtocolStatus = 2
	UnknownRole     ProtocolStatus = 3

	// MaxConns, MaxReqs and MpxsConns are the management variables that
	// FCGI_GET_VALUES asks for (spec 4.1).
	MaxConns  = "FCGI_MAX_CONNS"
	MaxReqs   = "FCGI_MAX_REQS"
	MpxsConns = "FCGI_MPXS_CONNS"
)

// RecordType is the type of a record (spec 8). The zero RecordType is none.
type RecordType uint8

var typeNames = [...]string{
	TypeBeginRequest:    "FCGI_BEGIN_REQUEST",
	TypeAbortRequest:    "FCGI_ABORT_REQUEST",
	TypeEndRequest:      "FCGI_END_REQUEST",
	TypeParams:          "FCGI_PARAMS",
	TypeStdin:           "FCGI_STDIN",
	TypeStdout:          "FCGI_STDOUT",
	TypeStderr:          "FCGI_STDERR",
	TypeData:            "FCGI_DATA",
	TypeGetValues:       "FCGI_GET_VALUES",
	TypeGetValuesResult: "FCGI_GET_VALUES_RESULT",
	TypeUnknownType:     "FCGI_UNKNOWN_TYPE",
}

// String returns the spec's name of t ("FCGI_STDOUT"), or "unknown".
func (t RecordType) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "unknown"
}

// ProtocolStatus is FCGI_END_REQUEST's protocolStatus (spec 5.5). The zero
// ProtocolStatus is RequestComplete.
type ProtocolStatus uint8

// Sentinels. Each names the rule of the protocol, CGI or upmedic's safety
// policy that the bytes broke. The record and response errors mean the
// upstream did not speak FastCGI or CGI as it must (a 502 protocol error,
// and the connection must be closed); the path errors mean the request may
// not run anything (answer 400, or 404 for ErrNoScript, without connecting).
var (
	// ErrVersion is returned when a record header's version byte is not 1:
	// the upstream does not speak FastCGI (see Sniff). The Reader consumes
	// nothing of such a header, so the caller can Peek at the bytes.
	ErrVersion error = &protocolError{"fastcgi: record version is not 1"}
	// ErrUnknownType is returned for a record type the specification does
	// not define (0, or above 11).
	ErrUnknownType error = &protocolError{"fastcgi: record type is not defined by the specification"}
	// ErrUnexpectedType is returned for a record type an application must
	// not send to a web server at that point (FCGI_PARAMS, FCGI_STDIN, ...
	// or a management record in the middle of a request).
	ErrUnexpectedType error = &protocolError{"fastcgi: record type is not one an application sends here"}
	// ErrRequestID is returned when a record carries another request id
	// than the request in progress.
	ErrRequestID error = &protocolError{"fastcgi: record is for another request id"}
	// ErrEndRequestLength is returned when FCGI_END_REQUEST's content is not
	// the 8 bytes the specification gives it.
	ErrEndRequestLength error = &protocolError{"fastcgi: FCGI_END_REQUEST content is not 8 bytes"}
	// ErrStdoutAfterEnd is returned when STDOUT content follows the empty
	// STDOUT record that ended the stream.
	ErrStdoutAfterEnd error = &protocolError{"fastcgi: STDOUT content after the end of the stream"}
	// ErrCantMpxConn, ErrOverloaded and ErrUnknownRole are FCGI_END_REQUEST
	// with the protocolStatus of that name: the application rejected the
	// request without running it.
	ErrCantMpxConn error = &protocolError{"fastcgi: application cannot multiplex connections (FCGI_CANT_MPX_CONN)"}
	ErrOverloaded  error = &protocolError{"fastcgi: application is overloaded (FCGI_OVERLOADED)"}
	ErrUnknownRole error = &protocolError{"fastcgi: application does not know the responder role (FCGI_UNKNOWN_ROLE)"}
	// ErrProtocolStatus is returned for an FCGI_END_REQUEST protocolStatus
	// the specification does not define.
	ErrProtocolStatus error = &protocolError{"fastcgi: FCGI_END_REQUEST protocolStatus is not defined by the specification"}
	// ErrNoEndRequest is returned when the connection ends or is reset at a
	// record boundary before FCGI_END_REQUEST: the worker died (PHP-FPM's
	// request_terminate_timeout, a crash, the OOM killer) or closed the
	// connection. errors.Is(err, io.ErrUnexpectedEOF) holds for it; after a
	// reset, errors.Is(err, syscall.ECONNRESET) too.
	ErrNoEndRequest error = &closeError{"fastcgi: connection closed before FCGI_END_REQUEST"}
	// ErrTruncatedRecord is returned when the connection ends or is reset
	// inside a record. errors.Is(err, io.ErrUnexpectedEOF) holds for it;
	// after a reset, errors.Is(err, syscall.ECONNRESET) too.
	ErrTruncatedRecord error = &closeError{"fastcgi: connection closed inside a record"}
	// ErrPairLength is returned when a name-value pair's lengths run past
	// the end of its content.
	ErrPairLength = errors.New("fastcgi: name-value pair longer than its content")
	// ErrPairTooLarge is returned when one name-value pair does not fit in
	// one record (65535 bytes): PHP-FPM parses each FCGI_PARAMS record on
	// its own, so a pair may not span records.
	ErrPairTooLarge = errors.New("fastcgi: name-value pair does not fit in one record")
	// ErrContentLength is returned by Params.Build for a negative
	// ContentLength: PHP-FPM needs CONTENT_LENGTH to read a body, so a body
	// of unknown length must be received whole first.
	ErrContentLength = errors.New("fastcgi: request body length unknown")
	// ErrValuesResult is returned when an application answers
	// FCGI_GET_VALUES with anything but one FCGI_GET_VALUES_RESULT.
	ErrValuesResult = errors.New("fastcgi: answer to FCGI_GET_VALUES is not FCGI_GET_VALUES_RESULT")

	// ErrHeaderNeedMore is returned by ResponseHeader.Parse when the header
	// section has not ended yet: parse again with more STDOUT.
	ErrHeaderNeedMore = errors.New("fastcgi: CGI header section incomplete")
	// ErrHeaderTooLarge is returned when the CGI header section does not end
	// within the caller's limit. ResponseHeader.Size then holds its real
	// size when it could be measured.
	ErrHeaderTooLarge = errors.New("fastcgi: CGI header section larger than the limit")
	// ErrHeaderIncomplete is returned when STDOUT ends before the blank
	// line that ends the CGI header section (RFC 3875 6.2).
	ErrHeaderIncomplete = errors.New("fastcgi: STDOUT ended inside the CGI header section")
	// ErrHeaderName is returned for a header line whose name is empty or not
	// an RFC 9110 token directly followed by ':'.
	ErrHeaderName = errors.New("fastcgi: CGI header name is not a token followed by ':'")
	// ErrHeaderValue is returned for a header value holding a control byte
	// other than HTAB (NUL, DEL, a CR not followed by LF).
	ErrHeaderValue = errors.New("fastcgi: CGI header value holds a control byte")
	// ErrHeaderFold is returned for a header line that starts with
	// whitespace (obsolete line folding, RFC 9112 5.2).
	ErrHeaderFold = errors.New("fastcgi: CGI header line starts with whitespace (line folding)")
	// ErrStatus is returned for a Status header that is not three digits
	// from 200 to 599, optionally followed by a space and a reason phrase,
	// or that is repeated.
	ErrStatus = errors.New("fastcgi: CGI Status is not a final status 200-599")
	// ErrResponseContentLength is returned for a Content-Length header that
	// is not a decimal number, or repeated with another value.
	ErrResponseContentLength = errors.New("fastcgi: CGI Content-Length is not one decimal number")

	// ErrPathNotOrigin is returned for a request-target that does not start
	// with '/'. Answer 400.
	ErrPathNotOrigin = errors.New("fastcgi: request path does not start with '/'")
	// ErrPathEscape is returned for a '%' not followed by two hex digits.
	// Answer 400.
	ErrPathEscape = errors.New("fastcgi: request path has an invalid percent-escape")
	// ErrPathControl is returned for a NUL or other control byte in the
	// path, raw or percent-encoded. Answer 400.
	ErrPathControl = errors.New("fastcgi: request path holds a control byte")
	// ErrPathSlash is returned for an encoded slash (%2F) or a backslash,
	// raw or encoded: each would let a path name another file than its
	// segments say. Answer 400.
	ErrPathSlash = errors.New("fastcgi: request path holds an encoded slash or a backslash")
	// ErrPathDotSegment is returned for a "." or ".." segment after
	// percent-decoding. Answer 400.
	ErrPathDotSegment = errors.New("fastcgi: request path has a dot segment")
	// ErrNoScript is returned for a path with no ".php" segment that does not
	// end in '/', when the Resolver has no front controller. Answer 404.
	ErrNoScript = errors.New("fastcgi: request path names no PHP script")
)

// ErrProtocol is what every record-layer error says: the application broke
// the FastCGI protocol (a record of the wrong version, type or request id,
// a malformed or refusing FCGI_END_REQUEST). errors.Is(err, ErrProtocol)
// holds for ErrVersion, ErrUnknownType, ErrUnexpectedType, ErrRequestID,
// ErrEndRequestLength, ErrStdoutAfterEnd, ErrCantMpxConn, ErrOverloaded,
// ErrUnknownRole and ErrProtocolStatus, so that a caller tells them from
// network failures without listing them.
var ErrProtocol = errors.New("fastcgi: the application broke the FastCGI protocol")

// protocolError is a record-layer error: its own message, and ErrProtocol.
type protocolError struct{ msg string }

func (e *protocolError) Error() string        { return e.msg }
func (e *protocolError) Is(target error) bool { return target == ErrProtocol }

// closeError is a premature close: its own message, and io.ErrUnexpectedEOF
// for callers that classify closes without knowing FastCGI.
type closeError struct{ msg string }

func (e *closeError) Error() string { return e.msg }
func (e *closeError) Unwrap() error { return io.ErrUnexpectedEOF }

// Header is a record header (spec 3.3). Its zero value is not a valid
// header (version 0).
type Header struct {
	Version       uint8
	Type          RecordType
	RequestID     uint16
	ContentLength uint16
	PaddingLength uint8
	// The reserved byte is written 0 and ignored when read.
}

// ParseHeader decodes the record header at the start of b, which must hold
// HeaderLen bytes. It checks the version only; the Reader checks the rest in
// context.
func ParseHeader(b []byte) (Header, error) {
	_ = b[HeaderLen-1]
	h := Header{
		Version:       b[0],
		Type:          RecordType(b[1]),
		RequestID:     binary.BigEndian.Uint16(b[2:]),
		ContentLength: binary.BigEndian.Uint16(b[4:]),
		PaddingLength: b[6],
	}
	if h.Version != Version1 {
		return h, ErrVersion
	}
	return h, nil
}

// AppendTo appends h's 8 bytes to dst.
func (h Header) AppendTo(dst []byte) []byte {
	return append(dst, h.Version, byte(h.Type), byte(h.RequestID>>8), byte(h.RequestID),
		byte(h.ContentLength>>8), byte(h.ContentLength), h.PaddingLength, 0)
}

// padding returns the padding that brings n content bytes to a multiple of
// 8, as the specification recommends and PHP-FPM and nginx do.
func padding(n int) uint8 { return uint8(-n & 7) }

// EndRequest is the content of FCGI_END_REQUEST (spec 5.5).
type EndRequest struct {
	// AppStatus is the application's exit status; PHP-FPM sends 0.
	AppStatus uint32
	// ProtocolStatus says whether the request ran (RequestComplete).
	ProtocolStatus ProtocolStatus
}

// err returns the error for e's protocolStatus, nil for RequestComplete.
func (e EndRequest) err() error {
	switch e.ProtocolStatus {
	case RequestComplete:
		return nil
	case CantMpxConn:
		return ErrCantMpxConn
	case Overloaded:
		return ErrOverloaded
	case UnknownRole:
		return ErrUnknownRole
	}
	return ErrProtocolStatus
}
