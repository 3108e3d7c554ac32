package admin

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// The status page is one html/template, its stylesheet and its script,
// embedded in the binary: no external assets, and it works offline. It is
// drawn from the same Status document as /status, on the server, so every
// string from a request or an upstream (paths, causes, versions) passes
// through html/template's escaping. The script only re-fetches the page and
// swaps the server-rendered part in; it never builds markup from data.
var (
	//go:embed page.html
	pageHTML string
	//go:embed page.css
	pageCSS string
	//go:embed page.js
	pageJS string
)

// pageTemplate is parsed once per handler (NewHandler), not at package
// init, so that the package keeps no mutable globals.
func pageTemplate() *template.Template {
	return template.Must(template.New("page").Parse(pageHTML))
}

// pageCSP is the page's Content-Security-Policy: nothing may load or run
// but the page's own stylesheet and script (by hash) and its fetch of
// itself. Even markup that slipped past escaping could not run a script.
func pageCSP() string {
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return "default-src 'none'; style-src " + hash(pageCSS) + "; script-src " + hash(pageJS) +
		"; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	st := h.report(time.Now())
	var buf bytes.Buffer
	if err := h.tmpl.Execute(&buf, newPageView(&st)); err != nil {
		h.s.Logger.Error("render the status page", "error", err.Error())
		writeText(w, http.StatusInternalServerError, "500 the status page failed to render; /status has the data")
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, &buf)
	}
}

// pageView is what the template draws: the Status document, and the parts
// of it already laid out as text and SVG coordinates.
type pageView struct {
	S           *Status
	CSS         template.CSS
	JS          template.JS
	Verdict     verdict
	Generated   string
	Uptime      string
	Health      card
	Breaker     card
	FPM         *card // PHP-FPM's pool and STDERR; nil for an HTTP upstream
	Numbers     []numbers
	Chart       chart
	Legend      []legendRow
	Probes      probeStrip
	Flips       []change
	Transitions []change
	Recent      []recentRow
}

// verdict is the banner: one line of what is wrong, if anything.
type verdict struct {
	Class  string // ok, warn or bad
	Short  string // for the window title: UP, DOWN, ...
	Title  string
	Detail string
}

// card is the health or breaker state.
type card struct {
	Class, Label, Detail string
}

// numbers is one row of the traffic table.
type numbers struct {
	Label, Requests, PerSecond, P50, P99, Failures, App5xx string
	FailClass, AppClass                                    string
}

// chart is the failures-per-minute SVG.
type chart struct {
	Width, Height, Base int
	MidX, MidY          int // where "no diagnoses" goes
	Bars                []bar
	Ticks               []tick
	Max                 uint64
	MaxY                int
	Empty               bool
}

type bar struct {
	X, Y, W, H string
	Fill       string
	Title      string
}

type tick struct {
	X      int
	Label  string
	Anchor string // start, middle or end: the first and last stay inside
}

// legendRow is one cause beside the chart.
type legendRow struct {
	ID, Cause, Fill, Hint string
	Hour, Since           uint64
	LastSeen, LastAgo     string
}

// probeStrip is the health probe timeline SVG.
type probeStrip struct {
	Width, Height int
	Marks         []bar
	Flips         []flipMark
	Summary       string
	Failed        []causeTally
}

type flipMark struct {
	X     int
	Title string
}

type causeTally struct {
	Cause string
	N     int
}

// change is one health flip or breaker transition.
type change struct {
	When, Ago, From, To, Cause, Class string
}

// recentRow is one recent failure.
type recentRow struct {
	ID, When, Ago, Method, Path, Cause, Fill, Status, Elapsed, Errno, Phase, Diagnosis, Hint string
	Truncated, Aborted, App                                                                  bool
}

// Layout of the two SVGs.
const (
	slotPx     = 11 // one minute, or one probe
	barPx      = 9
	chartPlot  = 120 // height of the tallest bar
	chartTop   = 8
	probeTall  = 40
	probeShort = 6
)

