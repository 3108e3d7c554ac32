// Package diag names why an upstream failed and says so in HTTP headers.
//
// It is upmedic's single source of truth for failure causes: the proxy, the
// health checker, the admin API and the operator tools under it (diag/probe,
// diag/nginxlog, diag/nginxconf) all classify with Classify and describe with
// the one cause table below. diag holds only this core (causes, Classify, the
// diagnosis headers, the journal and the traffic counters) and imports no
// other upmedic package; the tools import it, never the reverse.
package diag

import (
	"net/http"
	"strconv"
)

// Cause is why upmedic answered instead of the upstream. The zero Cause is
// None: nothing went wrong.
type Cause uint8

// The causes, one per row of the table in DESIGN.md. Adding a cause is adding
// a constant here and a row to causeTable, and a test that produces it.
const (
	None Cause = iota
	ConnectionRefused
	SocketNotFound
	SocketPermissionDenied
	DestinationIPProhibited
	DestinationIPUnroutable
	DNSError
	DNSTimeout
	ConnectionTimeout
	ConnectionLimitReached
	ConnectionTerminated
	HTTPResponseTimeout
	HTTPResponseHeaderSectionSize
	HTTPProtocolError
	HTTPResponseIncomplete
	ConnectionReadTimeout
	UpstreamUnhealthy
	BreakerOpen
	// UpstreamStatus is not a failure of the hop: the upstream itself
	// answered with a 5xx, which upmedic passes through and labels.
	UpstreamStatus
	// ScriptNotFound and ScriptAccessDenied are not failures of the hop
	// either: PHP-FPM answered 404 or 403, which upmedic passes through and
	// labels with why, from PHP-FPM's STDERR.
	ScriptNotFound
	ScriptAccessDenied
	// ProxyInternalError is an upstream error that no other cause explains.
	// Seeing it means Classify has a gap: please report the logged error.
	ProxyInternalError

	numCauses
)

// causeInfo is one row of the cause table.
type causeInfo struct {
	name   string // the token in X-Upstream-Diagnosis
	status int    // the status upmedic answers with
	rfc    string // the RFC 9209 Proxy-Status error type
	detail string // Proxy-Status details: short, says nothing internal
	hint   string // what the operator should look at
}

