package nginxconf

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The header fields and the log variable the rules look for.
const (
	headerDiagnosis   = "X-Upstream-Diagnosis"
	headerProxyStatus = "Proxy-Status"
	diagnosisVariable = "$upstream_http_x_upstream_diagnosis"
)

// nginx's defaults for the directives the rules read, where the
// configuration leaves them out (proxy_buffer_size defaults to one memory
// page, Settings.PageSize).
const (
	defaultProxyTimeout     = 60 * time.Second // proxy_connect/send/read_timeout, fastcgi_read_timeout
	defaultKeepaliveTimeout = 60 * time.Second // keepalive_timeout in an upstream block
	defaultIdleTimeout      = 75 * time.Second // upmedic's idle limit for connections from nginx

	// maxConnectTimeout is the longest proxy_connect_timeout to upmedic that
	// is not a warning, unless upmedic waits longer for the app.
	maxConnectTimeout = 5 * time.Second
	// timeoutMargin is how much longer than upmedic nginx must wait: nginx's
	// timer starts a little after upmedic's (when nginx has sent the
	// request), and upmedic needs time to send its answer.
	timeoutMargin = time.Second
	// headerRoom is what upmedic may add to a response header section it
	// passes on: X-Upstream-Diagnosis and Proxy-Status on an app's 5xx.
	headerRoom = 256
)

// Settings are upmedic's settings that nginx's configuration must agree
// with, as cmd/upmedic reads them from the environment. Its zero value
// checks nothing but the syntax: a rule that needs a setting left zero is
// skipped.
type Settings struct {
	// Listen is UPMEDIC_LISTEN ("127.0.0.1:8080", "unix:/run/upmedic.sock").
	// A location proxies to upmedic when its proxy_pass names this address,
	// directly or through an upstream{} block. Empty: none does.
	Listen string
	// Upstream is UPMEDIC_UPSTREAM, the app ("127.0.0.1:8000",
	// "unix:/run/gunicorn/app.sock"). A proxy_pass, fastcgi_pass, uwsgi_pass,
	// scgi_pass or grpc_pass to it bypasses upmedic. Empty: bypasses are not
	// looked for.
	Upstream string
	// ConnectTimeout, ResponseTimeout, ReadTimeout and Hold are
	// UPMEDIC_CONNECT_TIMEOUT, _RESPONSE_TIMEOUT, _READ_TIMEOUT and _HOLD.
	// Zero ResponseTimeout skips the timeout rules.
	ConnectTimeout, ResponseTimeout, ReadTimeout, Hold time.Duration
	// MaxResponseHeaderBytes is UPMEDIC_MAX_RESPONSE_HEADER_BYTES. Zero skips
	// the proxy_buffer_size rule.
	MaxResponseHeaderBytes int
	// ExposeDetails is UPMEDIC_EXPOSE_DETAILS: diagnosis headers that reach
	// clients are then an error, not a warning.
	ExposeDetails bool
	// IdleTimeout is how long upmedic keeps an idle connection from nginx
	// open. Zero means 75s, upmedic's.
	IdleTimeout time.Duration
	// Version is the nginx version ("1.22.1") whose defaults apply to
	// directives the configuration leaves out. Empty assumes a release
	// before 1.29.7: proxy_http_version 1.0, "Connection: close", no
	// keep-alive to upstreams.
	Version string
	// PHPFPM are php-fpm configuration files or patterns
	// ("/etc/php/*/fpm/pool.d/*.conf"), read for each pool's listen and
	// request_terminate_timeout. Nil reads none.
	PHPFPM []string
	// PageSize is the memory page size: nginx's default proxy_buffer_size.
	// Zero means this machine's.
	PageSize int
	// LocalAddress reports whether an IP address is one of this machine's,
	// for a UPMEDIC_LISTEN on every address (0.0.0.0:8080). Nil means the
	// machine's interface addresses.
	LocalAddress func(ip string) bool
}

