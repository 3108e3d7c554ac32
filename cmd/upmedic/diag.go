package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/upmedic/upmedic/diag/nginxconf"
	"github.com/upmedic/upmedic/diag/nginxlog"
	"github.com/upmedic/upmedic/diag/probe"
)

// defaultNginxConf is where Debian's nginx, and nginx built from source
// with the usual prefix, read their configuration.
const defaultNginxConf = "/etc/nginx/nginx.conf"

// diagCommand runs `upmedic diag probe`, `upmedic diag nginx-log` and
// `upmedic diag nginx-conf`.
func diagCommand(args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "upmedic diag: probe, nginx-log or nginx-conf?\n"+usage)
		return 2
	}
	switch args[0] {
	case "probe":
		return diagProbe(args[1:], environ, stdout, stderr)
	case "nginx-log":
		return diagNginxLog(args[1:], environ, stdin, stdout, stderr)
	case "nginx-conf":
		return diagNginxConf(args[1:], environ, stdout, stderr)
	}
	fmt.Fprintf(stderr, "upmedic diag: unknown command %q\n%s", args[0], usage)
	return 2
}

// diagProbe checks an upstream once: the one given as an argument, else
// UPMEDIC_UPSTREAM; as the user it runs as, or as --as USER. Exit 0
// healthy, 1 a problem found, 2 bad usage.
func diagProbe(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diag probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	as := fs.String("as", "", "probe as this user (name or uid, optionally :group): root only; the connect and the permission checks are that user's")
	confFile := fs.String("conf", "", "nginx's configuration, read for its worker user (default "+defaultNginxConf+" when it exists)")
	path := fs.String("path", "", "the path to request, in place of UPMEDIC_HEALTH_PATH; for a fastcgi upstream, php-fpm's ping.path (/ping)")
	upstreamArg, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if upstreamArg != "" {
		a, err := parseUpstream(upstreamArg)
		if err != nil {
			fmt.Fprintf(stderr, "upmedic diag probe: upstream %q: %v\n", upstreamArg, err)
			return 2
		}
		// The argument takes the place of UPMEDIC_UPSTREAM; the FASTCGI_
		// variables of the configured upstream do not apply to an HTTP one.
		environ = append(slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
			return strings.HasPrefix(kv, envPrefix+"UPSTREAM=") || (!a.FastCGI && strings.HasPrefix(kv, envPrefix+"FASTCGI_"))
		}), envPrefix+"UPSTREAM="+upstreamArg)
	} else if !hasVar(environ, envPrefix+"UPSTREAM") {
		fmt.Fprintln(stderr, "upmedic diag probe: which upstream? Give it as an argument (upmedic diag probe unix:/run/gunicorn/app.sock) or set UPMEDIC_UPSTREAM")
		return 2
	}
	if *path != "" {
		environ = append(slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
			return strings.HasPrefix(kv, envPrefix+"HEALTH_PATH=")
		}), envPrefix+"HEALTH_PATH="+*path)
	}
	if a, err := parseUpstream(envVars(environ)[envPrefix+"UPSTREAM"]); err == nil && a.FastCGI && !hasVar(environ, envPrefix+"FASTCGI_ROOT") {
		// The probe runs no script, so it needs no document root; serve
		// does.
		environ = append(slices.Clone(environ), envPrefix+"FASTCGI_ROOT=/")
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		fmt.Fprintln(stderr, "upmedic:", err)
		return 2
	}
	s := probe.Settings{
		Network: cfg.upstream.Network, Address: cfg.upstream.Address, Display: cfg.upstream.String(),
		HealthPath: cfg.HealthPath, ConnectTimeout: cfg.ConnectTimeout,
		ResponseTimeout: cfg.ResponseTimeout, MaxHeaderBytes: cfg.MaxResponseHeaderBytes,
		FastCGI: cfg.upstream.FastCGI, StatusPath: cfg.FastCGIStatusPath,
		StatusNetwork: cfg.status.Network, StatusAddress: cfg.status.Address,
	}
	if *as != "" {
		id, err := lookupIdentity(*as)
		if err != nil {
			fmt.Fprintf(stderr, "upmedic diag probe: --as %q: %v\n", *as, err)
			return 2
		}
		if err := become(id); err != nil {
			fmt.Fprintf(stderr, "upmedic diag probe: --as %s: %v\n", *as, err)
			return 2
		}
	} else if os.Geteuid() == 0 {
		// Root connects anywhere: name who should be tested instead.
		n, _ := readNginxConf(*confFile, cfg.listen.String())
		if n.read {
			s.TestAs = []string{n.user + ": nginx's workers, " + n.userFrom}
		} else {
			s.TestAs = []string{"www-data: nginx's workers on Debian (nginx.conf was not read)"}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ConnectTimeout+cfg.ResponseTimeout+5*time.Second)
	defer cancel()
	report := probe.Check(ctx, s)
	if *asJSON {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteText(stdout, isTerminal(stdout))
	}
	if err != nil {
		fmt.Fprintln(stderr, "upmedic diag probe:", err)
		return 1
	}
	if !report.Healthy() {
		return 1
	}
	return 0
}

