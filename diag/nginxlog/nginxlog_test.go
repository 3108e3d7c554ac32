package nginxlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// nginxLogDir holds the golden cases: NAME.log is an error.log, NAME.golden
// the text report Analyze writes for it. real-nginx-1.22.log was
// written by nginx itself (see gen/); the others by hand, in the formats of
// other versions.
const nginxLogDir = "testdata"

func init() {
	// The package's golden tests share one -update flag, whichever test file
	// declares it: declare it here only when no other file did.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files from the current output")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// nginxUTC reads the logs' times as UTC so the goldens do not depend on the zone
// the tests run in.
var nginxUTC = Options{Location: time.UTC}

func TestAnalyzeNginxLogGolden(t *testing.T) {
	logs, err := filepath.Glob(filepath.Join(nginxLogDir, "*.log"))
	if err != nil || len(logs) < 6 {
		t.Fatalf("golden cases: %v, %v", logs, err)
	}
	for _, path := range logs {
		name := strings.TrimSuffix(filepath.Base(path), ".log")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Analyze(bytes.NewReader(in), goldenOptions(t, strings.TrimSuffix(path, ".log")))
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := rep.WriteText(&got); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(path, ".log") + ".golden"
			if updateGolden() {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./diag/nginxlog -run NginxLogGolden -update)", err)
			}
			if got.String() != string(want) {
				t.Errorf("report for %s differs from %s:\n--- got\n%s\n--- want\n%s", path, golden, got.String(), want)
			}
			if rep.Lines != rep.Matched+rep.Skipped+rep.BeforeSince {
				t.Errorf("Lines %d != Matched %d + Skipped %d + BeforeSince %d", rep.Lines, rep.Matched, rep.Skipped, rep.BeforeSince)
			}
		})
	}
}