// Check judges every location of cfg that proxies to upmedic, and every
// location that goes to the app past upmedic, by s. It never returns nil.
func Check(cfg *Config, s Settings) *Report {
	c := &checker{s: s, cfg: cfg, seen: map[Finding]bool{},
		upstreams: map[string]*upstreamBlock{}, formats: map[string]string{}}
	c.rep = &Report{File: cfg.File, Listen: s.Listen, Findings: []Finding{}, Notes: []string{}}
	c.settings()
	for _, d := range cfg.Directives {
		if d.Name == "http" && d.IsBlock() {
			c.http(d)
		}
	}
	if c.listenOK && c.rep.Locations == 0 {
		fix := "proxy_pass " + c.upmedicURL() + ";"
		c.add(Finding{File: cfg.File, Directive: "proxy_pass", Severity: Error,
			Message: fmt.Sprintf("no location proxies to upmedic at UPMEDIC_LISTEN=%s, directly or through an upstream{} block: nginx does not use upmedic, or upmedic listens elsewhere than this UPMEDIC_LISTEN says", s.Listen),
			Fix:     fix + " in each location that should go through upmedic"})
	}
	c.sort()
	return c.rep
}

type checker struct {
	s   Settings
	cfg *Config
	rep *Report

	listen, app     endpoint
	listenOK, appOK bool
	version         version
	keepAlive       bool // the nginx release keeps upstream connections alive by default
	pageSize        int
	idle            time.Duration
	local           func(string) bool

	upstreams map[string]*upstreamBlock // by lower-case name
	formats   map[string]string         // log_format name -> its format strings, joined
	pools     []pool
	seen      map[Finding]bool
}

// upstreamBlock is an upstream{} block.
type upstreamBlock struct {
	d                *Directive
	servers          []endpoint
	keepalive        *Directive
	keepaliveTimeout *Directive
}

// settings reads s into the checker and notes what cannot be checked.
func (c *checker) settings() {
	s := c.s
	if s.Listen != "" {
		c.listen, c.listenOK = parseAddress(strings.TrimPrefix(s.Listen, "http://"), "")
		if !c.listenOK {
			c.note("UPMEDIC_LISTEN=%q is not an address: no location was recognised as upmedic's", s.Listen)
		}
	}
	if s.Upstream != "" {
		c.app, c.appOK = parseAddress(strings.TrimSuffix(strings.TrimPrefix(s.Upstream, "http://"), "/"), "")
	} else {
		c.note("UPMEDIC_UPSTREAM is not set: locations that go straight to the app, past upmedic, were not looked for")
	}
	v, ok := parseVersion(s.Version)
	if !ok {
		v = version{1, 22, 1}
		c.note("nginx's version is unknown (nginx -v did not run): the defaults of releases before 1.29.7 were assumed (proxy_http_version 1.0, no keep-alive to upstreams)")
	} else {
		c.rep.Version = v.String()
	}
	c.version, c.keepAlive = v, v.atLeast(keepAliveRelease())
	c.pageSize = s.PageSize
	if c.pageSize <= 0 {
		c.pageSize = os.Getpagesize()
	}
	c.idle = s.IdleTimeout
	if c.idle <= 0 {
		c.idle = defaultIdleTimeout
	}
	c.local = s.LocalAddress
	if c.local == nil {
		c.local = interfaceAddress
	}
	c.pools = readPools(s.PHPFPM)
}

// interfaceAddress reports whether ip is an address of one of this
// machine's interfaces.
func interfaceAddress(ip string) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.String() == ip {
			return true
		}
	}
	return false
}

func (c *checker) note(format string, args ...any) {
	c.rep.Notes = append(c.rep.Notes, fmt.Sprintf(format, args...))
}

// add records f once: a snippet included in several locations gives the
// same finding at the same line for each.
func (c *checker) add(f Finding) {
	if c.seen[f] {
		return
	}
	c.seen[f] = true
	c.rep.Findings = append(c.rep.Findings, f)
}

// sort orders the findings by file (in reading order) and line.
func (c *checker) sort() {
	rank := func(file string) int {
		if i := slices.Index(c.cfg.Files, file); i >= 0 {
			return i
		}
		return -1
	}
	slices.SortStableFunc(c.rep.Findings, func(a, b Finding) int {
		if ra, rb := rank(a.File), rank(b.File); ra != rb {
			return ra - rb
		}
		return a.Line - b.Line
	})
}

