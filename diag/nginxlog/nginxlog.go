// Package nginxlog reads an nginx error.log and groups its upstream failures
// by upstream address and cause: upmedic's causes (package diag) where the
// line says what upmedic's proxy would have diagnosed, nginx-only findings
// (a missing PHP script, nginx's own limits) otherwise, each with its fix.
package nginxlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// This file reads an nginx error.log and names, in upmedic's causes, why
// nginx's upstream failed: the offline twin of diag.Classify. nginx writes one
// line per failure:
//
//	2024/05/01 12:00:00 [crit] 1234#1234: *5 connect() to unix:/run/app.sock failed
//	(13: Permission denied) while connecting to upstream, client: 127.0.0.1,
//	server: _, request: "GET / HTTP/1.1", upstream: "http://unix:/run/app.sock:/",
//	host: "localhost"
//
// that is: time, [level], pid#tid, *connection, the event, the errno in
// parentheses, " while " the action (which tells the phase, as Phase does
// for Classify), and a ", key: value" tail. The format is the same from
// nginx 1.18 to 1.27.

// maxNginxLine is the longest line Analyze reads; a longer one is
// skipped unread. nginx itself truncates a line at 2048 bytes (NGX_MAX_ERROR_STR)
// but a third-party module or a concatenated file may not.
const maxNginxLine = 64 << 10

// maxNginxGroups bounds the memory a report takes: past it, failures at a new
// upstream are counted under nginxOtherUpstream. Upstream names can come from
// requests (proxy_pass http://$host), so a log could hold any number of them.
const maxNginxGroups = 1000

const (
	nginxOtherUpstream   = "(other)" // the group for upstreams past maxNginxGroups
	nginxUnknownUpstream = "-"       // the line names no upstream
	nginxTimeLayout      = "2006/01/02 15:04:05"
)

// Options says which lines Analyze counts. Its zero value
// counts every line and reads times in the local time zone.
type Options struct {
	// Since leaves out lines logged before it. Zero keeps every line.
	Since time.Time
	// Location is the time zone nginx wrote its times in (the log carries
	// none). Nil means time.Local, right when the log comes from this host.
	Location *time.Location

	// Listen is UPMEDIC_LISTEN ("127.0.0.1:8080", "unix:/run/upmedic.sock").
	// A line whose upstream is this address is about nginx talking to
	// upmedic: fixes are in upmedic's terms, and a failed connect is the
	// group upmedic_unreachable. Empty: every upstream is an app, and fixes
	// are in nginx's terms.
	Listen string
	// UpmedicUpstreams are the names of nginx's upstream{} blocks whose
	// servers are upmedic ("upmedic"), for lines that name a block instead
	// of an address (no live upstreams).
	UpmedicUpstreams []string
	// NginxUser is the user nginx's workers run as (nginx.conf's user
	// directive), named in the fix for a socket they may not connect to.
	// Empty means www-data, Debian's.
	NginxUser string
	// NginxUserFrom says where NginxUser was read ("user in
	// /etc/nginx/nginx.conf:1"). Empty means nginx.conf.
	NginxUserFrom string
	// CheckSockets looks at the unix sockets the log names as they are on
	// this machine now (owner, mode, the directories above them), for the
	// fix of a socket nginx may not connect to. False leaves that out, as
	// for a log from another machine.
	CheckSockets bool
	// ResponseTimeout, ReadTimeout and MaxResponseHeaderBytes are upmedic's
	// UPMEDIC_ settings, quoted in fixes for the hop to upmedic. Zero leaves
	// the value out.
	ResponseTimeout, ReadTimeout time.Duration
	MaxResponseHeaderBytes       int
}

