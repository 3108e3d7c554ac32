package nginxconf

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files from the current output")

// baseSettings are upmedic's settings the cases are judged by, unless a case
// says otherwise.
func baseSettings() Settings {
	return Settings{
		Listen:                 "127.0.0.1:8080",
		ConnectTimeout:         2 * time.Second,
		ResponseTimeout:        45 * time.Second,
		ReadTimeout:            30 * time.Second,
		MaxResponseHeaderBytes: 4096,
		Version:                "1.22.1",
		PageSize:               4096,
		LocalAddress:           func(string) bool { return false },
	}
}

// cases are the directories of testdata and the settings each is judged by.
var cases = []struct {
	dir    string
	adjust func(*Settings)
}{
	{"clean", nil},
	{"clean", func(s *Settings) { s.Listen = "0.0.0.0:8080" }},
	{"clean", func(s *Settings) { s.Listen = "[::1]:8080" }},
	{"clean", func(s *Settings) { s.Version = "1.30.0" }},
	{"timeouts", nil},
	{"hold", func(s *Settings) { s.Hold = 20 * time.Second }},
	{"buffer", nil},
	{"buffer-large", func(s *Settings) { s.MaxResponseHeaderBytes = 12000 }},
	{"keepalive", nil},
	{"modern", func(s *Settings) { s.Version = "1.29.7" }},
	{"headers", nil},
	{"expose", func(s *Settings) { s.ExposeDetails = true }},
	{"logs", nil},
	{"bypass", func(s *Settings) { s.Upstream = "unix:/run/gunicorn/app.sock" }},
	{"bypass-fastcgi", func(s *Settings) { s.Upstream = "127.0.0.1:9000" }},
	{"fastcgi-timeout", func(s *Settings) { s.PHPFPM = []string{"testdata/php-fpm/*.conf"} }},
	{"https", nil},
	{"nolocation", nil},
	{"unixlisten", func(s *Settings) { s.Listen = "unix:/run/upmedic/upmedic.sock" }},
	{"broken", func(s *Settings) { s.Upstream = "unix:/run/gunicorn/app.sock" }},
}

// want is one expected finding, from a marker comment.
type want struct {
	file      string
	line      int
	directive string
	severity  string
	fix       string
}

var markerRE = regexp.MustCompile(`#\s*want(-file)?:\s*(.*)$`)

// wants reads the markers of every file the configuration read.
func wants(t *testing.T, cfg *Config) []want {
	t.Helper()
	var out []want
	for _, file := range cfg.Files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			m := markerRE.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			line := n
			if m[1] != "" {
				line = 0
			}
			for _, item := range strings.Split(m[2], " | ") {
				f := strings.SplitN(strings.TrimSpace(item), " ", 3)
				if len(f) != 3 {
					t.Fatalf("%s:%d: bad marker %q", file, n, item)
				}
				out = append(out, want{file, line, f[0], f[1], f[2]})
			}
		}
	}
	return out
}

// nginxTest runs the real nginx -t on the case's configuration, so that every
// case is one nginx accepts. Without nginx it skips, unless CI=true.
func nginxTest(t *testing.T, conf string) {
	t.Helper()
	bin := findNginx()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but nginx is not installed (.ci/run installs it)")
		}
		t.Log("skipped nginx -t: nginx is not installed (apt-get install nginx)")
		return
	}
	if os.Geteuid() != 0 {
		// nginx -t opens the log files in effect, nginx's compiled-in
		// /var/log/nginx/access.log where a case has no access_log.
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but not root: nginx -t needs root to open nginx's default log files")
		}
		t.Log("skipped nginx -t: needs root, to open nginx's default log files")
		return
	}
	abs, err := filepath.Abs(conf)
	if err != nil {
		t.Fatal(err)
	}
	prefix := t.TempDir()
	if err := os.Mkdir(filepath.Join(prefix, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	// -g pid: without root, nginx -t cannot open the default /run/nginx.pid.
	out, err := exec.Command(bin, "-t", "-q", "-p", prefix+"/", "-c", abs, "-e", filepath.Join(prefix, "logs", "error.log"),
		"-g", "pid "+filepath.Join(prefix, "logs", "nginx.pid")+";").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t rejects %s: %v\n%s", conf, err, out)
	}
}

