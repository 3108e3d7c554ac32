package nginxlog

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// This file says what to do about a failure in the terms of the hop that
// failed. A line whose upstream is the app (nginx -> app, the error.log
// before upmedic) gets a fix in nginx's terms: its worker user, its
// *_read_timeout and *_buffer_size directives. A line whose upstream is
// upmedic (nginx -> upmedic) gets upmedic's terms; one where nginx could not
// reach upmedic at all is its own group, upmedic_unreachable.

// debianNginxUser is nginx's worker user on Debian and Ubuntu, named when
// nginx.conf was not read.
const debianNginxUser = "www-data"

// defaultUpmedicIdle is how long upmedic keeps an idle connection from
// nginx, named in the fix for a close on a reused connection.
const defaultUpmedicIdle = 75 * time.Second

// hop says which hop a line is about.
type hop struct {
	toUpmedic bool
	scheme    string // "http", "fastcgi", "uwsgi", ... ("" for the stream module)
	peer      string // "127.0.0.1:8080", "unix:/run/app.sock", or an upstream block's name
}

// splitUpstream splits a group's upstream ("fastcgi://unix:/run/php.sock")
// into its scheme and peer.
func splitUpstream(upstream string) (scheme, peer string) {
	if s, p, ok := strings.Cut(upstream, "://"); ok {
		return s, p
	}
	return "", upstream
}

// hopOf decides which hop upstream is: upmedic when its peer is
// Options.Listen or one of Options.UpmedicUpstreams.
func (o *Options) hopOf(upstream string) hop {
	scheme, peer := splitUpstream(upstream)
	h := hop{scheme: scheme, peer: peer}
	for _, name := range o.UpmedicUpstreams {
		if strings.EqualFold(peer, name) {
			h.toUpmedic = true
		}
	}
	if o.Listen != "" && samePeer(peer, o.Listen) {
		h.toUpmedic = true
	}
	return h
}

// samePeer reports whether nginx's peer (an IP:port or unix:/path, as
// nginx logs it) is the address upmedic listens on, which may be on every
// address (0.0.0.0:8080, :8080).
func samePeer(peer, listen string) bool {
	if strings.HasPrefix(peer, "unix:") || strings.HasPrefix(listen, "unix:") {
		return strings.HasPrefix(peer, "unix:") && strings.HasPrefix(listen, "unix:") &&
			filepath.Clean(peer[len("unix:"):]) == filepath.Clean(listen[len("unix:"):])
	}
	ph, pp, err1 := net.SplitHostPort(peer)
	lh, lp, err2 := net.SplitHostPort(listen)
	if err1 != nil || err2 != nil || pp != lp {
		return false
	}
	pip, lip := net.ParseIP(ph), net.ParseIP(lh)
	switch {
	case strings.EqualFold(ph, lh):
		return true
	case lh == "" || (lip != nil && lip.IsUnspecified()):
		return pip != nil && pip.IsLoopback() || strings.EqualFold(ph, "localhost")
	case pip != nil && lip != nil:
		return pip.Equal(lip)
	case strings.EqualFold(lh, "localhost"):
		return pip != nil && pip.IsLoopback()
	}
	return false
}

// directivePrefix is the module prefix of nginx's directives for a scheme:
// proxy_read_timeout for http, fastcgi_read_timeout for fastcgi.
func directivePrefix(scheme string) string {
	switch scheme {
	case "fastcgi", "uwsgi", "scgi", "grpc":
		return scheme
	case "suwsgi":
		return "uwsgi"
	case "grpcs":
		return "grpc"
	}
	return "proxy"
}

// unreachable is what nginx logs when it cannot connect: these causes, at
// upmedic's address, mean upmedic itself is not there.
var unreachable = []diag.Cause{
	diag.ConnectionRefused, diag.SocketNotFound, diag.SocketPermissionDenied,
	diag.DestinationIPProhibited, diag.DestinationIPUnroutable, diag.ConnectionTimeout,
	diag.ConnectionLimitReached, diag.UpstreamUnhealthy,
}

// explain returns the group name and fix for finding f of line l at
// upstream, and whether the line is about the hop to upmedic. For
// upmedic_unreachable the fix covers this line's cause; Analyze rewrites
// it once the group is complete, to cover every cause the group holds.
func (o *Options) explain(f nginxFinding, l *Line, upstream string) (name, fix string, toUpmedic bool) {
	h := o.hopOf(upstream)
	if f.kind != kindNone {
		return f.name(), f.fix(), h.toUpmedic
	}
	if h.toUpmedic {
		if slices.Contains(unreachable, f.cause) {
			return nginxKinds[kindUpmedicUnreachable].name, o.unreachableFix([]diag.Cause{f.cause}, h), true
		}
		return f.name(), o.upmedicFix(f.cause), true
	}
	return f.name(), o.appFix(f.cause, h, l), false
}