// parseInterspersed parses fs's flags wherever they stand among args (the
// flag package stops at the first argument) and returns the one argument,
// or "" when there is none. More than one argument is an error.
func parseInterspersed(fs *flag.FlagSet, args []string) (string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) > 1 {
		fmt.Fprintf(fs.Output(), "upmedic %s: one upstream at most, got %q\n", fs.Name(), positional)
		return "", errors.New("too many arguments")
	}
	if len(positional) == 1 {
		return positional[0], nil
	}
	return "", nil
}

// diagNginxLog classifies an nginx error.log from a file or stdin: exit 0
// when it holds no upstream failure, 1 when it does, 2 when it cannot be
// read.
func diagNginxLog(args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diag nginx-log", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	since := fs.String("since", "", "leave out lines before this time: RFC 3339, \"2006-01-02 15:04:05\", or a duration ago such as 1h")
	confFile := fs.String("conf", "", "nginx's configuration, read for its worker user and upmedic's upstream blocks (default "+defaultNginxConf+" when it exists)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 {
		return 2
	}
	cfg, err := loadConfigForTools(environ)
	if err != nil {
		fmt.Fprintln(stderr, "upmedic:", err)
		return 2
	}
	opt := nginxlog.Options{
		Listen: cfg.listen.String(), CheckSockets: true,
		ResponseTimeout: cfg.ResponseTimeout, ReadTimeout: cfg.ReadTimeout,
		MaxResponseHeaderBytes: cfg.MaxResponseHeaderBytes,
	}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			fmt.Fprintf(stderr, "upmedic diag nginx-log: --since %q: %v\n", *since, err)
			return 2
		}
		opt.Since = t
	}
	if n, err := readNginxConf(*confFile, cfg.listen.String()); err != nil {
		fmt.Fprintln(stderr, "upmedic diag nginx-log: --conf:", err)
		return 2
	} else if n.read {
		opt.NginxUser, opt.NginxUserFrom, opt.UpmedicUpstreams = n.user, n.userFrom, n.upstreams
	}
	in := stdin
	if name := fs.Arg(0); name != "" && name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(stderr, "upmedic diag nginx-log:", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	report, err := nginxlog.Analyze(in, opt)
	if err != nil {
		fmt.Fprintln(stderr, "upmedic diag nginx-log:", err)
		return 2
	}
	if *asJSON {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "upmedic diag nginx-log:", err)
		return 2
	}
	if report.Failures > 0 {
		return 1
	}
	return 0
}

