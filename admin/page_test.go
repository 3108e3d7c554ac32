package admin

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/internal/htmltags"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixtureNow is the time of the fixed Status the page tests draw.
var fixtureNow = time.Date(2026, 3, 1, 12, 0, 20, 0, time.UTC)

func f64(v float64) *float64 { return &v }

// fixtureStatus is a Status with something in every part of the page: an
// upstream gone down, a breaker open, failures over the hour, an app 5xx.
func fixtureStatus() *Status {
	now := fixtureNow
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	st := &Status{
		Upstream: "127.0.0.1:8000",
		Version:  "v1.2.3",
		Time:     now,
		Started:  at(95 * time.Minute),
		Config: []ConfigValue{{"UPMEDIC_UPSTREAM", "127.0.0.1:8000"}, {"UPMEDIC_CONNECT_TIMEOUT", "2s"},
			{"UPMEDIC_HEALTH_PATH", ""}},
		Health: HealthStatus{
			State: "down", Since: at(16 * time.Second), Rise: 2, Fall: 3,
			Consecutive: Streak{Failures: 4}, NextProbe: now.Add(1500 * time.Millisecond),
			LastCause: "connection_refused",
		},
		Breaker: BreakerStatus{State: "open", TrippedBy: "connection_refused", NextTry: now.Add(4200 * time.Millisecond),
			Transitions: []TransitionStatus{
				{At: at(6 * time.Second), From: "closed", To: "open", Cause: "connection_refused"},
				{At: at(40 * time.Minute), From: "half-open", To: "closed"},
				{At: at(41 * time.Minute), From: "open", To: "half-open"},
				{At: at(42 * time.Minute), From: "closed", To: "open", Cause: "connection_terminated"},
			}},
		Causes: []CauseCount{
			{Cause: "connection_refused", Count: 21, FirstSeen: at(80 * time.Minute), LastSeen: at(2 * time.Second), Hint: diag.ConnectionRefused.Hint()},
			{Cause: "connection_terminated", Count: 5, FirstSeen: at(42 * time.Minute), LastSeen: at(42 * time.Minute), Hint: diag.ConnectionTerminated.Hint()},
			{Cause: "breaker_open", Count: 3, FirstSeen: at(5 * time.Second), LastSeen: at(1 * time.Second), Hint: diag.BreakerOpen.Hint()},
			{Cause: "upstream_status", Count: 2, FirstSeen: at(30 * time.Minute), LastSeen: at(30 * time.Minute), Hint: diag.UpstreamStatus.Hint()},
		},
		Recent: []RecentDiagnosis{
			{Seq: 31, At: at(1 * time.Second), Method: "GET", Path: "/api/items", Cause: "breaker_open", ElapsedMS: 0.01,
				Status: 503, Phase: "connect", Diagnosis: "breaker_open;elapsed-ms=0;tripped-by=connection_refused;retry-in-ms=4200",
				Hint: diag.BreakerOpen.Hint()},
			{Seq: 28, At: at(2 * time.Second), Method: "POST", Path: "/login", Cause: "connection_refused", Errno: "ECONNREFUSED",
				ElapsedMS: 0.42, Status: 502, Phase: "connect", Diagnosis: "connection_refused;errno=ECONNREFUSED;elapsed-ms=0",
				Hint: diag.ConnectionRefused.Hint()},
			{Seq: 7, At: at(30 * time.Minute), Method: "GET", Path: "/report/" + strings.Repeat("x", 20), PathTruncated: true,
				Cause: "upstream_status", ElapsedMS: 1234.5, Status: 500, Phase: "response header",
				Diagnosis: "upstream_status;received-status=500", Hint: diag.UpstreamStatus.Hint()},
			{Seq: 3, At: at(42 * time.Minute), Method: "GET", Path: "/files/big.iso", Cause: "connection_terminated",
				Errno: "ECONNRESET", ElapsedMS: 30012, Status: 0, Aborted: true, Phase: "response body",
				Diagnosis: "connection_terminated;errno=ECONNRESET;elapsed-ms=30012", Hint: diag.ConnectionTerminated.Hint()},
		},
		Requests: RequestCounts{ByStatus: map[int]uint64{200: 9000, 502: 21, 503: 3, 500: 2}},
	}
	// Probes, newest first: four refused after two good ones.
	for i := range 6 {
		p := ProbeStatus{At: at(time.Duration(2*i+1)*2*time.Second - 2*time.Second), LatencyMS: 0.5 + float64(i)/10}
		if i >= 4 {
			p.OK, p.Status, p.LatencyMS = true, 200, 3
		} else {
			p.Cause = "connection_refused"
		}
		st.Health.Probes = append(st.Health.Probes, p)
	}
	st.Health.Since = st.Health.Probes[1].At // the third refusal: Fall is 3
	last := st.Health.Probes[0]
	st.Health.LastProbe = &last
	st.Health.Flips = []FlipStatus{
		{At: st.Health.Probes[1].At, From: "up", To: "down", Cause: "connection_refused"},
		{At: st.Health.Probes[5].At, From: "unknown", To: "up"},
	}
	// The hour: refusals 80 to 41 minutes ago are out of it; a burst of
	// terminations at minute 17, an app 5xx at 29, refusals and the breaker
	// in the last minute.
	hourFrom := time.Date(2026, 3, 1, 11, 1, 0, 0, time.UTC)
	for i := range 60 {
		m := Minute{Start: hourFrom.Add(time.Duration(i) * time.Minute), Requests: 150, Causes: map[string]uint64{}}
		switch i {
		case 17:
			m.Causes["connection_terminated"] = 5
		case 29:
			m.Causes["upstream_status"] = 2
		case 59:
			m.Causes["connection_refused"], m.Causes["breaker_open"] = 8, 3
			m.Requests = 12
		}
		st.History.Minutes = append(st.History.Minutes, m)
	}
	st.History.LastMinute = Window{From: now.Add(-59 * time.Second).Truncate(time.Second), Seconds: 60, Requests: 40,
		PerSecond: 40.0 / 60, P50MS: f64(2.81), P99MS: f64(310), Failures: 11, App5xx: 0,
		Causes: map[string]uint64{"connection_refused": 8, "breaker_open": 3}}
	st.History.LastHour = Window{From: hourFrom, Seconds: 3560, Requests: 8862, PerSecond: 8862.0 / 3560,
		P50MS: f64(2.9), P99MS: f64(48.2), Failures: 16, App5xx: 2,
		Causes: map[string]uint64{"connection_refused": 8, "breaker_open": 3, "connection_terminated": 5, "upstream_status": 2}}
	return st
}