func newPageView(st *Status) *pageView {
	now := st.Time
	v := &pageView{
		S:         st,
		CSS:       template.CSS(pageCSS),
		JS:        template.JS(pageJS),
		Generated: st.Time.Format("2006-01-02 15:04:05"),
		Health:    healthCard(st),
		Breaker:   breakerCard(st),
		FPM:       fpmCard(st),
	}
	if !st.Started.IsZero() {
		v.Uptime = span(now.Sub(st.Started))
	}
	v.Verdict = newVerdict(st)
	for _, w := range []struct {
		label string
		w     *Window
	}{{"last minute", &st.History.LastMinute}, {"last hour", &st.History.LastHour}} {
		n := numbers{
			Label:     w.label,
			Requests:  strconv.FormatUint(w.w.Requests, 10),
			PerSecond: rate(w.w.PerSecond),
			P50:       latency(w.w.P50MS),
			P99:       latency(w.w.P99MS),
			Failures:  strconv.FormatUint(w.w.Failures, 10),
			App5xx:    strconv.FormatUint(w.w.App5xx, 10),
		}
		if w.w.Failures > 0 {
			n.FailClass = "bad"
		}
		if w.w.App5xx > 0 {
			n.AppClass = "warn"
		}
		v.Numbers = append(v.Numbers, n)
	}
	v.Chart = newChart(st.History.Minutes)
	v.Legend = newLegend(st)
	v.Probes = newProbeStrip(st)
	for _, f := range st.Health.Flips {
		c := change{When: clock(f.At), Ago: ago(now, f.At), From: f.From, To: f.To, Cause: f.Cause, Class: stateClass(f.To)}
		v.Flips = append(v.Flips, c)
	}
	for _, t := range st.Breaker.Transitions {
		c := change{When: clock(t.At), Ago: ago(now, t.At), From: t.From, To: t.To, Cause: t.Cause, Class: breakerClass(t.To)}
		v.Transitions = append(v.Transitions, c)
	}
	for _, r := range st.Recent {
		row := recentRow{
			ID:        "f" + strconv.FormatUint(r.Seq, 10),
			When:      clock(r.At),
			Ago:       ago(now, r.At),
			Method:    r.Method,
			Path:      r.Path,
			Truncated: r.PathTruncated,
			Cause:     r.Cause,
			Fill:      causeColor(r.Cause),
			Status:    strconv.Itoa(r.Status),
			Elapsed:   millis(r.ElapsedMS),
			Errno:     r.Errno,
			Phase:     r.Phase,
			Diagnosis: r.Diagnosis,
			Hint:      r.Hint,
			Aborted:   r.Aborted,
			App:       r.Cause == diag.UpstreamStatus.String(),
		}
		if r.Aborted {
			row.Status = "cut"
		}
		v.Recent = append(v.Recent, row)
	}
	return v
}

func newVerdict(st *Status) verdict {
	hs, bs, lm := &st.Health, &st.Breaker, &st.History.LastMinute
	switch {
	case hs.State == "down":
		d := "Health checks fail"
		if hs.LastCause != "" {
			d += ": " + hs.LastCause
		}
		if !hs.Since.IsZero() {
			d += ", since " + clock(hs.Since) + " (" + ago(st.Time, hs.Since) + ")"
		}
		return verdict{"bad", "DOWN", "Upstream down", d + ". Requests fail fast with upstream_unhealthy."}
	case bs.State == "open":
		return verdict{"bad", "BREAKER OPEN", "Circuit breaker open", "Tripped by " + bs.TrippedBy +
			"; " + nextTrial(st) + ". Requests fail fast with breaker_open."}
	case lm.Failures > 0:
		d := strconv.FormatUint(lm.Failures, 10) + " diagnosed failures in the last minute, most " + topCause(lm)
		if lm.App5xx > 0 {
			d += "; and " + strconv.FormatUint(lm.App5xx, 10) + " of the app's own 5xx"
		}
		return verdict{"bad", "FAILING", "Requests are failing", d + "."}
	case hs.State == "unknown":
		return verdict{"warn", "UNKNOWN", "Upstream state unknown", unknownText(hs) + "."}
	case lm.App5xx > 0:
		return verdict{"warn", "APP 5XX", "The app answers 5xx",
			strconv.FormatUint(lm.App5xx, 10) + " of the app's own 5xx in the last minute (upstream_status): see the app's log."}
	case hs.State == "off":
		return verdict{"ok", "OK", "No failures", "No failures in the last minute; health checks are off."}
	}
	return verdict{"ok", "UP", "Upstream up", "Health checks pass; no failures in the last minute."}
}