// nginxFacts are what the diag commands read from nginx's configuration.
type nginxFacts struct {
	read      bool     // the configuration was read
	user      string   // nginx's worker user
	userFrom  string   // where user comes from: "user in /etc/nginx/nginx.conf:1"
	upstreams []string // upstream{} blocks whose servers are upmedic
}

// readNginxConf reads nginx's worker user and upmedic's upstream blocks
// (those with a server at listen) from file. An empty file means
// /etc/nginx/nginx.conf if it exists: read is then false when it does not,
// and no error is returned for it.
func readNginxConf(file, listen string) (nginxFacts, error) {
	explicit := file != ""
	if !explicit {
		file = defaultNginxConf
		if _, err := os.Stat(file); err != nil {
			return nginxFacts{}, nil
		}
	}
	conf, err := nginxconf.Load(file)
	if err != nil {
		if explicit {
			return nginxFacts{}, err
		}
		return nginxFacts{}, nil
	}
	n := nginxFacts{read: true, upstreams: conf.UpstreamsTo(listen)}
	if user, d := conf.WorkerUser(); d != nil {
		n.user, n.userFrom = user, fmt.Sprintf("user in %s:%d", d.File, d.Line)
	} else {
		// nginx started as root runs its workers as nobody unless told.
		n.user, n.userFrom = "nobody", "nginx's built-in default: "+file+" has no user directive"
	}
	return n, nil
}

// diagNginxConf checks nginx's configuration against upmedic's settings:
// exit 0 when it agrees, 1 with errors, 2 when it cannot be read or parsed.
func diagNginxConf(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diag nginx-conf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	nginxBin := fs.String("nginx", "", "the nginx binary whose version (nginx -v) decides its defaults; empty looks for nginx in PATH and /usr/sbin")
	phpFPM := fs.String("php-fpm", "/etc/php/*/fpm/pool.d/*.conf", "php-fpm pool files to read request_terminate_timeout from; empty reads none")
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 {
		return 2
	}
	cfg, err := loadConfigForTools(environ)
	if err != nil {
		fmt.Fprintln(stderr, "upmedic:", err)
		return 2
	}
	file := defaultNginxConf
	if fs.NArg() == 1 {
		file = fs.Arg(0)
	}
	conf, err := nginxconf.Load(file)
	if err != nil {
		fmt.Fprintln(stderr, "upmedic diag nginx-conf:", err)
		return 2
	}
	s := nginxconf.Settings{
		Listen: cfg.listen.String(), ConnectTimeout: cfg.ConnectTimeout,
		ResponseTimeout: cfg.ResponseTimeout, ReadTimeout: cfg.ReadTimeout, Hold: cfg.Hold,
		MaxResponseHeaderBytes: cfg.MaxResponseHeaderBytes, ExposeDetails: cfg.ExposeDetails,
	}
	if hasVar(environ, envPrefix+"UPSTREAM") {
		s.Upstream = cfg.upstream.String()
	}
	if *phpFPM != "" {
		s.PHPFPM = []string{*phpFPM}
	}
	if bin := findNginx(*nginxBin); bin != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.Version, _ = nginxconf.Version(ctx, bin) // unknown: Check notes it
		cancel()
	}
	report := nginxconf.Check(conf, s)
	if *asJSON {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "upmedic diag nginx-conf:", err)
		return 2
	}
	if report.Errors() > 0 {
		return 1
	}
	return 0
}

// findNginx returns the nginx binary to ask for its version: bin when set,
// else nginx in PATH or in the sbin directories, else "".
func findNginx(bin string) string {
	if bin != "" {
		return bin
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// hasVar reports whether environ sets the variable name (even to "").
func hasVar(environ []string, name string) bool {
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			return true
		}
	}
	return false
}

// parseSince accepts RFC 3339, nginx's "2006/01/02 15:04:05", a date-time
// with a dash, or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006/01/02 15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a time; use RFC 3339, \"2006-01-02 15:04:05\" or a duration such as 1h")
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
