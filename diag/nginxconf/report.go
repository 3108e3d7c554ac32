package nginxconf

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// Severity grades a Finding. The zero Severity is Warning.
type Severity uint8

const (
	// Warning is a setting that loses part of what upmedic gives (keep-alive,
	// the diagnosis in the access log, hidden diagnosis headers) but leaves
	// failures diagnosed.
	Warning Severity = iota
	// Error is a setting with which nginx acts before upmedic can, so
	// failures reach clients and logs undiagnosed, or requests go past
	// upmedic altogether.
	Error
)

// String returns "warning" or "error".
func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// MarshalText returns s.String(), so Severity is a string in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Finding is one setting in nginx's configuration that does not agree with
// upmedic's, and the line that fixes it.
type Finding struct {
	// File and Line are where to fix it: the directive at fault, or, for a
	// directive that is missing, the line it belongs next to (the location's
	// proxy_pass, the server). Line is 0 for the configuration as a whole.
	File string `json:"file"`
	Line int    `json:"line"`
	// Directive is the directive the finding is about ("proxy_read_timeout").
	Directive string   `json:"directive"`
	Severity  Severity `json:"severity"`
	// Message says what is wrong and what it costs.
	Message string `json:"message"`
	// Fix is the line to write ("proxy_read_timeout 60s;").
	Fix string `json:"fix"`
}

// Report is what Check found.
type Report struct {
	// File is the main configuration file.
	File string `json:"-"`
	// Listen is upmedic's address as the checker looked for it.
	Listen string `json:"-"`
	// Version is the nginx version whose defaults were applied, "" when
	// unknown.
	Version string `json:"-"`
	// Locations counts the locations that proxy to upmedic.
	Locations int `json:"-"`
	// Findings are in file order, then line order. Never nil.
	Findings []Finding `json:"findings"`
	// Notes say what could not be checked and why. Never nil.
	Notes []string `json:"notes"`
}

// Errors returns how many findings are errors.
func (r *Report) Errors() int { return r.count(Error) }

// Warnings returns how many findings are warnings.
func (r *Report) Warnings() int { return r.count(Warning) }

func (r *Report) count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// WriteText writes r as nginx -t would, one line a finding with its fix:
//
//	/etc/nginx/conf.d/app.conf:12: proxy_read_timeout: [error] 30s is not above ...; fix: proxy_read_timeout 60s;
//
// then the notes and a summary line.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, f := range r.Findings {
		pos := f.File
		if f.Line > 0 {
			pos += ":" + strconv.Itoa(f.Line)
		}
		fmt.Fprintf(bw, "%s: %s: [%s] %s; fix: %s\n", pos, f.Directive, f.Severity, f.Message, f.Fix)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(bw, "note: %s\n", n)
	}
	nginx := "nginx version unknown"
	if r.Version != "" {
		nginx = "nginx " + r.Version
	}
	where := fmt.Sprintf("%s proxying to upmedic at %s, %s", plural(r.Locations, "location"), r.Listen, nginx)
	if len(r.Findings) == 0 {
		fmt.Fprintf(bw, "upmedic diag nginx-conf: %s agrees with upmedic's settings (%s)\n", r.File, where)
	} else {
		fmt.Fprintf(bw, "upmedic diag nginx-conf: %s: %s, %s (%s)\n", r.File,
			plural(r.Errors(), "error"), plural(r.Warnings(), "warning"), where)
	}
	return bw.Flush()
}

// WriteJSON writes r as {"findings": [{"file", "line", "directive",
// "severity", "message", "fix"}], "notes": [...]}.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