func findNginx() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func TestCheckCases(t *testing.T) {
	tested := map[string]bool{}
	for _, tc := range cases {
		s := baseSettings()
		if tc.adjust != nil {
			tc.adjust(&s)
		}
		t.Run(tc.dir+"/"+s.Listen+"/"+s.Version, func(t *testing.T) {
			conf := filepath.Join("testdata", tc.dir, "nginx.conf")
			tested[tc.dir] = true
			nginxTest(t, conf)
			cfg, err := Load(conf)
			if err != nil {
				t.Fatal(err)
			}
			rep := Check(cfg, s)
			var got []want
			for _, f := range rep.Findings {
				got = append(got, want{f.File, f.Line, f.Directive, f.Severity.String(), f.Fix})
				if f.Message == "" || strings.HasSuffix(f.Message, ".") {
					t.Errorf("%s:%d: message %q", f.File, f.Line, f.Message)
				}
			}
			exp := wants(t, cfg)
			for _, w := range exp {
				if !slices.Contains(got, w) {
					t.Errorf("missing finding %s:%d: %s [%s] fix: %s", w.file, w.line, w.directive, w.severity, w.fix)
				}
			}
			for i, g := range got {
				if !slices.Contains(exp, g) {
					f := rep.Findings[i]
					t.Errorf("unexpected finding %s:%d: %s [%s] %s; fix: %s", g.file, g.line, g.directive, g.severity, f.Message, g.fix)
				}
			}
			if wantLocations := strings.Count(mustRead(t, cfg), "proxy_pass"); rep.Locations > wantLocations || (tc.dir != "nolocation" && rep.Locations == 0) {
				t.Errorf("%d locations proxy to upmedic", rep.Locations)
			}
		})
	}
	// Every case directory is in the table.
	dirs, _ := filepath.Glob("testdata/*/nginx.conf")
	for _, d := range dirs {
		if name := filepath.Base(filepath.Dir(d)); !tested[name] {
			t.Errorf("testdata/%s is in no case", name)
		}
	}
}

// mustRead returns every file of cfg, concatenated.
func mustRead(t *testing.T, cfg *Config) string {
	t.Helper()
	var b strings.Builder
	for _, f := range cfg.Files {
		s, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(s)
	}
	return b.String()
}

// findingAt returns the finding about directive at file:line.
func findingAt(t *testing.T, rep *Report, file string, line int, directive string) Finding {
	t.Helper()
	for _, f := range rep.Findings {
		if f.File == file && f.Line == line && f.Directive == directive {
			return f
		}
	}
	t.Fatalf("no %s finding at %s:%d in %+v", directive, file, line, rep.Findings)
	return Finding{}
}