// Report is what Analyze found. Lines is always Matched + Skipped +
// BeforeSince.
type Report struct {
	// Lines is how many lines were read.
	Lines int `json:"lines"`
	// Matched is how many lines are upstream failures, counted in Groups.
	Matched int `json:"matched"`
	// Failures is how many of the Matched lines are failures, not notes:
	// all but fastcgi_stderr (a PHP warning the app wrote). The CLI exits 1
	// when it is not 0.
	Failures int `json:"failures"`
	// Skipped is how many lines are not upstream failures, or not nginx
	// error.log lines at all, or longer than 64 KiB. Lines below [error]
	// (debug, info, notice, warn) are always skipped.
	Skipped int `json:"skipped"`
	// TooLong is how many of the Skipped lines were longer than 64 KiB and
	// left unread.
	TooLong int `json:"too_long"`
	// BeforeSince is how many lines were logged before Options.Since.
	BeforeSince int `json:"before_since"`
	// Groups are the failures by upstream and cause, most frequent first.
	// Never nil.
	Groups []Group `json:"groups"`
}

// Group is every failure with one cause at one upstream.
type Group struct {
	// Upstream is the address nginx talked to, without the request's URI:
	// "http://127.0.0.1:8080", "http://unix:/run/app.sock",
	// "fastcgi://unix:/run/php/php-fpm.sock", an upstream{} block's name
	// ("http://backend") for no live upstreams, or the host name for DNS
	// failures. "-" when the line names none; "(other)" collects upstreams
	// past the first 1000.
	Upstream string `json:"upstream"`
	// Cause is an upmedic cause token (see Cause.String), or a finding that
	// only nginx reports, such as "fastcgi_primary_script_unknown".
	Cause string `json:"cause"`
	// Count is how many lines had this cause at this upstream.
	Count int `json:"count"`
	// First and Last are the earliest and latest of those lines' times.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Sample is the first such line, as nginx wrote it.
	Sample string `json:"sample"`
	// ToUpmedic is true when the upstream is upmedic itself
	// (Options.Listen): nginx failed talking to upmedic, not to the app.
	ToUpmedic bool `json:"to_upmedic"`
	// Fix says what to check or change, in nginx's terms for a failure of
	// the hop to the app, in upmedic's for the hop to upmedic.
	Fix string `json:"fix"`
}

// Line is one parsed nginx error.log line. Its zero value is not a
// line. Strings are empty when the line does not have them.
type Line struct {
	// Time is the wall-clock time nginx wrote, as if it were UTC: the log
	// carries no time zone.
	Time time.Time
	// Level is the severity in brackets: "debug", "info", "notice", "warn",
	// "error", "crit", "alert" or "emerg".
	Level string
	// PID and TID are the nginx process and thread ids ("1234#1234").
	PID, TID int
	// Conn is the connection number ("*5"); 0 when the line has none.
	Conn uint64
	// Message is the text before the ", client: " tail, whole: the event,
	// the errno in parentheses and " while " the action.
	Message string
	// Errno is the number in the parentheses after the event, "(111:
	// Connection refused)"; for "could not be resolved" it is the resolver's
	// code (3 not found, 110 timed out). 0 when there is none.
	Errno int
	// Action is what nginx was doing, the text after " while ": "connecting
	// to upstream", "reading response header from upstream", "reading
	// upstream", "sending request to upstream".
	Action string
	// Client, Server, Request, Upstream and Host are the tail's values,
	// without quotes. Upstream is nginx's "scheme://peer/uri" form.
	Client, Server, Request, Upstream, Host string
}

// nginxLevels are nginx's severities, most severe first.
var nginxLevels = [...]string{"emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"}

// ParseLine parses one nginx error.log line, with or without its
// line ending. It reports false when line is not one: no time, level and
// pid. It never looks at what the message means; see Analyze.
func ParseLine(line []byte) (Line, bool) {
	var l Line
	line = bytes.TrimRight(line, "\r\n")
	const head = len(nginxTimeLayout) + len(" [")
	if len(line) < head || line[len(nginxTimeLayout)] != ' ' || line[len(nginxTimeLayout)+1] != '[' {
		return l, false
	}
	t, ok := parseNginxTime(line[:len(nginxTimeLayout)])
	if !ok {
		return l, false
	}
	l.Time = t
	rest := line[head:]

	end := bytes.IndexByte(rest, ']')
	if end < 0 {
		return l, false
	}
	level := slices.Index(nginxLevels[:], string(rest[:end]))
	if level < 0 {
		return l, false
	}
	l.Level = nginxLevels[level]
	if rest, ok = bytes.CutPrefix(rest[end+1:], []byte(" ")); !ok {
		return l, false
	}

	if l.PID, rest, ok = cutNginxNumber(rest, '#'); !ok {
		return l, false
	}
	if l.TID, rest, ok = cutNginxNumber(rest, ':'); !ok {
		return l, false
	}
	rest = bytes.TrimPrefix(rest, []byte(" "))
	if conn, ok := bytes.CutPrefix(rest, []byte("*")); ok {
		var n int
		if n, conn, ok = cutNginxNumber(conn, ' '); ok {
			l.Conn, rest = uint64(n), conn
		}
	}

	msg, tail := rest, []byte(nil)
	if i := bytes.Index(rest, []byte(", client: ")); i >= 0 {
		msg, tail = rest[:i], rest[i+len(", "):]
	}
	l.Message = string(msg)
	event := l.Message
	if i := strings.LastIndex(event, " while "); i >= 0 {
		event, l.Action = event[:i], event[i+len(" while "):]
	}
	l.Errno = nginxErrno(event)
	l.parseTail(tail)
	return l, true
}

