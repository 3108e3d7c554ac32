package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upmedic/upmedic/internal/htmltags"
)

// Hostile request paths, raw bytes on the wire, as a client may send them.
// upmedic refuses the first two with 400 (a request-target may not hold
// < > ", as HAProxy rules too), so they never reach the journal; the third
// passes its strict parsing and is markup once an unescaping page decodes
// its entities: the page must show it as the text it is.
const (
	scriptPath = `/<script>document.title='pwned'</script>`
	imgPath    = `/"><img/src=x/onerror=document.title='pwned2'>`
	entityPath = `/x'&lt;script&gt;document.title='pwned'&lt;/script&gt;`
	entityText = `/x'&amp;lt;script&amp;gt;document.title='pwned'&amp;lt;/script&amp;gt;`
)

// TestStatusPage opens upmedic's status page in Debian's headless Chromium,
// in front of an upstream that refuses and of one that sends markup, after
// failures that include requests whose paths hold markup: the rendered DOM
// shows the cause, the path as text, the health and breaker state, and no
// element the page does not make. Screenshots go to e2e/tmp/.
func TestStatusPage(t *testing.T) {
	needRoot(t)
	tl := need(t, "chromium")

	t.Run("refusing upstream", func(t *testing.T) {
		dir := scenarioDir(t)
		listen, admin := loopback(freePort(t)), loopback(freePort(t))
		// Five probes, a second apart, before the upstream is down: time
		// for the requests below to open the breaker first.
		up := startUpmedic(t, dir, listen, []string{
			"UPMEDIC_UPSTREAM=" + loopback(freePort(t)), "UPMEDIC_ADMIN_LISTEN=" + admin,
			"UPMEDIC_HEALTH_INTERVAL=1s", "UPMEDIC_HEALTH_FALL=5",
			"UPMEDIC_BREAKER_FAILURES=2", "UPMEDIC_BREAKER_OPEN_FOR=1h",
		})
		up.waitDial(t, "tcp", admin)
		if st := adminStatus(t, admin); st.Health.State == "down" {
			t.Fatalf("health already down before the first request: %+v", st.Health)
		}
		for i, want := range []int{502, 502} { // two refusals open the breaker
			if got := rawGet(t, listen, fmt.Sprintf("/api/items/%d?token=s3cret", i)); got != want {
				t.Fatalf("request %d: %d, want %d", i, got, want)
			}
		}
		for _, path := range []string{scriptPath, imgPath + "?token=s3cret"} {
			if got := rawGet(t, listen, path); got != 400 {
				t.Fatalf("GET %s = %d, want upmedic's 400", path, got)
			}
		}
		if got := rawGet(t, listen, entityPath+"?token=s3cret"); got != 503 {
			t.Fatalf("GET %s = %d, want 503 breaker_open", entityPath, got)
		}
		up.waitReady(t, "health down", func() error {
			if st := adminStatus(t, admin); st.Health.State != "down" {
				return fmt.Errorf("health %s", st.Health.State)
			}
			return nil
		})

		dom := dumpDOM(t, tl.chromium, dir, admin)
		wantPageOnly(t, dom)
		for _, want := range []string{
			"<h1>Upstream down</h1>",
			`<p class="big">down</p>`, // health
			`<p class="big">open</p>`, // breaker
			"connection_refused", "breaker_open", "ECONNREFUSED",
			"<code>" + entityText + "</code>",
			"<code>/api/items/1</code>",
			"<title>DOWN · upmedic · 127.0.0.1:",
		} {
			if !strings.Contains(dom, want) {
				t.Errorf("rendered DOM lacks %q", want)
			}
		}
		if strings.Contains(dom, "s3cret") {
			t.Error("the page shows a query string")
		}
		screenshot(t, tl.chromium, dir, admin, "status-page-refusing.png")
	})

	t.Run("upstream sending markup", func(t *testing.T) {
		dir := scenarioDir(t)
		app := markupUpstream(t)
		listen, admin := loopback(freePort(t)), loopback(freePort(t))
		up := startUpmedic(t, dir, listen, []string{
			"UPMEDIC_UPSTREAM=" + app, "UPMEDIC_ADMIN_LISTEN=" + admin, "UPMEDIC_HEALTH_INTERVAL=1s",
			"UPMEDIC_HEALTH_RISE=1",
		})
		up.waitDial(t, "tcp", admin)
		for path, want := range map[string]int{
			"/app-error":                           500, // the app's 500 with markup in its reason, headers and body
			"/not-http":                            502, // markup instead of HTTP
			"/bad-header-name" + entityPath:        502,
			"/ok?%3Cscript%3E=1":                   200,
			entityPath + "?q=%3Cscript%3Ealert(1)": 500,
			scriptPath:                             400, // refused by upmedic, never journaled
		} {
			if got := rawGet(t, listen, path); got != want {
				t.Errorf("GET %s = %d, want %d", path, got, want)
			}
		}
		up.waitReady(t, "health up", func() error {
			if st := adminStatus(t, admin); st.Health.State != "up" {
				return fmt.Errorf("health %s", st.Health.State)
			}
			return nil
		})

		dom := dumpDOM(t, tl.chromium, dir, admin)
		wantPageOnly(t, dom)
		for _, want := range []string{
			"<h1>Requests are failing</h1>",
			"and 2 of the app's own 5xx",
			`<p class="big">up</p>`,     // health
			`<p class="big">closed</p>`, // breaker
			"http_protocol_error", "upstream_status",
			"<code>/app-error</code>", "<code>/not-http</code>",
			"<code>/bad-header-name" + entityText + "</code>",
		} {
			if !strings.Contains(dom, want) {
				t.Errorf("rendered DOM lacks %q", want)
			}
		}
		for _, leak := range []string{"pwned-body", "X-Evil", "alert(1)"} {
			if strings.Contains(dom, leak) {
				t.Errorf("the page shows %q, which only the upstream's bytes or a query hold", leak)
			}
		}
		screenshot(t, tl.chromium, dir, admin, "status-page-markup.png")
	})
}