// goldenOptions returns the options a golden case is analyzed with: times
// as UTC, and upmedic's settings from NAME.options.json when the case has
// one (a log from a setup with upmedic).
func goldenOptions(t *testing.T, name string) Options {
	t.Helper()
	opt := nginxUTC
	b, err := os.ReadFile(name + ".options.json")
	if errors.Is(err, os.ErrNotExist) {
		return opt
	}
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		Listen           string   `json:"listen"`
		UpmedicUpstreams []string `json:"upmedic_upstreams"`
		NginxUser        string   `json:"nginx_user"`
		NginxUserFrom    string   `json:"nginx_user_from"`
		ResponseTimeout  string   `json:"response_timeout"`
		ReadTimeout      string   `json:"read_timeout"`
		MaxHeaderBytes   int      `json:"max_response_header_bytes"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatalf("%s.options.json: %v", name, err)
	}
	opt.Listen, opt.UpmedicUpstreams, opt.NginxUser, opt.NginxUserFrom = o.Listen, o.UpmedicUpstreams, o.NginxUser, o.NginxUserFrom
	opt.MaxResponseHeaderBytes = o.MaxHeaderBytes
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{o.ResponseTimeout, &opt.ResponseTimeout}, {o.ReadTimeout, &opt.ReadTimeout}} {
		if d.s != "" {
			if *d.dst, err = time.ParseDuration(d.s); err != nil {
				t.Fatalf("%s.options.json: %v", name, err)
			}
		}
	}
	return opt
}

// nginxGroup returns the report's group for cause at upstream.
func nginxGroup(t *testing.T, rep *Report, cause, upstream string) Group {
	t.Helper()
	for _, g := range rep.Groups {
		if g.Cause == cause && g.Upstream == upstream {
			return g
		}
	}
	t.Fatalf("no group %s at %s in %+v", cause, upstream, rep.Groups)
	return Group{}
}

func analyzeNginxFile(t *testing.T, name string, opt Options) *Report {
	t.Helper()
	f, err := os.Open(filepath.Join(nginxLogDir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	rep, err := Analyze(f, opt)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestAnalyzeRealNginxLog pins what the lines nginx 1.22 really wrote mean,
// one location (request path) per fault that gen/ staged. It finds groups by
// the request path in their sample, so that a regenerated log (new ports,
// new temporary directory) needs only new counts here.
func TestAnalyzeRealNginxLog(t *testing.T) {
	rep := analyzeNginxFile(t, "real-nginx-1.22.log", nginxUTC)
	if rep.Lines != 45 || rep.Matched != 26 || rep.Skipped != 19 || rep.TooLong != 0 || rep.BeforeSince != 0 {
		t.Fatalf("counts: %+v", *rep)
	}
	byPath := make(map[string]Group)
	for _, g := range rep.Groups {
		l, ok := ParseLine([]byte(g.Sample))
		if !ok {
			t.Fatalf("sample does not parse: %q", g.Sample)
		}
		byPath[strings.Fields(l.Request)[1]] = g
		if want := l.Time; !g.First.Equal(want) || !g.Last.Equal(want) || g.First.Location() != time.UTC {
			t.Errorf("%s at %s: first %v, last %v; want %v", g.Cause, g.Upstream, g.First, g.Last, want)
		}
	}
	for path, cause := range map[string]string{
		"/refused":           "connection_refused",
		"/missing-socket":    "socket_not_found",
		"/socket-permission": "socket_permission_denied",
		"/stale-socket":      "connection_refused",
		"/socket-backlog":    "connection_limit_reached",
		"/no-live":           "upstream_unhealthy",
		"/dns-nxdomain":      "dns_error",
		"/dns-timeout":       "dns_timeout",
		"/php-missing":       "fastcgi_primary_script_unknown",
		"/php-fatal":         "php_fatal_error",
		"/http-to-fastcgi":   "http_protocol_error",
		"/timeout-connect":   "connection_timeout",
		"/close":             "connection_terminated",
		"/reset-header":      "connection_terminated",
		"/slow-header":       "http_response_timeout",
		"/big-header":        "http_response_header_section_size",
		"/garbage":           "http_protocol_error",
		"/invalid-header":    "http_protocol_error",
		"/bad-chunk":         "http_protocol_error",
		"/short-body":        "http_response_incomplete",
		"/slow-body":         "connection_read_timeout",
		"/reset-body":        "http_response_incomplete",
		"/reset-request":     "connection_terminated",
	} {
		if g := byPath[path]; g.Cause != cause {
			t.Errorf("%s: cause %q, want %q", path, g.Cause, cause)
		}
	}

	// The first request to /no-live tried both servers of "pair"; one of
	// them is /refused's closed port, so that group counts 2.
	if g := byPath["/refused"]; g.Count != 2 || !strings.HasPrefix(g.Upstream, "http://127.0.0.1:") || !strings.HasPrefix(g.Fix, "nothing listens on the address proxy_pass names") || g.ToUpmedic {
		t.Errorf("/refused: %+v", g)
	}
	if g := byPath["/bad-chunk"]; g.Count != 2 || !strings.Contains(g.Sample, "upstream sent invalid chunked response while reading upstream") {
		t.Errorf("/bad-chunk (the client retried): %+v", g)
	}
	if g := byPath["/socket-permission"]; g.Count != 1 || !strings.HasSuffix(g.Upstream, "/run/perm.sock") ||
		!strings.HasPrefix(g.Upstream, "http://unix:/") || !strings.Contains(g.Sample, "[crit]") ||
		!strings.HasPrefix(g.Fix, "nginx's workers run as www-data (Debian's default; nginx.conf was not read) and may not connect to /tmp/") {
		t.Errorf("/socket-permission: %+v", g)
	}
	if g := byPath["/no-live"]; g.Upstream != "http://pair" || g.Count != 1 || !strings.Contains(g.Fix, "max_fails failures within fail_timeout") {
		t.Errorf("/no-live: %+v", g)
	}
	if g := byPath["/dns-nxdomain"]; g.Upstream != "app.test" || !strings.Contains(g.Fix, "nginx's own resolver (the resolver directive") {
		t.Errorf("/dns-nxdomain: %+v", g)
	}
	if g := byPath["/php-missing"]; !strings.HasPrefix(g.Upstream, "fastcgi://127.0.0.1:") || !strings.Contains(g.Fix, "SCRIPT_FILENAME") {
		t.Errorf("/php-missing: %+v", g)
	}
}

func TestAnalyzeNginxLogSince(t *testing.T) {
	since := time.Date(2021, 3, 14, 10, 0, 0, 0, time.UTC)
	rep := analyzeNginxFile(t, "nginx-1.18.log", Options{Since: since, Location: time.UTC})
	all := analyzeNginxFile(t, "nginx-1.18.log", nginxUTC)
	if rep.BeforeSince != 14 || rep.Lines != all.Lines || rep.Matched != 10 || rep.Skipped != 5 {
		t.Fatalf("counts since %v: %+v", since, *rep)
	}
	for _, g := range rep.Groups {
		if g.First.Before(since) {
			t.Errorf("group %s at %s starts %v, before --since", g.Cause, g.Upstream, g.First)
		}
		if g.Cause == "destination_ip_prohibited" || g.Cause == "connection_refused" {
			t.Errorf("group %s at %s is all before --since", g.Cause, g.Upstream)
		}
	}
	nginxGroup(t, rep, "destination_ip_unroutable", "http://10.0.3.7:8080")

	// Since is read against the log's zone: at UTC+2 the same wall clock
	// is two hours earlier, so 10:00 UTC keeps only lines from 12:00 on.
	rep = analyzeNginxFile(t, "nginx-1.18.log", Options{Since: since, Location: time.FixedZone("UTC+2", 2*3600)})
	if rep.Matched != 0 || rep.Lines != rep.BeforeSince {
		t.Errorf("since in another zone: %+v", *rep)
	}
}

func TestAnalyzeNginxLogLongLine(t *testing.T) {
	refused := "2024/05/01 12:00:00 [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8080/\", host: \"x\"\n"
	long := "2024/05/01 12:00:01 [error] 7#7: *2 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET /" +
		strings.Repeat("a", 2<<20) + " HTTP/1.1\", upstream: \"http://127.0.0.1:8080/\", host: \"x\""
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"middle", refused + long + "\n" + refused},
		{"last without newline", refused + refused + long},
		{"last with newline", refused + refused + long + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Analyze(iotest.HalfReader(strings.NewReader(tc.in)), nginxUTC)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Lines != 3 || rep.Matched != 2 || rep.Skipped != 1 || rep.TooLong != 1 || len(rep.Groups) != 1 {
				t.Fatalf("report: %+v", *rep)
			}
			if g := rep.Groups[0]; g.Count != 2 || g.Cause != "connection_refused" || g.Upstream != "http://127.0.0.1:8080" {
				t.Errorf("group: %+v", g)
			}
		})
	}
}

func TestAnalyzeNginxLogReadError(t *testing.T) {
	broken := errors.New("disk on fire")
	r := io.MultiReader(strings.NewReader("2024/05/01 12:00:00 [notice] 1#1: start\n"), iotest.ErrReader(broken))
	rep, err := Analyze(r, nginxUTC)
	if !errors.Is(err, broken) || rep != nil {
		t.Fatalf("got %v, %v; want an error wrapping %v", rep, err, broken)
	}
}

// TestAnalyzeNginxLogGroupLimit checks that a log naming endless upstreams
// (proxy_pass http://$host) still takes bounded memory.
func TestAnalyzeNginxLogGroupLimit(t *testing.T) {
	var b strings.Builder
	for i := range maxNginxGroups + 50 {
		fmt.Fprintf(&b, "2024/05/01 12:00:00 [error] 7#7: *%d h%d.example could not be resolved (3: Host not found), client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", host: \"h%d.example\"\n", i+1, i, i)
	}
	rep, err := Analyze(strings.NewReader(b.String()), nginxUTC)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != maxNginxGroups+1 || rep.Matched != maxNginxGroups+50 {
		t.Fatalf("%d groups, %d matched", len(rep.Groups), rep.Matched)
	}
	if g := rep.Groups[0]; g.Upstream != "(other)" || g.Count != 50 || g.Cause != "dns_error" {
		t.Errorf("most frequent group: %+v", g)
	}
}

func TestNginxLogReportWriteJSON(t *testing.T) {
	rep := analyzeNginxFile(t, "php-fpm.log", nginxUTC)
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Lines, Matched, Skipped int
		Failures                int
		TooLong                 int `json:"too_long"`
		BeforeSince             int `json:"before_since"`
		Groups                  []map[string]any
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, buf.String())
	}
	// Two of the matched lines are fastcgi_stderr, PHP warnings: not failures.
	if got.Lines != 18 || got.Matched != 16 || got.Failures != 14 || got.Skipped != 2 || len(got.Groups) != len(rep.Groups) {
		t.Fatalf("counts: %+v", got)
	}
	first := got.Groups[0]
	want := map[string]any{
		"upstream":   "fastcgi://unix:/run/php/php8.2-fpm.sock",
		"cause":      "connection_limit_reached",
		"count":      float64(3),
		"first":      "2023-09-12T08:08:00Z",
		"last":       "2023-09-12T08:08:01Z",
		"fix":        "the listen backlog of the app's unix socket is full (EAGAIN): it accepts connections slower than they arrive; add workers or raise the backlog (gunicorn --backlog, php-fpm listen.backlog, net.core.somaxconn).",
		"to_upmedic": false,
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("groups[0].%s = %#v, want %#v", k, first[k], v)
		}
	}
	if len(first) != len(want)+1 || !strings.Contains(first["sample"].(string), "(11: Resource temporarily unavailable)") {
		t.Errorf("groups[0] = %v", first)
	}

	// No groups is an empty list, not null.
	rep, err := Analyze(strings.NewReader(""), nginxUTC)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"groups": []`) {
		t.Errorf("empty report: %s", buf.String())
	}
}

func TestParseNginxErrorLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Line
	}{{
		name: "unix socket, nginx 1.22",
		line: `2026/11/25 22:52:13 [crit] 13153#13153: *2 connect() to unix:/tmp/x/run/perm.sock failed (13: Permission denied) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /socket-permission HTTP/1.1", upstream: "http://unix:/tmp/x/run/perm.sock:/socket-permission", host: "127.0.0.1:39861"` + "\n",
		want: Line{
			Time: time.Date(2026, 11, 25, 22, 52, 13, 0, time.UTC), Level: "crit", PID: 13153, TID: 13153, Conn: 2,
			Message: "connect() to unix:/tmp/x/run/perm.sock failed (13: Permission denied) while connecting to upstream",
			Errno:   13, Action: "connecting to upstream",
			Client: "127.0.0.1", Server: "_", Request: "GET /socket-permission HTTP/1.1",
			Upstream: "http://unix:/tmp/x/run/perm.sock:/socket-permission", Host: "127.0.0.1:39861",
		},
	}, {
		name: "quotes and commas inside values, referrer, CRLF",
		line: `2024/05/01 12:07:00 [error] 29#29: *24 upstream sent invalid header: "X-A: "b", c: d" while reading response header from upstream, client: 172.18.0.1, server: localhost, request: "GET /a?x="1", y HTTP/1.1", upstream: "http://172.18.0.3:3000/a?x="1", y", host: "localhost", referrer: "https://x/"` + "\r\n",
		want: Line{
			Time: time.Date(2024, 5, 1, 12, 7, 0, 0, time.UTC), Level: "error", PID: 29, TID: 29, Conn: 24,
			Message: `upstream sent invalid header: "X-A: "b", c: d" while reading response header from upstream`,
			Action:  "reading response header from upstream",
			Client:  "172.18.0.1", Server: "localhost", Request: `GET /a?x="1", y HTTP/1.1`,
			Upstream: `http://172.18.0.3:3000/a?x="1", y`, Host: "localhost",
		},
	}, {
		name: "no connection, no tail",
		line: `2021/03/14 11:00:00 [emerg] 1101#1101: host not found in upstream "app:8000" in /etc/nginx/conf.d/default.conf:2`,
		want: Line{
			Time: time.Date(2021, 3, 14, 11, 0, 0, 0, time.UTC), Level: "emerg", PID: 1101, TID: 1101,
			Message: `host not found in upstream "app:8000" in /etc/nginx/conf.d/default.conf:2`,
		},
	}, {
		name: "resolver code",
		line: `2026/11/25 22:52:13 [error] 9#9: *2 app.test could not be resolved (110: Operation timed out), client: 127.0.0.1, server: _, request: "GET /dns-timeout HTTP/1.1", host: "127.0.0.1:39861"`,
		want: Line{
			Time: time.Date(2026, 11, 25, 22, 52, 13, 0, time.UTC), Level: "error", PID: 9, TID: 9, Conn: 2,
			Message: "app.test could not be resolved (110: Operation timed out)", Errno: 110,
			Client: "127.0.0.1", Server: "_", Request: "GET /dns-timeout HTTP/1.1", Host: "127.0.0.1:39861",
		},
	}, {
		name: "stream module tail",
		line: `2024/05/01 12:08:00 [error] 30#30: *30 connect() failed (111: Connection refused) while connecting to upstream, client: 172.18.0.1, server: 0.0.0.0:5432, upstream: "172.18.0.5:5432", bytes from/to client:0/0, bytes from/to upstream:0/0`,
		want: Line{
			Time: time.Date(2024, 5, 1, 12, 8, 0, 0, time.UTC), Level: "error", PID: 30, TID: 30, Conn: 30,
			Message: "connect() failed (111: Connection refused) while connecting to upstream", Errno: 111,
			Action: "connecting to upstream", Client: "172.18.0.1", Server: "0.0.0.0:5432", Upstream: "172.18.0.5:5432",
		},
	}, {
		name: "SSL error in parentheses is no errno",
		line: `2024/05/01 12:02:00 [error] 29#29: *11 SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong version number) while SSL handshaking to upstream, client: 172.18.0.1, server: localhost`,
		want: Line{
			Time: time.Date(2024, 5, 1, 12, 2, 0, 0, time.UTC), Level: "error", PID: 29, TID: 29, Conn: 11,
			Message: "SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong version number) while SSL handshaking to upstream",
			Action:  "SSL handshaking to upstream", Client: "172.18.0.1", Server: "localhost",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseLine([]byte(tc.line))
			if !ok || got != tc.want {
				t.Errorf("ParseLine(%q)\n got %+v, %v\nwant %+v", tc.line, got, ok, tc.want)
			}
		})
	}
}

