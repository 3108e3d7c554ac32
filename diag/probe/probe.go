// Package probe is upmedic's one-shot doctor for an upstream: it connects
// once (and sends one health request), as the user the process runs as, and
// explains in findings what upmedic's proxy would diagnose and how to fix
// it: socket modes and parent directories against the user's uid and
// groups, SELinux, DNS, listen backlogs, slow or oversized responses, and
// servers that do not speak HTTP. It names causes with package diag.
package probe

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// The probe's defaults and bounds. The defaults match upmedic's own
// (UPMEDIC_CONNECT_TIMEOUT, UPMEDIC_RESPONSE_TIMEOUT,
// UPMEDIC_MAX_RESPONSE_HEADER_BYTES) so the doctor judges by the proxy's rules.
const (
	defaultProbeConnectTimeout  = 2 * time.Second
	defaultProbeResponseTimeout = 30 * time.Second
	defaultProbeMaxHeaderBytes  = 4096
	defaultSELinuxRoot          = "/sys/fs/selinux"

	// probeHeaderCap is how much of a response header section the probe
	// reads to measure it, whatever MaxHeaderBytes says.
	probeHeaderCap = 1 << 20
)

// Settings says what Check checks and by which limits. Its zero value
// is not useful (Address is required); every other zero field gets the
// default its comment names.
type Settings struct {
	// Network is "tcp" or "unix". Empty means "unix" when Address starts with
	// "/" or "@" (an abstract socket), else "tcp".
	Network string
	// Address is "host:port" for tcp, the socket path for unix.
	Address string
	// Display is the upstream as the operator configured it
	// ("unix:/run/app.sock"), used in the report's title. Empty means
	// "unix:<Address>" or Address.
	Display string
	// HealthPath is the path requested with one HTTP/1.1 GET. Empty means
	// connect only; a path without a leading "/" gets one.
	HealthPath string
	// Host is the Host header sent with HealthPath. Empty means Address for
	// tcp and "localhost" for unix.
	Host string
	// ConnectTimeout bounds the name lookup and connect. Zero means 2s.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds the wait for the complete response header
	// section, from the request written. Zero means 30s.
	ResponseTimeout time.Duration
	// MaxHeaderBytes is the largest header section (status line, fields and
	// the blank line) the proxy accepts. Zero means 4096.
	MaxHeaderBytes int
	// SELinuxRoot is where selinuxfs is mounted. Empty means /sys/fs/selinux;
	// tests point it at a fake directory.
	SELinuxRoot string
	// TestAs names, for a probe run as root, the users whose access to a
	// unix socket matters, each with why ("www-data: nginx's workers, user
	// in /etc/nginx/nginx.conf:1"): root may connect to any socket, so the
	// report says to run the probe as each of them. Nil names only
	// upmedic's own user.
	TestAs []string

	// FastCGI makes the probe speak FastCGI (php-fpm) after the connect:
	// FCGI_GET_VALUES, then HealthPath as php-fpm's ping.path (expects
	// pong), then StatusPath. False means HTTP.
	FastCGI bool
	// StatusPath is php-fpm's pm.status_path, read with ?json when FastCGI
	// is set. Empty reads none.
	StatusPath string
	// StatusNetwork and StatusAddress are where the status page is served
	// (pm.status_listen). Empty StatusAddress means Network and Address.
	StatusNetwork, StatusAddress string
}

func (s Settings) withDefaults() Settings {
	s.Address = strings.TrimPrefix(s.Address, "unix:")
	if s.Network == "" {
		s.Network = "tcp"
		if strings.HasPrefix(s.Address, "/") || strings.HasPrefix(s.Address, "@") {
			s.Network = "unix"
		}
	}
	if s.Display == "" {
		s.Display = s.Address
		if s.Network == "unix" {
			s.Display = "unix:" + s.Address
		}
	}
	if s.HealthPath != "" && !strings.HasPrefix(s.HealthPath, "/") {
		s.HealthPath = "/" + s.HealthPath
	}
	if s.Host == "" {
		s.Host = s.Address
		if s.Network == "unix" {
			s.Host = "localhost"
		}
	}
	if s.ConnectTimeout <= 0 {
		s.ConnectTimeout = defaultProbeConnectTimeout
	}
	if s.ResponseTimeout <= 0 {
		s.ResponseTimeout = defaultProbeResponseTimeout
	}
	if s.MaxHeaderBytes <= 0 {
		s.MaxHeaderBytes = defaultProbeMaxHeaderBytes
	}
	if s.SELinuxRoot == "" {
		s.SELinuxRoot = defaultSELinuxRoot
	}
	return s
}

