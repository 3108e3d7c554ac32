package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
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
	"syscall"
	"testing"
	"time"
)

// readyWithin bounds every wait for a process to come up or a log line to
// appear. Polls are short; nothing sleeps a fixed time hoping.
const readyWithin = 20 * time.Second

// unprivileged is the uid and gid upmedic runs as in the suite (nobody,
// nogroup): it may not open a root-owned 0600 socket.
const unprivileged = 65534

// scenarioDir makes a 0755 directory for one scenario under the run
// directory.
func scenarioDir(t *testing.T) string {
	t.Helper()
	_, run := dirs(t)
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	d, err := os.MkdirTemp(run, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Closed again, it also gives a guaranteed ECONNREFUSED until reused.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// token returns a short random string that marks one request, so that its
// access-log and error-log lines can be told from any other.
func token() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// proc is a process the suite started, in its own process group, with its
// output in a log file. t.Cleanup stops it.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its Wait error, once done is closed
}

// start starts cmd with stdout and stderr in dir/name.log and registers its
// stop with t.Cleanup.
func start(t *testing.T, dir, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), cmd: cmd, done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = new(syscall.SysProcAttr)
	}
	// Its own process group, so that stop reaches the workers too; killed
	// with the test binary if that dies first.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	err = cmd.Start()
	f.Close()
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop sends SIGTERM to the process group led by p's PID, then SIGKILL if it
// has not exited within 5s, and waits for it.
func (p *proc) stop() {
	pid := p.cmd.Process.Pid
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		t := time.NewTimer(5 * time.Second)
		select {
		case <-p.done:
		case <-t.C:
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.done
		}
		t.Stop()
	}
	// Workers a dead master left behind.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// exited reports whether p has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// output returns the end of p's log, for failure messages.
func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = append([]byte("..."), b[len(b)-4000:]...)
	}
	return string(b)
}