// level is one context of the http{} tree: http, server, location, or an
// if or limit_except inside a location. Directives a level leaves out it
// inherits from its parent.
type level struct {
	parent *level
	d      *Directive
}

// own returns the level's own directives named name.
func (l *level) own(name string) []*Directive {
	var out []*Directive
	for _, d := range l.d.Block {
		if d.Name == name {
			out = append(out, d)
		}
	}
	return out
}

// inherit returns the directive name in effect at l: its own, or the
// nearest enclosing level's; nil when no level sets it.
func (l *level) inherit(name string) *Directive {
	for ; l != nil; l = l.parent {
		if ds := l.own(name); len(ds) > 0 {
			return ds[len(ds)-1]
		}
	}
	return nil
}

// list returns the directives name in effect at l for a directive nginx
// inherits as a whole list (proxy_set_header, proxy_hide_header,
// access_log): those of the nearest level that has any, and that level.
// A level with one of its own inherits none from above.
func (l *level) list(name string) ([]*Directive, *level) {
	for ; l != nil; l = l.parent {
		if ds := l.own(name); len(ds) > 0 {
			return ds, l
		}
	}
	return nil, nil
}

// describe names a level for a message: "location /api/", "server".
func (l *level) describe() string {
	if len(l.d.Args) == 0 {
		return l.d.Name
	}
	return l.d.Name + " " + strings.Join(l.d.Args, " ")
}

// http checks one http{} block.
func (c *checker) http(h *Directive) {
	for _, d := range h.Block {
		switch {
		case d.Name == "upstream" && d.IsBlock() && len(d.Args) == 1:
			c.upstreams[strings.ToLower(d.Args[0])] = newUpstreamBlock(d)
		case d.Name == "log_format" && len(d.Args) >= 2:
			rest := d.Args[1:]
			if strings.HasPrefix(rest[0], "escape=") {
				rest = rest[1:]
			}
			c.formats[d.Args[0]] = strings.Join(rest, "")
		}
	}
	top := &level{d: h}
	for _, d := range h.Block {
		if d.Name == "server" && d.IsBlock() {
			srv := &level{parent: top, d: d}
			c.walk(srv, srv)
		}
	}
}

func newUpstreamBlock(d *Directive) *upstreamBlock {
	u := &upstreamBlock{d: d}
	for _, s := range d.Block {
		switch s.Name {
		case "server":
			if e, ok := parseAddress(s.Arg(0), "80"); ok {
				u.servers = append(u.servers, e)
			}
		case "keepalive":
			u.keepalive = s
		case "keepalive_timeout":
			u.keepaliveTimeout = s
		}
	}
	return u
}

// walk checks the passes of l and of every level inside it.
func (c *checker) walk(l, srv *level) {
	for _, name := range []string{"proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass"} {
		for _, d := range l.own(name) {
			c.pass(l, srv, d)
		}
	}
	for _, d := range l.d.Block {
		if d.IsBlock() && (d.Name == "location" || d.Name == "if" || d.Name == "limit_except") {
			c.walk(&level{parent: l, d: d}, srv)
		}
	}
}

// target is where a *_pass directive sends requests.
type target struct {
	scheme string
	block  *upstreamBlock // the upstream{} block it names, if any
	ends   []endpoint
}

func (t target) reaches(e endpoint, local func(string) bool) bool {
	for _, x := range t.ends {
		if sameEndpoint(x, e, local) {
			return true
		}
	}
	return false
}

// target reads a *_pass directive's address: "http://127.0.0.1:8080/uri",
// "http://unix:/run/x.sock:/uri", "http://name" of an upstream block,
// "unix:/run/php.sock", "127.0.0.1:9000". It reports false for addresses
// with variables, which are only known per request.
func (c *checker) target(d *Directive) (target, bool) {
	arg := d.Arg(0)
	if strings.Contains(arg, "$") {
		return target{}, false
	}
	t := target{}
	if scheme, rest, ok := strings.Cut(arg, "://"); ok {
		t.scheme, arg = strings.ToLower(scheme), rest
	}
	if path, ok := strings.CutPrefix(arg, "unix:"); ok {
		path, _, _ = strings.Cut(path, ":")
		e, ok := parseAddress("unix:"+path, "")
		if ok {
			t.ends = []endpoint{e}
		}
		return t, ok
	}
	hostport, _, _ := strings.Cut(arg, "/")
	hostport, _, _ = strings.Cut(hostport, "?")
	if u := c.upstreams[strings.ToLower(hostport)]; u != nil {
		t.block, t.ends = u, u.servers
		return t, true
	}
	port := ""
	switch t.scheme {
	case "http":
		port = "80"
	case "https":
		port = "443"
	}
	e, ok := parseAddress(hostport, port)
	if ok {
		t.ends = []endpoint{e}
	}
	return t, ok
}

