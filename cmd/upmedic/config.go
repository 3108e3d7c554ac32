package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/proxy"
)

// envPrefix starts every variable upmedic reads.
const envPrefix = "UPMEDIC_"

// Config is upmedic's whole configuration, read from UPMEDIC_ variables. The
// help tag is what `upmedic env` prints.
type Config struct {
	Upstream               string        `env:"UPSTREAM,required" help:"host:port, http://host:port or unix:/path/to.sock of the app; fastcgi://unix:/path or fastcgi://host:port for PHP-FPM"`
	Listen                 string        `env:"LISTEN" envDefault:"127.0.0.1:8080" help:"where nginx connects: host:port or unix:/path"`
	ListenMode             string        `env:"LISTEN_MODE" envDefault:"0660" help:"octal mode of a unix socket upmedic listens on (UPMEDIC_LISTEN, UPMEDIC_ADMIN_LISTEN), applied whatever the umask; the socket belongs to upmedic's group, which nginx's workers must be in"`
	AdminListen            string        `env:"ADMIN_LISTEN" envDefault:"127.0.0.1:9901" help:"admin API (/healthz /readyz /status /metrics): host:port or unix:/path; empty disables"`
	ConnectTimeout         time.Duration `env:"CONNECT_TIMEOUT" envDefault:"2s" help:"dial timeout"`
	ResponseTimeout        time.Duration `env:"RESPONSE_TIMEOUT" envDefault:"45s" help:"until the upstream's response header arrives, from the request's arrival; keep it above the app's own timeout (gunicorn: 30s) and below nginx's proxy_read_timeout (60s)"`
	ReadTimeout            time.Duration `env:"READ_TIMEOUT" envDefault:"30s" help:"longest silence while reading a response body"`
	ClientHeaderTimeout    time.Duration `env:"CLIENT_HEADER_TIMEOUT" envDefault:"10s" help:"a request's header must arrive whole within this of its first byte (408 and close), and a new connection must send its first byte within it (closed without a word); HAProxy's timeout http-request"`
	ClientBodyTimeout      time.Duration `env:"CLIENT_BODY_TIMEOUT" envDefault:"60s" help:"longest silence inside a request body (408, the upstream connection closed); nginx's client_body_timeout"`
	ClientSendTimeout      time.Duration `env:"CLIENT_SEND_TIMEOUT" envDefault:"60s" help:"longest a write to the client may stall before the connection is dropped; nginx's send_timeout"`
	MaxResponseHeaderBytes int           `env:"MAX_RESPONSE_HEADER_BYTES" envDefault:"4096" help:"largest upstream response header section; match nginx's proxy_buffer_size"`
	BufferBytes            int           `env:"BUFFER_BYTES" envDefault:"131072" help:"responses with a Content-Length up to this are received whole before upmedic answers; larger and chunked bodies stream"`
	MaxConns               int           `env:"MAX_CONNS" envDefault:"512" help:"upstream connection cap"`
	Hold                   time.Duration `env:"HOLD" envDefault:"0s" help:"hold requests this long while the upstream refuses or its socket is missing (restart window); 0 disables"`
	HealthPath             string        `env:"HEALTH_PATH" help:"HTTP path probed by the health check; empty means a connect-only check. With a fastcgi upstream: PHP-FPM's ping.path (answer must be pong); empty means FCGI_GET_VALUES, which runs no PHP"`
	HealthInterval         time.Duration `env:"HEALTH_INTERVAL" envDefault:"2s" help:"health probe cadence; 0 turns health checks off (no fail-fast, /readyz ignores health)"`
	HealthTimeout          time.Duration `env:"HEALTH_TIMEOUT" envDefault:"1s" help:"health probe timeout"`
	HealthRise             int           `env:"HEALTH_RISE" envDefault:"2" help:"consecutive successful probes that mark the upstream up"`
	HealthFall             int           `env:"HEALTH_FALL" envDefault:"3" help:"consecutive failed probes that mark the upstream down"`
	BreakerFailures        uint32        `env:"BREAKER_FAILURES" envDefault:"5" help:"consecutive proxy-made failures that open the circuit breaker; 0 turns the breaker off"`
	BreakerOpenFor         time.Duration `env:"BREAKER_OPEN_FOR" envDefault:"10s" help:"how long the breaker stays open before one trial request"`
	ExposeDetails          bool          `env:"EXPOSE_DETAILS" envDefault:"false" help:"put the upstream address and hints in client-visible headers and bodies"`
	Name                   string        `env:"NAME" envDefault:"upmedic" help:"the Proxy-Status member name (an RFC 9651 token)"`
	LogFormat              string        `env:"LOG_FORMAT" envDefault:"json" help:"json or text, to stderr"`
	ShutdownTimeout        time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s" help:"drain time on SIGTERM"`
	TrustedProxies         string        `env:"TRUSTED_PROXIES" help:"comma-separated CIDRs or IPs of front proxies, besides loopback and unix sockets (always trusted), whose X-Real-IP and X-Forwarded-Proto are believed; today only fastcgi upstreams use them (REMOTE_ADDR, HTTPS)"`
	FastCGIRoot            string        `env:"FASTCGI_ROOT" help:"fastcgi upstream only, required with it: the document root as PHP-FPM sees it, an absolute path (DOCUMENT_ROOT; no SCRIPT_FILENAME leaves it)"`
	FastCGIIndex           string        `env:"FASTCGI_INDEX" envDefault:"index.php" help:"fastcgi upstream only: the script a path ending in / runs (nginx's fastcgi_index)"`
	FastCGIFrontController string        `env:"FASTCGI_FRONT_CONTROLLER" envDefault:"/index.php" help:"fastcgi upstream only: the script a path naming no .php script runs (nginx's try_files $uri /index.php); off for none (such paths get 404 and run nothing)"`
	FastCGIStatusPath      string        `env:"FASTCGI_STATUS_PATH" help:"fastcgi upstream only: PHP-FPM's pm.status_path (/fpm-status), read after each health probe so that a 504 can say the pool was full; empty reads none"`
	FastCGIStatusUpstream  string        `env:"FASTCGI_STATUS_UPSTREAM" help:"fastcgi upstream only: where the status page is served, unix:/path or host:port (PHP-FPM's pm.status_listen, which answers even when every worker is busy); empty means the upstream"`

	// Set by loadConfig from the strings above.
	upstream   address
	listen     address
	admin      address // zero Network: disabled
	listenMode os.FileMode
	trusted    []netip.Prefix
	status     address // the status page's address; zero: the upstream's
}

