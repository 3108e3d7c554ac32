package main

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// imageEnv is the container image's ENV, "KEY=value,KEY=value", linked in by
// the Dockerfile's build stage (-ldflags "-X main.imageEnv=..."), so that
// `upmedic env` can tell a value the image set from one given with -e. It is
// empty in a binary built otherwise.
var imageEnv = ""

// Where a variable's value in effect came from, in `upmedic env`.
const (
	fromDefault     = "default"
	fromEmpty       = "default (set empty)"
	fromEnvironment = "environment"
	fromImage       = "image ENV"
	fromRefused     = "environment (refused)"
)

// envRow is one variable in `upmedic env`.
type envRow struct {
	Var, Value, From, Default, Help string
}

// printEnv prints every variable: its value in effect, where it came from,
// its default and its meaning, then what serve would refuse. It returns 2
// when a variable that is set is unknown or refused (serve would not start),
// else 0: an unset UPMEDIC_UPSTREAM is shown, not refused.
func printEnv(environ []string, stdout, stderr io.Writer) int {
	rows, problems := envRows(environ, parseImageEnv(imageEnv))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tIN EFFECT\tFROM\tDEFAULT\tMEANING")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Var, r.Value, r.From, r.Default, r.Help)
	}
	tw.Flush()
	if problems == nil {
		return 0
	}
	printError(stderr, "upmedic env: serve would refuse ", problems)
	return 2
}

// envRows works out each variable's row from environ and the image's ENV
// (nil outside an image). problems is what serve would refuse, one line a
// variable; a variable it names shows the value given, marked refused.
func envRows(environ []string, image map[string]string) (rows []envRow, problems error) {
	vars := envVars(environ)
	_, upstreamSet := vars[envPrefix+"UPSTREAM"]
	refused := map[string]bool{}
	var errs ConfigErrors
	var cfg *Config
	// Each round drops the variables the last one refused, so that the
	// others still show what they would be; bounded by the variable count.
	for range len(vars) + 2 {
		try := make([]string, 0, len(vars)+1)
		for k, v := range vars {
			if !refused[k] {
				try = append(try, k+"="+v)
			}
		}
		if !upstreamSet || refused[envPrefix+"UPSTREAM"] {
			// A stand-in, so that the others can be checked; never shown.
			try = append(try, envPrefix+"UPSTREAM=127.0.0.1:1")
		}
		var err error
		if cfg, err = loadConfig(try); err == nil {
			break
		}
		var many ConfigErrors
		var one *ConfigError
		switch {
		case errors.As(err, &many):
			errs = append(errs, many...)
			for _, ce := range many {
				refused[ce.Var] = true
			}
		case errors.As(err, &one) && !refused[one.Var]:
			errs = append(errs, one)
			refused[one.Var] = true
		default:
			return nil, err // not about one variable: nothing to show
		}
	}
	if cfg == nil {
		return nil, errs
	}

	v := reflect.ValueOf(cfg).Elem()
	for _, f := range configFields() {
		r := envRow{Var: f.Var, Default: f.Default, Help: f.Help}
		switch {
		case f.Required:
			r.Default = "(required)"
		case r.Default == "":
			r.Default = "(empty)"
		}
		given, set := vars[f.Var]
		imageValue, inImage := image[f.Var]
		r.Value = showValue(v.FieldByName(f.Field))
		switch {
		case refused[f.Var]:
			r.Value, r.From = strconv.Quote(given), fromRefused
		case !set && f.Required:
			r.Value, r.From = "(not set)", "-"
		case !set:
			r.From = fromDefault
		case strings.TrimSpace(given) == "" && f.Default != "" && !emptyMeansOff(f.Var):
			r.From = fromEmpty // env/v11 falls back to the default
		case inImage && imageValue == given:
			r.From = fromImage
		default:
			r.From = fromEnvironment
		}
		rows = append(rows, r)
	}
	for _, ce := range errs {
		if !isField(ce.Var) {
			rows = append(rows, envRow{Var: ce.Var, Value: strconv.Quote(ce.Value), From: fromRefused,
				Default: "-", Help: "unknown variable"})
		}
	}
	if len(errs) > 0 {
		problems = errs
	}
	return rows, problems
}

// emptyMeansOff reports whether a variable set empty turns its setting off
// rather than falling back to the default (loadConfig handles these).
func emptyMeansOff(name string) bool {
	return name == envPrefix+"ADMIN_LISTEN" || name == envPrefix+"FASTCGI_FRONT_CONTROLLER"
}

// showValue formats a Config field's value as `upmedic env` shows it.
func showValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case string:
		if x == "" {
			return "(empty)"
		}
		return x
	}
	return fmt.Sprint(v.Interface())
}

// isField reports whether name is a variable Config reads.
func isField(name string) bool {
	for _, f := range configFields() {
		if f.Var == name {
			return true
		}
	}
	return false
}

// parseImageEnv reads imageEnv's "KEY=value,KEY=value"; nil when empty.
func parseImageEnv(s string) map[string]string {
	if s == "" {
		return nil
	}
	out := map[string]string{}
	for kv := range strings.SplitSeq(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}