// pass checks one *_pass directive of level l in server srv.
func (c *checker) pass(l, srv *level, d *Directive) {
	t, ok := c.target(d)
	if !ok {
		return
	}
	if c.appOK && t.reaches(c.app, c.local) && !(c.listenOK && t.reaches(c.listen, c.local)) {
		c.bypass(l, d)
	}
	if d.Name == "fastcgi_pass" {
		c.fastcgiTimeout(l, d, t)
	}
	if d.Name == "proxy_pass" && c.listenOK && t.reaches(c.listen, c.local) {
		c.rep.Locations++
		c.upmedic(l, srv, d, t)
	}
}

// upmedicURL is what a proxy_pass to upmedic should say: the upstream block
// that points at it, if there is one, else its address.
func (c *checker) upmedicURL() string {
	var names []string
	for _, u := range c.upstreams {
		if (target{block: u, ends: u.servers}).reaches(c.listen, c.local) {
			names = append(names, u.d.Args[0])
		}
	}
	if len(names) > 0 {
		slices.Sort(names)
		return "http://" + names[0]
	}
	return c.listen.proxyURL()
}

// bypass reports a location that goes to the app past upmedic.
func (c *checker) bypass(l *level, d *Directive) {
	fix := "proxy_pass " + c.upmedicURL() + ";"
	if d.Name != "proxy_pass" {
		fix += " in place of " + d.Name + " and its " + strings.TrimSuffix(d.Name, "_pass") + "_param lines"
	}
	c.add(Finding{File: d.File, Line: d.Line, Directive: d.Name, Severity: Error,
		Message: fmt.Sprintf("%s goes straight to the app (UPMEDIC_UPSTREAM=%s), past upmedic: its failures are nginx's bare 502 and 504, undiagnosed, and upmedic's health check and breaker do not guard it",
			l.describe(), c.s.Upstream),
		Fix: fix})
}

// timeoutAt returns the value of a time directive in effect at l, the
// directive that sets it (nil for nginx's default), and its text for a
// message. ok is false when the value does not parse (nginx -t rejects it).
func timeoutAt(l *level, name string, def time.Duration) (d *Directive, v time.Duration, text string, ok bool) {
	d = l.inherit(name)
	if d == nil {
		return nil, def, fmtTime(def) + " (nginx's default)", true
	}
	v, ok = parseTime(d.Arg(0))
	return d, v, d.Arg(0), ok
}

// at returns where a finding about d goes: d itself, or, for nginx's
// default, the fallback directive (the location's proxy_pass).
func at(d, fallback *Directive) (string, int) {
	if d != nil {
		return d.File, d.Line
	}
	return fallback.File, fallback.Line
}

// suggest rounds a needed timeout up to a value to write: nginx's own 60s
// when that is enough, else the next multiple of 10s.
func suggest(need time.Duration) time.Duration {
	if need <= defaultProxyTimeout {
		return defaultProxyTimeout
	}
	return (need + 10*time.Second - 1) / (10 * time.Second) * (10 * time.Second)
}

// upmedic checks a location l (in server srv) whose proxy_pass p goes to
// upmedic through t.
func (c *checker) upmedic(l, srv *level, p *Directive, t target) {
	s := c.s
	if t.scheme == "https" {
		c.add(Finding{File: p.File, Line: p.Line, Directive: "proxy_pass", Severity: Error,
			Message: "upmedic speaks plain HTTP: nginx's TLS handshake with it fails, and every request is a bare 502",
			Fix:     "proxy_pass http://" + strings.TrimPrefix(p.Arg(0), "https://") + ";"})
	}
	if s.ResponseTimeout > 0 {
		c.readTimeout(l, p)
		c.sendTimeout(l, p)
	}
	c.connectTimeout(l, p)
	if s.MaxResponseHeaderBytes > 0 {
		c.bufferSize(l, p)
	}
	c.httpVersion(l, p)
	c.connectionHeader(l, p)
	c.keepalive(p, t)
	if facesClients(srv) {
		for _, h := range []string{headerDiagnosis, headerProxyStatus} {
			c.hideHeader(l, p, h)
		}
	}
	c.accessLog(l, srv)
}

