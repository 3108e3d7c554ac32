package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
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
		return diagNginxLog(args[1:], stdin, stdout, stderr)
	case "nginx-conf":
		return diagNginxConf(args[1:], environ, stdout, stderr)
	}
	fmt.Fprintf(stderr, "upmedic diag: unknown command %q\n%s", args[0], usage)
	return 2
}

// diagProbe checks the configured upstream once, as the user it runs as.
func diagProbe(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diag probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return 2
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		fmt.Fprintln(stderr, "upmedic:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ConnectTimeout+cfg.ResponseTimeout+5*time.Second)
	defer cancel()
	report := probe.Check(ctx, probe.Settings{
		Network: cfg.upstream.Network, Address: cfg.upstream.Address, Display: cfg.upstream.String(),
		HealthPath: cfg.HealthPath, ConnectTimeout: cfg.ConnectTimeout,
		ResponseTimeout: cfg.ResponseTimeout, MaxHeaderBytes: cfg.MaxResponseHeaderBytes,
	})
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

// diagNginxLog classifies an nginx error.log from a file or stdin.
func diagNginxLog(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diag nginx-log", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	since := fs.String("since", "", "leave out lines before this time: RFC 3339, \"2006-01-02 15:04:05\", or a duration ago such as 1h")
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 {
		return 2
	}
	var opt nginxlog.Options
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			fmt.Fprintf(stderr, "upmedic diag nginx-log: --since %q: %v\n", *since, err)
			return 2
		}
		opt.Since = t
	}
	in := stdin
	if name := fs.Arg(0); name != "" && name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(stderr, "upmedic diag nginx-log:", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	report, err := nginxlog.Analyze(in, opt)
	if err != nil {
		fmt.Fprintln(stderr, "upmedic diag nginx-log:", err)
		return 1
	}
	if *asJSON {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "upmedic diag nginx-log:", err)
		return 1
	}
	return 0
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