// parseNginxTime parses "2006/01/02 15:04:05" strictly, digit by digit:
// time.Parse would also take "2024/05/01  4:05:00".
func parseNginxTime(b []byte) (time.Time, bool) {
	var n [6]int // year, month, day, hour, minute, second
	field := 0
	for i, c := range b {
		switch {
		case i == 4 || i == 7:
			if c != '/' {
				return time.Time{}, false
			}
			field++
		case i == 10:
			if c != ' ' {
				return time.Time{}, false
			}
			field++
		case i == 13 || i == 16:
			if c != ':' {
				return time.Time{}, false
			}
			field++
		case c >= '0' && c <= '9':
			n[field] = n[field]*10 + int(c-'0')
		default:
			return time.Time{}, false
		}
	}
	t := time.Date(n[0], time.Month(n[1]), n[2], n[3], n[4], n[5], 0, time.UTC)
	if t.Month() != time.Month(n[1]) || t.Day() != n[2] || t.Hour() != n[3] || t.Minute() != n[4] || t.Second() != n[5] {
		return time.Time{}, false // out of range: time.Date normalized it
	}
	return t, true
}

// cutNginxNumber reads a decimal number of at most 18 digits followed by sep.
func cutNginxNumber(b []byte, sep byte) (int, []byte, bool) {
	i := bytes.IndexByte(b, sep)
	if i <= 0 || i > 18 {
		return 0, b, false
	}
	n := 0
	for _, c := range b[:i] {
		if c < '0' || c > '9' {
			return 0, b, false
		}
		n = n*10 + int(c-'0')
	}
	return n, b[i+1:], true
}

// nginxErrno returns the errno of an event that ends "(111: Connection
// refused)", or 0.
func nginxErrno(event string) int {
	if !strings.HasSuffix(event, ")") {
		return 0
	}
	i := strings.LastIndex(event, " (")
	if i < 0 {
		return 0
	}
	n, _, ok := cutNginxNumber([]byte(event[i+len(" ("):]), ':')
	if !ok || !strings.HasPrefix(event[i+len(" ("):], strconv.Itoa(n)+": ") {
		return 0
	}
	return n
}

// parseTail reads the "client: 127.0.0.1, server: _, request: "GET /
// HTTP/1.1", upstream: "...", host: "..."" tail. nginx does not escape
// quotes, so a quoted value ends at the quote that is followed by the next
// ", key:" or ends the line.
func (l *Line) parseTail(tail []byte) {
	s := string(tail)
	for s != "" {
		key, v, ok := strings.Cut(s, ":")
		if !ok {
			return
		}
		v = strings.TrimPrefix(v, " ")
		var val string
		if q, ok := strings.CutPrefix(v, `"`); ok {
			end := nextNginxField(q, `", `)
			val, s = q[:end], q[end:]
			if s == "" {
				val = strings.TrimSuffix(val, `"`)
			}
			s = strings.TrimPrefix(s, `"`)
		} else {
			end := nextNginxField(v, ", ")
			val, s = v[:end], v[end:]
		}
		s = strings.TrimPrefix(s, ", ")
		switch key {
		case "client":
			l.Client = val
		case "server":
			l.Server = val
		case "request":
			l.Request = val
		case "upstream":
			l.Upstream = val
		case "host":
			l.Host = val
		}
	}
}