// readTimeout: proxy_read_timeout must exceed upmedic's own limits, so that
// upmedic answers first with a diagnosed 504.
func (c *checker) readTimeout(l *level, p *Directive) {
	s := c.s
	limit, what := s.ResponseTimeout+s.Hold, "UPMEDIC_RESPONSE_TIMEOUT "+fmtTime(s.ResponseTimeout)
	if s.Hold > 0 {
		what += " + UPMEDIC_HOLD " + fmtTime(s.Hold)
	}
	if s.ReadTimeout > limit {
		limit, what = s.ReadTimeout, "UPMEDIC_READ_TIMEOUT "+fmtTime(s.ReadTimeout)
	}
	d, v, text, ok := timeoutAt(l, "proxy_read_timeout", defaultProxyTimeout)
	if !ok || v >= limit+timeoutMargin {
		return
	}
	file, line := at(d, p)
	c.add(Finding{File: file, Line: line, Directive: "proxy_read_timeout", Severity: Error,
		Message: fmt.Sprintf("%s is not above upmedic's %s by %s: nginx gives up first and answers a bare 504 (diag=\"-\" in the access log) where upmedic would have answered a diagnosed one",
			text, what, fmtTime(timeoutMargin)),
		Fix: "proxy_read_timeout " + fmtTime(suggest(limit+timeoutMargin)) + ";"})
}

// sendTimeout: proxy_send_timeout must exceed UPMEDIC_RESPONSE_TIMEOUT, or
// an upload the app stops reading times out in nginx first.
func (c *checker) sendTimeout(l *level, p *Directive) {
	s := c.s
	limit := s.ResponseTimeout + s.Hold + timeoutMargin
	d, v, text, ok := timeoutAt(l, "proxy_send_timeout", defaultProxyTimeout)
	if !ok || v >= limit {
		return
	}
	file, line := at(d, p)
	c.add(Finding{File: file, Line: line, Directive: "proxy_send_timeout", Severity: Warning,
		Message: fmt.Sprintf("%s is not above UPMEDIC_RESPONSE_TIMEOUT %s by %s: when the app stops reading a request body, nginx gives up sending it first (a bare 504, \"upstream timed out while sending request to upstream\") where upmedic would have answered a diagnosed 504",
			text, fmtTime(s.ResponseTimeout+s.Hold), fmtTime(timeoutMargin)),
		Fix: "proxy_send_timeout " + fmtTime(suggest(limit)) + ";"})
}

// connectTimeout: upmedic runs next to nginx and accepts at once, so a long
// proxy_connect_timeout only delays nginx's bare 504 when upmedic is stuck.
func (c *checker) connectTimeout(l *level, p *Directive) {
	limit := max(maxConnectTimeout, c.s.ConnectTimeout)
	d, v, text, ok := timeoutAt(l, "proxy_connect_timeout", defaultProxyTimeout)
	if !ok || v <= limit {
		return
	}
	file, line := at(d, p)
	c.add(Finding{File: file, Line: line, Directive: "proxy_connect_timeout", Severity: Warning,
		Message: fmt.Sprintf("%s to upmedic, which runs next to nginx and accepts at once: a connect that takes longer means upmedic is stuck, and clients wait that long for nginx's bare 504 (upmedic itself gives the app UPMEDIC_CONNECT_TIMEOUT %s)",
			text, fmtTime(c.s.ConnectTimeout)),
		Fix: "proxy_connect_timeout " + fmtTime(limit) + ";"})
}