// Severity grades a Finding. The zero Severity is SeverityOK.
type Severity uint8

// The severities, mildest first. Only SeverityFail makes a report unhealthy.
const (
	SeverityOK   Severity = iota // works as it should; may carry advice
	SeverityWarn                 // works now, but is close to a limit or fragile
	SeverityFail                 // the proxy would answer with a diagnosis
)

var severityNames = [...]string{"ok", "warn", "fail"}

// String returns "ok", "warn" or "fail".
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText returns s.String(), so Severity is a string in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Finding is one thing the probe found, and what to do about it.
type Finding struct {
	// Cause is what upmedic's proxy would report for the same fault, or
	// None when the finding has no proxy cause (a healthy step, a 4xx on
	// the health path).
	Cause    diag.Cause
	Severity Severity
	// Title is one line saying what was found.
	Title string
	// Details are the facts behind it, one a line.
	Details []string
	// Fix is the remedy, one step or command a line; empty when there is
	// nothing to do.
	Fix []string
}

// ID is a numeric user or group id and its name ("" when it has none).
type ID struct {
	ID   int
	Name string
}

// String returns "65534(nobody)", or "4242" for an id without a name.
func (p ID) String() string {
	if p.Name == "" {
		return strconv.Itoa(p.ID)
	}
	return strconv.Itoa(p.ID) + "(" + p.Name + ")"
}

// label returns the name when there is one, else the number: what a shell
// command (usermod, chgrp) accepts.
func (p ID) label() string {
	if p.Name == "" {
		return strconv.Itoa(p.ID)
	}
	return p.Name
}

// Identity is who the probe ran as: file permissions are checked for
// this user, not for whoever runs the proxy.
type Identity struct {
	User   ID   // effective uid
	Group  ID   // effective gid
	Groups []ID // supplementary groups (os.Getgroups)
}

// inGroup reports whether gid is the effective or a supplementary group.
func (id *Identity) inGroup(gid int) bool {
	if gid == id.Group.ID {
		return true
	}
	for _, g := range id.Groups {
		if g.ID == gid {
			return true
		}
	}
	return false
}

func (id *Identity) isRoot() bool { return id.User.ID == 0 }

// String returns the identity the way id(1) prints it.
func (id *Identity) String() string {
	var b strings.Builder
	b.WriteString("uid=" + id.User.String() + " gid=" + id.Group.String() + " groups=")
	if len(id.Groups) == 0 {
		b.WriteString("(none)")
	}
	for i, g := range id.Groups {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(g.String())
	}
	return b.String()
}

func currentIdentity() Identity {
	id := Identity{User: userID(os.Geteuid()), Group: groupID(os.Getegid())}
	groups, _ := os.Getgroups() // on error the probe judges by the primary group alone
	for _, g := range groups {
		id.Groups = append(id.Groups, groupID(g))
	}
	return id
}

func userID(uid int) ID {
	p := ID{ID: uid}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		p.Name = u.Username
	}
	return p
}

func groupID(gid int) ID {
	p := ID{ID: gid}
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		p.Name = g.Name
	}
	return p
}

// Report is what one Check found. Findings are in the order the probe
// met them: connect first, then the HTTP exchange.
type Report struct {
	Upstream   string // Settings.Display
	Network    string // "tcp" or "unix"
	Address    string
	HealthPath string // "" when the probe only connected
	Host       string // the Host header sent with HealthPath
	Identity   Identity

	Connected bool
	// ConnectTime is how long the connect took, or how long it took to fail.
	ConnectTime time.Duration
	// Errno is the errno the connect failed with, 0 when it has none.
	Errno syscall.Errno
	// Status is the health path's response status, 0 when there is none.
	Status int
	// FirstByte is the time from the request written to the first response
	// byte, 0 when none arrived.
	FirstByte time.Duration
	// HeaderSectionSize is the measured size of the response's status line,
	// header fields and blank line, 0 when not measured. It is at most 1 MiB;
	// a larger section reports 1 MiB and a finding says so.
	HeaderSectionSize int
	// Settings are the limits the probe judged by, defaults filled in.
	Settings Settings

	Findings []Finding
}