// nextNginxField returns where the value at the start of s ends: at the
// first sep that is followed by a key and its colon, else at the end of s.
func nextNginxField(s, sep string) int {
	for from := 0; ; {
		i := strings.Index(s[from:], sep)
		if i < 0 {
			return len(s)
		}
		i += from
		if isNginxKey(s[i+len(sep):]) {
			return i
		}
		from = i + 1
	}
}

// isNginxKey reports whether s starts with a tail key and its colon:
// "upstream:", "host:", or the stream module's "bytes from/to client:".
func isNginxKey(s string) bool {
	for i := 0; i < len(s) && i < 32; i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', i > 0 && (c == ' ' || c == '/' || c == '_'):
		case c == ':':
			return i > 0
		default:
			return false
		}
	}
	return false
}

// nginxKind is a finding that is not one of upmedic's causes: a failure that
// only nginx, or the FastCGI app behind it, reports. Its zero value is none.
type nginxKind uint8

const (
	kindNone nginxKind = iota
	kindFastCGIScriptUnknown
	kindFastCGIScriptUnreadable
	kindFastCGIAccessDenied
	kindPHPFatalError
	kindFastCGIStderr
	kindTLSCertificate
	kindTLSHandshake
	kindNoResolver
	kindWorkerConnections
	kindOpenFiles
	kindLocalPorts
	kindUpmedicUnreachable

	numNginxKinds
)

// nginxKinds names the nginx-only findings and says how to fix each, as
// causeTable does for causes. No name is also a cause's.
var nginxKinds = [numNginxKinds]struct{ name, fix string }{
	kindFastCGIScriptUnknown: {"fastcgi_primary_script_unknown",
		"php-fpm found no file at SCRIPT_FILENAME: check `fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;` and `root`, and that php-fpm sees the same path (another container, chroot or mount namespace). A request for a PHP file that does not exist gives it too: add `try_files $uri =404;`."},
	kindFastCGIScriptUnreadable: {"fastcgi_script_unreadable",
		"php-fpm could not open the script: its pool user needs read permission on the file and search (x) on every parent directory, and open_basedir must allow the path."},
	kindFastCGIAccessDenied: {"fastcgi_access_denied",
		"php-fpm refused to run a file whose extension is not in security.limit_extensions: send only .php to fastcgi_pass (location ~ \\.php$), never uploads or static files."},
	kindPHPFatalError: {"php_fatal_error",
		"a PHP script died with a fatal error (the app's bug, memory_limit, or max_execution_time); the message is in the sample."},
	kindFastCGIStderr: {"fastcgi_stderr",
		"the FastCGI app wrote to stderr, usually a PHP warning or notice; the response may still have succeeded. See the sample and the app's log."},
	kindTLSCertificate: {"upstream_tls_certificate",
		"nginx rejected the upstream's TLS certificate (expired, wrong name, or an unknown CA): renew it, or check proxy_ssl_trusted_certificate, proxy_ssl_name and proxy_ssl_server_name on."},
	kindTLSHandshake: {"upstream_tls_handshake",
		"the TLS handshake with the upstream failed: it does not speak TLS on that port (use http://), or the protocols and ciphers do not overlap (proxy_ssl_protocols), or it needs SNI (proxy_ssl_server_name on)."},
	kindNoResolver: {"nginx_no_resolver",
		"proxy_pass names its upstream with a variable, so nginx resolves the name per request and needs a `resolver` directive (in Docker: resolver 127.0.0.11)."},
	kindWorkerConnections: {"nginx_worker_connections",
		"nginx ran out of worker_connections: each proxied request takes two. Raise worker_connections (and worker_rlimit_nofile with it)."},
	kindOpenFiles: {"nginx_open_files",
		"nginx's workers hit their open-file limit: raise worker_rlimit_nofile (and LimitNOFILE in the systemd unit)."},
	kindUpmedicUnreachable: {"upmedic_unreachable",
		"upmedic is not running or not listening where nginx expects it (UPMEDIC_LISTEN)."},
	kindLocalPorts: {"nginx_local_ports_exhausted",
		"nginx ran out of local ports to the upstream (EADDRNOTAVAIL): every request opens a new connection. Add `keepalive 32;` to the upstream block with `proxy_http_version 1.1;` and `proxy_set_header Connection \"\";`, or widen net.ipv4.ip_local_port_range."},
}