// topCause names the failure cause counted most in w.
func topCause(w *Window) string {
	best, n := "", uint64(0)
	for _, c := range diag.Causes() {
		if k := w.Causes[c.String()]; c.IsFailure() && k > n {
			best, n = c.String(), k
		}
	}
	return best
}

func unknownText(hs *HealthStatus) string {
	switch {
	case hs.LastProbe == nil:
		return "No probe has run yet"
	case hs.Consecutive.Successes == 0:
		return "No probe has succeeded yet; the last one: " + hs.LastProbe.Cause
	}
	return strconv.Itoa(hs.Consecutive.Successes) + " of " + strconv.Itoa(hs.Rise) + " successful probes needed"
}

// fpmCard is PHP-FPM's pool, as the health checker last read it, and how
// many STDERR texts it wrote; nil for an HTTP upstream.
func fpmCard(st *Status) *card {
	f := st.FastCGI
	if f == nil {
		return nil
	}
	c := &card{Label: "no pool status", Detail: "UPMEDIC_FASTCGI_STATUS_PATH names none, or no read yet."}
	if p := f.Pool; p != nil {
		ago := span(time.Duration(p.AgeMS) * time.Millisecond)
		c.Label = "pool " + p.Pool + ": " + strconv.Itoa(p.ActiveProcesses) + "/" + strconv.Itoa(p.TotalProcesses) + " busy"
		c.Detail = "listen queue " + strconv.Itoa(p.ListenQueue) + " (max " + strconv.Itoa(p.MaxListenQueue) + "), read " + ago + " ago."
		switch {
		case !p.OK:
			c.Class, c.Detail = "warn", "the last status page read failed; figures from an earlier one. "+c.Detail
		case p.ListenQueue > 0:
			c.Class = "warn"
		}
	}
	c.Detail += " " + strconv.Itoa(len(f.Stderr)) + " recent STDERR texts (/status)."
	return c
}

func healthCard(st *Status) card {
	hs := &st.Health
	c := card{Class: stateClass(hs.State), Label: hs.State}
	switch hs.State {
	case "off":
		c.Detail = "No health checks."
		return c
	case "unknown":
		c.Detail = unknownText(hs) + "."
	case "down":
		c.Detail = strconv.Itoa(hs.Consecutive.Failures) + " failed probes in a row (down after " + strconv.Itoa(hs.Fall) + ")."
	case "up":
		c.Detail = strconv.Itoa(hs.Consecutive.Successes) + " good probes in a row (up after " + strconv.Itoa(hs.Rise) + ")."
		if hs.Consecutive.Failures > 0 {
			c.Detail = strconv.Itoa(hs.Consecutive.Failures) + " failed in a row (down after " + strconv.Itoa(hs.Fall) + ")."
			c.Class = "warn"
		}
	}
	if !hs.Since.IsZero() {
		c.Detail += " Since " + clock(hs.Since) + " (" + ago(st.Time, hs.Since) + ")."
	}
	if !hs.NextProbe.IsZero() {
		c.Detail += " Next probe " + in(st.Time, hs.NextProbe) + "."
	}
	return c
}

func breakerCard(st *Status) card {
	bs := &st.Breaker
	c := card{Class: breakerClass(bs.State), Label: bs.State}
	switch bs.State {
	case "off":
		c.Detail = "No circuit breaker."
		return c
	case "open":
		c.Detail = "Tripped by " + bs.TrippedBy + "; " + nextTrial(st) + "."
	case "half-open":
		c.Detail = "The next request is the trial: it closes the breaker if it succeeds."
	case "closed":
		c.Detail = strconv.FormatUint(uint64(bs.ConsecutiveFailures), 10) + " counted failures in a row."
		if bs.TrippedBy != "" {
			c.Detail += " Last tripped by " + bs.TrippedBy + "."
		}
	}
	return c
}

func nextTrial(st *Status) string {
	if st.Breaker.NextTry.IsZero() {
		return "the next request is the trial"
	}
	return "next trial " + in(st.Time, st.Breaker.NextTry) + " (" + clock(st.Breaker.NextTry) + ")"
}

func stateClass(state string) string {
	switch state {
	case "up":
		return "ok"
	case "down":
		return "bad"
	}
	return "warn"
}

func breakerClass(state string) string {
	switch state {
	case "closed", "off":
		return "ok"
	case "open":
		return "bad"
	}
	return "warn"
}