func TestParseNginxErrorLineRejects(t *testing.T) {
	for _, line := range []string{
		"",
		"\n",
		"nginx: [emerg] host not found in upstream \"app:8000\" in /etc/nginx/conf.d/default.conf:2",
		`PHP message: PHP Notice:  Undefined index: page" while reading response header from upstream, client: 10.1.0.1`,
		"2024/02/10 16:00",
		"2024/02/10 16:00:09 [error]",
		"2024/02/10 16:00:09 [error] ",
		"2024/02/10 16:00:09 [error] 31#31 no colon",
		"2024/02/10 16:00:09 [error] x#31: bad pid",
		"2024/02/10 16:00:09 [error] 1234567890123456789#1: pid too long",
		"2024/02/10 16:00:10 [fatal] 31#31: not a level",
		"2024/02/30 16:00:11 [error] 31#31: no such day",
		"2024-02-10 16:00:11 [error] 31#31: wrong date layout",
	} {
		if l, ok := ParseLine([]byte(line)); ok {
			t.Errorf("ParseLine(%q) = %+v, true; want false", line, l)
		}
	}
}

// nginxCauseTests are one or more lines for each row of nginxRules.
var nginxCauseTests = []struct {
	name, line, cause, upstream string
}{
	{"primary script unknown", `2023/09/12 08:01:00 [error] 811#811: *8 FastCGI sent in stderr: "Primary script unknown" while reading response header from upstream, client: 203.0.113.7, server: shop.example, request: "GET /wp-login.php HTTP/1.1", upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:", host: "shop.example"`,
		"fastcgi_primary_script_unknown", "fastcgi://unix:/run/php/php8.2-fpm.sock"},
	{"unable to open primary script", `2023/09/12 08:03:00 [error] 811#811: *12 FastCGI sent in stderr: "Unable to open primary script: /var/www/shop/index.php (Permission denied)" while reading response header from upstream, client: 203.0.113.5, server: shop.example, request: "GET / HTTP/2.0", upstream: "fastcgi://127.0.0.1:9000", host: "shop.example"`,
		"fastcgi_script_unreadable", "fastcgi://127.0.0.1:9000"},
	{"limit_extensions", `2023/09/12 08:02:00 [error] 811#811: *10 FastCGI sent in stderr: "Access to the script '/var/www/a.jpg' has been denied (see security.limit_extensions)" while reading response header from upstream, client: 203.0.113.7, server: s, request: "GET /a.jpg/x.php HTTP/1.1", upstream: "fastcgi://unix:/run/php.sock:", host: "s"`,
		"fastcgi_access_denied", "fastcgi://unix:/run/php.sock"},
	{"php fatal error after a warning", `2023/09/12 08:04:00 [error] 811#811: *14 FastCGI sent in stderr: "PHP message: PHP Warning:  x in /a.php on line 1PHP message: PHP Fatal error:  Allowed memory size of 134217728 bytes exhausted (tried to allocate 20480 bytes) in /b.php on line 88" while reading response header from upstream, client: 1.2.3.4, server: s, request: "GET / HTTP/1.1", upstream: "fastcgi://127.0.0.1:9000", host: "s"`,
		"php_fatal_error", "fastcgi://127.0.0.1:9000"},
	{"fastcgi stderr that quotes a connect error", `2023/09/12 08:04:30 [error] 811#811: *15 FastCGI sent in stderr: "PHP message: PHP Warning:  connect() failed (111: Connection refused)" while reading response header from upstream, client: 1.2.3.4, server: s, request: "GET / HTTP/1.1", upstream: "fastcgi://127.0.0.1:9000", host: "s"`,
		"fastcgi_stderr", "fastcgi://127.0.0.1:9000"},
	{"resolver timed out", `2026/11/25 22:52:13 [error] 13153#13153: *2 app.test could not be resolved (110: Operation timed out), client: 127.0.0.1, server: _, request: "GET /dns-timeout HTTP/1.1", host: "127.0.0.1:39861"`,
		"dns_timeout", "app.test"},
	{"resolver NXDOMAIN", `2026/11/25 22:52:12 [error] 13153#13153: *2 app.test could not be resolved (3: Host not found), client: 127.0.0.1, server: _, request: "GET /dns-nxdomain HTTP/1.1", host: "127.0.0.1:39861"`,
		"dns_error", "app.test"},
	{"host not found at startup", `2021/03/14 11:00:00 [emerg] 1101#1101: host not found in upstream "app:8000" in /etc/nginx/conf.d/default.conf:2`,
		"dns_error", "app:8000"},
	{"no resolver", `2024/05/01 12:03:00 [error] 29#29: *14 no resolver defined to resolve api.internal, client: 172.18.0.1, server: localhost, request: "GET /api/ HTTP/1.1", host: "localhost:8080"`,
		"nginx_no_resolver", "api.internal"},
	{"worker_connections", `2021/03/14 11:05:00 [alert] 1043#1043: *60 1024 worker_connections are not enough while connecting to upstream, client: 192.0.2.10, server: e, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8000/", host: "e"`,
		"nginx_worker_connections", "http://127.0.0.1:8000"},
	{"too many open files", `2021/03/14 11:05:01 [alert] 1043#1043: *61 socket() failed (24: Too many open files) while connecting to upstream, client: 192.0.2.10, server: e, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8000/", host: "e"`,
		"nginx_open_files", "http://127.0.0.1:8000"},
	{"local ports exhausted", `2021/03/14 11:06:00 [crit] 1043#1043: *70 connect() to 127.0.0.1:8000 failed (99: Cannot assign requested address) while connecting to upstream, client: 192.0.2.10, server: e, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8000/", host: "e"`,
		"nginx_local_ports_exhausted", "http://127.0.0.1:8000"},
	{"refused, tcp", `2026/11/25 22:52:12 [error] 13153#13153: *2 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /refused HTTP/1.1", upstream: "http://127.0.0.1:39249/refused", host: "h"`,
		"connection_refused", "http://127.0.0.1:39249"},
	{"refused, ipv6", `2021/03/14 09:50:12 [error] 1043#1043: *20 connect() failed (111: Connection refused) while connecting to upstream, client: 192.0.2.10, server: e, request: "GET /a HTTP/1.1", upstream: "http://[::1]:8000/a", host: "e"`,
		"connection_refused", "http://[::1]:8000"},
	{"refused, stale unix socket", `2026/11/25 22:52:12 [error] 13153#13153: *2 connect() to unix:/run/stale.sock failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /stale-socket HTTP/1.1", upstream: "http://unix:/run/stale.sock:/stale-socket", host: "h"`,
		"connection_refused", "http://unix:/run/stale.sock"},
	{"refused, no tail", `2026/11/25 22:52:12 [error] 13153#13153: *2 connect() to unix:/run/stale.sock failed (111: Connection refused) while connecting to upstream`,
		"connection_refused", "unix:/run/stale.sock"},
	{"socket not found", `2026/11/25 22:52:12 [crit] 13153#13153: *2 connect() to unix:/run/missing.sock failed (2: No such file or directory) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /missing-socket HTTP/1.1", upstream: "http://unix:/run/missing.sock:/missing-socket", host: "h"`,
		"socket_not_found", "http://unix:/run/missing.sock"},
	{"socket path through a file", `2026/11/25 22:52:12 [crit] 13153#13153: *2 connect() to unix:/run/app.conf/app.sock failed (20: Not a directory) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET / HTTP/1.1", upstream: "uwsgi://unix:/run/app.conf/app.sock:", host: "h"`,
		"socket_not_found", "uwsgi://unix:/run/app.conf/app.sock"},
	{"socket permission denied", `2021/03/14 09:41:17 [crit] 1043#1043: *12 connect() to unix:/run/gunicorn.sock failed (13: Permission denied) while connecting to upstream, client: 192.0.2.10, server: e, request: "GET /admin/ HTTP/1.1", upstream: "http://unix:/run/gunicorn.sock:/admin/", host: "e"`,
		"socket_permission_denied", "http://unix:/run/gunicorn.sock"},
	{"socket operation not permitted", `2021/03/14 09:41:17 [crit] 1043#1043: *12 connect() to unix:/run/gunicorn.sock failed (1: Operation not permitted) while connecting to upstream, client: 192.0.2.10, server: e, request: "GET / HTTP/1.1", upstream: "http://unix:/run/gunicorn.sock:/", host: "e"`,
		"socket_permission_denied", "http://unix:/run/gunicorn.sock"},
	{"selinux", `2021/03/14 09:30:01 [crit] 1043#1043: *1 connect() to 127.0.0.1:8000 failed (13: Permission denied) while connecting to upstream, client: 192.0.2.10, server: e, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8000/", host: "e"`,
		"destination_ip_prohibited", "http://127.0.0.1:8000"},
	{"firewall", `2024/05/01 12:00:06 [crit] 29#29: *6 connect() to 172.18.0.3:3000 failed (1: Operation not permitted) while connecting to upstream, client: 172.18.0.1, server: l, request: "GET / HTTP/1.1", upstream: "http://172.18.0.3:3000/", host: "l"`,
		"destination_ip_prohibited", "http://172.18.0.3:3000"},
	{"unix backlog full", `2026/11/25 22:52:12 [error] 13153#13153: *2 connect() to unix:/run/full.sock failed (11: Resource temporarily unavailable) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /socket-backlog HTTP/1.1", upstream: "http://unix:/run/full.sock:/socket-backlog", host: "h"`,
		"connection_limit_reached", "http://unix:/run/full.sock"},
	{"network down", `2024/05/01 12:06:01 [error] 29#29: *21 connect() failed (100: Network is down) while connecting to upstream, client: 1.2.3.4, server: l, request: "GET / HTTP/1.1", upstream: "http://172.18.0.9:3000/", host: "l"`,
		"destination_ip_unroutable", "http://172.18.0.9:3000"},
	{"network unreachable", `2021/03/14 10:02:40 [error] 1043#1043: *33 connect() to 10.0.4.9:8080 failed (101: Network is unreachable) while connecting to upstream, client: 192.0.2.10, server: e, request: "GET / HTTP/1.1", upstream: "http://10.0.4.9:8080/", host: "e"`,
		"destination_ip_unroutable", "http://10.0.4.9:8080"},
	{"host down", `2024/05/01 12:06:01 [error] 29#29: *21 connect() failed (112: Host is down) while connecting to upstream, client: 1.2.3.4, server: l, request: "GET / HTTP/1.1", upstream: "http://172.18.0.9:3000/", host: "l"`,
		"destination_ip_unroutable", "http://172.18.0.9:3000"},
	{"no route", `2021/03/14 10:02:33 [error] 1043#1043: *31 connect() failed (113: No route to host) while connecting to upstream, client: 192.0.2.10, server: e, request: "GET / HTTP/1.1", upstream: "http://10.0.3.7:8080/", host: "e"`,
		"destination_ip_unroutable", "http://10.0.3.7:8080"},
	{"tls certificate", `2024/05/01 12:02:05 [error] 29#29: *12 upstream SSL certificate verify error: (10:certificate has expired) while SSL handshaking to upstream, client: 172.18.0.1, server: l, request: "GET /p HTTP/1.1", upstream: "https://203.0.113.40:443/p", host: "l"`,
		"upstream_tls_certificate", "https://203.0.113.40:443"},
	{"tls handshake", `2024/05/01 12:02:00 [error] 29#29: *11 SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong version number) while SSL handshaking to upstream, client: 172.18.0.1, server: l, request: "GET /s HTTP/2.0", upstream: "https://172.18.0.4:8443/s", host: "l"`,
		"upstream_tls_handshake", "https://172.18.0.4:8443"},
	{"tls handshake reset", `2024/05/01 12:02:06 [error] 29#29: *13 peer closed connection in SSL handshake (104: Connection reset by peer) while SSL handshaking to upstream, client: 172.18.0.1, server: l, request: "GET /s HTTP/2.0", upstream: "https://172.18.0.4:8443/s", host: "l"`,
		"upstream_tls_handshake", "https://172.18.0.4:8443"},
	{"connect timed out", `2026/11/25 22:52:14 [error] 13153#13153: *2 upstream timed out (110: Connection timed out) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /timeout-connect HTTP/1.1", upstream: "http://127.0.0.1:41167/timeout-connect", host: "h"`,
		"connection_timeout", "http://127.0.0.1:41167"},
	{"header timed out", `2026/11/25 22:52:15 [error] 13153#13153: *2 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 127.0.0.1, server: _, request: "GET /slow-header HTTP/1.1", upstream: "http://127.0.0.1:33229/slow-header", host: "h"`,
		"http_response_timeout", "http://127.0.0.1:33229"},
	{"send timed out", `2021/03/14 10:16:00 [error] 1043#1043: *41 upstream timed out (110: Connection timed out) while sending request to upstream, client: 192.0.2.10, server: e, request: "POST /upload HTTP/1.1", upstream: "http://127.0.0.1:8000/upload", host: "e"`,
		"http_response_timeout", "http://127.0.0.1:8000"},
	{"body timed out", `2026/11/25 22:52:16 [error] 13153#13153: *28 upstream timed out (110: Connection timed out) while reading upstream, client: 127.0.0.1, server: _, request: "GET /slow-body HTTP/1.1", upstream: "http://127.0.0.1:38155/slow-body", host: "h"`,
		"connection_read_timeout", "http://127.0.0.1:38155"},
	{"kernel connect timeout", `2024/05/01 12:06:00 [error] 29#29: *20 connect() failed (110: Connection timed out) while connecting to upstream, client: 1.2.3.4, server: l, request: "GET / HTTP/1.1", upstream: "http://172.18.0.9:3000/", host: "l"`,
		"connection_timeout", "http://172.18.0.9:3000"},
	{"kernel header timeout", `2024/05/01 12:06:30 [error] 29#29: *22 recv() failed (110: Connection timed out) while reading response header from upstream, client: 1.2.3.4, server: l, request: "GET / HTTP/1.1", upstream: "http://172.18.0.3:3000/", host: "l"`,
		"http_response_timeout", "http://172.18.0.3:3000"},
	{"kernel body timeout", `2024/05/01 12:06:30 [error] 29#29: *22 recv() failed (110: Connection timed out) while reading upstream, client: 1.2.3.4, server: l, request: "GET /events HTTP/1.1", upstream: "http://172.18.0.3:3000/events", host: "l"`,
		"connection_read_timeout", "http://172.18.0.3:3000"},
	{"closed before header", `2026/11/25 22:52:15 [error] 13153#13153: *2 upstream prematurely closed connection while reading response header from upstream, client: 127.0.0.1, server: _, request: "GET /close HTTP/1.1", upstream: "http://127.0.0.1:43705/close", host: "h"`,
		"connection_terminated", "http://127.0.0.1:43705"},
	{"closed fastcgi stdout", `2023/09/12 08:06:00 [error] 811#811: *20 upstream prematurely closed FastCGI stdout while reading response header from upstream, client: 1.2.3.4, server: s, request: "POST /c.php HTTP/2.0", upstream: "fastcgi://unix:/run/php.sock:", host: "s"`,
		"connection_terminated", "fastcgi://unix:/run/php.sock"},
	{"closed in body", `2026/11/25 22:52:16 [error] 13153#13153: *26 upstream prematurely closed connection while reading upstream, client: 127.0.0.1, server: _, request: "GET /short-body HTTP/1.1", upstream: "http://127.0.0.1:34947/short-body", host: "h"`,
		"http_response_incomplete", "http://127.0.0.1:34947"},
	{"reset before header", `2026/11/25 22:52:15 [error] 13153#13153: *2 recv() failed (104: Connection reset by peer) while reading response header from upstream, client: 127.0.0.1, server: _, request: "GET /reset-header HTTP/1.1", upstream: "http://127.0.0.1:39523/reset-header", host: "h"`,
		"connection_terminated", "http://127.0.0.1:39523"},
	{"reset in body", `2026/11/25 22:52:17 [error] 13153#13153: *30 readv() failed (104: Connection reset by peer) while reading upstream, client: 127.0.0.1, server: _, request: "GET /reset-body HTTP/1.1", upstream: "http://127.0.0.1:37305/reset-body", host: "h"`,
		"http_response_incomplete", "http://127.0.0.1:37305"},
	{"broken pipe sending request", `2021/03/14 10:16:30 [error] 1043#1043: *42 writev() failed (32: Broken pipe) while sending request to upstream, client: 192.0.2.10, server: e, request: "POST /upload HTTP/1.1", upstream: "http://127.0.0.1:8000/upload", host: "e"`,
		"connection_terminated", "http://127.0.0.1:8000"},
	{"broken pipe in body", `2021/03/14 10:16:30 [error] 1043#1043: *42 recv() failed (32: Broken pipe) while reading upstream, client: 192.0.2.10, server: e, request: "GET /x HTTP/1.1", upstream: "http://127.0.0.1:8000/x", host: "e"`,
		"http_response_incomplete", "http://127.0.0.1:8000"},
	{"too big header", `2026/11/25 22:52:15 [error] 13153#13153: *2 upstream sent too big header while reading response header from upstream, client: 127.0.0.1, server: _, request: "GET /big-header HTTP/1.1", upstream: "http://127.0.0.1:36313/big-header", host: "h"`,
		"http_response_header_section_size", "http://127.0.0.1:36313"},
	{"not HTTP", `2026/11/25 22:52:15 [error] 13153#13153: *2 upstream sent no valid HTTP/1.0 header while reading response header from upstream, client: 127.0.0.1, server: _, request: "GET /garbage HTTP/1.1", upstream: "http://127.0.0.1:33517/garbage", host: "h"`,
		"http_protocol_error", "http://127.0.0.1:33517"},
	{"HTTP behind fastcgi_pass", `2026/11/25 22:52:13 [error] 13153#13153: *2 upstream sent unsupported FastCGI protocol version: 72 while reading response header from upstream, client: 127.0.0.1, server: _, request: "GET /http-to-fastcgi HTTP/1.1", upstream: "fastcgi://127.0.0.1:43305", host: "h"`,
		"http_protocol_error", "fastcgi://127.0.0.1:43305"},
	{"duplicate header line", `2024/05/01 12:01:10 [error] 29#29: *7 upstream sent duplicate header line: "Content-Length: 12", previous value: "Content-Length: 10" while reading response header from upstream, client: 1.2.3.4, server: l, request: "GET /dup HTTP/1.1", upstream: "http://172.18.0.3:3000/dup", host: "l"`,
		"http_protocol_error", "http://172.18.0.3:3000"},
	{"no live upstreams", `2026/11/25 22:52:12 [error] 13153#13153: *2 no live upstreams while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /no-live HTTP/1.1", upstream: "http://pair/no-live", host: "h"`,
		"upstream_unhealthy", "http://pair"},
	{"stream module", `2024/05/01 12:08:00 [error] 30#30: *30 connect() failed (111: Connection refused) while connecting to upstream, client: 172.18.0.1, server: 0.0.0.0:5432, upstream: "172.18.0.5:5432", bytes from/to client:0/0, bytes from/to upstream:0/0`,
		"connection_refused", "172.18.0.5:5432"},

	// Lines that must be skipped: cause "".
	{"warn about an upstream", `2021/03/14 09:50:12 [warn] 1043#1043: *20 upstream server temporarily disabled while connecting to upstream, client: 192.0.2.10, server: e, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8000/", host: "e"`, "", ""},
	{"info with an upstream errno", `2021/03/14 10:23:00 [info] 1043#1043: *49 recv() failed (104: Connection reset by peer) while reading upstream, client: 1.2.3.4, server: e, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8000/", host: "e"`, "", ""},
	{"client side reset", `2024/02/10 16:00:07 [error] 31#31: *7 writev() failed (104: Connection reset by peer) while sending to client, client: 10.1.0.1, server: _, request: "GET /v.mp4 HTTP/1.1", upstream: "http://10.1.0.9:80/v.mp4", host: "app"`, "", ""},
	{"static file missing", `2024/02/10 16:00:06 [error] 31#31: *6 open() "/var/www/html/favicon.ico" failed (2: No such file or directory), client: 10.1.0.1, server: _, request: "GET /favicon.ico HTTP/1.1", host: "app"`, "", ""},
	{"debug", `2024/05/01 12:09:00 [debug] 29#29: *31 connect to 172.18.0.3:3000, fd:12 #32`, "", ""},
}