// waitReady polls ready until it returns nil, failing t if p exits first or
// readyWithin passes.
func (p *proc) waitReady(t *testing.T, what string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(readyWithin)
	for {
		err := ready()
		if err == nil {
			return
		}
		if p.exited() {
			t.Fatalf("%s exited (%v) before %s: %v\n--- %s ---\n%s", p.name, p.err, what, err, p.log, p.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not %s within %v: %v\n--- %s ---\n%s", p.name, what, readyWithin, err, p.log, p.output())
		}
		time.Sleep(20 * time.Millisecond) // a poll interval, not a wait for the event
	}
}

// waitDial waits until network/address accepts a connection (as root).
func (p *proc) waitDial(t *testing.T, network, address string) {
	t.Helper()
	p.waitReady(t, "accepting on "+network+":"+address, func() error {
		c, err := net.DialTimeout(network, address, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// appsDir is where the suite's apps (WSGI, Node.js) live.
func appsDir(t *testing.T) string {
	repo, _ := dirs(t)
	return filepath.Join(repo, "e2e", "apps")
}

// startGunicorn runs Debian's gunicorn (as root, sync workers) with the
// WSGI app in e2e/apps/wsgi.py on bind ("127.0.0.1:port" or "unix:/path").
func startGunicorn(t *testing.T, dir, bind string, args ...string) *proc {
	t.Helper()
	tl := lookTools()
	argv := append([]string{"--bind", bind, "--chdir", appsDir(t), "--worker-class", "sync",
		"--access-logfile", "-", "--error-logfile", "-"}, args...)
	argv = append(argv, "wsgi:app")
	cmd := exec.Command(tl.gunicorn, argv...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONDONTWRITEBYTECODE=1"}
	p := start(t, dir, "gunicorn", cmd)
	if path, ok := strings.CutPrefix(bind, "unix:"); ok {
		p.waitDial(t, "unix", path)
	} else {
		p.waitDial(t, "tcp", bind)
	}
	return p
}

// startNode runs e2e/apps/node-app.js on a free port and returns it.
func startNode(t *testing.T, dir string) (*proc, string) {
	t.Helper()
	tl := lookTools()
	addr := loopback(freePort(t))
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(tl.node, filepath.Join(appsDir(t), "node-app.js"), port)
	p := start(t, dir, "node", cmd)
	p.waitDial(t, "tcp", addr)
	return p, addr
}

// startPHPFPM runs php-fpm as root with one www-data pool listening on a
// unix socket that only root may open (listen.owner=root, listen.mode=0600).
func startPHPFPM(t *testing.T, dir string) (*proc, string) {
	t.Helper()
	tl := lookTools()
	sock := filepath.Join(dir, "php-fpm.sock")
	conf := filepath.Join(dir, "php-fpm.conf")
	writeFile(t, conf, fmt.Sprintf(`[global]
pid = %[1]s/php-fpm.pid
error_log = %[1]s/php-fpm-error.log
daemonize = no

[www]
user = www-data
group = www-data
listen = %[2]s
listen.owner = root
listen.group = root
listen.mode = 0600
pm = static
pm.max_children = 1
`, dir, sock))
	p := start(t, dir, "php-fpm", exec.Command(tl.phpFPM, "-F", "-y", conf, "-p", dir))
	p.waitDial(t, "unix", sock)
	return p, sock
}

// startUpmedic runs the upmedic binary as uid/gid 65534 with env (UPMEDIC_
// variables only: upmedic refuses unknown ones) and waits until it accepts
// on listen.
func startUpmedic(t *testing.T, dir, listen string, env []string) *proc {
	t.Helper()
	cmd := exec.Command(upmedicBinary(t), "serve")
	cmd.Env = append([]string{"UPMEDIC_LISTEN=" + listen}, env...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: unprivileged, Gid: unprivileged}}
	p := start(t, dir, "upmedic", cmd)
	p.waitDial(t, "tcp", listen)
	return p
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// stackConfig is one scenario's nginx and upmedic.
type stackConfig struct {
	// Upstream is UPMEDIC_UPSTREAM.
	Upstream string
	// Env holds more UPMEDIC_ variables.
	Env []string
	// Alone holds the directives of location / in the server where nginx
	// talks to the app directly, with no upmedic: the baseline.
	Alone string
	// PHPRoot, when set, makes the upmedic server a PHP site with this
	// document root: testdata/nginx/upmedic-php.conf in place of its
	// location /, so nginx serves static files and proxies PHP to upmedic.
	PHPRoot string
}

// stack is nginx in front of upmedic in front of an app, plus a second
// nginx server that talks to the app alone.
type stack struct {
	dir     string
	nginx   *proc
	upmedic *proc
	via     front // nginx -> upmedic -> app
	alone   front // nginx -> app
	admin   string
}

// front is one nginx server: its address and the logs it writes.
type front struct {
	addr      string
	accessLog string
	errorLog  string
}

// newStack starts upmedic (unprivileged) and nginx for cfg. nginx runs
// testdata/nginx/nginx.conf, upmedic.conf and upmedic-proxy.conf with only
// their ports and paths rewritten, plus a test-only conf.d file that holds
// the temp paths and the nginx-alone server.
func newStack(t *testing.T, dir string, cfg stackConfig) *stack {
	t.Helper()
	s := &stack{dir: dir}
	listen := loopback(freePort(t))
	s.admin = loopback(freePort(t))
	env := []string{
		"UPMEDIC_UPSTREAM=" + cfg.Upstream,
		"UPMEDIC_ADMIN_LISTEN=" + s.admin,
		// One probe at start, then none during the scenario: a scenario's
		// request must meet the fault itself, not a health check's verdict
		// (upstream_unhealthy), which has its own unit tests.
		"UPMEDIC_HEALTH_INTERVAL=1h",
	}
	s.upmedic = startUpmedic(t, dir, listen, append(env, cfg.Env...))

	s.via = front{addr: loopback(freePort(t)), accessLog: filepath.Join(dir, "logs", "access.log"),
		errorLog: filepath.Join(dir, "logs", "error.log")}
	s.alone = front{addr: loopback(freePort(t)), accessLog: filepath.Join(dir, "logs", "alone-access.log"),
		errorLog: filepath.Join(dir, "logs", "alone-error.log")}
	conf := writeNginxConf(t, dir, s.via.addr, listen, s.alone, cfg.Alone, cfg.PHPRoot)

	cmd := exec.Command(lookTools().nginx, "-p", dir+"/", "-c", conf, "-e", filepath.Join(dir, "logs", "startup-error.log"), "-g", "daemon off;")
	s.nginx = start(t, dir, "nginx", cmd)
	s.nginx.waitDial(t, "tcp", s.via.addr)
	s.nginx.waitDial(t, "tcp", s.alone.addr)
	return s
}

// writeNginxConf writes the suite's copy of testdata/nginx/ under dir/conf
// and returns the main file's path. Each rewrite must match, so that a change
// to the shipped files that the suite would silently stop testing fails here.
func writeNginxConf(t *testing.T, dir, listen, upmedicAddr string, alone front, aloneLocation, phpRoot string) string {
	t.Helper()
	repo, _ := dirs(t)
	src := filepath.Join(repo, "testdata", "nginx")
	conf := filepath.Join(dir, "conf")
	logs := filepath.Join(dir, "logs")
	for _, d := range []string{conf, logs, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	main := rewrite(t, readFile(t, filepath.Join(src, "nginx.conf")),
		"listen 80 default_server;", "listen "+listen+" default_server;",
		"pid /run/nginx.pid;", "pid "+filepath.Join(dir, "nginx.pid")+";",
		"/var/log/nginx/", logs+"/")
	if phpRoot != "" {
		main = rewrite(t, main, "        location / {\n            include snippets/upmedic-proxy.conf;\n        }\n",
			"        include snippets/upmedic-php.conf;\n")
		writeFile(t, filepath.Join(conf, "snippets", "upmedic-php.conf"), rewrite(t, readFile(t, filepath.Join(src, "upmedic-php.conf")),
			"root /var/www/site/public;", "root "+phpRoot+";"))
	}
	writeFile(t, filepath.Join(conf, "nginx.conf"), main)
	writeFile(t, filepath.Join(conf, "conf.d", "upmedic.conf"), rewrite(t, readFile(t, filepath.Join(src, "upmedic.conf")),
		"server 127.0.0.1:8080;", "server "+upmedicAddr+";"))
	writeFile(t, filepath.Join(conf, "snippets", "upmedic-proxy.conf"), readFile(t, filepath.Join(src, "upmedic-proxy.conf")))

	// Test-only: temp files inside the scenario, and nginx alone.
	tmp := filepath.Join(dir, "tmp")
	writeFile(t, filepath.Join(conf, "conf.d", "zz-e2e.conf"), fmt.Sprintf(`# written by the e2e suite
client_body_temp_path %[1]s/body;
proxy_temp_path %[1]s/proxy;
fastcgi_temp_path %[1]s/fastcgi;
uwsgi_temp_path %[1]s/uwsgi;
scgi_temp_path %[1]s/scgi;

# nginx alone, straight to the app: what operators have without upmedic.
server {
    listen %[2]s;
    access_log %[3]s upmedic;
    error_log %[4]s;
    location / {
        %[5]s
    }
}
`, tmp, alone.addr, alone.accessLog, alone.errorLog, aloneLocation))
	return filepath.Join(conf, "nginx.conf")
}

// rewrite replaces each old with its new in s; every old must occur.
func rewrite(t *testing.T, s string, oldNew ...string) string {
	t.Helper()
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("testdata/nginx no longer contains %q: update the suite's rewrite", oldNew[i])
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	return s
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// result is what one request got: at the client, in nginx's access log (the
// upmedic log_format) and in nginx's error.log.
type result struct {
	status  int
	header  http.Header
	body    []byte
	bodyErr error // a body cut short shows here
	line    logLine
	errors  []string // error.log lines about this request, shortened
}

// get sends GET path (a token added to its query) to f and returns what the
// client got and what nginx logged about it.
func (f front) get(t *testing.T, path string) result {
	t.Helper()
	r, err := f.fetch(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// post sends POST path with body to f, like get.
func (f front) post(t *testing.T, path string, body []byte) result {
	t.Helper()
	r, err := f.send(http.MethodPost, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fetch is get for any goroutine: it returns its failure.
func (f front) fetch(path string) (result, error) { return f.send(http.MethodGet, path, nil) }

// send sends one request and returns what the client got and what nginx
// logged about it.
func (f front) send(method, path string, body []byte) (result, error) {
	tok := token()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	path += sep + "e2e=" + tok
	client := &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true},
	}
	req, err := http.NewRequest(method, "http://"+f.addr+path, bytes.NewReader(body))
	if err != nil {
		return result{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{}, fmt.Errorf("%s %s via %s: %w", method, path, f.addr, err)
	}
	var r result
	r.status, r.header = resp.StatusCode, resp.Header
	r.body, r.bodyErr = io.ReadAll(resp.Body)
	resp.Body.Close()
	if r.line, err = f.logLine(tok); err != nil {
		return r, err
	}
	r.errors = f.errorLines(tok)
	return r, nil
}

// logLine is one access-log line in testdata/nginx/upmedic.conf's
// log_format upmedic. Fields nginx wrote as "-" are empty here.
type logLine struct {
	raw            string
	request        string
	status         int
	bytesSent      int
	upstreamStatus string // $upstream_status
	upstreamTime   string // $upstream_response_time
	requestTime    float64
	diagnosis      string // $upstream_http_x_upstream_diagnosis
	proxyStatus    string // $upstream_http_proxy_status
}

var logFormat = regexp.MustCompile(`^(\S+) - (\S+) \[([^\]]*)\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" ` +
	`rt=(\S+) us=(.*?) urt=(.*?) diag="([^"]*)" ps="([^"]*)"$`)

// parseLogLine parses one line of log_format upmedic, undoing nginx's \xHH
// escapes.
func parseLogLine(s string) (logLine, error) {
	m := logFormat.FindStringSubmatch(s)
	if m == nil {
		return logLine{}, fmt.Errorf("not in log_format upmedic: %q", s)
	}
	l := logLine{raw: s, request: m[4], upstreamStatus: dash(m[10]), upstreamTime: dash(m[11]),
		diagnosis: unescape(dash(m[12])), proxyStatus: unescape(dash(m[13]))}
	l.status, _ = strconv.Atoi(m[5])
	l.bytesSent, _ = strconv.Atoi(m[6])
	l.requestTime, _ = strconv.ParseFloat(m[9], 64)
	return l, nil
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

var hexEscape = regexp.MustCompile(`\\x[0-9A-Fa-f]{2}`)

func unescape(s string) string {
	return hexEscape.ReplaceAllStringFunc(s, func(e string) string {
		b, _ := hex.DecodeString(e[2:])
		return string(b)
	})
}

// waitLogLine waits for the access-log line of the request marked tok.
func (f front) waitLogLine(t *testing.T, tok string) logLine {
	t.Helper()
	l, err := f.logLine(tok)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// logLine waits for the access-log line of the request marked tok: nginx
// writes it once the request is over, which may be just after the client
// read the response.
func (f front) logLine(tok string) (logLine, error) {
	deadline := time.Now().Add(readyWithin)
	for {
		b, _ := os.ReadFile(f.accessLog)
		for _, s := range strings.Split(string(b), "\n") {
			if strings.Contains(s, "e2e="+tok) {
				return parseLogLine(s)
			}
		}
		if time.Now().After(deadline) {
			return logLine{}, fmt.Errorf("no line for request %s in %s within %v; it holds:\n%s", tok, f.accessLog, readyWithin, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// errorLines returns the error.log lines about the request marked tok (nginx
// writes them before the access-log line), each without its time, pid and
// the client/server/request/upstream details.
func (f front) errorLines(tok string) []string {
	b, _ := os.ReadFile(f.errorLog)
	var out []string
	for _, s := range strings.Split(string(b), "\n") {
		if strings.Contains(s, "e2e="+tok) {
			out = append(out, shortErrorLine(s))
		}
	}
	return out
}

// errorLinePrefix is nginx's "2026/11/25 23:05:05 [error] 123#123: *5 ".
var errorLinePrefix = regexp.MustCompile(`^\S+ \S+ \[(\w+)\] \d+#\d+: (?:\*\d+ )?`)

func shortErrorLine(s string) string {
	if m := errorLinePrefix.FindStringSubmatch(s); m != nil {
		s = "[" + m[1] + "] " + s[len(m[0]):]
	}
	if i := strings.Index(s, ", client: "); i >= 0 {
		s = s[:i]
	}
	return s
}

// params splits a structured-field item such as
// `connection_refused;errno=ECONNREFUSED;elapsed-ms=3` into its token and
// parameters (quoted strings unquoted).
func params(item string) (string, map[string]string) {
	var parts []string
	var cur bytes.Buffer
	quoted := false
	for i := 0; i < len(item); i++ {
		c := item[i]
		switch {
		case c == '\\' && quoted && i+1 < len(item):
			i++
			cur.WriteByte(item[i])
		case c == '"':
			quoted = !quoted
		case c == ';' && !quoted:
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	parts = append(parts, strings.TrimSpace(cur.String()))
	ps := map[string]string{}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		ps[k] = v
	}
	return parts[0], ps
}

// upmedicLogged returns the JSON lines of upmedic's own log that contain
// every one of subs.
func upmedicLogged(p *proc, subs ...string) []string {
	f, err := os.Open(p.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
lines:
	for sc.Scan() {
		for _, s := range subs {
			if !strings.Contains(sc.Text(), s) {
				continue lines
			}
		}
		out = append(out, sc.Text())
	}
	return out
}

// waitUpmedicLogged waits for a line of upmedic's log holding every one of
// subs: upmedic logs a cut stream once it notices, which may be after the
// client saw the cut.
func waitUpmedicLogged(t *testing.T, p *proc, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(readyWithin)
	for {
		if l := upmedicLogged(p, subs...); len(l) > 0 {
			return l[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("upmedic logged no line with %q within %v:\n%s", subs, readyWithin, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
