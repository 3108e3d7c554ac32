package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/upmedic/upmedic/diag/nginxlog"
	"github.com/upmedic/upmedic/diag/probe"
)

// diagCommand runs `upmedic diag probe` and `upmedic diag nginx-log`.
func diagCommand(args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "upmedic diag: probe or nginx-log?\n"+usage)
		return 2
	}
	switch args[0] {
	case "probe":
		return diagProbe(args[1:], environ, stdout, stderr)
	case "nginx-log":
		return diagNginxLog(args[1:], stdin, stdout, stderr)
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