// Healthy reports whether no finding is a failure: the proxy would forward
// requests to this upstream without diagnosing a fault. Warnings do not
// count. The CLI exits 0 when Healthy is true.
func (r *Report) Healthy() bool {
	for i := range r.Findings {
		if r.Findings[i].Severity == SeverityFail {
			return false
		}
	}
	return true
}

func (r *Report) add(f Finding) { r.Findings = append(r.Findings, f) }

// prober carries one Check's state.
type prober struct {
	s  Settings
	r  *Report
	id *Identity
}

// Check connects to the upstream in s once, as the user the process runs as,
// and, when s.HealthPath is set, sends one HTTP/1.1 GET with Connection:
// close and reads the response header section. It explains every finding in
// the report and returns; it never returns nil. ctx bounds the whole probe.
//
// Check is a one-shot doctor for a command line: it allocates freely and
// reads the file system (socket and directory modes, selinuxfs).
func Check(ctx context.Context, s Settings) *Report {
	s = s.withDefaults()
	r := &Report{
		Upstream:   s.Display,
		Network:    s.Network,
		Address:    s.Address,
		HealthPath: s.HealthPath,
		Identity:   currentIdentity(),
		Settings:   s,
	}
	if s.HealthPath != "" {
		r.Host = s.Host
	}
	p := &prober{s: s, r: r, id: &r.Identity}

	if s.Network != "tcp" && s.Network != "unix" && s.Network != "tcp4" && s.Network != "tcp6" {
		r.add(Finding{Severity: SeverityFail,
			Title: fmt.Sprintf("unsupported network %q", s.Network),
			Fix:   []string{"use a tcp address (host:port) or a unix socket (unix:/path/to.sock) in UPMEDIC_UPSTREAM"}})
		return r
	}
	if s.Address == "" {
		r.add(Finding{Severity: SeverityFail, Title: "no upstream address",
			Fix: []string{"set UPMEDIC_UPSTREAM to host:port or unix:/path/to.sock"}})
		return r
	}

	start := time.Now()
	d := net.Dialer{Timeout: s.ConnectTimeout}
	conn, err := d.DialContext(ctx, s.Network, s.Address)
	r.ConnectTime = time.Since(start)
	if err != nil {
		r.Errno = diag.Errno(err)
		p.explainConnect(ctx, err)
		p.fpmConnectHints()
		return r
	}
	defer conn.Close()
	r.Connected = true
	p.connected()

	if s.FastCGI {
		p.fastCGI(ctx, conn)
		return r
	}
	if s.HealthPath == "" {
		r.add(Finding{Severity: SeverityOK,
			Title:   "no health path: HTTP was not checked",
			Details: []string{"the probe only connected; a wrong protocol, a slow app or oversized headers show only with a request"},
			Fix:     []string{"set UPMEDIC_HEALTH_PATH (e.g. /healthz) to also check the HTTP response"}})
		return r
	}
	p.exchange(ctx, conn)
	return r
}

// connected records the successful connect.
func (p *prober) connected() {
	f := Finding{Severity: SeverityOK,
		Title: fmt.Sprintf("connected to %s in %s", p.s.Address, fmtDuration(p.r.ConnectTime))}
	if p.s.Network == "unix" {
		if d := p.describeSocket(); d != "" {
			f.Details = append(f.Details, d)
			if p.s.FastCGI {
				f.Details = append(f.Details, "php-fpm gives its socket the pool's listen.owner, listen.group and listen.mode: nginx needed them to allow its workers, upmedic needs them to allow its own user")
			}
		}
		if p.id.isRoot() {
			p.r.add(f)
			p.r.add(p.rootWarning())
			return
		}
	}
	p.r.add(f)
}

// rootWarning says that a connect made as root proves nothing about
// socket permissions, and as whom to run the probe instead.
func (p *prober) rootWarning() Finding {
	f := Finding{Severity: SeverityWarn,
		Title: "ran as root: socket permissions were not tested",
		Details: []string{
			"root may connect to any socket whatever its owner and mode, so this connect says nothing about the users that connect to it",
		},
	}
	users := append(slices.Clip(p.s.TestAs), "<upmedic's user>: User= in upmedic's unit; with DynamicUser=yes its uid while it runs, ps -o uid= -p $(systemctl show -p MainPID --value upmedic); 65532 in upmedic's image")
	for _, u := range users {
		name, why, _ := strings.Cut(u, ": ")
		f.Fix = append(f.Fix, "upmedic diag probe --as "+name+" "+p.s.Display+"   # "+why)
	}
	return f
}

