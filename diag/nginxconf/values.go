package nginxconf

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// parseTime reads an nginx time value as ngx_parse_time does: numbers with
// units ms, s, m, h, d, w, M (30 days), y (365 days), in any order and
// count ("1h30m"); a number without a unit is seconds.
func parseTime(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			return 0, false
		}
		n, _ := strconv.Atoi(s[:i])
		s = s[i:]
		unit := time.Second
		switch {
		case strings.HasPrefix(s, "ms"):
			unit, s = time.Millisecond, s[2:]
		case s == "":
		default:
			switch s[0] {
			case 's':
			case 'm':
				unit = time.Minute
			case 'h':
				unit = time.Hour
			case 'd':
				unit = 24 * time.Hour
			case 'w':
				unit = 7 * 24 * time.Hour
			case 'M':
				unit = 30 * 24 * time.Hour
			case 'y':
				unit = 365 * 24 * time.Hour
			default:
				return 0, false
			}
			s = s[1:]
		}
		total += time.Duration(n) * unit
		if total < 0 || total > 100*365*24*time.Hour {
			return 0, false
		}
	}
	return total, true
}

// parseSize reads an nginx size value as ngx_parse_size does: a number of
// bytes, or of kilobytes, megabytes or gigabytes with k, m or g (either
// case).
func parseSize(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	mult := 1
	switch s[len(s)-1] {
	case 'k', 'K':
		mult, s = 1<<10, s[:len(s)-1]
	case 'm', 'M':
		mult, s = 1<<20, s[:len(s)-1]
	case 'g', 'G':
		mult, s = 1<<30, s[:len(s)-1]
	}
	if s == "" || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	return n * mult, true
}

// fmtTime writes d as nginx reads it: "45s", "1500ms", "2m", "1h".
func fmtTime(d time.Duration) string {
	switch {
	case d%time.Second != 0:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d >= time.Minute && d%time.Minute == 0 && d > 2*time.Minute:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// fmtSize writes n bytes as nginx reads it, in k when it is a whole number
// of kilobytes.
func fmtSize(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return strconv.Itoa(n>>10) + "k"
	}
	return strconv.Itoa(n)
}

// endpoint is a TCP host and port or a unix socket path. Its zero value is
// no address.
type endpoint struct {
	unix bool
	path string // unix
	host string // tcp, lower case, without brackets; "" for any address
	port string
}

func (e endpoint) valid() bool { return e.path != "" || e.port != "" }

// String writes e as UPMEDIC_LISTEN and nginx's server directive do:
// "127.0.0.1:8080", "[::1]:8080", "unix:/run/upmedic.sock".
func (e endpoint) String() string {
	if e.unix {
		return "unix:" + e.path
	}
	return net.JoinHostPort(e.host, e.port)
}

// proxyURL returns e as proxy_pass takes it: "http://127.0.0.1:8080",
// "http://unix:/run/upmedic.sock:".
func (e endpoint) proxyURL() string {
	if e.unix {
		return "http://unix:" + e.path + ":"
	}
	return "http://" + e.String()
}

// parseAddress reads "host:port", "[v6]:port", "unix:/path", and, when
// defaultPort is set, a bare "host" (or a bare port, meaning every address,
// as php-fpm's listen takes it). It reports false for anything else and for
// addresses with variables.
func parseAddress(s, defaultPort string) (endpoint, bool) {
	if strings.Contains(s, "$") || s == "" {
		return endpoint{}, false
	}
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if path == "" {
			return endpoint{}, false
		}
		return endpoint{unix: true, path: filepath.Clean(path)}, true
	}
	if strings.HasPrefix(s, "/") {
		return endpoint{unix: true, path: filepath.Clean(s)}, true // php-fpm's listen
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if defaultPort == "" {
			return endpoint{}, false
		}
		if _, err := strconv.Atoi(s); err == nil {
			host, port = "", s // a port alone: every address
		} else {
			host, port = strings.Trim(s, "[]"), defaultPort
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return endpoint{}, false
	}
	host = strings.ToLower(host)
	if host == "*" {
		host = ""
	}
	return endpoint{host: host, port: port}, true
}

// sameEndpoint reports whether a connect to a reaches what listens on b (or
// the other way round): the same socket path, or the same port on hosts
// that name the same address. localhost is 127.0.0.1 and ::1; a listener on
// every address (0.0.0.0, ::, or no host) is reached through any loopback
// address and any address of this machine.
func sameEndpoint(a, b endpoint, local func(string) bool) bool {
	if a.unix || b.unix {
		return a.unix && b.unix && a.path == b.path
	}
	if a.port != b.port {
		return false
	}
	if a.host == b.host {
		return true
	}
	if isWildcard(a.host) {
		return isLocalHost(b.host, local)
	}
	if isWildcard(b.host) {
		return isLocalHost(a.host, local)
	}
	for _, x := range hostIPs(a.host) {
		for _, y := range hostIPs(b.host) {
			if x == y {
				return true
			}
		}
	}
	return false
}

func isWildcard(h string) bool {
	if h == "" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsUnspecified()
}

// hostIPs returns the addresses a host names without a lookup: localhost's
// two, or the literal IP in canonical form, or the name itself.
func hostIPs(h string) []string {
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return []string{"127.0.0.1", "::1"}
	}
	if ip := net.ParseIP(h); ip != nil {
		return []string{ip.String()}
	}
	return []string{h}
}

func isLocalHost(h string, local func(string) bool) bool {
	for _, ip := range hostIPs(h) {
		if p := net.ParseIP(ip); p != nil && (p.IsLoopback() || (local != nil && local(p.String()))) {
			return true
		}
	}
	return false
}

// isLoopbackListen reports whether an nginx listen address accepts only
// local connections: a unix socket or a loopback address.
func isLoopbackListen(addr string) bool {
	if strings.HasPrefix(addr, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		if _, err := strconv.Atoi(addr); err == nil {
			return false // a port alone: every address
		}
		host = strings.Trim(addr, "[]")
	}
	for _, ip := range hostIPs(strings.ToLower(host)) {
		if p := net.ParseIP(ip); p == nil || !p.IsLoopback() {
			return false
		}
	}
	return true
}