// render draws st with the page template, as the handler does.
func render(t *testing.T, st *Status) string {
	t.Helper()
	var buf bytes.Buffer
	if err := pageTemplate().Execute(&buf, newPageView(st)); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// section returns the element with id from page, through its closing tag.
func section(t *testing.T, page, tag, id string) string {
	t.Helper()
	start := strings.Index(page, "<"+tag+" id=\""+id+"\"")
	if start < 0 {
		t.Fatalf("no <%s id=%q> in the page", tag, id)
	}
	end := strings.Index(page[start:], "</"+tag+">")
	if end < 0 {
		t.Fatalf("<%s id=%q> is not closed", tag, id)
	}
	return page[start : start+end+len("</"+tag+">")]
}

// TestPageGolden draws the fixed Status and compares each part of the page
// with its golden fragment in testdata/ (go test -run PageGolden -update
// rewrites them; look at the diff).
func TestPageGolden(t *testing.T) {
	page := render(t, fixtureStatus())
	for _, id := range []string{"state", "chart", "probes", "changes", "recent", "config"} {
		t.Run(id, func(t *testing.T) {
			got := section(t, page, "section", id) + "\n"
			path := filepath.Join("testdata", "page-"+id+".html")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("section %s differs from %s:\n--- got ---\n%s\n--- want ---\n%s", id, path, got, want)
			}
		})
	}
}