// explainConnect turns a failed connect into findings.
func (p *prober) explainConnect(ctx context.Context, err error) {
	cause := diag.Classify(err)
	errno := diag.ErrnoName(p.r.Errno)
	if ctx.Err() != nil && cause != diag.ConnectionTimeout {
		p.r.add(Finding{Severity: SeverityFail, Title: "probe cancelled while connecting",
			Details: []string{err.Error()}})
		return
	}
	if p.s.Network == "unix" {
		switch cause {
		case diag.SocketNotFound:
			p.explainMissing(errno)
			return
		case diag.SocketPermissionDenied:
			p.explainPermission(cause, errno)
			return
		case diag.ConnectionRefused:
			p.explainRefusedSocket(errno)
			return
		}
	}
	switch cause {
	case diag.ConnectionRefused:
		p.explainRefusedTCP(errno)
	case diag.DestinationIPProhibited:
		p.explainProhibited(errno)
	case diag.DestinationIPUnroutable:
		p.r.add(Finding{Cause: cause, Severity: SeverityFail,
			Title: fmt.Sprintf("no route to %s (%s)", p.s.Address, errno),
			Details: []string{
				"the kernel has no route to this address, or it is a broadcast, multicast or unconfigured local address",
				"in Docker, containers reach each other only on a shared network, by service name",
			},
			Fix: []string{
				"check the address and the route: ip route get " + hostOf(p.s.Address),
				"use the app's service name or IP on a network both share (docker network inspect)",
			}})
	case diag.DNSError, diag.DNSTimeout:
		p.explainDNS(cause, err)
	case diag.ConnectionLimitReached:
		p.r.add(Finding{Cause: cause, Severity: SeverityFail,
			Title: fmt.Sprintf("the listen backlog of %s is full (%s)", p.s.Address, errno),
			Details: []string{
				"the app accepts connections slower than they arrive: all its workers are busy, or something blocks them",
			},
			Fix: []string{
				"find what keeps the workers busy (the app's log, slow requests), or add workers",
				"raise the backlog: gunicorn --backlog 2048, php-fpm listen.backlog = 2048, and sysctl net.core.somaxconn (the kernel caps every backlog at it)",
			}})
	case diag.ConnectionTimeout:
		p.r.add(Finding{Cause: cause, Severity: SeverityFail,
			Title: fmt.Sprintf("connect to %s did not finish within %s", p.s.Address, p.s.ConnectTimeout),
			Details: []string{
				"nothing answered: a firewall drops the packets, the host is down, or the app's accept queue is full (all workers busy)",
			},
			Fix: []string{
				"on the app's host, see whether the listen queue overflows: ss -ltn 'sport = :" + portOf(p.s.Address) + "' (Recv-Q at Send-Q means full)",
				"check firewalls between the two (iptables -S, nft list ruleset, security groups)",
				"add app workers, or raise UPMEDIC_CONNECT_TIMEOUT if the app is only slow to accept",
			}})
	default:
		p.r.add(Finding{Cause: cause, Severity: SeverityFail,
			Title:   fmt.Sprintf("connect to %s failed: %s", p.s.Address, cause.Details()),
			Details: []string{err.Error()},
			Fix:     []string{cause.Hint()}})
	}
}

func (p *prober) explainRefusedTCP(errno string) {
	port := portOf(p.s.Address)
	details := []string{fmt.Sprintf("the connect was refused (%s) after %s: nothing listens on this address and port", errno, fmtDuration(p.r.ConnectTime))}
	if isLoopbackHost(hostOf(p.s.Address)) {
		details = append(details,
			hostOf(p.s.Address)+" is the loopback of the machine upmedic runs on; inside a container, localhost is the container itself, not the Docker host and not another container")
	}
	details = append(details, "an app bound to another address (::1, a container IP, a unix socket) refuses connections on this one")
	p.r.add(Finding{Cause: diag.ConnectionRefused, Severity: SeverityFail,
		Title:   "nothing listens on " + p.s.Address,
		Details: details,
		Fix: []string{
			"check that the app runs and where it listens: ss -ltnp 'sport = :" + port + "'",
			"make UPMEDIC_UPSTREAM and the app's bind address agree (e.g. gunicorn --bind " + p.s.Address + ")",
			"in a container, use the app's service name or host.docker.internal instead of localhost",
			"if the app is only restarting, UPMEDIC_HOLD=5s holds requests through the gap",
		}})
}