// bufferSize: proxy_buffer_size must hold any header section upmedic lets
// through, or nginx rejects it before upmedic's diagnosis can show.
func (c *checker) bufferSize(l *level, p *Directive) {
	max := c.s.MaxResponseHeaderBytes
	need := max + headerRoom
	d := l.inherit("proxy_buffer_size")
	size, text := c.pageSize, fmtSize(c.pageSize)+" (nginx's default, one memory page)"
	if d != nil {
		var ok bool
		if size, ok = parseSize(d.Arg(0)); !ok {
			return
		}
		text = d.Arg(0)
	}
	if size >= need {
		return
	}
	want := 1 << 10
	for want < need {
		want <<= 1
	}
	fix := "proxy_buffer_size " + fmtSize(want) + ";"
	// nginx -t requires proxy_busy_buffers_size (by default twice the
	// larger of proxy_buffer_size and one of proxy_buffers) to be below all
	// proxy_buffers but one: a larger proxy_buffer_size may need larger
	// proxy_buffers too.
	if n, size := c.proxyBuffers(l); 2*want > (n-1)*size {
		fix += " proxy_buffers " + strconv.Itoa(n) + " " + fmtSize(want) + ";"
	}
	file, line := at(d, p)
	c.add(Finding{File: file, Line: line, Directive: "proxy_buffer_size", Severity: Error,
		Message: fmt.Sprintf("%s cannot hold every response header section upmedic lets through (UPMEDIC_MAX_RESPONSE_HEADER_BYTES %d, and %d bytes for the diagnosis headers upmedic adds to an app's 5xx): nginx rejects it first with a bare 502, \"upstream sent too big header\"",
			text, max, headerRoom),
		Fix: fix})
}

// proxyBuffers returns the number and size of proxy_buffers in effect at l:
// nginx's default is 8 of one memory page.
func (c *checker) proxyBuffers(l *level) (n, size int) {
	n, size = 8, c.pageSize
	if d := l.inherit("proxy_buffers"); d != nil {
		if v, err := strconv.Atoi(d.Arg(0)); err == nil && v > 1 && v < 1<<16 {
			if sz, ok := parseSize(d.Arg(1)); ok && sz > 0 {
				n, size = v, sz
			}
		}
	}
	return n, size
}

// httpVersion: keep-alive to upmedic needs HTTP/1.1.
func (c *checker) httpVersion(l *level, p *Directive) {
	d := l.inherit("proxy_http_version")
	v, text := "1.0", "nginx "+c.version.String()+"'s default"
	if c.keepAlive {
		v = "1.1"
	}
	if d != nil {
		v, text = d.Arg(0), "set here"
	}
	if v == "1.1" {
		return
	}
	file, line := at(d, p)
	c.add(Finding{File: file, Line: line, Directive: "proxy_http_version", Severity: Warning,
		Message: fmt.Sprintf("nginx talks HTTP/%s to upmedic (%s): no keep-alive, a new connection for every request", v, text),
		Fix:     "proxy_http_version 1.1;"})
}

// connectionHeader: keep-alive to upmedic needs an empty Connection header
// instead of nginx's default "Connection: close". proxy_set_header is a
// list: a level with any of its own inherits none from above.
func (c *checker) connectionHeader(l *level, p *Directive) {
	list, from := l.list("proxy_set_header")
	if d := findHeader(list, "Connection"); d != nil {
		v := strings.ToLower(d.Arg(1))
		if !strings.Contains(v, "close") {
			return // "", or a variable such as $connection_upgrade
		}
		c.add(Finding{File: d.File, Line: d.Line, Directive: "proxy_set_header", Severity: Warning,
			Message: fmt.Sprintf("Connection %q closes every connection to upmedic after one request: no keep-alive", d.Arg(1)),
			Fix:     `proxy_set_header Connection "";`})
		return
	}
	if from == nil && c.keepAlive {
		return // nginx 1.29.7 and later send no "Connection: close"
	}
	msg := "nginx sends \"Connection: close\" to upmedic (its default when no proxy_set_header Connection is in effect): no keep-alive, a new connection for every request"
	file, line := p.File, p.Line
	if from != nil {
		file, line = list[0].File, list[0].Line
		for up := from.parent; up != nil; up = up.parent {
			if h := findHeader(up.own("proxy_set_header"), "Connection"); h != nil {
				msg = fmt.Sprintf("this %s sets proxy_set_header of its own (%s:%d), so it inherits none of the %s's, not even Connection %q (%s:%d): nginx sends \"Connection: close\" to upmedic, and keep-alive is lost",
					from.d.Name, list[0].File, list[0].Line, up.d.Name, h.Arg(1), h.File, h.Line)
				break
			}
		}
	}
	c.add(Finding{File: file, Line: line, Directive: "proxy_set_header", Severity: Warning,
		Message: msg, Fix: `proxy_set_header Connection "";`})
}