// address is a parsed listen or upstream address.
type address struct {
	Network, Address string
	// FastCGI marks an upstream that speaks FastCGI (fastcgi://).
	FastCGI bool
}

func (a address) String() string {
	s := a.Address
	if a.Network == "unix" {
		s = "unix:" + a.Address
	}
	if a.FastCGI {
		s = "fastcgi://" + s
	}
	return s
}

// ConfigError is a configuration value upmedic cannot use. Its message names
// the variable, the value and what is accepted.
type ConfigError struct {
	Var, Value, Accepted string
}

func (e *ConfigError) Error() string {
	if e.Value == "" && e.Accepted == "is required" {
		return e.Var + " is required: " + varHelp(e.Var)
	}
	if e.Value == "" && strings.HasPrefix(e.Accepted, "is required") {
		return e.Var + " " + e.Accepted
	}
	return fmt.Sprintf("%s=%q: %s", e.Var, e.Value, e.Accepted)
}

// loadConfig reads the configuration from environ, the KEY=value list of
// os.Environ, and checks every value. Every unknown UPMEDIC_ variable is
// reported at once, in a ConfigErrors, each on its own line.
func loadConfig(environ []string) (*Config, error) {
	vars := envVars(environ)
	if err := unknownVars(vars); err != nil {
		return nil, err
	}
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Prefix: envPrefix, Environment: vars})
	if err != nil {
		return nil, translateEnvError(err, vars)
	}
	// env falls back to the default for a set-but-empty variable; an empty
	// UPMEDIC_ADMIN_LISTEN means "disabled", as an empty
	// UPMEDIC_FASTCGI_FRONT_CONTROLLER means "none" (like "off").
	if v, ok := vars[envPrefix+"ADMIN_LISTEN"]; ok && strings.TrimSpace(v) == "" {
		cfg.AdminListen = ""
	}
	if v, ok := vars[envPrefix+"FASTCGI_FRONT_CONTROLLER"]; ok && strings.TrimSpace(v) == "" {
		cfg.FastCGIFrontController = "off"
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// envVars turns os.Environ's KEY=value list into a map.
func envVars(environ []string) map[string]string {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return vars
}

// unknownVars reports every UPMEDIC_ variable in vars that Config does not
// read, sorted, each with its did-you-mean.
func unknownVars(vars map[string]string) error {
	fields := configFields()
	known := make(map[string]bool, len(fields))
	for _, f := range fields {
		known[f.Var] = true
	}
	var errs ConfigErrors
	for k, v := range vars {
		if strings.HasPrefix(k, envPrefix) && !known[k] {
			errs = append(errs, &ConfigError{Var: k, Value: v,
				Accepted: "unknown variable; `upmedic env` lists the accepted ones" + suggest(k, fields)})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	slices.SortFunc(errs, func(a, b *ConfigError) int { return strings.Compare(a.Var, b.Var) })
	return errs
}

// ConfigErrors is several configuration errors reported together. Its
// message has one line per error.
type ConfigErrors []*ConfigError

func (e ConfigErrors) Error() string {
	lines := make([]string, len(e))
	for i, ce := range e {
		lines[i] = ce.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the errors, for errors.As.
func (e ConfigErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i, ce := range e {
		out[i] = ce
	}
	return out
}

// check validates the values env could parse and fills the parsed addresses.
func (c *Config) check() error {
	var err error
	if c.upstream, err = parseUpstream(c.Upstream); err != nil {
		return &ConfigError{Var: envPrefix + "UPSTREAM", Value: c.Upstream, Accepted: err.Error()}
	}
	if c.listen, err = parseListen(c.Listen); err != nil {
		return &ConfigError{Var: envPrefix + "LISTEN", Value: c.Listen, Accepted: err.Error()}
	}
	if c.AdminListen != "" {
		if c.admin, err = parseListen(c.AdminListen); err != nil {
			return &ConfigError{Var: envPrefix + "ADMIN_LISTEN", Value: c.AdminListen, Accepted: err.Error()}
		}
	}
	if c.listenMode, err = parseMode(c.ListenMode); err != nil {
		return &ConfigError{Var: envPrefix + "LISTEN_MODE", Value: c.ListenMode, Accepted: err.Error()}
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"CONNECT_TIMEOUT", c.ConnectTimeout}, {"RESPONSE_TIMEOUT", c.ResponseTimeout},
		{"READ_TIMEOUT", c.ReadTimeout}, {"CLIENT_HEADER_TIMEOUT", c.ClientHeaderTimeout},
		{"CLIENT_BODY_TIMEOUT", c.ClientBodyTimeout}, {"CLIENT_SEND_TIMEOUT", c.ClientSendTimeout},
		{"HEALTH_TIMEOUT", c.HealthTimeout}, {"BREAKER_OPEN_FOR", c.BreakerOpenFor},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return &ConfigError{Var: envPrefix + p.name, Value: p.d.String(), Accepted: "must be a positive duration such as 500ms, 2s or 1m"}
		}
	}
	zeroOrPositive := []struct {
		name, zero string
		d          time.Duration
	}{
		{"HEALTH_INTERVAL", "0 turns health checks off", c.HealthInterval},
		{"HOLD", "0 disables the hold", c.Hold},
		{"SHUTDOWN_TIMEOUT", "0 stops without draining", c.ShutdownTimeout},
	}
	for _, z := range zeroOrPositive {
		if z.d < 0 {
			return &ConfigError{Var: envPrefix + z.name, Value: z.d.String(),
				Accepted: "must be 0 or a positive duration such as 10s (" + z.zero + ")"}
		}
	}
	ints := []struct {
		name      string
		v, lo, hi int
	}{
		{"MAX_RESPONSE_HEADER_BYTES", c.MaxResponseHeaderBytes, 256, 1 << 20},
		{"BUFFER_BYTES", c.BufferBytes, 0, 64 << 20},
		{"MAX_CONNS", c.MaxConns, 1, 1 << 20},
		{"HEALTH_RISE", c.HealthRise, 1, 100},
		{"HEALTH_FALL", c.HealthFall, 1, 100},
		{"BREAKER_FAILURES", int(c.BreakerFailures), 0, 1 << 20}, // 0: no breaker
	}
	for _, i := range ints {
		if i.v < i.lo || i.v > i.hi {
			return &ConfigError{Var: envPrefix + i.name, Value: strconv.Itoa(i.v), Accepted: fmt.Sprintf("must be an integer from %d to %d", i.lo, i.hi)}
		}
	}
	if c.HealthPath != "" && (!strings.HasPrefix(c.HealthPath, "/") || strings.ContainsFunc(c.HealthPath, func(r rune) bool { return r <= ' ' || r >= 0x7f })) {
		return &ConfigError{Var: envPrefix + "HEALTH_PATH", Value: c.HealthPath, Accepted: "must start with / and hold no spaces or control characters (or be empty for a connect-only check)"}
	}
	if !diag.IsToken(c.Name) {
		return &ConfigError{Var: envPrefix + "NAME", Value: c.Name, Accepted: "must be an RFC 9651 token: a letter or *, then letters, digits and !#$%&'*+-.^_`|~:/"}
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return &ConfigError{Var: envPrefix + "LOG_FORMAT", Value: c.LogFormat, Accepted: "must be json or text"}
	}
	if c.trusted, err = parseTrusted(c.TrustedProxies); err != nil {
		return &ConfigError{Var: envPrefix + "TRUSTED_PROXIES", Value: c.TrustedProxies, Accepted: err.Error()}
	}
	return c.checkFastCGI()
}

// fastCGIVars are the variables that only a fastcgi upstream reads, with
// the value each holds when it was not set.
func (c *Config) fastCGIVars() []struct{ name, value, unset string } {
	return []struct{ name, value, unset string }{
		{"FASTCGI_ROOT", c.FastCGIRoot, ""},
		{"FASTCGI_INDEX", c.FastCGIIndex, "index.php"},
		{"FASTCGI_FRONT_CONTROLLER", c.FastCGIFrontController, "/index.php"},
		{"FASTCGI_STATUS_PATH", c.FastCGIStatusPath, ""},
		{"FASTCGI_STATUS_UPSTREAM", c.FastCGIStatusUpstream, ""},
	}
}

// checkFastCGI checks the UPMEDIC_FASTCGI_ variables: required or refused by
// the kind of upstream, then what proxy.CheckFastCGI says of them.
func (c *Config) checkFastCGI() error {
	if !c.upstream.FastCGI {
		for _, v := range c.fastCGIVars() {
			if v.value != v.unset {
				return &ConfigError{Var: envPrefix + v.name, Value: v.value,
					Accepted: "is for a fastcgi upstream only (UPMEDIC_UPSTREAM=fastcgi://unix:/path or fastcgi://host:port); unset it for an HTTP upstream"}
			}
		}
		return nil
	}
	if c.FastCGIRoot == "" {
		return &ConfigError{Var: envPrefix + "FASTCGI_ROOT", Accepted: "is required with a fastcgi upstream: the document root as PHP-FPM sees it, such as /var/www/html"}
	}
	if root := strings.TrimSuffix(c.FastCGIRoot, "/"); !strings.HasPrefix(c.FastCGIRoot, "/") || (root != "" && path.Clean(root) != root) {
		return &ConfigError{Var: envPrefix + "FASTCGI_ROOT", Value: c.FastCGIRoot, Accepted: "must be a clean absolute path (no . or .. segments), as PHP-FPM sees it: /var/www/html"}
	}
	if c.FastCGIStatusPath != "" && (!strings.HasPrefix(c.FastCGIStatusPath, "/") || strings.ContainsAny(c.FastCGIStatusPath, "?#") ||
		strings.ContainsFunc(c.FastCGIStatusPath, func(r rune) bool { return r <= ' ' || r >= 0x7f })) {
		return &ConfigError{Var: envPrefix + "FASTCGI_STATUS_PATH", Value: c.FastCGIStatusPath,
			Accepted: "must be PHP-FPM's pm.status_path: start with /, no query, no spaces or control characters (/fpm-status)"}
	}
	if c.FastCGIStatusPath != "" && c.HealthInterval == 0 {
		return &ConfigError{Var: envPrefix + "FASTCGI_STATUS_PATH", Value: c.FastCGIStatusPath,
			Accepted: "is read by the health checker, which UPMEDIC_HEALTH_INTERVAL=0 turns off; unset one of them"}
	}
	if c.FastCGIStatusUpstream != "" {
		if c.FastCGIStatusPath == "" {
			return &ConfigError{Var: envPrefix + "FASTCGI_STATUS_UPSTREAM", Value: c.FastCGIStatusUpstream,
				Accepted: "needs UPMEDIC_FASTCGI_STATUS_PATH: the status page is read only when its path is set"}
		}
		var err error
		if strings.HasPrefix(c.FastCGIStatusUpstream, "unix:") {
			c.status, err = parseUnix(c.FastCGIStatusUpstream)
		} else {
			c.status, err = parseHostPort(c.FastCGIStatusUpstream, 1, "use unix:/path or host:port, where PHP-FPM's pm.status_listen listens")
		}
		if err != nil {
			return &ConfigError{Var: envPrefix + "FASTCGI_STATUS_UPSTREAM", Value: c.FastCGIStatusUpstream, Accepted: err.Error()}
		}
		c.status.FastCGI = true
	}
	// Checked one setting at a time, so that the error names the variable
	// without reading the message.
	f := c.fastCGI()
	for _, step := range []struct {
		name, value string
		f           proxy.FastCGI
	}{
		{"FASTCGI_ROOT", c.FastCGIRoot, proxy.FastCGI{Root: f.Root}},
		{"FASTCGI_INDEX", c.FastCGIIndex, proxy.FastCGI{Root: f.Root, Index: f.Index}},
		{"FASTCGI_FRONT_CONTROLLER", c.FastCGIFrontController, *f},
	} {
		if err := proxy.CheckFastCGI(&step.f); err != nil {
			return &ConfigError{Var: envPrefix + step.name, Value: step.value, Accepted: strings.TrimPrefix(err.Error(), "fastcgi: ")}
		}
	}
	return nil
}

// fastCGI returns the proxy's FastCGI settings, without Pool; nil for an
// HTTP upstream.
func (c *Config) fastCGI() *proxy.FastCGI {
	if !c.upstream.FastCGI {
		return nil
	}
	front := c.FastCGIFrontController
	if front == "off" {
		front = ""
	}
	return &proxy.FastCGI{Root: c.FastCGIRoot, Index: c.FastCGIIndex, FrontController: front, Trusted: c.trusted}
}

// parseTrusted accepts a comma-separated list of CIDRs and IP addresses;
// empty gives none.
func parseTrusted(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is neither a CIDR nor an IP address; use a comma-separated list such as 10.0.0.0/8,192.0.2.7", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// parseMode accepts a file mode in octal: 660, 0660 or 0o660, at most 0777.
func parseMode(s string) (os.FileMode, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0")
	n, err := strconv.ParseUint(digits, 8, 32)
	if digits == "" {
		n, err = 0, nil // "0" or "00"
	}
	if err != nil || len(s) > 5 || n > 0o777 {
		return 0, errors.New("must be an octal file mode from 0000 to 0777, such as 0660 (owner and group read and write)")
	}
	return os.FileMode(n), nil
}

// parseUpstream accepts host:port, http://host:port, unix:/path and, for
// PHP-FPM, fastcgi://unix:/path and fastcgi://host:port.
func parseUpstream(s string) (address, error) {
	switch {
	case strings.HasPrefix(s, "unix:"):
		return parseUnix(s)
	case strings.HasPrefix(s, "https://"):
		return address{}, errors.New("TLS upstreams are not supported; use host:port, http://host:port or unix:/path/to.sock")
	case strings.HasPrefix(s, "fastcgi://"):
		rest := strings.TrimPrefix(s, "fastcgi://")
		var a address
		var err error
		if strings.HasPrefix(rest, "unix:") {
			a, err = parseUnix(rest)
		} else {
			a, err = parseHostPort(strings.TrimSuffix(rest, "/"), 1, "use fastcgi://unix:/run/php/php8.2-fpm.sock or fastcgi://127.0.0.1:9000 (PHP-FPM's listen)")
		}
		a.FastCGI = err == nil
		return a, err
	}
	s = strings.TrimPrefix(s, "http://")
	s = strings.TrimSuffix(s, "/")
	if strings.HasPrefix(s, "unix:") {
		return parseUnix(s)
	}
	return parseHostPort(s, 1, "use host:port, http://host:port or unix:/path/to.sock")
}

// parseListen accepts host:port and unix:/path.
func parseListen(s string) (address, error) {
	if strings.HasPrefix(s, "unix:") {
		return parseUnix(s)
	}
	return parseHostPort(s, 0, "use host:port (0.0.0.0:8080 for all interfaces) or unix:/path/to.sock")
}

func parseUnix(s string) (address, error) {
	path := strings.TrimPrefix(s, "unix:")
	if !strings.HasPrefix(path, "/") {
		return address{}, errors.New("a unix socket needs an absolute path: unix:/run/app.sock")
	}
	return address{Network: "unix", Address: path}, nil
}

// parseHostPort accepts host:port with a port from minPort to 65535 (a
// listener may take port 0: any free port).
func parseHostPort(s string, minPort int, accepted string) (address, error) {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return address{}, errors.New(accepted)
	}
	if n, err := strconv.Atoi(port); err != nil || n < minPort || n > 65535 {
		return address{}, fmt.Errorf("the port must be %d to 65535; %s", minPort, accepted)
	}
	return address{Network: "tcp", Address: s}, nil
}

// translateEnvError turns env's errors, which name Go fields, into a
// ConfigError naming the variable.
func translateEnvError(err error, vars map[string]string) error {
	if agg, ok := errors.AsType[env.AggregateError](err); ok && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	if nse, ok := errors.AsType[env.VarIsNotSetError](err); ok {
		return &ConfigError{Var: nse.Key, Accepted: "is required"}
	}
	if pe, ok := errors.AsType[env.ParseError](err); ok {
		for _, f := range configFields() {
			if f.Field == pe.Name {
				return &ConfigError{Var: f.Var, Value: vars[f.Var], Accepted: accepted(f.Type)}
			}
		}
	}
	return fmt.Errorf("configuration: %w", err)
}

// accepted says what values a field of type t takes.
func accepted(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "not a duration; use a number with a unit: 500ms, 2s, 1m"
	case reflect.TypeFor[bool]():
		return "not a boolean; use true or false"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Uint32:
		return "not a whole number"
	}
	return "not a valid " + t.String()
}

// configField describes one variable.
type configField struct {
	Var, Field, Default, Help string
	Type                      reflect.Type
	Required                  bool
}

// configFields lists the variables Config reads, in declaration order.
func configFields() []configField {
	t := reflect.TypeFor[Config]()
	var out []configField
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("env")
		if !ok {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		out = append(out, configField{
			Var: envPrefix + name, Field: f.Name, Default: f.Tag.Get("envDefault"),
			Help: f.Tag.Get("help"), Type: f.Type, Required: strings.Contains(opts, "required"),
		})
	}
	return out
}

func varHelp(name string) string {
	for _, f := range configFields() {
		if f.Var == name {
			return f.Help
		}
	}
	return ""
}

// suggest names the known variables an unknown one may have meant: the one
// a typo away; else those of the same kind (the same last word: _TIMEOUT);
// else those about the same thing (the same first word: LISTEN_). It
// returns "" when none is close.
func suggest(name string, fields []configField) string {
	bare := strings.TrimPrefix(name, envPrefix)
	best, bestDist := "", max(1, len(bare)/4)+1
	for _, f := range fields {
		if d := editDistance(name, f.Var); d < bestDist {
			best, bestDist = f.Var, d
		}
	}
	if best != "" {
		return "; did you mean " + best + "?"
	}
	words := strings.Split(bare, "_")
	same := func(word func([]string) string) []string {
		var out []string
		for _, f := range fields {
			if w := word(words); w != "" && w == word(strings.Split(strings.TrimPrefix(f.Var, envPrefix), "_")) {
				out = append(out, f.Var)
			}
		}
		return out
	}
	names := same(func(w []string) string { return w[len(w)-1] })
	if len(names) == 0 {
		names = same(func(w []string) string { return w[0] })
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return "; did you mean " + names[0] + "?"
	}
	return "; did you mean " + strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1] + "?"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
