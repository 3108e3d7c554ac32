package probe

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// ANSI colours for WriteText on a terminal.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[1;31m"
	ansiYellow = "\x1b[1;33m"
	ansiGreen  = "\x1b[32m"
)

// WriteText writes r for a person: a summary block, then every finding with
// its details and fix, then the verdict. color adds ANSI colours; pass true
// only when w is a terminal.
func (r *Report) WriteText(w io.Writer, color bool) error {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + ansiReset
	}
	var b strings.Builder
	b.WriteString(paint(ansiBold, "upmedic diag probe: "+r.Upstream) + "\n")
	kv := func(k, v string) { fmt.Fprintf(&b, "  %-9s %s\n", k, v) }
	kv("upstream", r.Network+" "+r.Address)
	if set := r.Settings; set.FastCGI {
		req := "FastCGI: FCGI_GET_VALUES"
		if r.HealthPath != "" {
			req += ", GET " + r.HealthPath + " (ping.path)"
		}
		if set.StatusPath != "" {
			req += ", GET " + set.StatusPath + "?json (pm.status_path)"
		}
		kv("request", req)
	} else if r.HealthPath != "" {
		kv("request", "GET "+r.HealthPath+" HTTP/1.1, Host: "+r.Host)
	} else {
		kv("request", "none: connect only (no health path)")
	}
	kv("as", r.Identity.String())
	switch {
	case r.Connected:
		kv("connect", "ok in "+fmtDuration(r.ConnectTime))
	case r.Errno != 0:
		kv("connect", "failed after "+fmtDuration(r.ConnectTime)+": "+diag.ErrnoName(r.Errno))
	default:
		kv("connect", "failed after "+fmtDuration(r.ConnectTime))
	}
	if r.Status != 0 || r.FirstByte > 0 || r.HeaderSectionSize > 0 {
		var parts []string
		if r.Status != 0 {
			parts = append(parts, "status "+strconv.Itoa(r.Status))
		}
		if r.FirstByte > 0 {
			parts = append(parts, "first byte after "+fmtDuration(r.FirstByte))
		}
		if r.HeaderSectionSize > 0 {
			parts = append(parts, "header section "+strconv.Itoa(r.HeaderSectionSize)+" bytes")
		}
		kv("response", strings.Join(parts, ", "))
	}
	s := r.Settings
	kv("limits", fmt.Sprintf("connect %s, response %s, header section %d bytes", s.ConnectTimeout, s.ResponseTimeout, s.MaxHeaderBytes))
	b.WriteByte('\n')

	for _, f := range r.Findings {
		var tag string
		switch f.Severity {
		case SeverityFail:
			tag = paint(ansiRed, "FAIL")
		case SeverityWarn:
			tag = paint(ansiYellow, "WARN")
		default:
			tag = paint(ansiGreen, "OK  ")
		}
		title := f.Title
		if f.Cause != diag.None {
			title = f.Cause.String() + ": " + title
		}
		b.WriteString(tag + "  " + title + "\n")
		for _, d := range f.Details {
			b.WriteString("      " + d + "\n")
		}
		if len(f.Fix) > 0 {
			b.WriteString("      " + paint(ansiBold, "fix:") + "\n")
			for _, l := range f.Fix {
				b.WriteString("        " + l + "\n")
			}
		}
	}

	b.WriteByte('\n')
	fails, warns := r.count(SeverityFail), r.count(SeverityWarn)
	switch {
	case fails > 0:
		b.WriteString(paint(ansiRed, fmt.Sprintf("not healthy: %s, %s", plural(fails, "problem"), plural(warns, "warning"))) + "\n")
	case warns > 0:
		b.WriteString(paint(ansiYellow, "healthy, with "+plural(warns, "warning")) + "\n")
	default:
		b.WriteString(paint(ansiGreen, "healthy") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) count(s Severity) int {
	n := 0
	for i := range r.Findings {
		if r.Findings[i].Severity == s {
			n++
		}
	}
	return n
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// reportJSON is the JSON shape of a Report: a contract for scripts, kept
// apart from the Go type so either can change without breaking the other.
type reportJSON struct {
	Upstream          string        `json:"upstream"`
	Network           string        `json:"network"`
	Address           string        `json:"address"`
	HealthPath        string        `json:"health_path,omitempty"`
	Host              string        `json:"host,omitempty"`
	User              identityJSON  `json:"user"`
	Healthy           bool          `json:"healthy"`
	Connected         bool          `json:"connected"`
	ConnectMS         float64       `json:"connect_ms"`
	Errno             string        `json:"errno,omitempty"`
	Status            int           `json:"status,omitempty"`
	FirstByteMS       float64       `json:"first_byte_ms,omitempty"`
	HeaderSectionSize int           `json:"header_section_size,omitempty"`
	Limits            limitsJSON    `json:"limits"`
	Findings          []findingJSON `json:"findings"`
}

type identityJSON struct {
	UID    int      `json:"uid"`
	User   string   `json:"user,omitempty"`
	GID    int      `json:"gid"`
	Group  string   `json:"group,omitempty"`
	Groups []idJSON `json:"groups"`
}

type idJSON struct {
	ID   int    `json:"id"`
	Name string `json:"name,omitempty"`
}

type limitsJSON struct {
	ConnectTimeoutMS  int64 `json:"connect_timeout_ms"`
	ResponseTimeoutMS int64 `json:"response_timeout_ms"`
	MaxHeaderBytes    int   `json:"max_header_bytes"`
}

type findingJSON struct {
	Severity string   `json:"severity"`
	Cause    string   `json:"cause,omitempty"`
	Title    string   `json:"title"`
	Details  []string `json:"details,omitempty"`
	Fix      []string `json:"fix,omitempty"`
}

// WriteJSON writes r as one indented JSON object: the summary fields,
// "healthy", and "findings" each with "severity" (ok, warn, fail), "cause"
// (the X-Upstream-Diagnosis token, absent when none), "title", "details" and
// "fix".
func (r *Report) WriteJSON(w io.Writer) error {
	out := reportJSON{
		Upstream:   r.Upstream,
		Network:    r.Network,
		Address:    r.Address,
		HealthPath: r.HealthPath,
		Host:       r.Host,
		User: identityJSON{
			UID: r.Identity.User.ID, User: r.Identity.User.Name,
			GID: r.Identity.Group.ID, Group: r.Identity.Group.Name,
			Groups: []idJSON{},
		},
		Healthy:           r.Healthy(),
		Connected:         r.Connected,
		ConnectMS:         ms(r.ConnectTime),
		Errno:             diag.ErrnoName(r.Errno),
		Status:            r.Status,
		FirstByteMS:       ms(r.FirstByte),
		HeaderSectionSize: r.HeaderSectionSize,
		Limits: limitsJSON{
			ConnectTimeoutMS:  r.Settings.ConnectTimeout.Milliseconds(),
			ResponseTimeoutMS: r.Settings.ResponseTimeout.Milliseconds(),
			MaxHeaderBytes:    r.Settings.MaxHeaderBytes,
		},
		Findings: make([]findingJSON, 0, len(r.Findings)),
	}
	for _, g := range r.Identity.Groups {
		out.User.Groups = append(out.User.Groups, idJSON{ID: g.ID, Name: g.Name})
	}
	for _, f := range r.Findings {
		fj := findingJSON{Severity: f.Severity.String(), Title: f.Title, Details: f.Details, Fix: f.Fix}
		if f.Cause != diag.None {
			fj.Cause = f.Cause.String()
		}
		out.Findings = append(out.Findings, fj)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// ms returns d in milliseconds, rounded to microseconds.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}