// The banner says what is wrong first, in order of how much it matters.
func TestPageVerdict(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Status)
		class  string
		title  string
		detail string
	}{
		{"down", func(*Status) {}, "bad", "Upstream down",
			"Health checks fail: connection_refused, since 12:00:16 (4s ago). Requests fail fast with upstream_unhealthy."},
		{"breaker open", func(st *Status) { st.Health.State = "up" }, "bad", "Circuit breaker open",
			"Tripped by connection_refused; next trial in 5s (12:00:24). Requests fail fast with breaker_open."},
		{"failing", func(st *Status) { st.Health.State, st.Breaker.State = "up", "closed" }, "bad", "Requests are failing",
			"11 diagnosed failures in the last minute, most connection_refused."},
		{"unknown", func(st *Status) {
			st.Health.State, st.Breaker.State, st.History.LastMinute.Failures = "unknown", "closed", 0
			st.Health.Consecutive = Streak{Successes: 1}
		}, "warn", "Upstream state unknown", "1 of 2 successful probes needed."},
		{"app 5xx", func(st *Status) {
			st.Health.State, st.Breaker.State, st.History.LastMinute.Failures = "up", "closed", 0
			st.History.LastMinute.App5xx = 4
		}, "warn", "The app answers 5xx",
			"4 of the app's own 5xx in the last minute (upstream_status): see the app's log."},
		{"up", func(st *Status) {
			st.Health.State, st.Breaker.State, st.History.LastMinute.Failures = "up", "closed", 0
		}, "ok", "Upstream up", "Health checks pass; no failures in the last minute."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := fixtureStatus()
			tt.change(st)
			v := newVerdict(st)
			if v.Class != tt.class || v.Title != tt.title || v.Detail != tt.detail {
				t.Errorf("verdict %+v, want %s %q %q", v, tt.class, tt.title, tt.detail)
			}
			page := render(t, st)
			if want := `<header class="verdict ` + tt.class + `">` + "\n<h1>" + tt.title + "</h1>"; !strings.Contains(page, want) {
				t.Errorf("page lacks %q", want)
			}
		})
	}
}

// Hostile values: every string on the page that comes from a request or an
// upstream (here also those that cannot today, such as cause names, in case
// they ever do) is escaped, in text, in attributes and in the SVG.
func TestPageEscapesHostileValues(t *testing.T) {
	const (
		script = `<script>alert(1)</script>`
		img    = `"><img src=x onerror=alert(2)>`
	)
	st := fixtureStatus()
	st.Upstream = script
	st.Version = img
	st.Recent[0].Path = "/" + script
	st.Recent[1].Path = "/" + img
	st.Recent[0].Method = img
	st.Recent[0].Diagnosis = img
	st.Recent[0].Cause = script
	st.Recent[1].Errno = script
	st.Recent[0].Seq = 0 // ids are numbers; a hostile id cannot happen, but the attribute is escaped anyway
	st.Config = append(st.Config, ConfigValue{img, script})
	st.Causes = append(st.Causes, CauseCount{Cause: img, Count: 1, Hint: script})
	st.History.Minutes[59].Causes[img] = 2 // a value in the SVG: its <title>
	st.History.LastHour.Causes[img] = 2
	st.Health.Probes[0].Cause = img // in the probe strip's <title>
	st.Health.LastProbe.Cause = img
	st.Health.Flips[0].Cause = script
	st.Breaker.TrippedBy = img
	st.Breaker.Transitions[0].Cause = script

	page := render(t, st)
	wantOnlyOwnMarkup(t, page)
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;",               // text
		"&#34;&gt;&lt;img src=x onerror=alert(2)&gt;",         // text and attributes
		"<code>/&lt;script&gt;alert(1)&lt;/script&gt;</code>", // a path, as text
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks the escaped %q", want)
		}
	}
	chartSVG := section(t, page, "section", "chart")
	if !strings.Contains(chartSVG, "<title>12:00: 2 &#34;&gt;&lt;img src=x onerror=alert(2)&gt;</title>") {
		t.Errorf("the chart's <title> does not hold the escaped cause:\n%s", chartSVG)
	}
	if !strings.Contains(section(t, page, "section", "probes"), "failed: &#34;&gt;&lt;img src=x onerror=alert(2)&gt;") {
		t.Error("the probe strip does not hold the escaped cause")
	}
}

