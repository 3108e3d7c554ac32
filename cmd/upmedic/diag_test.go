package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// skipOrFail skips t for reason, or fails it when CI=true, where .ci/run
// installs every peer program.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but " + reason)
	}
	t.Skip("skipped: " + reason)
}

// readmeNginxLayout copies the README's nginx files from testdata/nginx into
// the Debian layout the README installs them in (nginx.conf,
// conf.d/upmedic.conf, snippets/upmedic-proxy.conf), with the log and pid
// paths moved into the temporary directory so that nginx -t writes nothing
// outside it, and port 80 changed to 8180. Line numbers stay as they are.
func readmeNginxLayout(t *testing.T) (conf, prefix string) {
	t.Helper()
	dir := t.TempDir()
	prefix = filepath.Join(dir, "prefix")
	for _, d := range []string{"conf/conf.d", "conf/snippets", "prefix/logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for src, dst := range map[string]string{
		"nginx.conf":         "conf/nginx.conf",
		"upmedic.conf":       "conf/conf.d/upmedic.conf",
		"upmedic-proxy.conf": "conf/snippets/upmedic-proxy.conf",
	} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "nginx", src))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "/var/log/nginx/", prefix+"/logs/")
		s = strings.ReplaceAll(s, "/run/nginx.pid", prefix+"/logs/nginx.pid")
		// nginx -t binds the listen ports: a port above 1024 works without root.
		s = strings.ReplaceAll(s, "listen 80;", "listen 8180;")
		if err := os.WriteFile(filepath.Join(dir, dst), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "conf", "nginx.conf"), prefix
}

// TestNginxConfReadmeSnippetIsClean checks the README's nginx files against
// upmedic's own defaults, as the Config reads them from an empty
// environment: real nginx -t accepts them, and upmedic diag nginx-conf finds
// nothing.
func TestNginxConfReadmeSnippetIsClean(t *testing.T) {
	conf, prefix := readmeNginxLayout(t)
	if bin := findNginx(""); bin != "" {
		if out, err := exec.Command(bin, "-t", "-q", "-p", prefix+"/", "-c", conf, "-e", prefix+"/logs/error.log").CombinedOutput(); err != nil {
			t.Fatalf("nginx -t rejects the README's files: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but nginx is not installed")
	}
	for _, env := range [][]string{nil, {"UPMEDIC_UPSTREAM=unix:/run/gunicorn/app.sock"}} {
		var out bytes.Buffer
		code := run([]string{"diag", "nginx-conf", "--php-fpm=", conf}, env, nil, &out, &out)
		if code != 0 || !strings.Contains(out.String(), conf+" agrees with upmedic's settings (3 locations proxying to upmedic at 127.0.0.1:8080") ||
			strings.Contains(out.String(), "[warning]") || strings.Contains(out.String(), "[error]") {
			t.Errorf("env %q: exit %d:\n%s", env, code, out.String())
		}
	}
}

func TestNginxConfExitCodes(t *testing.T) {
	broken := filepath.Join("..", "..", "diag", "nginxconf", "testdata", "broken", "nginx.conf")
	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte("events {}\nhttp {\n  server {\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		code int
		out  string
	}{
		{"errors", []string{broken}, []string{"UPMEDIC_UPSTREAM=unix:/run/gunicorn/app.sock", "UPMEDIC_RESPONSE_TIMEOUT=45s"}, 1,
			"snippets/upmedic-proxy.conf:10: proxy_read_timeout: [error] 30s is not above upmedic's UPMEDIC_RESPONSE_TIMEOUT 45s by 1s"},
		{"warnings only", []string{broken}, []string{"UPMEDIC_RESPONSE_TIMEOUT=20s", "UPMEDIC_READ_TIMEOUT=20s"}, 0,
			"nginx.conf:11: access_log: [warning] log_format combined"},
		{"settings from the environment", []string{broken}, []string{"UPMEDIC_LISTEN=127.0.0.1:9090"}, 1,
			"no location proxies to upmedic at UPMEDIC_LISTEN=127.0.0.1:9090"},
		{"unreadable", []string{filepath.Join(t.TempDir(), "absent.conf")}, nil, 2, "no such file or directory"},
		{"unparseable", []string{bad}, nil, 2, `upmedic diag nginx-conf: unexpected end of file, expecting "}" in ` + bad + ":5"},
		{"bad variable", []string{broken}, []string{"UPMEDIC_RESPONSE_TIMEOUT=soon"}, 2, `UPMEDIC_RESPONSE_TIMEOUT="soon"`},
		{"two files", []string{broken, broken}, nil, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(append([]string{"diag", "nginx-conf", "--php-fpm="}, tc.args...), tc.env, nil, &out, &out)
			if code != tc.code || !strings.Contains(out.String(), tc.out) {
				t.Errorf("exit %d, want %d with %q:\n%s", code, tc.code, tc.out, out.String())
			}
		})
	}

	var out bytes.Buffer
	code := run([]string{"diag", "nginx-conf", "--json", "--php-fpm=", broken}, []string{"UPMEDIC_UPSTREAM=unix:/run/gunicorn/app.sock"}, nil, &out, os.Stderr)
	var got struct {
		Findings []struct {
			File, Directive, Severity, Message, Fix string
			Line                                    int
		}
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || code != 1 || len(got.Findings) != 3 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out.String())
	}
	if f := got.Findings[1]; !strings.HasSuffix(f.File, "sites-enabled/shop") || f.Line != 11 || f.Directive != "proxy_pass" ||
		f.Severity != "error" || f.Fix != "proxy_pass http://upmedic;" || !strings.Contains(f.Message, "location /admin/ goes straight to the app") {
		t.Errorf("finding %+v", f)
	}
}