// findHeader returns the directive in list that sets or hides the header
// field name, or nil.
func findHeader(list []*Directive, name string) *Directive {
	for _, d := range list {
		if strings.EqualFold(d.Arg(0), name) {
			return d
		}
	}
	return nil
}

// keepalive: nginx keeps idle connections to upmedic only through an
// upstream{} block with keepalive, and must close them before upmedic does.
func (c *checker) keepalive(p *Directive, t target) {
	u := t.block
	if u == nil {
		if c.keepAlive {
			return
		}
		c.add(Finding{File: p.File, Line: p.Line, Directive: "proxy_pass", Severity: Warning,
			Message: "nginx keeps connections to upmedic open only through an upstream{} block with keepalive: a proxy_pass straight to its address opens a new connection for every request",
			Fix:     fmt.Sprintf("upstream upmedic { server %s; keepalive 32; } in http {}, then proxy_pass http://upmedic;", c.listen)})
		return
	}
	if u.keepalive == nil && !c.keepAlive {
		c.add(Finding{File: u.d.File, Line: u.d.Line, Directive: "keepalive", Severity: Warning,
			Message: fmt.Sprintf("upstream %s has no keepalive: nginx opens a new connection to upmedic for every request", u.d.Arg(0)),
			Fix:     "keepalive 32;"})
		return
	}
	kt, text := defaultKeepaliveTimeout, fmtTime(defaultKeepaliveTimeout)+" (nginx's default)"
	if d := u.keepaliveTimeout; d != nil {
		v, ok := parseTime(d.Arg(0))
		if !ok {
			return
		}
		kt, text = v, d.Arg(0)
	}
	if kt < c.idle {
		return
	}
	file, line := at(u.keepaliveTimeout, u.d)
	c.add(Finding{File: file, Line: line, Directive: "keepalive_timeout", Severity: Error,
		Message: fmt.Sprintf("nginx keeps an idle connection to upmedic for %s, but upmedic closes one after %s: nginx will send requests on connections upmedic is closing, and answer them 502 (\"upstream prematurely closed connection\")",
			text, fmtTime(c.idle)),
		Fix: "keepalive_timeout " + fmtTime(min(defaultKeepaliveTimeout, c.idle-15*time.Second)) + ";"})
}

// facesClients reports whether a server listens anywhere but on loopback
// or a unix socket. No listen directive is nginx's *:80.
func facesClients(srv *level) bool {
	listens := srv.own("listen")
	if len(listens) == 0 {
		return true
	}
	for _, d := range listens {
		if !isLoopbackListen(d.Arg(0)) {
			return true
		}
	}
	return false
}

// hideHeader: clients should not see upmedic's diagnosis headers.
// proxy_hide_header is a list: a level with any of its own inherits none.
func (c *checker) hideHeader(l *level, p *Directive, header string) {
	list, from := l.list("proxy_hide_header")
	if findHeader(list, header) != nil {
		return
	}
	sev := Warning
	what := "the cause and errno of each failure"
	if c.s.ExposeDetails {
		sev, what = Error, "with UPMEDIC_EXPOSE_DETAILS=true, socket paths, addresses and hints too"
	}
	msg := fmt.Sprintf("clients see upmedic's %s header (%s): it belongs in the access log, not in answers to clients", header, what)
	file, line := p.File, p.Line
	if from != nil {
		file, line = list[0].File, list[0].Line
		for up := from.parent; up != nil; up = up.parent {
			if h := findHeader(up.own("proxy_hide_header"), header); h != nil {
				msg = fmt.Sprintf("this %s has a proxy_hide_header of its own (%s:%d), so the %s's proxy_hide_header %s (%s:%d) does not apply: clients see upmedic's diagnosis",
					from.d.Name, list[0].File, list[0].Line, up.d.Name, header, h.File, h.Line)
				break
			}
		}
	}
	c.add(Finding{File: file, Line: line, Directive: "proxy_hide_header", Severity: sev,
		Message: msg, Fix: "proxy_hide_header " + header + ";"})
}