// nginxFinding is what one nginx error line says went wrong: one of upmedic's
// causes, or else an nginx-only kind.
type nginxFinding struct {
	cause diag.Cause
	kind  nginxKind
}

func (f nginxFinding) name() string {
	if f.kind != kindNone {
		return nginxKinds[f.kind].name
	}
	return f.cause.String()
}

func (f nginxFinding) fix() string {
	if f.kind != kindNone {
		return nginxKinds[f.kind].fix
	}
	return f.cause.Hint()
}

// nginxPhaseSet is a set of Phases; its zero value matches any phase, and lines
// whose action names none.
type nginxPhaseSet uint8

const (
	nginxConnect nginxPhaseSet = 1 << diag.PhaseConnect
	nginxRequest nginxPhaseSet = 1 << diag.PhaseRequest
	nginxHeader  nginxPhaseSet = 1 << diag.PhaseHeader
	nginxBody    nginxPhaseSet = 1 << diag.PhaseBody
	// nginxBeforeBody is every phase before the response header is complete.
	nginxBeforeBody = nginxConnect | nginxRequest | nginxHeader
)

// nginxSocket says which kind of upstream address a rule applies to.
type nginxSocket uint8

const (
	nginxAnySocket nginxSocket = iota
	nginxUnixSocket
	nginxTCPSocket
)

// nginxRule is one row of the nginx message table: a line whose event
// contains event, carries errno (0: any), was logged in one of the phases
// in (0: any) and is about a socket of kind sock, is cause, or the
// nginx-only kind when that is set.
type nginxRule struct {
	event string
	errno int
	in    nginxPhaseSet
	sock  nginxSocket
	cause diag.Cause
	kind  nginxKind
}

func (r *nginxRule) finding() nginxFinding { return nginxFinding{r.cause, r.kind} }