// newChart lays out the failures of each minute as stacked bars, one
// colour per cause in table order, scaled to the busiest minute.
func newChart(minutes []Minute) chart {
	c := chart{Width: len(minutes) * slotPx, Height: chartTop + chartPlot + 18, Base: chartTop + chartPlot}
	c.MidX, c.MidY = c.Width/2, chartTop+chartPlot/2
	for _, m := range minutes {
		var n uint64
		for _, k := range m.Causes {
			n += k
		}
		c.Max = max(c.Max, n)
	}
	c.MaxY = chartTop + 10
	for i, m := range minutes {
		switch {
		case i == 0:
			c.Ticks = append(c.Ticks, tick{X: 0, Label: m.Start.Format("15:04"), Anchor: "start"})
		case i == len(minutes)-1:
			c.Ticks = append(c.Ticks, tick{X: c.Width, Label: m.Start.Format("15:04"), Anchor: "end"})
		case i%15 == 0:
			c.Ticks = append(c.Ticks, tick{X: i*slotPx + barPx/2, Label: m.Start.Format("15:04"), Anchor: "middle"})
		}
		if c.Max == 0 {
			continue
		}
		var cum uint64
		for _, cause := range chartOrder(m.Causes) {
			k := m.Causes[cause]
			lo := float64(cum) / float64(c.Max) * chartPlot
			cum += k
			hi := float64(cum) / float64(c.Max) * chartPlot
			c.Bars = append(c.Bars, bar{
				X:     strconv.Itoa(i*slotPx + 1),
				Y:     px(float64(c.Base) - hi),
				W:     strconv.Itoa(barPx),
				H:     px(hi - lo),
				Fill:  causeColor(cause),
				Title: m.Start.Format("15:04") + ": " + strconv.FormatUint(k, 10) + " " + cause,
			})
		}
	}
	c.Empty = c.Max == 0
	return c
}

// chartOrder returns the causes of m in table order, then any unknown
// names sorted, so that the stacking is stable.
func chartOrder(m map[string]uint64) []string {
	var out []string
	known := map[string]bool{}
	for _, c := range diag.Causes() {
		known[c.String()] = true
		if m[c.String()] > 0 {
			out = append(out, c.String())
		}
	}
	var other []string
	for k, n := range m {
		if !known[k] && n > 0 {
			other = append(other, k)
		}
	}
	slices.Sort(other)
	return append(out, other...)
}

// newLegend lists every cause seen since start beside the chart.
func newLegend(st *Status) []legendRow {
	var out []legendRow
	for _, c := range st.Causes {
		out = append(out, legendRow{
			ID:       "c-" + c.Cause,
			Cause:    c.Cause,
			Fill:     causeColor(c.Cause),
			Hour:     st.History.LastHour.Causes[c.Cause],
			Since:    c.Count,
			LastSeen: clock(c.LastSeen),
			LastAgo:  ago(st.Time, c.LastSeen),
			Hint:     c.Hint,
		})
	}
	return out
}

// newProbeStrip lays out the recent probes, oldest on the left: green for a
// success, red for a failure, taller for slower, a line where the state
// flipped.
func newProbeStrip(st *Status) probeStrip {
	hs := &st.Health
	n := len(hs.Probes)
	ps := probeStrip{Width: max(n, 1) * slotPx, Height: probeTall + 2}
	slowest := 0.0
	for _, p := range hs.Probes {
		slowest = max(slowest, p.LatencyMS)
	}
	tally := map[string]int{}
	for i := range hs.Probes {
		p := &hs.Probes[n-1-i] // oldest first
		h := float64(probeShort)
		if slowest > 0 {
			h += (probeTall - probeShort) * p.LatencyMS / slowest
		}
		m := bar{X: strconv.Itoa(i*slotPx + 1), W: strconv.Itoa(barPx), Y: px(probeTall + 1 - h), H: px(h), Fill: okColor}
		m.Title = clock(p.At) + " ok"
		if p.Status != 0 {
			m.Title += " " + strconv.Itoa(p.Status)
		}
		if !p.OK {
			m.Fill = badColor
			m.Title = clock(p.At) + " failed: " + p.Cause
			if p.Status != 0 {
				m.Title += " " + strconv.Itoa(p.Status)
			}
			tally[p.Cause]++
		}
		m.Title += ", " + millis(p.LatencyMS)
		ps.Marks = append(ps.Marks, m)
		for _, f := range hs.Flips {
			if f.At.Equal(p.At) {
				ps.Flips = append(ps.Flips, flipMark{X: i * slotPx, Title: clock(f.At) + ": " + f.From + " → " + f.To})
			}
		}
	}
	for _, c := range diag.Causes() {
		if k := tally[c.String()]; k > 0 {
			ps.Failed = append(ps.Failed, causeTally{c.String(), k})
			delete(tally, c.String())
		}
	}
	var other []string
	for c := range tally {
		other = append(other, c)
	}
	slices.Sort(other)
	for _, c := range other {
		ps.Failed = append(ps.Failed, causeTally{c, tally[c]})
	}
	if p := hs.LastProbe; p != nil {
		s := "Last probe " + clock(p.At) + " (" + ago(st.Time, p.At) + "): "
		if p.OK {
			s += "ok"
		} else {
			s += "failed, " + p.Cause
		}
		if p.Status != 0 {
			s += ", status " + strconv.Itoa(p.Status)
		}
		ps.Summary = s + ", " + millis(p.LatencyMS) + "."
	}
	return ps
}