func TestNginxLineCause(t *testing.T) {
	for _, tc := range nginxCauseTests {
		t.Run(tc.name, func(t *testing.T) {
			l, ok := ParseLine([]byte(tc.line))
			if !ok {
				t.Fatalf("line does not parse: %q", tc.line)
			}
			up := nginxUpstream(&l)
			rule := matchNginxRule(&l, up)
			cause := ""
			if rule >= 0 {
				cause = nginxRules[rule].finding().name()
			}
			if cause != tc.cause || (tc.cause != "" && up != tc.upstream) {
				t.Errorf("got %q at %q, want %q at %q", cause, up, tc.cause, tc.upstream)
			}
		})
	}
}

// TestNginxRulesAreTested makes adding a row to nginxRules also adding a case
// to nginxCauseTests.
func TestNginxRulesAreTested(t *testing.T) {
	hit := make([]bool, len(nginxRules))
	for _, tc := range nginxCauseTests {
		l, _ := ParseLine([]byte(tc.line))
		if rule := matchNginxRule(&l, nginxUpstream(&l)); rule >= 0 {
			hit[rule] = true
		}
	}
	for i, ok := range hit {
		if !ok {
			t.Errorf("nginxRules[%d] %+v has no case in nginxCauseTests", i, nginxRules[i])
		}
	}
}

