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
// outside it. Line numbers stay as they are.
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