// nginxRules is the nginx message table, one row per message; the first row
// that matches wins. Rows for FastCGI stderr come first because they quote
// the app, whose words could look like any other row.
var nginxRules = [...]nginxRule{
	{event: "Primary script unknown", kind: kindFastCGIScriptUnknown},
	{event: "Unable to open primary script", kind: kindFastCGIScriptUnreadable},
	{event: "security.limit_extensions", kind: kindFastCGIAccessDenied},
	{event: "PHP Fatal error", kind: kindPHPFatalError},
	{event: "FastCGI sent in stderr", kind: kindFastCGIStderr},

	// The name resolution at request time (resolver) and at startup.
	{event: "could not be resolved", errno: 110, cause: diag.DNSTimeout},
	{event: "could not be resolved", cause: diag.DNSError},
	{event: "host not found in upstream", cause: diag.DNSError},
	{event: "no resolver defined to resolve", kind: kindNoResolver},

	// nginx's own limits, hit while opening the upstream connection.
	{event: "worker_connections are not enough", kind: kindWorkerConnections},
	{errno: 24, in: nginxConnect, kind: kindOpenFiles},
	{event: "connect() ", errno: 99, in: nginxConnect, kind: kindLocalPorts},

	// connect(): "connect() failed (111: ...)" for TCP, "connect() to
	// unix:/path failed (2: ...)" when the error came at once.
	{event: "connect() ", errno: 111, in: nginxConnect, cause: diag.ConnectionRefused},
	{event: "connect() ", errno: 2, in: nginxConnect, sock: nginxUnixSocket, cause: diag.SocketNotFound},
	{event: "connect() ", errno: 20, in: nginxConnect, sock: nginxUnixSocket, cause: diag.SocketNotFound},
	{event: "connect() ", errno: 13, in: nginxConnect, sock: nginxUnixSocket, cause: diag.SocketPermissionDenied},
	{event: "connect() ", errno: 1, in: nginxConnect, sock: nginxUnixSocket, cause: diag.SocketPermissionDenied},
	{event: "connect() ", errno: 13, in: nginxConnect, sock: nginxTCPSocket, cause: diag.DestinationIPProhibited},
	{event: "connect() ", errno: 1, in: nginxConnect, sock: nginxTCPSocket, cause: diag.DestinationIPProhibited},
	// Linux answers EAGAIN for a unix socket whose listen backlog is full.
	{event: "connect() ", errno: 11, in: nginxConnect, cause: diag.ConnectionLimitReached},
	{event: "connect() ", errno: 100, in: nginxConnect, cause: diag.DestinationIPUnroutable},
	{event: "connect() ", errno: 101, in: nginxConnect, cause: diag.DestinationIPUnroutable},
	{event: "connect() ", errno: 112, in: nginxConnect, cause: diag.DestinationIPUnroutable},
	{event: "connect() ", errno: 113, in: nginxConnect, cause: diag.DestinationIPUnroutable},

	// TLS to the upstream (proxy_pass https://), before the generic errno rows:
	// "peer closed connection in SSL handshake (104: ...)".
	{event: "upstream SSL certificate", kind: kindTLSCertificate},
	{event: "SSL_do_handshake() failed", in: nginxConnect, kind: kindTLSHandshake},
	{event: "peer closed connection in SSL handshake", in: nginxConnect, kind: kindTLSHandshake},

	// Timeouts: proxy_connect_timeout, proxy_send_timeout and
	// proxy_read_timeout, or the kernel's own (110: Connection timed out).
	{event: "upstream timed out", in: nginxConnect, cause: diag.ConnectionTimeout},
	{event: "upstream timed out", in: nginxRequest | nginxHeader, cause: diag.HTTPResponseTimeout},
	{event: "upstream timed out", in: nginxBody, cause: diag.ConnectionReadTimeout},
	{errno: 110, in: nginxConnect, cause: diag.ConnectionTimeout},
	{errno: 110, in: nginxRequest | nginxHeader, cause: diag.HTTPResponseTimeout},
	{errno: 110, in: nginxBody, cause: diag.ConnectionReadTimeout},

	// The upstream went away: closed ("prematurely closed connection",
	// "prematurely closed FastCGI stdout"), reset (104) or broken pipe (32).
	{event: "upstream prematurely closed", in: nginxBeforeBody, cause: diag.ConnectionTerminated},
	{event: "upstream prematurely closed", in: nginxBody, cause: diag.HTTPResponseIncomplete},
	{errno: 104, in: nginxBeforeBody, cause: diag.ConnectionTerminated},
	{errno: 104, in: nginxBody, cause: diag.HTTPResponseIncomplete},
	{errno: 32, in: nginxBeforeBody, cause: diag.ConnectionTerminated},
	{errno: 32, in: nginxBody, cause: diag.HTTPResponseIncomplete},

	// What the upstream sent: too big (proxy_buffer_size), or not HTTP
	// ("no valid HTTP/1.0 header", "invalid header", "invalid chunked
	// response", "duplicate header line", "unsupported FastCGI protocol
	// version: 72" from an HTTP server behind fastcgi_pass, ...).
	{event: "upstream sent too big header", cause: diag.HTTPResponseHeaderSectionSize},
	{event: "upstream sent ", cause: diag.HTTPProtocolError},

	// Every server of an upstream{} block is down by max_fails/fail_timeout:
	// nginx's passive health check failing fast, as upstream_unhealthy is
	// upmedic's active one. The lines before it say why they went down.
	{event: "no live upstreams", cause: diag.UpstreamUnhealthy},
}

// isNginxFailureLevel reports whether level is [error] or more severe: nginx
// logs every upstream failure at error or crit (alert, emerg for its own
// limits and startup), and only at those.
func isNginxFailureLevel(level string) bool {
	i := slices.Index(nginxLevels[:], level)
	return i >= 0 && i <= slices.Index(nginxLevels[:], "error")
}

// nginxEvent returns l.Message without " while " the action and the errno's
// parentheses: "connect() failed".
func (l *Line) nginxEvent() string {
	event := l.Message
	if i := strings.LastIndex(event, " while "); i >= 0 {
		event = event[:i]
	}
	if i := strings.LastIndex(event, " ("); i >= 0 && l.Errno != 0 {
		event = event[:i]
	}
	return event
}