func TestNginxKinds(t *testing.T) {
	names := make(map[string]bool)
	for k := kindNone + 1; k < numNginxKinds; k++ {
		f := nginxFinding{kind: k}
		if f.name() == "" || f.fix() == "" || names[f.name()] {
			t.Errorf("kind %d: name %q, fix %q: each needs a unique name and a fix", k, f.name(), f.fix())
		}
		names[f.name()] = true
		if _, ok := diag.ParseCause(f.name()); ok {
			t.Errorf("nginx-only kind %q is also a cause", f.name())
		}
	}
	if f := (nginxFinding{cause: diag.ConnectionRefused}); f.name() != "connection_refused" || f.fix() != diag.ConnectionRefused.Hint() {
		t.Errorf("cause finding: %q, %q", f.name(), f.fix())
	}
}

func TestNginxLogReportWriteTextEmpty(t *testing.T) {
	rep, err := Analyze(strings.NewReader("2024/05/01 12:00:00 [notice] 1#1: start worker processes\n"), nginxUTC)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	want := "1 lines: 0 upstream failures in 0 groups, 1 lines skipped\nno upstream failures found\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestSamePeer(t *testing.T) {
	for _, tc := range []struct {
		peer, listen string
		want         bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", "127.0.0.1:8081", false},
		{"127.0.0.1:8080", "0.0.0.0:8080", true},
		{"[::1]:8080", ":8080", true},
		{"10.0.0.5:8080", "0.0.0.0:8080", false},
		{"127.0.0.1:8080", "localhost:8080", true},
		{"[::1]:8080", "[0::1]:8080", true},
		{"unix:/run/upmedic.sock", "unix:/run/./upmedic.sock", true},
		{"unix:/run/upmedic.sock", "127.0.0.1:8080", false},
		{"upmedic", "127.0.0.1:8080", false},
	} {
		if got := samePeer(tc.peer, tc.listen); got != tc.want {
			t.Errorf("samePeer(%q, %q) = %v", tc.peer, tc.listen, got)
		}
	}
}