// worker names nginx's worker user and where that name comes from.
func (o *Options) worker() (name, from string) {
	if o.NginxUser == "" {
		return debianNginxUser, "Debian's default; nginx.conf was not read"
	}
	from = o.NginxUserFrom
	if from == "" {
		from = "nginx.conf"
	}
	return o.NginxUser, from
}

// appFix says, in nginx's terms, what to do about cause on the hop from
// nginx to the app.
func (o *Options) appFix(cause diag.Cause, h hop, l *Line) string {
	px := directivePrefix(h.scheme)
	pass := px + "_pass"
	path, _ := strings.CutPrefix(h.peer, "unix:")
	switch cause {
	case diag.ConnectionRefused:
		return "nothing listens on the address " + pass + " names: is the app running, bound to this address and port, or restarting? A unix socket file with no listener is left over from an app that died."
	case diag.SocketNotFound:
		return "the socket " + path + " that " + pass + " names does not exist: the app has not started (or failed to), the app and nginx use different paths, or one of them runs with a private /tmp (systemd PrivateTmp) or in another container or mount namespace."
	case diag.SocketPermissionDenied:
		user, from := o.worker()
		var where string
		switch h.scheme {
		case "fastcgi":
			where = "in the php-fpm pool: listen.owner = " + user + ", listen.group = " + user + ", listen.mode = 0660"
		case "uwsgi", "suwsgi":
			where = "with uwsgi --chown-socket <app user>:" + user + " --chmod-socket=660"
		default:
			where = "with gunicorn --group " + user + " --umask 007 (the socket becomes 0770), or the app server's own socket group and mode settings"
		}
		return fmt.Sprintf("nginx's workers run as %s (%s) and may not connect to %s: that needs write permission on the socket and search (x) on every directory above it. %s"+
			"Give the socket a group %s is in, writable by the group, where the app creates it: %s; or add %s to the socket's group (usermod -aG <group> %s) and restart nginx.",
			user, from, path, o.accessFacts(path, user), user, where, user, user)
	case diag.DNSError:
		if strings.Contains(l.nginxEvent(), "could not be resolved") {
			return "nginx's own resolver (the resolver directive, used when " + pass + " has a variable) does not know the name, and it does not read /etc/hosts: check the name and the resolver address (in Docker: resolver 127.0.0.11)."
		}
	case diag.DNSTimeout:
		return "nginx's resolver (the resolver directive) did not answer within resolver_timeout (default 30s): check that the resolver address answers DNS (in Docker: resolver 127.0.0.11), or use an IP address."
	case diag.ConnectionTimeout:
		return "the app did not accept nginx's connection within " + px + "_connect_timeout (default 60s): its listen queue is full (all workers busy), or a firewall drops the SYN."
	case diag.ConnectionLimitReached:
		return "the listen backlog of the app's unix socket is full (EAGAIN): it accepts connections slower than they arrive; add workers or raise the backlog (gunicorn --backlog, php-fpm listen.backlog, net.core.somaxconn)."
	case diag.HTTPResponseTimeout:
		return "the app sent no response header within " + px + "_read_timeout (default 60s; " + px + "_send_timeout while nginx was still sending the request): a slow request or a stuck worker. Raise it only if the slowness is expected, and keep it above the app's own timeout (gunicorn --timeout, php-fpm request_terminate_timeout)."
	case diag.HTTPResponseHeaderSectionSize:
		return "the app's response header is larger than " + px + "_buffer_size (default one memory page, 4k): usually large Set-Cookie values; shrink them, or raise the buffer (" + px + "_buffer_size 16k; " + px + "_buffers 8 16k;)."
	case diag.HTTPProtocolError:
		if h.scheme == "fastcgi" {
			return "what answers at the address fastcgi_pass names does not speak FastCGI (\"protocol version: 72\" is the H of an HTTP answer): an HTTP server needs proxy_pass, a uwsgi one uwsgi_pass."
		}
	case diag.ConnectionReadTimeout:
		return "the app went silent for longer than " + px + "_read_timeout (default 60s) in the middle of its response body: a stuck worker or a slow generator; for server-sent events, have the app send a comment line more often, or raise the timeout for that location."
	case diag.UpstreamUnhealthy:
		return "nginx marked every server of this upstream{} block down (max_fails failures within fail_timeout; by default 1 in 10s) and waits fail_timeout before it tries again: the lines before this one say why they failed."
	}
	return cause.Hint()
}