// Colours: one per cause; the app's own 5xx in a colour apart from
// upmedic's failures.
const (
	okColor    = "#2f9e44"
	badColor   = "#d9480f"
	otherColor = "#868e96"
)

// causeColor returns the colour of the cause named name in the chart and
// the tables; grey for a name that is not a cause.
func causeColor(name string) string {
	c, ok := diag.ParseCause(name)
	if !ok {
		return otherColor
	}
	switch c {
	case diag.ConnectionRefused:
		return "#e03131"
	case diag.SocketNotFound:
		return "#f76707"
	case diag.SocketPermissionDenied:
		return "#a61e4d"
	case diag.DestinationIPProhibited:
		return "#d6336c"
	case diag.DestinationIPUnroutable:
		return "#c2255c"
	case diag.DNSError:
		return "#1098ad"
	case diag.DNSTimeout:
		return "#0b7285"
	case diag.ConnectionTimeout:
		return "#7048e8"
	case diag.ConnectionLimitReached:
		return "#f59f00"
	case diag.ConnectionTerminated:
		return "#e8590c"
	case diag.HTTPResponseTimeout:
		return "#9c36b5"
	case diag.HTTPResponseHeaderSectionSize:
		return "#b35900"
	case diag.HTTPProtocolError:
		return "#5f3dc4"
	case diag.HTTPResponseIncomplete:
		return "#087f5b"
	case diag.ConnectionReadTimeout:
		return "#862e9c"
	case diag.UpstreamUnhealthy:
		return "#495057"
	case diag.BreakerOpen:
		return "#212529"
	case diag.UpstreamStatus:
		return "#1c7ed6" // the app's own 5xx: blue, apart from upmedic's reds
	}
	return "#000000" // proxy_internal_error
}

// Formatting. Times are UTC, as in /status.

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("15:04:05")
}

// ago says how long before now t was: "4s ago", "3m 10s ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	if d < time.Second {
		return "just now"
	}
	return span(d) + " ago"
}

// in says how long after now t is: "in 4s", or "now".
func in(now, t time.Time) string {
	d := t.Sub(now)
	if d < time.Second {
		return "now"
	}
	return "in " + span((d+time.Second-1)/time.Second*time.Second)
}

// span prints d to the second, in its two largest units: "45s", "3m 10s",
// "2h 5m", "3d 4h".
func span(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return strconv.FormatInt(s, 10) + "s"
	case s < 3600:
		return strconv.FormatInt(s/60, 10) + "m " + strconv.FormatInt(s%60, 10) + "s"
	case s < 86400:
		return strconv.FormatInt(s/3600, 10) + "h " + strconv.FormatInt(s%3600/60, 10) + "m"
	}
	return strconv.FormatInt(s/86400, 10) + "d " + strconv.FormatInt(s%86400/3600, 10) + "h"
}

// millis prints a duration in milliseconds with three significant digits.
func millis(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + " s"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
}

func latency(v *float64) string {
	if v == nil {
		return "-"
	}
	return millis(*v)
}

func rate(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func px(v float64) string {
	return strings.TrimSuffix(strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), "0"), ".")
}