// pageElements are the elements the page template writes.
var pageElements = map[string]bool{
	"html": true, "head": true, "meta": true, "title": true, "style": true, "body": true, "p": true,
	"label": true, "input": true, "noscript": true, "main": true, "header": true, "h1": true, "h2": true,
	"code": true, "section": true, "div": true, "table": true, "thead": true, "tbody": true, "tr": true,
	"th": true, "td": true, "figure": true, "svg": true, "line": true, "rect": true, "text": true,
	"details": true, "summary": true, "dl": true, "dt": true, "dd": true, "span": true, "b": true, "footer": true, "a": true, "script": true,
}

// wantOnlyOwnMarkup fails t unless page holds only the template's own
// elements, one script, and no event-handler, style or src attribute.
func wantOnlyOwnMarkup(t *testing.T, page string) {
	t.Helper()
	tags, err := htmltags.StartTags(page)
	if err != nil {
		t.Fatalf("page does not tokenize: %v", err)
	}
	scripts := 0
	for _, tg := range tags {
		if !pageElements[tg.Name] {
			t.Errorf("page holds a <%s> element: injected markup", tg.Name)
		}
		if tg.Name == "script" {
			scripts++
		}
		for _, a := range tg.Attrs {
			if strings.HasPrefix(a.Name, "on") || a.Name == "style" || a.Name == "src" || a.Name == "srcdoc" {
				t.Errorf("<%s> has a %s attribute: injected markup", tg.Name, a.Name)
			}
		}
	}
	if scripts != 1 {
		t.Errorf("%d <script> elements, want 1 (the page's own)", scripts)
	}
}

func TestPageHandler(t *testing.T) {
	journal := new(diag.Journal)
	now := time.Now()
	journal.Record(now, &diag.Diagnosis{Cause: diag.ConnectionRefused, Errno: syscall.ECONNREFUSED, Elapsed: time.Millisecond},
		diag.PhaseConnect, false, []byte("GET"), []byte(`/<script>alert(1)</script>?token=s3cret`))
	traffic := new(diag.Traffic)
	traffic.Done(502, time.Millisecond, now)
	h := NewHandler(Settings{Upstream: "127.0.0.1:8000", Version: "v9", Journal: journal, Traffic: traffic,
		Checker: downChecker(t), Breaker: openBreaker(t, time.Hour), Logger: quiet(), Started: now.Add(-time.Minute),
		Config: []ConfigValue{{"UPMEDIC_UPSTREAM", "127.0.0.1:8000"}}})

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") ||
		strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, want := range []string{
		"<h1>Upstream down</h1>",
		`<p class="big">down</p>`, `<p class="big">open</p>`,
		"<code>/&lt;script&gt;alert(1)&lt;/script&gt;</code>",
		"connection_refused", "ECONNREFUSED", "<code>UPMEDIC_UPSTREAM</code>", "upmedic v9",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "s3cret") {
		t.Error("page shows the query")
	}
	wantOnlyOwnMarkup(t, body)

	// The stylesheet and the script are the ones the policy's hashes allow.
	for _, part := range []string{"<style>" + pageCSS + "</style>", "<script>" + pageJS + "</script>"} {
		if !strings.Contains(body, part) {
			t.Errorf("the page does not hold its embedded %.20q... verbatim: the CSP hash would not match", part)
		}
	}

	head := httptest.NewRecorder()
	h.ServeHTTP(head, httptest.NewRequest(http.MethodHead, "/", nil))
	if head.Code != 200 || head.Body.Len() != 0 || head.Header().Get("Content-Length") != rec.Header().Get("Content-Length") {
		t.Errorf("HEAD / = %d with %d body bytes, Content-Length %q", head.Code, head.Body.Len(), head.Header().Get("Content-Length"))
	}
	if code, _ := get(t, h, "/index.html"); code != http.StatusNotFound {
		t.Errorf("GET /index.html = %d, want 404", code)
	}
}

// The admin listener changes nothing: every method but GET and HEAD gets
// 405, on every path.
func TestReadOnly(t *testing.T) {
	h := NewHandler(Settings{Logger: quiet()})
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"} {
		for _, path := range []string{"/", "/status", "/metrics", "/readyz", "/nope"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader("x=1")))
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s = %d Allow %q, want 405 Allow \"GET, HEAD\"", method, path, rec.Code, rec.Header().Get("Allow"))
			}
		}
	}
}