func (p *prober) explainDNS(cause diag.Cause, err error) {
	host := hostOf(p.s.Address)
	title := "the name " + host + " does not resolve"
	if cause == diag.DNSTimeout {
		title = "the lookup of " + host + " timed out"
	}
	f := Finding{Cause: cause, Severity: SeverityFail, Title: title, Details: []string{err.Error()},
		Fix: []string{
			"check the name as upmedic sees it: getent hosts " + host,
			"check /etc/hosts and the resolver in /etc/resolv.conf",
			"in Docker Compose, the upstream is the service name, and both services must share a network",
			"or use an IP address in UPMEDIC_UPSTREAM",
		}}
	if cause == diag.DNSTimeout {
		f.Details = append(f.Details, "the resolver did not answer within "+p.s.ConnectTimeout.String())
	}
	p.r.add(f)
}

func (p *prober) explainProhibited(errno string) {
	se := readSELinux(p.s.SELinuxRoot)
	f := Finding{Cause: diag.DestinationIPProhibited, Severity: SeverityFail,
		Title:   fmt.Sprintf("the kernel refused the connect to %s (%s)", p.s.Address, errno),
		Details: []string{"the connect never reached the network: a security policy on this machine forbids it"}}
	switch {
	case se.enforcing && se.boolKnown && !se.networkConnect:
		f.Details = append(f.Details,
			"SELinux is enforcing ("+se.enforcePath+" = 1)",
			"httpd_can_network_connect is off ("+se.boolPath+"): processes in the httpd domain may not open TCP connections")
		f.Fix = []string{
			"allow it, persistently: setsebool -P httpd_can_network_connect 1",
			"confirm the denial first: ausearch -m avc -ts recent | grep name_connect",
		}
	case se.enforcing:
		if se.boolKnown {
			f.Details = append(f.Details, "SELinux is enforcing ("+se.enforcePath+" = 1); httpd_can_network_connect is already on")
		} else {
			f.Details = append(f.Details, "SELinux is enforcing ("+se.enforcePath+" = 1)")
		}
		f.Fix = []string{
			"find the denial: ausearch -m avc -ts recent | grep name_connect",
			"if upmedic runs in the httpd domain: setsebool -P httpd_can_network_connect 1",
			"or label the port: semanage port -a -t http_port_t -p tcp " + portOf(p.s.Address),
		}
	default:
		if se.present {
			f.Details = append(f.Details, "SELinux is not enforcing, so it is not the cause")
		} else {
			f.Details = append(f.Details, "SELinux is not active ("+p.s.SELinuxRoot+" not found)")
		}
		f.Fix = []string{
			"check upmedic's systemd unit for IPAddressDeny=/IPAddressAllow= and SystemCallFilter= (systemctl cat upmedic)",
			"check a container seccomp profile or network policy",
			"check the local firewall's OUTPUT rules: iptables -S OUTPUT; nft list ruleset",
		}
	}
	p.r.add(f)
}

// selinuxState is what selinuxfs says.
type selinuxState struct {
	present, enforcing        bool
	boolKnown, networkConnect bool
	enforcePath, boolPath     string
}

// readSELinux reads the enforce flag and the httpd_can_network_connect boolean
// under root. A missing file means "absent", not an error.
func readSELinux(root string) selinuxState {
	st := selinuxState{
		enforcePath: root + "/enforce",
		boolPath:    root + "/booleans/httpd_can_network_connect",
	}
	b, err := os.ReadFile(st.enforcePath)
	if err != nil {
		return st
	}
	st.present = true
	st.enforcing = strings.TrimSpace(string(b)) == "1"
	if b, err := os.ReadFile(st.boolPath); err == nil {
		// "1 1": the current value, then the pending one.
		if fields := strings.Fields(string(b)); len(fields) > 0 {
			st.boolKnown = true
			st.networkConnect = fields[0] == "1"
		}
	}
	return st
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func portOf(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return port
	}
	return "<port>"
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// fmtDuration prints a measured duration to a useful precision.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	default:
		return d.Round(time.Millisecond).String()
	}
}