// nginxPhase maps nginx's action to the exchange phase it names.
func nginxPhase(action string) nginxPhaseSet {
	switch action {
	case "connecting to upstream", "SSL handshaking to upstream":
		return nginxConnect
	case "sending request to upstream":
		return nginxRequest
	case "reading response header from upstream":
		return nginxHeader
	case "reading upstream":
		return nginxBody
	}
	// "sending to client", "reading client request body", ...: the client
	// side, never the upstream's fault.
	return 0
}

// matchNginxRule returns the index in nginxRules of the row that l matches,
// or -1.
func matchNginxRule(l *Line, upstream string) int {
	if !isNginxFailureLevel(l.Level) {
		return -1
	}
	event, phase := l.nginxEvent(), nginxPhase(l.Action)
	sock := nginxTCPSocket
	if _, peer, _ := strings.Cut(upstream, "://"); strings.HasPrefix(peer, "unix:") || strings.HasPrefix(upstream, "unix:") {
		sock = nginxUnixSocket
	}
	for i := range nginxRules {
		r := &nginxRules[i]
		if (r.errno == 0 || r.errno == l.Errno) &&
			(r.in == 0 || r.in&phase != 0) &&
			(r.sock == nginxAnySocket || r.sock == sock) &&
			strings.Contains(event, r.event) {
			return i
		}
	}
	return -1
}

// nginxUpstream returns the address that l is about, as Group.Upstream
// describes it.
func nginxUpstream(l *Line) string {
	if u := l.Upstream; u != "" {
		// "http://unix:/run/app.sock:/uri" or "http://127.0.0.1:8080/uri";
		// the stream module's has no scheme: "127.0.0.1:8080".
		scheme, peer, ok := strings.Cut(u, "://")
		if ok {
			scheme += "://"
		} else {
			scheme, peer = "", u
		}
		if path, ok := strings.CutPrefix(peer, "unix:"); ok {
			if i := strings.IndexByte(path, ':'); i >= 0 {
				peer = peer[:len("unix:")+i]
			}
		} else if i := strings.IndexByte(peer, '/'); i >= 0 {
			peer = peer[:i]
		}
		if peer != "" {
			return scheme + peer
		}
	}
	// No peer was chosen: the message names the address or the host name.
	event := l.nginxEvent()
	name := ""
	if addr, ok := strings.CutPrefix(event, "connect() to "); ok {
		name, _ = strings.CutSuffix(addr, " failed")
	} else if _, rest, ok := strings.Cut(event, `host not found in upstream "`); ok {
		name, _, _ = strings.Cut(rest, `"`)
	} else if _, rest, ok := strings.Cut(event, "no resolver defined to resolve "); ok {
		name = rest
	} else if rest, ok := strings.CutSuffix(event, " could not be resolved"); ok {
		name = rest[strings.LastIndexByte(rest, ' ')+1:]
	}
	if name == "" {
		return nginxUnknownUpstream
	}
	return name
}

