package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// upmedicEnv runs the suite's binary's `upmedic env` with exactly env and
// returns its table: variable -> IN EFFECT, FROM, DEFAULT, MEANING.
func upmedicEnv(t *testing.T, env []string) map[string][]string {
	t.Helper()
	cmd := exec.Command(upmedicBinary(t), "env")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("upmedic env: %v\n%s", err, out)
	}
	return envTable(t, string(out))
}

// envTable splits `upmedic env`'s output at the header's column starts.
func envTable(t *testing.T, out string) map[string][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	header := lines[0]
	var starts []int
	for _, col := range []string{"VARIABLE", "IN EFFECT", "FROM", "DEFAULT", "MEANING"} {
		i := strings.Index(header, col)
		if i < 0 {
			t.Fatalf("upmedic env: no %s column in %q", col, header)
		}
		starts = append(starts, i)
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		var cols []string
		for i, st := range starts {
			end := len(l)
			if i+1 < len(starts) {
				end = min(starts[i+1], len(l))
			}
			cols = append(cols, strings.TrimSpace(l[min(st, len(l)):end]))
		}
		rows[cols[0]] = cols[1:]
	}
	return rows
}

// upmedicDefault returns the value the binary uses for name when nothing is
// set.
func upmedicDefault(t *testing.T, name string) string {
	t.Helper()
	row := upmedicEnv(t, nil)[name]
	if len(row) == 0 || row[1] != "default" {
		t.Fatalf("upmedic env: %s row %q", name, row)
	}
	return row[0]
}