// upmedicFix says, in upmedic's terms, what to do about cause on the hop
// from nginx to upmedic, which upmedic reached.
func (o *Options) upmedicFix(cause diag.Cause) string {
	switch cause {
	case diag.HTTPResponseTimeout:
		return "nginx gave up before upmedic answered: upmedic answers a diagnosed 504 by UPMEDIC_RESPONSE_TIMEOUT" + o.setting(o.ResponseTimeout) +
			", so nginx's proxy_read_timeout (and proxy_send_timeout, for request bodies) must exceed it; `upmedic diag nginx-conf` checks the chain."
	case diag.ConnectionReadTimeout:
		return "upmedic's response body went silent for longer than nginx's proxy_read_timeout: the app's body stalled while upmedic streamed it (upmedic cuts it after UPMEDIC_READ_TIMEOUT" + o.setting(o.ReadTimeout) +
			"); keep proxy_read_timeout above UPMEDIC_READ_TIMEOUT, and see upmedic's log for the app."
	case diag.HTTPResponseHeaderSectionSize:
		limit := ""
		if o.MaxResponseHeaderBytes > 0 {
			limit = " " + strconv.Itoa(o.MaxResponseHeaderBytes)
		}
		return "nginx's proxy_buffer_size is smaller than the header sections upmedic lets through, UPMEDIC_MAX_RESPONSE_HEADER_BYTES" + limit +
			" plus its diagnosis headers: raise proxy_buffer_size (8k for the default) so that upmedic, not nginx, diagnoses an oversized header."
	case diag.ConnectionTerminated:
		return "upmedic closed the connection before answering: it was restarting or crashed (see its log: journalctl -u upmedic), or nginx sent the request on an idle keep-alive connection upmedic had just closed; keep keepalive_timeout in nginx's upstream block below upmedic's " +
			strconv.Itoa(int(defaultUpmedicIdle/time.Second)) + "s."
	case diag.HTTPResponseIncomplete:
		return "upmedic cut the response after its status had gone out, because the app's body failed while upmedic streamed it (a body over UPMEDIC_BUFFER_BYTES, or chunked): upmedic's log and /status (recent[] with \"aborted\": true) name the app's failure."
	case diag.HTTPProtocolError:
		return "nginx could not parse what answered at upmedic's address: is something other than upmedic listening on UPMEDIC_LISTEN? If it is upmedic, please report the line."
	}
	return cause.Hint()
}

// accessFacts describes the socket at path as username meets it now, when
// Options.CheckSockets is set.
func (o *Options) accessFacts(path, username string) string {
	if !o.CheckSockets {
		return ""
	}
	return accessFacts(path, username)
}

// setting writes a duration setting's value for a fix: " 45s", or "" when
// unknown.
func (o *Options) setting(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	if d%time.Second == 0 {
		return " " + strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return " " + d.String()
}

// unreachableFix says why nginx could not reach upmedic at all, with a
// sentence for each of the causes its lines showed, in the order they
// first came.
func (o *Options) unreachableFix(causes []diag.Cause, h hop) string {
	listen := o.Listen
	if listen == "" {
		listen = h.peer
	}
	fix := "upmedic is not running or not listening where nginx expects it (UPMEDIC_LISTEN=" + listen + "): check `systemctl status upmedic` (or its container) and `upmedic check`, and that UPMEDIC_LISTEN is the address in nginx's proxy_pass or upstream block."
	path, unix := strings.CutPrefix(h.peer, "unix:")
	for _, cause := range causes {
		switch cause {
		case diag.ConnectionRefused:
			fix += " Refused: nothing listens there; upmedic is stopped, crashed or still starting."
			if unix {
				fix += " A socket file with no listener is left over from an upmedic that died."
			}
		case diag.SocketNotFound:
			fix += " Not found: the socket " + path + " does not exist; upmedic is not running, listens elsewhere, or runs with a private /tmp or in another mount namespace."
		case diag.SocketPermissionDenied:
			user, from := o.worker()
			fix += fmt.Sprintf(" Permission denied: nginx's workers run as %s (%s) and may not connect to upmedic's socket %s; set UPMEDIC_LISTEN_MODE=0660 and give the socket a group %s is in (SupplementaryGroups= or Group= in upmedic's unit), or add %s to upmedic's group.",
				user, from, path, user, user)
			if facts := strings.TrimSpace(o.accessFacts(path, user)); facts != "" {
				fix += " " + facts
			}
		case diag.ConnectionTimeout, diag.ConnectionLimitReached:
			fix += " Not accepted in time: upmedic is running but overloaded or stuck; see its log and /metrics."
		case diag.UpstreamUnhealthy:
			fix += " No live upstreams: nginx marked upmedic down after failed connects (max_fails within fail_timeout); the lines before say why."
		default:
			fix += " " + cause.Hint()
		}
	}
	return fix
}