// Analyze reads an nginx error.log from r, line by line in constant
// memory, and groups its upstream failures by upstream and cause. It returns
// an error only when r fails; lines it does not know, or longer than 64 KiB,
// are counted as skipped.
func Analyze(r io.Reader, opt Options) (*Report, error) {
	loc := opt.Location
	if loc == nil {
		loc = time.Local
	}
	type key struct{ upstream, cause string }
	groups := make(map[key]*Group)
	unreachableCauses := make(map[key][]diag.Cause) // per upmedic_unreachable group, in order
	rep := &Report{}

	add := func(line []byte) {
		rep.Lines++
		l, ok := ParseLine(line)
		if !ok {
			rep.Skipped++
			return
		}
		t := l.Time
		t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, loc)
		if !opt.Since.IsZero() && t.Before(opt.Since) {
			rep.BeforeSince++
			return
		}
		upstream := nginxUpstream(&l)
		rule := matchNginxRule(&l, upstream)
		if rule < 0 {
			rep.Skipped++
			return
		}
		rep.Matched++
		f := nginxRules[rule].finding()
		if f.kind != kindFastCGIStderr {
			rep.Failures++
		}
		name, fix, toUpmedic := opt.explain(f, &l, upstream)
		k := key{upstream, name}
		g := groups[k]
		if g == nil && len(groups) >= maxNginxGroups {
			k.upstream = nginxOtherUpstream
			g = groups[k]
		}
		if g == nil {
			g = &Group{Upstream: k.upstream, Cause: k.cause, First: t, Last: t,
				Sample: string(bytes.TrimRight(line, "\r\n")), ToUpmedic: toUpmedic, Fix: fix}
			groups[k] = g
		}
		if k.cause == nginxKinds[kindUpmedicUnreachable].name && !slices.Contains(unreachableCauses[k], f.cause) {
			unreachableCauses[k] = append(unreachableCauses[k], f.cause)
		}
		g.Count++
		if t.Before(g.First) {
			g.First = t
		}
		if t.After(g.Last) {
			g.Last = t
		}
	}

	br := bufio.NewReaderSize(r, maxNginxLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			rep.Lines++
			rep.Skipped++
			rep.TooLong++
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		} else if len(line) > 0 {
			add(line)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read nginx error log: %w", err)
		}
	}

	for k, causes := range unreachableCauses {
		if len(causes) > 1 {
			groups[k].Fix = opt.unreachableFix(causes, opt.hopOf(k.upstream))
		}
	}
	rep.Groups = make([]Group, 0, len(groups))
	for _, g := range groups {
		rep.Groups = append(rep.Groups, *g)
	}
	slices.SortFunc(rep.Groups, func(a, b Group) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		if c := a.First.Compare(b.First); c != 0 {
			return c
		}
		if c := strings.Compare(a.Cause, b.Cause); c != 0 {
			return c
		}
		return strings.Compare(a.Upstream, b.Upstream)
	})
	return rep, nil
}

// WriteText writes r for a person: a summary line, a table of the groups,
// most frequent first, then each cause's fix with a sample line.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%d lines: %d upstream failures", r.Lines, r.Failures)
	if n := r.Matched - r.Failures; n > 0 {
		fmt.Fprintf(bw, " and %d FastCGI stderr messages", n)
	}
	fmt.Fprintf(bw, " in %d groups, %d lines skipped", len(r.Groups), r.Skipped)
	if r.TooLong > 0 {
		fmt.Fprintf(bw, " (%d too long)", r.TooLong)
	}
	if r.BeforeSince > 0 {
		fmt.Fprintf(bw, ", %d before --since", r.BeforeSince)
	}
	bw.WriteString("\n")
	if len(r.Groups) == 0 {
		bw.WriteString("no upstream failures found\n")
		return bw.Flush()
	}

	bw.WriteString("\n")
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tCAUSE\tUPSTREAM\tFIRST\tLAST")
	for _, g := range r.Groups {
		fmt.Fprintf(tw, "%5d\t%s\t%s\t%s\t%s\n", g.Count, g.Cause, g.Upstream,
			g.First.Format(nginxTimeLayout), g.Last.Format(nginxTimeLayout))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	// Each fix once, in the groups' order (most frequent first), with the
	// upstreams it is for and the sample of its most frequent group.
	type fixed struct {
		cause, fix, sample string
		upstreams          []string
	}
	var fixes []*fixed
	byFix := make(map[[2]string]*fixed)
	for _, g := range r.Groups {
		k := [2]string{g.Cause, g.Fix}
		f := byFix[k]
		if f == nil {
			f = &fixed{cause: g.Cause, fix: g.Fix, sample: g.Sample}
			byFix[k] = f
			fixes = append(fixes, f)
		}
		if !slices.Contains(f.upstreams, g.Upstream) {
			f.upstreams = append(f.upstreams, g.Upstream)
		}
	}
	for _, f := range fixes {
		fmt.Fprintf(bw, "\n%s at %s\n  fix:    %s\n  sample: %s\n", f.cause, strings.Join(f.upstreams, ", "), f.fix, f.sample)
	}
	return bw.Flush()
}

// WriteJSON writes r as one indented JSON object whose fields are named as
// the struct tags of Report and Group say; times are RFC
// 3339.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