// TestAnalyzeGroupsByAddress checks that lines at one upstream group
// together whatever request path nginx wrote into their upstream field,
// and that the hop decides the fix.
func TestAnalyzeGroupsByAddress(t *testing.T) {
	line := func(path, upstream string) string {
		return `2026/03/01 12:00:00 [error] 9#9: *1 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 1.2.3.4, server: s, request: "GET ` +
			path + ` HTTP/1.1", upstream: "` + upstream + `", host: "s"` + "\n"
	}
	log := line("/a", "http://127.0.0.1:8080/a") + line("/b?x=1", "http://127.0.0.1:8080/b?x=1") +
		line("/c", "http://unix:/run/app.sock:/c") + line("/d", "http://unix:/run/app.sock:/d/e") +
		line("/f", "fastcgi://unix:/run/app.sock:")
	rep, err := Analyze(strings.NewReader(log), Options{Location: time.UTC, Listen: "127.0.0.1:8080", ResponseTimeout: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != 3 || rep.Failures != 5 {
		t.Fatalf("groups %+v", rep.Groups)
	}
	if g := nginxGroup(t, rep, "http_response_timeout", "http://127.0.0.1:8080"); g.Count != 2 || !g.ToUpmedic ||
		!strings.Contains(g.Fix, "UPMEDIC_RESPONSE_TIMEOUT 45s, so nginx's proxy_read_timeout") {
		t.Errorf("to upmedic: %+v", g)
	}
	if g := nginxGroup(t, rep, "http_response_timeout", "http://unix:/run/app.sock"); g.Count != 2 || g.ToUpmedic ||
		!strings.Contains(g.Fix, "within proxy_read_timeout (default 60s") {
		t.Errorf("to the app: %+v", g)
	}
	if g := nginxGroup(t, rep, "http_response_timeout", "fastcgi://unix:/run/app.sock"); !strings.Contains(g.Fix, "within fastcgi_read_timeout") {
		t.Errorf("fastcgi: %+v", g)
	}
}

// TestAnalyzeFailures checks what counts as a failure for the exit code:
// every matched line but PHP's warnings.
func TestAnalyzeFailures(t *testing.T) {
	warning := `2023/09/12 08:04:30 [error] 811#811: *15 FastCGI sent in stderr: "PHP message: PHP Warning:  x" while reading response header from upstream, client: 1.2.3.4, server: s, request: "GET / HTTP/1.1", upstream: "fastcgi://127.0.0.1:9000", host: "s"` + "\n"
	notice := "2024/05/01 12:00:00 [notice] 1#1: start worker processes\n"
	for _, tc := range []struct {
		log               string
		matched, failures int
	}{
		{notice, 0, 0},
		{notice + warning, 1, 0},
		{warning + nginxCauseTests[0].line + "\n", 2, 1},
	} {
		rep, err := Analyze(strings.NewReader(tc.log), nginxUTC)
		if err != nil || rep.Matched != tc.matched || rep.Failures != tc.failures {
			t.Errorf("%q: %+v, %v; want %d matched, %d failures", tc.log, rep, err, tc.matched, tc.failures)
		}
	}
}