func check(t *testing.T, dir string, adjust func(*Settings)) *Report {
	t.Helper()
	s := baseSettings()
	if adjust != nil {
		adjust(&s)
	}
	cfg, err := Load(filepath.Join("testdata", dir, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return Check(cfg, s)
}

// TestCheckMessages pins what the messages say where it matters: the
// inheritance traps name both levels, the timeouts name upmedic's settings.
func TestCheckMessages(t *testing.T) {
	rep := check(t, "keepalive", nil)
	f := findingAt(t, rep, "testdata/keepalive/nginx.conf", 47, "proxy_set_header")
	for _, s := range []string{"this location sets proxy_set_header of its own (testdata/keepalive/nginx.conf:47)",
		`inherits none of the server's, not even Connection "" (testdata/keepalive/nginx.conf:24)`} {
		if !strings.Contains(f.Message, s) {
			t.Errorf("message %q lacks %q", f.Message, s)
		}
	}
	if f := findingAt(t, rep, "testdata/keepalive/nginx.conf", 58, "proxy_http_version"); !strings.Contains(f.Message, "HTTP/1.0 to upmedic (nginx 1.22.1's default)") {
		t.Errorf("http version: %q", f.Message)
	}
	if f := findingAt(t, rep, "testdata/keepalive/nginx.conf", 14, "keepalive_timeout"); !strings.Contains(f.Message, "for 90s, but upmedic closes one after 75s") {
		t.Errorf("keepalive_timeout: %q", f.Message)
	}

	rep = check(t, "headers", nil)
	f = findingAt(t, rep, "testdata/headers/nginx.conf", 22, "proxy_hide_header")
	if !strings.Contains(f.Message, "this location has a proxy_hide_header of its own (testdata/headers/nginx.conf:22), so the server's proxy_hide_header") {
		t.Errorf("hide inheritance: %q", f.Message)
	}

	rep = check(t, "timeouts", nil)
	f = findingAt(t, rep, "testdata/timeouts/nginx.conf", 17, "proxy_read_timeout")
	if !strings.Contains(f.Message, "40s is not above upmedic's UPMEDIC_RESPONSE_TIMEOUT 45s by 1s") {
		t.Errorf("read timeout: %q", f.Message)
	}
	rep = check(t, "hold", func(s *Settings) { s.Hold = 20 * time.Second })
	f = findingAt(t, rep, "testdata/hold/nginx.conf", 19, "proxy_read_timeout")
	if !strings.Contains(f.Message, "UPMEDIC_RESPONSE_TIMEOUT 45s + UPMEDIC_HOLD 20s") {
		t.Errorf("hold: %q", f.Message)
	}
	rep = check(t, "hold", func(s *Settings) { s.ReadTimeout = 90 * time.Second })
	f = findingAt(t, rep, "testdata/hold/nginx.conf", 19, "proxy_read_timeout")
	if !strings.Contains(f.Message, "upmedic's UPMEDIC_READ_TIMEOUT 90s") || f.Fix != "proxy_read_timeout 100s;" {
		t.Errorf("read timeout beyond the response timeout: %+v", f)
	}

	rep = check(t, "fastcgi-timeout", func(s *Settings) { s.PHPFPM = []string{"testdata/php-fpm/*.conf"} })
	f = findingAt(t, rep, "testdata/fastcgi-timeout/nginx.conf", 22, "fastcgi_read_timeout")
	if !strings.Contains(f.Message, "60s (nginx's default) is not above php-fpm's request_terminate_timeout 120s (pool [www], testdata/php-fpm/www.conf:10)") {
		t.Errorf("fastcgi: %q", f.Message)
	}
}

// TestCheckSettingsOff checks that a zero setting skips its rule, and that
// the notes say what was not checked.
func TestCheckSettingsOff(t *testing.T) {
	rep := check(t, "timeouts", func(s *Settings) { s.ResponseTimeout = 0 })
	for _, f := range rep.Findings {
		if f.Directive == "proxy_read_timeout" || f.Directive == "proxy_send_timeout" {
			t.Errorf("timeout rule ran without a response timeout: %+v", f)
		}
	}
	rep = check(t, "buffer", func(s *Settings) { s.MaxResponseHeaderBytes = 0 })
	if len(rep.Findings) != 0 {
		t.Errorf("buffer rule ran without a header limit: %+v", rep.Findings)
	}
	rep = check(t, "clean", func(s *Settings) { s.Version = "" })
	if len(rep.Findings) != 0 || len(rep.Notes) != 2 || !strings.Contains(rep.Notes[0], "UPMEDIC_UPSTREAM is not set") ||
		!strings.Contains(rep.Notes[1], "nginx's version is unknown") {
		t.Errorf("notes: %q, findings %+v", rep.Notes, rep.Findings)
	}
	rep = check(t, "clean", func(s *Settings) { s.Listen = "" })
	if len(rep.Findings) != 0 || rep.Locations != 0 {
		t.Errorf("without a listen address: %+v", rep)
	}
}

func TestReportGolden(t *testing.T) {
	rep := check(t, "broken", func(s *Settings) { s.Upstream = "unix:/run/gunicorn/app.sock" })
	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "broken.golden")
	if *update {
		if err := os.WriteFile(golden, text.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if text.String() != string(w) {
		t.Errorf("text report differs from %s (go test ./diag/nginxconf -run Golden -update):\n--- got\n%s--- want\n%s", golden, text.String(), w)
	}

	var got struct {
		Findings []map[string]any `json:"findings"`
		Notes    []string         `json:"notes"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, js.String())
	}
	if len(got.Findings) != len(rep.Findings) || len(got.Notes) != 0 {
		t.Fatalf("JSON: %s", js.String())
	}
	first := got.Findings[0]
	if len(first) != 6 || first["file"] != rep.Findings[0].File || first["line"] != float64(rep.Findings[0].Line) ||
		first["directive"] != rep.Findings[0].Directive || first["severity"] != rep.Findings[0].Severity.String() ||
		first["message"] != rep.Findings[0].Message || first["fix"] != rep.Findings[0].Fix {
		t.Errorf("JSON finding %v, want %+v", first, rep.Findings[0])
	}
	if !strings.Contains(js.String(), `"fix": "proxy_read_timeout 60s;"`) || strings.Contains(js.String(), `\u003c`) {
		t.Errorf("JSON: %s", js.String())
	}

	clean := check(t, "clean", func(s *Settings) { s.Upstream = "unix:/run/gunicorn/app.sock" })
	text.Reset()
	if err := clean.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if want := "upmedic diag nginx-conf: testdata/clean/nginx.conf agrees with upmedic's settings (3 locations proxying to upmedic at 127.0.0.1:8080, nginx 1.22.1)\n"; text.String() != want {
		t.Errorf("clean report:\n%q\nwant\n%q", text.String(), want)
	}
	js.Reset()
	if err := clean.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if js.String() != "{\n  \"findings\": [],\n  \"notes\": []\n}\n" {
		t.Errorf("clean JSON: %q", js.String())
	}
}