// accessLog: the access log in effect must use a log_format that logs
// $upstream_http_x_upstream_diagnosis. access_log is a list: a level with
// any of its own inherits none.
func (c *checker) accessLog(l, srv *level) {
	list, _ := l.list("access_log")
	if len(list) == 0 {
		c.add(Finding{File: srv.d.File, Line: srv.d.Line, Directive: "access_log", Severity: Warning,
			Message: "no access_log is in effect, so nginx logs in its combined format, without " + diagnosisVariable + ": upmedic's diagnosis of each failure is not in the access log",
			Fix:     c.accessFix("/var/log/nginx/access.log")})
		return
	}
	on := 0
	for _, d := range list {
		if d.Arg(0) == "off" {
			continue
		}
		on++
		if logsDiagnosis(c.formats[logFormat(d)]) {
			return
		}
		if _, known := c.formats[logFormat(d)]; !known && logFormat(d) != "combined" {
			return // an undefined format: nginx -t rejects it
		}
	}
	d := list[0]
	msg := fmt.Sprintf("log_format %s does not log %s: upmedic's diagnosis of each failure is not in this access log", logFormat(d), diagnosisVariable)
	path := d.Arg(0)
	if on == 0 {
		msg = "access logging is off here: upmedic's diagnosis of each failure is not logged"
		path = "/var/log/nginx/access.log"
	}
	c.add(Finding{File: d.File, Line: d.Line, Directive: "access_log", Severity: Warning,
		Message: msg, Fix: c.accessFix(path)})
}

// logFormat returns the format an access_log directive names: its second
// argument unless that is a parameter, else "combined".
func logFormat(d *Directive) string {
	if f := d.Arg(1); f != "" && !strings.Contains(f, "=") && f != "gzip" {
		return f
	}
	return "combined"
}

// logsDiagnosis reports whether a log_format's text logs
// $upstream_http_x_upstream_diagnosis (or ${...}; nginx's variable names
// are case-insensitive).
func logsDiagnosis(format string) bool {
	f := strings.ToLower(format)
	return strings.Contains(f, diagnosisVariable) || strings.Contains(f, "${"+diagnosisVariable[1:]+"}")
}

// accessFix is the access_log line to write: with a log_format of the
// configuration that logs the diagnosis, or with upmedic's.
func (c *checker) accessFix(path string) string {
	var names []string
	for name, f := range c.formats {
		if logsDiagnosis(f) {
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		slices.Sort(names)
		return "access_log " + path + " " + names[0] + ";"
	}
	return "access_log " + path + " upmedic; with log_format upmedic from upmedic's testdata/nginx/upmedic.conf in http {}"
}

// fastcgiTimeout: where a php-fpm pool kills requests
// (request_terminate_timeout), fastcgi_read_timeout must wait longer, so
// that nginx does not answer a bare 504 while the PHP worker runs on.
func (c *checker) fastcgiTimeout(l *level, p *Directive, t target) {
	for _, pl := range c.pools {
		if pl.timeout <= 0 || !t.reaches(pl.listen, c.local) {
			continue
		}
		d, v, text, ok := timeoutAt(l, "fastcgi_read_timeout", defaultProxyTimeout)
		if !ok || v > pl.timeout {
			return
		}
		file, line := at(d, p)
		c.add(Finding{File: file, Line: line, Directive: "fastcgi_read_timeout", Severity: Warning,
			Message: fmt.Sprintf("%s is not above php-fpm's request_terminate_timeout %s (pool [%s], %s:%d): nginx gives up first with a bare 504 while the PHP worker runs on until php-fpm kills it",
				text, fmtTime(pl.timeout), pl.name, pl.file, pl.line),
			Fix: "fastcgi_read_timeout " + fmtTime(suggest(pl.timeout+5*time.Second)) + ";"})
		return
	}
}