func TestNginxLogExitCodes(t *testing.T) {
	testdata := filepath.Join("..", "..", "diag", "nginxlog", "testdata")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	quiet := write("quiet.log", "2024/05/01 12:00:00 [notice] 1#1: start worker processes\n"+
		`2023/09/12 08:04:30 [error] 811#811: *15 FastCGI sent in stderr: "PHP message: PHP Warning:  x" while reading response header from upstream, client: 1.2.3.4, server: s, request: "GET / HTTP/1.1", upstream: "fastcgi://127.0.0.1:9000", host: "s"`+"\n")
	conf := write("nginx.conf", "user www-data;\nevents {}\nhttp {\n  upstream sidecar { server 127.0.0.1:8080; }\n}\n")
	noUser := write("nouser.conf", "events {}\n")
	bad := write("bad.conf", "http {\n")
	upmedicLog := filepath.Join(testdata, "upmedic.log")
	for _, tc := range []struct {
		name  string
		args  []string
		env   []string
		stdin string
		code  int
		out   []string
	}{
		{"failures", []string{"--conf", noUser, upmedicLog}, nil, "", 1, []string{
			"upmedic_unreachable at http://127.0.0.1:8080\n  fix:    upmedic is not running or not listening where nginx expects it (UPMEDIC_LISTEN=127.0.0.1:8080)",
			"nginx's workers run as nobody (nginx's built-in default: " + noUser + " has no user directive)",
			"UPMEDIC_RESPONSE_TIMEOUT 45s, so nginx's proxy_read_timeout"}},
		{"settings from the environment and the worker user from --conf", []string{"--conf", conf, upmedicLog},
			[]string{"UPMEDIC_LISTEN=127.0.0.1:9999", "UPMEDIC_RESPONSE_TIMEOUT=50s"}, "", 1, []string{
				"http_response_timeout at http://127.0.0.1:8080, http://unix:/run/gunicorn/app.sock\n  fix:    the app sent no response header within proxy_read_timeout",
				"nginx's workers run as www-data (user in " + conf + ":1)"}},
		{"upmedic's upstream block from --conf", []string{"--conf", conf}, nil,
			`2026/03/01 12:00:03 [error] 901#901: *5 no live upstreams while connecting to upstream, client: 1.2.3.4, server: s, request: "GET / HTTP/1.1", upstream: "http://sidecar/", host: "s"` + "\n",
			1, []string{"upmedic_unreachable at http://sidecar", "No live upstreams: nginx marked upmedic down"}},
		{"no failures", []string{quiet}, nil, "", 0, []string{"2 lines: 0 upstream failures and 1 FastCGI stderr messages in 1 groups, 1 lines skipped"}},
		{"empty stdin", []string{"-"}, nil, "", 0, []string{"0 lines: 0 upstream failures in 0 groups"}},
		{"unreadable", []string{filepath.Join(dir, "absent.log")}, nil, "", 2, []string{"no such file or directory"}},
		{"a directory", []string{dir}, nil, "", 2, []string{"is a directory"}},
		{"unparseable --conf", []string{"--conf", bad, upmedicLog}, nil, "", 2, []string{"--conf: unexpected end of file"}},
		{"missing --conf", []string{"--conf", filepath.Join(dir, "absent.conf"), upmedicLog}, nil, "", 2, []string{"--conf:"}},
		{"bad --since", []string{"--since", "soon", upmedicLog}, nil, "", 2, []string{"--since"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(append([]string{"diag", "nginx-log"}, tc.args...), tc.env, strings.NewReader(tc.stdin), &out, &out)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, out.String())
			}
			for _, s := range tc.out {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}
