package diag

import (
	"strconv"
	"syscall"
	"time"
)

// Header names upmedic writes.
const (
	HeaderDiagnosis   = "X-Upstream-Diagnosis"
	HeaderProxyStatus = "Proxy-Status"
)

// Diagnosis is one explained failure: a cause and the facts that go with it
// as structured-field parameters. A zero field is left out of the header.
type Diagnosis struct {
	Cause Cause
	// Errno is the errno parameter (errno=ECONNREFUSED). With LastCause it
	// is the errno of that last failed probe and follows last-cause, so that
	// "socket_permission_denied;errno=EACCES" reads the same in the 502 of
	// a failed connect and in the 503 upstream_unhealthy it turns into.
	Errno             syscall.Errno
	Elapsed           time.Duration // elapsed-ms, from the start of the exchange
	Attempts          int           // attempts, when more than one connect was tried
	Held              time.Duration // held-ms, time spent in the deploy-window hold
	Recalled          bool          // no connect was tried: this repeats one that failed Age ago
	Age               time.Duration // age-ms, with Recalled
	HeaderSectionSize int           // header-section-size, bytes seen
	Limit             int           // limit, the configured bound that was hit
	TrippedBy         Cause         // tripped-by, the cause that opened the breaker
	LastCause         Cause         // last-cause, the last failed health probe
	RetryIn           time.Duration // retry-in-ms, until the next trial or probe
	ReceivedStatus    int           // received-status, for the Passthrough causes
	ClientBodies      int           // client-bodies: connections held by clients still sending bodies
	// Timer is the timer-s parameter: a premature close (connection_terminated,
	// no response byte) came at the age at which earlier ones came too, so a
	// timer in the app kills requests at about Timer (whole seconds). Zero
	// means no such timer was seen. ClosedAt is this close's age (since the
	// request was sent) and TimerPrior how many earlier closes came at it;
	// Hint says both.
	Timer      time.Duration
	ClosedAt   time.Duration
	TimerPrior int
	// FastCGI says the upstream speaks FastCGI (PHP-FPM): Hint names
	// PHP-FPM's settings first.
	FastCGI bool
	// Answered is the answered parameter of http_protocol_error: the
	// protocol the upstream's first bytes belong to when it is not the one
	// upmedic speaks to it (AnsweredHTTP from a FastCGI upstream,
	// AnsweredFastCGI from an HTTP one); empty when unknown.
	Answered string
	// Pool says the next three are PHP-FPM's pool status (pm.status_path,
	// read by the health checker) at the time of a timeout: listen-queue,
	// active-processes and, for pm = static, max-children.
	Pool            bool
	ListenQueue     int
	ActiveProcesses int
	MaxChildren     int
	Upstream        string // upstream, only with EXPOSE_DETAILS
}

// The values of Diagnosis.Answered.
const (
	AnsweredHTTP    = "http"
	AnsweredFastCGI = "fastcgi"
)

// AppendHeader appends d as the X-Upstream-Diagnosis structured field (RFC
// 9651: a token with parameters) to dst. With expose it adds the upstream
// address and the hint as quoted, escaped strings. It allocates nothing when
// dst has room.
func (d *Diagnosis) AppendHeader(dst []byte, expose bool) []byte {
	dst = append(dst, d.Cause.String()...)
	if d.Cause.Passthrough() {
		return appendIntParam(dst, "received-status", int64(d.ReceivedStatus))
	}
	if !d.LastCause.IsFailure() {
		dst = appendErrno(dst, d.Errno)
	}
	dst = appendIntParam(dst, "elapsed-ms", d.Elapsed.Milliseconds())
	if d.Attempts > 1 {
		dst = appendIntParam(dst, "attempts", int64(d.Attempts))
	}
	if d.Held > 0 {
		dst = appendIntParam(dst, "held-ms", d.Held.Milliseconds())
	}
	if d.Recalled {
		dst = appendIntParam(dst, "age-ms", d.Age.Milliseconds())
	}
	if d.HeaderSectionSize > 0 {
		dst = appendIntParam(dst, "header-section-size", int64(d.HeaderSectionSize))
	}
	if d.Limit > 0 {
		dst = appendIntParam(dst, "limit", int64(d.Limit))
	}
	if d.ClientBodies > 0 {
		dst = appendIntParam(dst, "client-bodies", int64(d.ClientBodies))
	}
	if d.Timer > 0 {
		dst = appendIntParam(dst, "timer-s", int64(d.Timer/time.Second))
	}
	if d.Answered != "" {
		dst = append(dst, ";answered="...)
		dst = append(dst, d.Answered...)
	}
	if d.Pool {
		dst = appendIntParam(dst, "listen-queue", int64(d.ListenQueue))
		dst = appendIntParam(dst, "active-processes", int64(d.ActiveProcesses))
		if d.MaxChildren > 0 {
			dst = appendIntParam(dst, "max-children", int64(d.MaxChildren))
		}
	}
	if d.TrippedBy.IsFailure() {
		dst = append(dst, ";tripped-by="...)
		dst = append(dst, d.TrippedBy.String()...)
	}
	if d.LastCause.IsFailure() {
		dst = append(dst, ";last-cause="...)
		dst = append(dst, d.LastCause.String()...)
		dst = appendErrno(dst, d.Errno)
	}
	if d.RetryIn > 0 {
		dst = appendIntParam(dst, "retry-in-ms", d.RetryIn.Milliseconds())
	}
	if expose {
		if d.Upstream != "" {
			dst = append(dst, ";upstream="...)
			dst = AppendString(dst, d.Upstream)
		}
		if h := d.Hint(); h != "" {
			dst = append(dst, ";hint="...)
			dst = AppendString(dst, h)
		}
	}
	return dst
}