// causeTable is the one place that maps a cause to its status, its RFC 9209
// type and its remediation hint.
var causeTable = [numCauses]causeInfo{
	None: {"none", http.StatusOK, "", "", ""},
	ConnectionRefused: {"connection_refused", http.StatusBadGateway, "connection_refused",
		"upstream refused the connection",
		"nothing listens on the upstream address: is the app running, bound to this address and port, or restarting? A unix socket file with no listener is left over from an app that died."},
	SocketNotFound: {"socket_not_found", http.StatusBadGateway, "connection_refused",
		"upstream socket does not exist",
		"the unix socket path does not exist: the app has not started, the path differs between app and upmedic, or one of them runs in a private /tmp (systemd PrivateTmp) or another mount namespace."},
	SocketPermissionDenied: {"socket_permission_denied", http.StatusBadGateway, "connection_refused",
		"permission denied on upstream socket",
		"upmedic's user may not connect to the unix socket: it needs write permission on the socket and search (x) on every parent directory. Share a group (php-fpm listen.group/listen.mode=0660, gunicorn --umask 007, usermod -aG) or run upmedic as the socket's owner."},
	DestinationIPProhibited: {"destination_ip_prohibited", http.StatusBadGateway, "destination_ip_prohibited",
		"connect to upstream not permitted",
		"the kernel refused the TCP connect (EACCES/EPERM): an SELinux policy (setsebool -P httpd_can_network_connect 1), a seccomp filter or a local firewall rule forbids it."},
	DestinationIPUnroutable: {"destination_ip_unroutable", http.StatusBadGateway, "destination_ip_unroutable",
		"no route to upstream",
		"no route to the upstream address: check the address, the interface and the container network."},
	DNSError: {"dns_error", http.StatusBadGateway, "dns_error",
		"upstream name did not resolve",
		"the upstream host name does not resolve: check the name, /etc/hosts and the resolver (inside a container, the service name)."},
	DNSTimeout: {"dns_timeout", http.StatusGatewayTimeout, "dns_timeout",
		"upstream name lookup timed out",
		"the resolver did not answer in time: check /etc/resolv.conf and the DNS server, or use an IP address."},
	ConnectionTimeout: {"connection_timeout", http.StatusGatewayTimeout, "connection_timeout",
		"connect to upstream timed out",
		"the upstream did not accept the connection within UPMEDIC_CONNECT_TIMEOUT: its accept queue is full (all workers busy), or a firewall drops the SYN."},
	ConnectionLimitReached: {"connection_limit_reached", http.StatusServiceUnavailable, "connection_limit_reached",
		"upstream connection limit reached",
		"all UPMEDIC_MAX_CONNS upstream connections are busy, or the unix socket's listen backlog is full: the app is slower than the traffic; add workers or raise the backlog (gunicorn --backlog, php-fpm listen.backlog, net.core.somaxconn)."},
	ConnectionTerminated: {"connection_terminated", http.StatusBadGateway, "connection_terminated",
		"upstream closed the connection before a complete response header",
		"the app closed or reset the connection before answering: a worker crashed, was killed by its own timeout (gunicorn --timeout, php-fpm request_terminate_timeout) or ran out of memory; see the app's log at this time."},
	HTTPResponseTimeout: {"http_response_timeout", http.StatusGatewayTimeout, "http_response_timeout",
		"upstream sent no response header in time",
		"the app took longer than UPMEDIC_RESPONSE_TIMEOUT to start answering: a slow query or a stuck worker; raise the timeout only if the slowness is expected."},
	HTTPResponseHeaderSectionSize: {"http_response_header_section_size", http.StatusBadGateway, "http_response_header_section_size",
		"upstream response header section too large",
		"the app sent response headers larger than UPMEDIC_MAX_RESPONSE_HEADER_BYTES (nginx proxy_buffer_size): usually huge Set-Cookie values; shrink them or raise both limits together."},
	HTTPProtocolError: {"http_protocol_error", http.StatusBadGateway, "http_protocol_error",
		"upstream response is not valid HTTP",
		"the upstream does not speak HTTP on this address: a FastCGI (php-fpm), uwsgi, TLS or database port, or a corrupt response."},
	HTTPResponseIncomplete: {"http_response_incomplete", http.StatusBadGateway, "http_response_incomplete",
		"upstream response body ended early",
		"the app closed the connection before sending the whole body it announced: a crash or kill mid-response, or a wrong Content-Length."},
	ConnectionReadTimeout: {"connection_read_timeout", http.StatusGatewayTimeout, "connection_read_timeout",
		"upstream response body stalled",
		"the app went silent for longer than UPMEDIC_READ_TIMEOUT in the middle of its response body: a stuck worker or a slow generator."},
	UpstreamUnhealthy: {"upstream_unhealthy", http.StatusServiceUnavailable, "destination_unavailable",
		"upstream is failing its health checks",
		"the active health check says the upstream is down; see last-cause, /status and the app's log. Requests fail fast until it recovers."},
	BreakerOpen: {"breaker_open", http.StatusServiceUnavailable, "destination_unavailable",
		"circuit breaker is open",
		"the circuit breaker opened after UPMEDIC_BREAKER_FAILURES consecutive failures (see tripped-by); one trial request goes through after UPMEDIC_BREAKER_OPEN_FOR."},
	UpstreamStatus: {"upstream_status", 0, "", "", "the app itself answered with this 5xx; see its own log."},
	ScriptNotFound: {"script_not_found", 0, "", "",
		"PHP-FPM found no file at SCRIPT_FILENAME (\"Primary script unknown\"): UPMEDIC_FASTCGI_ROOT joined with the request path. Either the script does not exist, or UPMEDIC_FASTCGI_ROOT is not the document root as PHP-FPM sees it (another container, chroot or mount namespace: compare the script path in upmedic's log and /status with PHP-FPM's file system)."},
	ScriptAccessDenied: {"script_access_denied", 0, "", "",
		"PHP-FPM refused to run the file because its extension is not in security.limit_extensions (default .php); with cgi.fix_pathinfo=1 a path such as /uploads/a.jpg/x.php names a.jpg. Let nginx serve uploads and static files (try_files) so that only .php reaches PHP-FPM; add the extension to security.limit_extensions only if the file really is PHP."},
	ProxyInternalError: {"proxy_internal_error", http.StatusBadGateway, "proxy_internal_error",
		"unclassified upstream error",
		"upmedic could not classify this upstream error; its log line has the details."},
}