// durationIn parses s, or def when s is empty.
func durationIn(t *testing.T, s, def string) time.Duration {
	t.Helper()
	if s == "" {
		s = def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

// The defaults of the programs around upmedic, which the timeout chain
// must hold with, untouched.
const (
	// gunicorn's --timeout: its arbiter kills a worker silent that long,
	// checking about once a second, so the kill lands between T and T+1s.
	gunicornTimeout = 30 * time.Second
	// nginx's proxy_read_timeout, and ingress-nginx's proxy-read-timeout.
	nginxReadTimeout = 60 * time.Second
)

// TestTimeoutChain checks that with every peer at its default, and in the
// snippet and the examples as shipped, each hop waits longer than the one
// behind it: the app's own timeout (gunicorn 30s, killing by 31s) <
// UPMEDIC_RESPONSE_TIMEOUT < nginx's proxy_read_timeout. Otherwise which one
// answers is a race, and a killed worker is sometimes a 504, sometimes a 502.
func TestTimeoutChain(t *testing.T) {
	repo, _ := dirs(t)
	response := durationIn(t, "", upmedicDefault(t, "UPMEDIC_RESPONSE_TIMEOUT"))
	read := durationIn(t, "", upmedicDefault(t, "UPMEDIC_READ_TIMEOUT"))
	if response <= gunicornTimeout+time.Second || response >= nginxReadTimeout {
		t.Errorf("UPMEDIC_RESPONSE_TIMEOUT defaults to %v: want above gunicorn's %v (+1s, its arbiter's tick) and below nginx's %v",
			response, gunicornTimeout, nginxReadTimeout)
	}

	snippet := readFile(t, filepath.Join(repo, "testdata", "nginx", "upmedic-proxy.conf"))
	for _, directive := range []string{"proxy_read_timeout", "proxy_send_timeout"} {
		m := regexp.MustCompile(`(?m)^` + directive + ` (\d+)s;`).FindStringSubmatch(snippet)
		if m == nil {
			t.Fatalf("upmedic-proxy.conf has no %s N s;", directive)
		}
		secs, _ := strconv.Atoi(m[1])
		if d := time.Duration(secs) * time.Second; d <= response || d <= read {
			t.Errorf("upmedic-proxy.conf: %s %v, want above UPMEDIC_RESPONSE_TIMEOUT %v and UPMEDIC_READ_TIMEOUT %v", directive, d, response, read)
		}
	}

	// The examples: an app's --timeout, if set, and upmedic's, if set.
	appTimeout := func(cmd string) time.Duration {
		if m := regexp.MustCompile(`--timeout (\d+)`).FindStringSubmatch(cmd); m != nil {
			secs, _ := strconv.Atoi(m[1])
			return time.Duration(secs) * time.Second
		}
		return gunicornTimeout
	}
	c := readCompose(t)
	if app, up := appTimeout(c.command("app")), durationIn(t, c.Services["upmedic"].Environment["UPMEDIC_RESPONSE_TIMEOUT"], response.String()); app+time.Second >= up || up >= nginxReadTimeout {
		t.Errorf("docker-compose.yml: the app's timeout %v, upmedic's %v, nginx's %v: not in that order", app, up, nginxReadTimeout)
	}
	for _, ctr := range readK8s(t)["Deployment"].Spec.Template.Spec.Containers {
		if ctr.Name != "upmedic" {
			continue
		}
		up := durationIn(t, ctr.env("UPMEDIC_RESPONSE_TIMEOUT"), response.String())
		for _, app := range readK8s(t)["Deployment"].Spec.Template.Spec.Containers {
			if app.Name == "app" && (appTimeout(strings.Join(app.Command, " "))+time.Second >= up || up >= nginxReadTimeout) {
				t.Errorf("k8s.yaml: the app's timeout %v, upmedic's %v, ingress-nginx's %v: not in that order",
					appTimeout(strings.Join(app.Command, " ")), up, nginxReadTimeout)
			}
		}
	}

	// Debian's gunicorn, asked for its own default.
	if p := lookTools().gunicorn; p != "" {
		out, err := exec.Command("/usr/bin/python3", "-c", "import gunicorn.config as c; print(c.Config().timeout)").Output()
		if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(int(gunicornTimeout/time.Second)) {
			t.Errorf("%s: default --timeout %q (%v), the chain assumes %v", p, out, err, gunicornTimeout)
		}
	}
}

// TestImageEnvLinked checks that the binary knows the image's ENV: the
// Dockerfile links the final stage's ENV into it (-X main.imageEnv), so that
// `upmedic env` in the image says which values the image set and which
// were given with -e.
func TestImageEnvLinked(t *testing.T) {
	repo, _ := dirs(t)
	df, err := parseDockerfile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	env := imageEnv(t)
	var linked string
	for _, in := range df.stage("build").instrs {
		if m := regexp.MustCompile(`-X main\.imageEnv=(\S+?)"?(\s|$)`).FindStringSubmatch(in.args); in.cmd == "RUN" && m != nil {
			linked = m[1]
		}
	}
	var pairs []string
	for kv := range strings.SplitSeq(linked, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if env[k] != v {
			t.Errorf("the build stage links %s=%s, the final stage's ENV has %q", k, v, env[k])
		}
		pairs = append(pairs, kv)
	}
	if len(pairs) != len(env) {
		t.Errorf("the build stage links %q, the final stage's ENV is %v", linked, env)
	}

	var given []string
	for k, v := range env {
		given = append(given, k+"="+v)
	}
	rows := upmedicEnv(t, append(given, "UPMEDIC_UPSTREAM=unix:/run/app/app.sock"))
	for k, v := range env {
		if got := rows[k]; len(got) < 3 || got[0] != v || got[1] != "image ENV" {
			t.Errorf("upmedic env with the image's ENV: %s %q, want %s from the image ENV", k, got, v)
		}
	}
	rows = upmedicEnv(t, []string{"UPMEDIC_ADMIN_LISTEN=127.0.0.1:9901"})
	if got := rows["UPMEDIC_ADMIN_LISTEN"]; got[1] != "environment" {
		t.Errorf("upmedic env with -e UPMEDIC_ADMIN_LISTEN=127.0.0.1:9901: %q, want from the environment", got)
	}
}

// imageDefaultConf is the nginx image's own /etc/nginx/conf.d/default.conf
// (nginx:1.27, Debian-based, as shipped but for its commented-out PHP
// examples).
const imageDefaultConf = `server {
    listen       80;
    listen  [::]:80;
    server_name  localhost;

    #access_log  /var/log/nginx/host.access.log  main;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    #error_page  404              /404.html;

    # redirect server error pages to the static page /50x.html
    #
    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
`

// TestComposeNginxDefaultServer runs real nginx with the compose example's
// layout: the nginx image's /etc/nginx (its conf.d/default.conf and its
// welcome page) with the example's volumes mounted over it, ports and paths
// moved to the test's. Whatever the Host, a request must reach upmedic (here
// a stand-in on the snippet's upstream address), never the image's
// "Welcome to nginx!". The control is the example's old layout, upmedic.conf
// beside default.conf, where Host: localhost got the welcome page.
func TestComposeNginxDefaultServer(t *testing.T) {
	needRoot(t)
	tl := need(t, "nginx")
	repo, _ := dirs(t)
	examples := filepath.Join(repo, "examples")
	c := readCompose(t)

	for _, tc := range []struct {
		name  string
		mount func(ctr string) string // where a volume lands
		want  map[string]string       // Host -> body
	}{
		{"as the example mounts", func(ctr string) string { return ctr }, map[string]string{
			"localhost": "through upmedic", "127.0.0.1": "through upmedic", "app.example.com": "through upmedic"}},
		{"control: upmedic.conf beside the image's default.conf", func(ctr string) string {
			return strings.Replace(ctr, "/conf.d/default.conf", "/conf.d/upmedic.conf", 1)
		}, map[string]string{"localhost": "Welcome to nginx!", "app.example.com": "through upmedic"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := scenarioDir(t)
			up := standIn(t, "through upmedic")
			listen := loopback(freePort(t))
			etc, html := filepath.Join(dir, "etc-nginx"), filepath.Join(dir, "html")
			writeFile(t, filepath.Join(html, "index.html"), "<h1>Welcome to nginx!</h1>\n")
			// Every path and port the files name, moved into dir.
			moved := strings.NewReplacer(
				"listen       80;", "listen "+listen+";", "listen  [::]:80;", "",
				"listen 80 default_server;", "listen "+listen+" default_server;",
				"server 127.0.0.1:8080;", "server "+up+";",
				"pid /run/nginx.pid;", "pid "+filepath.Join(dir, "nginx.pid")+";",
				"/var/log/nginx/", filepath.Join(dir, "logs")+"/",
				"/usr/share/nginx/html", html)
			writeFile(t, filepath.Join(etc, "conf.d", "default.conf"), moved.Replace(imageDefaultConf))
			for _, v := range c.Services["nginx"].Volumes {
				parts := strings.Split(v, ":")
				ctr, ok := strings.CutPrefix(tc.mount(parts[1]), "/etc/nginx/")
				if !ok {
					t.Fatalf("nginx volume %q is not under /etc/nginx", v)
				}
				writeFile(t, filepath.Join(etc, ctr), moved.Replace(readFile(t, filepath.Join(examples, parts[0]))))
			}
			writeFile(t, filepath.Join(etc, "conf.d", "zz-e2e.conf"), fmt.Sprintf(
				"client_body_temp_path %[1]s/body;\nproxy_temp_path %[1]s/proxy;\nfastcgi_temp_path %[1]s/fastcgi;\nuwsgi_temp_path %[1]s/uwsgi;\nscgi_temp_path %[1]s/scgi;\n",
				filepath.Join(dir, "tmp")))
			for _, d := range []string{"logs", "tmp"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			conf := filepath.Join(etc, "nginx.conf")
			if b := readFile(t, conf); !strings.Contains(b, "listen "+listen) {
				t.Fatalf("nginx.conf listens on no rewritten port:\n%s", b)
			}
			p := start(t, dir, "nginx", exec.Command(tl.nginx, "-p", dir+"/", "-c", conf, "-e", filepath.Join(dir, "logs", "startup-error.log"), "-g", "daemon off;"))
			p.waitDial(t, "tcp", listen)

			for host, want := range tc.want {
				req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/", nil)
				req.Host = host
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("Host %s: %v", host, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(body), want) {
					t.Errorf("Host: %s got %d %q, want %q", host, resp.StatusCode, body, want)
				}
			}
		})
	}
}

// standIn serves body on a loopback port, standing in for upmedic.
func standIn(t *testing.T, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