// AppendProxyStatus appends d as an RFC 9209 Proxy-Status member named name
// (an sf-token) to dst: `name; error=<type>; details="..."`, or
// `name; received-status=N` for a passed-through answer of the upstream's
// own (a Passthrough cause).
func (d *Diagnosis) AppendProxyStatus(dst []byte, name string) []byte {
	dst = append(dst, name...)
	if d.Cause.Passthrough() {
		return appendIntParam(dst, "received-status", int64(d.ReceivedStatus))
	}
	dst = append(dst, ";error="...)
	dst = append(dst, d.Cause.ProxyStatusError()...)
	if details := d.Cause.Details(); details != "" {
		dst = append(dst, ";details="...)
		dst = AppendString(dst, details)
	}
	return dst
}

// appendErrno appends the errno parameter, nothing for 0.
func appendErrno(dst []byte, errno syscall.Errno) []byte {
	if name := ErrnoName(errno); name != "" {
		dst = append(dst, ";errno="...)
		dst = append(dst, name...)
	}
	return dst
}

func appendIntParam(dst []byte, key string, v int64) []byte {
	dst = append(dst, ';')
	dst = append(dst, key...)
	dst = append(dst, '=')
	return strconv.AppendInt(dst, v, 10)
}

// AppendString appends s to dst as an RFC 9651 sf-string: quoted, with `"`
// and `\` escaped. Bytes an sf-string cannot hold (controls, DEL, non-ASCII)
// become '?', so nothing that reaches it can end the header or start a new
// one.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c >= 0x7f:
			dst = append(dst, '?')
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// IsToken reports whether s is an RFC 9651 sf-token, as a Proxy-Status member
// name must be.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	if c := s[0]; !(c == '*' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~', ':', '/':
		return true
	}
	return false
}

// errnoNames holds the symbolic names of the errnos an upstream exchange can
// end in. syscall.Errno only knows their messages.
var errnoNames = map[syscall.Errno]string{
	syscall.ECONNREFUSED:  "ECONNREFUSED",
	syscall.ECONNRESET:    "ECONNRESET",
	syscall.ECONNABORTED:  "ECONNABORTED",
	syscall.EPIPE:         "EPIPE",
	syscall.ENOENT:        "ENOENT",
	syscall.ENOTDIR:       "ENOTDIR",
	syscall.EACCES:        "EACCES",
	syscall.EPERM:         "EPERM",
	syscall.EAGAIN:        "EAGAIN",
	syscall.ETIMEDOUT:     "ETIMEDOUT",
	syscall.ENETUNREACH:   "ENETUNREACH",
	syscall.EHOSTUNREACH:  "EHOSTUNREACH",
	syscall.EADDRNOTAVAIL: "EADDRNOTAVAIL",
	syscall.EMFILE:        "EMFILE",
	syscall.ENFILE:        "ENFILE",
	syscall.ENOBUFS:       "ENOBUFS",
	syscall.EPROTOTYPE:    "EPROTOTYPE",
	syscall.ENOTSOCK:      "ENOTSOCK",
}

// ErrnoName returns errno's symbolic name ("ECONNREFUSED"), "E<number>" for
// one it does not know, or "" for 0.
func ErrnoName(errno syscall.Errno) string {
	if errno == 0 {
		return ""
	}
	if name, ok := errnoNames[errno]; ok {
		return name
	}
	return "E" + strconv.Itoa(int(errno))
}