// String returns the cause's token as it appears in X-Upstream-Diagnosis.
func (c Cause) String() string { return c.info().name }

// Status returns the HTTP status upmedic answers with for c. It is 0 for
// the Passthrough causes, whose status is the upstream's own.
func (c Cause) Status() int { return c.info().status }

// ProxyStatusError returns c's RFC 9209 error type, or "" for None and the
// Passthrough causes.
func (c Cause) ProxyStatusError() string { return c.info().rfc }

// Details returns a short client-safe description of c: no paths, addresses
// or uids.
func (c Cause) Details() string { return c.info().detail }

// Hint returns what the operator should check or change for c.
func (c Cause) Hint() string { return c.info().hint }

// IsFailure reports whether c is a failure of the hop to the upstream: not
// None, not a Passthrough cause.
func (c Cause) IsFailure() bool { return c != None && c < numCauses && !c.Passthrough() }

// Passthrough reports whether c labels an answer of the upstream's own that
// upmedic passes through with its status (UpstreamStatus, ScriptNotFound,
// ScriptAccessDenied): the diagnosis headers then carry received-status
// and no Proxy-Status error. These are the rows of status 0.
func (c Cause) Passthrough() bool { return c != None && c < numCauses && causeTable[c].status == 0 }

// RetryAfter reports whether upmedic's answer for c carries Retry-After.
func (c Cause) RetryAfter() bool { return c == UpstreamUnhealthy || c == BreakerOpen }

func (c Cause) info() *causeInfo {
	if c >= numCauses {
		return &causeTable[ProxyInternalError]
	}
	return &causeTable[c]
}

// Causes returns every cause except None, in table order.
func Causes() []Cause {
	cs := make([]Cause, 0, numCauses-1)
	for c := None + 1; c < numCauses; c++ {
		cs = append(cs, c)
	}
	return cs
}

// ParseCause returns the cause whose token is name.
func ParseCause(name string) (Cause, bool) {
	for c := None; c < numCauses; c++ {
		if causeTable[c].name == name {
			return c, true
		}
	}
	return None, false
}

// slowClientsHint replaces connection_limit_reached's hint when clients
// still sending their request bodies hold some of the connections.
const slowClientsHint = "upstream connections are held by clients still sending their request bodies (client-bodies): slow uploads, not the app, fill UPMEDIC_MAX_CONNS. Let nginx buffer request bodies (proxy_request_buffering on, its default), lower UPMEDIC_CLIENT_BODY_TIMEOUT, or raise UPMEDIC_MAX_CONNS."

// Hint returns what the operator should check for this diagnosis: its
// cause's hint, or a more precise one where the parameters tell more. It
// allocates only for a premature close matched to a kill timer (Timer), whose
// hint holds its numbers.
func (d *Diagnosis) Hint() string {
	switch {
	case d.Cause == ConnectionLimitReached && d.ClientBodies > 0:
		return slowClientsHint
	case d.Cause == ConnectionTerminated && d.Timer > 0:
		return string(d.appendTimerHint(make([]byte, 0, 512)))
	case d.Cause == ConnectionTerminated && d.FastCGI:
		return fastCGITerminatedHint
	case d.Cause == SocketPermissionDenied && d.FastCGI:
		return fastCGISocketHint
	case d.Cause == HTTPResponseIncomplete && d.FastCGI:
		return fastCGIIncompleteHint
	case d.Cause == HTTPProtocolError && d.Answered == AnsweredHTTP:
		return answeredHTTPHint
	case d.Cause == HTTPProtocolError && d.Answered == AnsweredFastCGI:
		return answeredFastCGIHint
	case d.Cause == HTTPProtocolError && d.FastCGI:
		return fastCGIProtocolHint
	case d.Pool && (d.Cause == HTTPResponseTimeout || d.Cause == ConnectionTimeout):
		return fastCGIBusyHint
	}
	return d.Cause.Hint()
}