// pageElements are the elements upmedic's page is made of (Chromium's
// serialized DOM adds none to them).
var pageElements = map[string]bool{
	"html": true, "head": true, "meta": true, "title": true, "style": true, "body": true, "p": true,
	"label": true, "input": true, "noscript": true, "main": true, "header": true, "h1": true, "h2": true,
	"code": true, "section": true, "div": true, "table": true, "thead": true, "tbody": true, "tr": true,
	"th": true, "td": true, "figure": true, "svg": true, "line": true, "rect": true, "text": true,
	"details": true, "summary": true, "dl": true, "dt": true, "dd": true, "span": true, "b": true, "footer": true, "a": true, "script": true,
}

// wantPageOnly fails t if the DOM holds an element or attribute that the
// page does not make, or a second script, or a title an injected script
// would have set.
func wantPageOnly(t *testing.T, dom string) {
	t.Helper()
	tags, err := htmltags.StartTags(dom)
	if err != nil {
		t.Fatalf("rendered DOM does not tokenize: %v\n%s", err, dom)
	}
	scripts := 0
	for _, tg := range tags {
		if !pageElements[tg.Name] {
			t.Errorf("rendered DOM holds a <%s>: injected", tg.Name)
		}
		if tg.Name == "script" {
			scripts++
		}
		for _, a := range tg.Attrs {
			if strings.HasPrefix(a.Name, "on") || a.Name == "src" || a.Name == "style" || a.Name == "srcdoc" {
				t.Errorf("<%s> has attribute %s=%q: injected", tg.Name, a.Name, a.Value)
			}
		}
	}
	if scripts != 1 {
		t.Errorf("%d scripts in the rendered DOM, want the page's own", scripts)
	}
	if strings.Contains(dom, "<title>pwned") {
		t.Error("an injected script ran: it set the title")
	}
}

// chromium runs Debian's headless Chromium with args and a fresh profile
// under dir, and returns its stdout. It is killed, with its process group,
// after a minute.
func chromium(t *testing.T, bin, dir string, args ...string) []byte {
	t.Helper()
	profile, err := os.MkdirTemp(dir, "chromium-profile-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	argv := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + profile}, args...)
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// dumpDOM returns the status page's DOM as Chromium renders it, scripts
// run, after 12 s of virtual time: the page has refreshed itself.
func dumpDOM(t *testing.T, bin, dir, admin string) string {
	t.Helper()
	dom := string(chromium(t, bin, dir, "--virtual-time-budget=12000", "--dump-dom", "http://"+admin+"/"))
	if err := os.WriteFile(filepath.Join(dir, "status-page.dom.html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dom, `<main id="live">`) {
		t.Fatalf("chromium rendered no status page:\n%s", dom)
	}
	// The script ran (the Content-Security-Policy's hash matches it) and
	// swapped in the page it fetched again.
	if !strings.Contains(dom, `<p id="controls">`) || !strings.Contains(dom, ` data-refreshes="`) {
		t.Errorf("the page's script did not run or did not refresh:\n%.600s", dom)
	}
	return dom
}

// screenshot saves the page as e2e/tmp/name, a test artifact to look at.
func screenshot(t *testing.T, bin, dir, admin, name string) {
	t.Helper()
	repo, _ := dirs(t)
	out := filepath.Join(repo, "e2e", "tmp")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(out, name)
	_ = os.Remove(path)
	chromium(t, bin, dir, "--screenshot="+path, "--window-size=1280,1600", "--hide-scrollbars",
		// Time to lay out and paint; the page's refresh comes at 5 s.
		"--virtual-time-budget=1000", "http://"+admin+"/")
	fi, err := os.Stat(path)
	if err != nil || fi.Size() < 10_000 {
		t.Fatalf("no screenshot at %s (%v)", path, err)
	}
	t.Logf("screenshot: %s", path)
}

// pageStatus is the little of /status the test waits on.
type pageStatus struct {
	Health  struct{ State string } `json:"health"`
	Breaker struct{ State string } `json:"breaker"`
}

func adminStatus(t *testing.T, admin string) pageStatus {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st pageStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// rawGet sends GET target as raw bytes (no client-side escaping) to addr
// and returns the status code.
func rawGet(t *testing.T, addr, target string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// markupUpstream is an app on a loopback port that answers with markup
// wherever it can put it: a 500 with markup in its reason phrase, a header
// value and its body; markup instead of HTTP; a header whose name is
// markup. It returns the address.
func markupUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	body := `<html><script>document.title='pwned-body'</script><img src=x onerror=alert(1)></html>`
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return // a connect-only health probe
				}
				var answer string
				switch p := req.URL.Path; {
				case strings.HasPrefix(p, "/not-http"):
					answer = body
				case strings.HasPrefix(p, "/bad-header-name"):
					answer = "HTTP/1.1 200 OK\r\n<img src=x onerror=alert(1)>: y\r\nContent-Length: 0\r\n\r\n"
				case p == "/ok":
					answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
				default:
					answer = fmt.Sprintf("HTTP/1.1 500 <b>Internal</b> <script>x</script>\r\n"+
						"X-Evil: \"><img src=x onerror=alert(1)>\r\nX-Upstream-Diagnosis: <script>x</script>\r\n"+
						"Content-Type: text/html\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				}
				_, _ = io.WriteString(c, answer)
			}()
		}
	}()
	return ln.Addr().String()
}
