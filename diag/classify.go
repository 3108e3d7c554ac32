package diag

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/valyala/fasthttp"
)

// Phase is the step of an upstream exchange in which an error happened. The
// same error means different things in different phases: a timeout while
// connecting is connection_timeout, while waiting for the header
// http_response_timeout, in the body connection_read_timeout.
type Phase uint8

// The phases of one upstream exchange, in order.
const (
	PhaseConnect Phase = iota // acquiring or dialling a connection
	PhaseRequest              // writing the request
	PhaseHeader               // reading the response header
	PhaseBody                 // reading the response body
)

var phaseNames = [...]string{"connect", "request", "response header", "response body"}

// String returns the phase as a short phrase ("response header").
func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "unknown"
}

// Sentinels returned by upmedic's upstream client.
var (
	// ErrConnectionLimit is returned when all UPMEDIC_MAX_CONNS upstream
	// connections stay busy for the whole connect timeout.
	ErrConnectionLimit = errors.New("diag: upstream connection limit reached")
	// ErrNotHTTP is returned when the upstream's first bytes are not an
	// HTTP/1.x status line.
	ErrNotHTTP = errors.New("diag: upstream response is not HTTP")
	// ErrShortBody is returned when the upstream closed the connection before
	// sending the whole body its Content-Length or chunked framing announced.
	ErrShortBody = errors.New("diag: upstream response body ended early")
)

// syntaxError is an error saying that a message broke HTTP syntax: the
// errors of upmedic's strict parser (proxy/h1) have the method.
type syntaxError interface {
	error
	HTTPSyntax()
}

// PhaseError is an upstream error together with the phase it happened in.
// Its zero value is not useful.
type PhaseError struct {
	Phase Phase
	Err   error
}

// Error returns "<phase>: <error>".
func (e *PhaseError) Error() string { return e.Phase.String() + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *PhaseError) Unwrap() error { return e.Err }

// Classify returns the cause of err, an error from dialling or talking to an
// upstream. A *PhaseError anywhere in err's chain gives the phase; without one
// the phase is taken to be PhaseConnect. A nil err is None.
//
// Classify is a pure function: it looks only at err, with errors.Is and
// errors.AsType, never at its text.
func Classify(err error) Cause {
	if pe, ok := errors.AsType[*PhaseError](err); ok {
		return ClassifyIn(pe.Phase, pe.Err)
	}
	return ClassifyIn(PhaseConnect, err)
}

// ClassifyIn returns the cause of err, which happened in phase p. It is
// Classify for callers that know the phase and want no wrapping allocation.
func ClassifyIn(p Phase, err error) Cause {
	switch {
	case err == nil:
		return None
	case errors.Is(err, ErrConnectionLimit):
		return ConnectionLimitReached
	case errors.Is(err, ErrNotHTTP):
		return HTTPProtocolError
	}
	if _, ok := errors.AsType[syntaxError](err); ok {
		return HTTPProtocolError
	}
	if _, ok := errors.AsType[*fasthttp.ErrSmallBuffer](err); ok || errors.Is(err, bufio.ErrBufferFull) {
		return HTTPResponseHeaderSectionSize
	}
	if dnsErr, ok := errors.AsType[*net.DNSError](err); ok {
		if dnsErr.IsTimeout {
			return DNSTimeout
		}
		return DNSError
	}
	// The errno first: syscall.Errno(EAGAIN).Timeout() is true, but on a
	// unix-socket connect EAGAIN means a full backlog, not a timeout.
	if errno, ok := errors.AsType[syscall.Errno](err); ok {
		if c := classifyErrno(p, errno, isUnix(err)); c != None {
			return c
		}
	}
	if isTimeout(err) {
		switch p {
		case PhaseConnect:
			return ConnectionTimeout
		case PhaseBody:
			return ConnectionReadTimeout
		default:
			return HTTPResponseTimeout
		}
	}
	if isPrematureClose(err) {
		if p == PhaseBody {
			return HTTPResponseIncomplete
		}
		return ConnectionTerminated
	}
	if _, ok := errors.AsType[fasthttp.ErrBrokenChunk](err); ok {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return HTTPResponseIncomplete
		}
		return HTTPProtocolError
	}
	if p == PhaseHeader {
		// The header parser said no to bytes that arrived: not HTTP.
		return HTTPProtocolError
	}
	return ProxyInternalError
}

func classifyErrno(p Phase, errno syscall.Errno, unix bool) Cause {
	switch errno {
	case syscall.ECONNREFUSED:
		return ConnectionRefused
	case syscall.ENOENT, syscall.ENOTDIR:
		if unix {
			return SocketNotFound
		}
	case syscall.EACCES, syscall.EPERM:
		if unix {
			return SocketPermissionDenied
		}
		return DestinationIPProhibited
	case syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.EADDRNOTAVAIL:
		return DestinationIPUnroutable
	case syscall.EAGAIN:
		// A unix socket whose listen backlog is full answers connect with
		// EAGAIN instead of queueing the SYN as TCP does.
		if p == PhaseConnect {
			return ConnectionLimitReached
		}
	case syscall.ETIMEDOUT:
		if p == PhaseConnect {
			return ConnectionTimeout
		}
		if p == PhaseBody {
			return ConnectionReadTimeout
		}
		return HTTPResponseTimeout
	case syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNABORTED:
		if p == PhaseBody {
			return HTTPResponseIncomplete
		}
		return ConnectionTerminated
	}
	return None
}

// isTimeout reports whether err is a deadline, in any of the shapes the net
// package, os and fasthttp give it.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout) {
		return true
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return true
	}
	return false
}

// isPrematureClose reports whether err says the peer went away.
func isPrematureClose(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, ErrShortBody) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, net.ErrClosed)
}

// isUnix reports whether err came from a unix-socket operation.
func isUnix(err error) bool {
	if oe, ok := errors.AsType[*net.OpError](err); ok {
		return oe.Net == "unix" || oe.Net == "unixpacket"
	}
	return false
}

// Errno returns the errno at the root of err, or 0 when it has none.
func Errno(err error) syscall.Errno {
	if errno, ok := errors.AsType[syscall.Errno](err); ok {
		return errno
	}
	return 0
}