// The hints of a FastCGI upstream (PHP-FPM), and of the wrong protocol.
const (
	fastCGITerminatedHint = "PHP-FPM closed or reset the connection without FCGI_END_REQUEST: its worker died in the middle of the request. " +
		"request_terminate_timeout killed it (php-fpm's log: \"execution timed out\"), it ran out of memory (memory_limit is PHP's own error; the OOM killer is the kernel's log), " +
		"or it crashed (\"exited on signal\"); max_execution_time ends a script with a PHP fatal error instead. See the FPM log at this time."
	fastCGIIncompleteHint = "PHP-FPM's worker died after the script had begun its answer (no FCGI_END_REQUEST), or the script sent less than its Content-Length: " +
		"request_terminate_timeout, memory_limit or a crash; see the FPM log at this time."
	fastCGISocketHint = "upmedic's user may not connect to PHP-FPM's pool socket: php-fpm creates it with listen.owner, listen.group and listen.mode " +
		"(by default owned by the pool's user, mode 0660). Set listen.group to a group upmedic's user is in (or listen.owner to that user) and listen.mode = 0660, " +
		"and give search (x) on every parent directory; `upmedic diag probe --as USER fastcgi://unix:/path` tests it."
	answeredHTTPHint = "the upstream answered FastCGI with HTTP: an HTTP server (nginx, Node, gunicorn) listens there, not PHP-FPM. " +
		"Point UPMEDIC_UPSTREAM at PHP-FPM's listen address, or use http:// for an HTTP app."
	answeredFastCGIHint = "the upstream answered HTTP with FastCGI records: a FastCGI server (PHP-FPM) listens there. " +
		"Use UPMEDIC_UPSTREAM=fastcgi://... with UPMEDIC_FASTCGI_ROOT."
	fastCGIProtocolHint = "the upstream broke the FastCGI protocol or sent a CGI header that is not valid: it may not be PHP-FPM " +
		"(a uwsgi, TLS or database port, or an HTTP server that said nothing), or a script wrote a malformed header line (Status, a name with a space)."
	fastCGIBusyHint = "every PHP-FPM worker was busy (pm.max_children reached; see listen-queue, active-processes, max-children from pm.status_path): " +
		"the request waited for a free worker. Find the slow scripts (request_slowlog_timeout, slowlog) or raise pm.max_children if memory allows."
)

// appendTimerHint appends the hint of a premature close at the age of a kill
// timer in the app: "closed at 30.2 s like the 4 before it: a timer in the
// app kills requests at ~30 s: gunicorn --timeout, ...". A FastCGI upstream
// is PHP-FPM (or uWSGI), never gunicorn.
func (d *Diagnosis) appendTimerHint(dst []byte) []byte {
	dst = append(dst, "closed at "...)
	dst = strconv.AppendFloat(dst, d.ClosedAt.Seconds(), 'f', 1, 64)
	dst = append(dst, " s like the "...)
	dst = strconv.AppendInt(dst, int64(d.TimerPrior), 10)
	dst = append(dst, " before it: a timer in the app kills requests at ~"...)
	dst = strconv.AppendInt(dst, int64(d.Timer.Seconds()), 10)
	if d.FastCGI {
		dst = append(dst, " s: php-fpm request_terminate_timeout (the pool's, else the global one), uwsgi harakiri;"+
			` the app's log says which (php-fpm "execution timed out", uwsgi "HARAKIRI").`...)
	} else {
		dst = append(dst, " s: gunicorn --timeout, php-fpm request_terminate_timeout, uwsgi harakiri;"+
			` the app's log says which (gunicorn "WORKER TIMEOUT", php-fpm "execution timed out", uwsgi "HARAKIRI").`...)
	}
	return append(dst, " Make the request faster or raise that timer above it, and keep it below UPMEDIC_RESPONSE_TIMEOUT."...)
}
