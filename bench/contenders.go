package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// contender is one proxy under test (or "direct": no proxy at all).
type contender struct {
	name string
	kind string // upmedic, nginx, haproxy, caddy, httputil, fasthttp, direct
	// streaming, for nginx: proxy_buffering off and proxy_request_buffering off.
	streaming bool
	// bigBuffers, for nginx: 64k proxy buffers instead of one page.
	bigBuffers bool
	// env is added to upmedic's environment.
	env []string
	// bin, for upmedic, replaces the binary built from the working tree (a
	// candidate build to compare, see -candidate).
	bin string
	// smokeEnv is added to env in smoke runs, where only function matters.
	smokeEnv []string
	// live, in the refused-upstream scenario, points it at a live upstream.
	live bool
	// fresh restarts the contender before each of its rounds (a counter that
	// would otherwise change its behaviour mid-run, such as the breaker's).
	fresh bool
	// want, for the refused-upstream scenario, is the answer to wait for
	// before measuring ("503 upstream_unhealthy"); empty takes the first.
	want string
	// fastcgi: the upstream is a php-fpm pool of the contender's own
	// (startPHP); nginx talks fastcgi_pass to it, upmedic fastcgi://.
	fastcgi bool
	// keepConn, for nginx with fastcgi: upstream keepalive and
	// fastcgi_keep_conn on.
	keepConn bool
	// front puts an nginx (proxy_pass, keepalive) on the load core in
	// front of the contender: the load goes to it.
	front bool
	note  string
}

// The contenders. Every proxy runs on the proxy core with one worker.
var (
	cUpmedic  = contender{name: "upmedic", kind: "upmedic", note: "defaults (health connect-only, breaker 5)"}
	cFastHTTP = contender{name: "fasthttp-floor", kind: "fasthttp", note: "fasthttp Server + HostClient.Do, streamed bodies"}
	cNginxBuf = contender{name: "nginx", kind: "nginx", note: "proxy_buffering on (default), keepalive 128, HTTP/1.1"}
	cNginxOff = contender{name: "nginx-nobuf", kind: "nginx", streaming: true, note: "proxy_buffering off, proxy_request_buffering off"}
	cHAProxy  = contender{name: "haproxy", kind: "haproxy", note: "nbthread 1, http-reuse always"}
	cCaddy    = contender{name: "caddy", kind: "caddy", note: "reverse_proxy, GOMAXPROCS=1, idle pool 1024"}
	cNginx64k = contender{name: "nginx-nobuf-64k", kind: "nginx", streaming: true, bigBuffers: true,
		note: "nginx-nobuf with proxy_buffer_size 64k, proxy_buffers 8 64k (tuned; not a default)"}
	cHTTPUtil  = contender{name: "httputil", kind: "httputil", note: "net/http + httputil.ReverseProxy, GOMAXPROCS=1"}
	cEpoll     = contender{name: "epoll-floor", kind: "epoll", note: "a Go event loop of its own (one locked thread, epoll, no netpoller): bodyless GETs and small answers only; the 100-byte scenario only"}
	cDirect    = contender{name: "direct (no proxy)", kind: "direct", note: "wrk straight to the upstream; CPU is the upstream's"}
	proxiesAll = []contender{cUpmedic, cFastHTTP, cNginxBuf, cNginxOff, cHAProxy, cCaddy, cHTTPUtil}

	// For the refused-upstream scenario.
	cUpmedicProxied = contender{name: "upmedic-proxied", kind: "upmedic", live: true,
		note: "upmedic in front of a live upstream, in the same rounds: the proxied rate the failure paths are compared with"}
	cUpmedicUnhealthy = contender{name: "upmedic", kind: "upmedic", want: "503 upstream_unhealthy",
		smokeEnv: []string{"UPMEDIC_HEALTH_INTERVAL=300ms"}, // flips in 1s, not 6s
		note:     "defaults: the health check flips to down, then fail-fast"}
	cUpmedic502 = contender{name: "upmedic-502", kind: "upmedic", want: "502 connection_refused", fresh: true,
		env:  []string{"UPMEDIC_HEALTH_INTERVAL=1h", "UPMEDIC_BREAKER_FAILURES=1048576"},
		note: "fail-fast off (HEALTH_INTERVAL=1h, BREAKER_FAILURES=2^20): the diagnosed 502 path"}
	cUpmedicBreaker = contender{name: "upmedic-breaker", kind: "upmedic", want: "503 breaker_open",
		env:  []string{"UPMEDIC_HEALTH_INTERVAL=1h", "UPMEDIC_BREAKER_FAILURES=1", "UPMEDIC_BREAKER_OPEN_FOR=1h"},
		note: "breaker open (HEALTH_INTERVAL=1h, BREAKER_OPEN_FOR=1h)"}
)

// proc is a process the benchmark started.
type proc struct {
	c     contender
	pid   int
	addr  string // where it listens
	admin string // upmedic's admin API
	cmd   *exec.Cmd
	done  chan struct{} // closed when it exited
	peak  int64         // VmHWM, KiB, of earlier instances (fresh contenders)
	app   *proc         // the contender's own upstream (a php-fpm master), or nil
	front *proc         // the nginx in front of it, or nil
}

// target is where the load goes: the front nginx when there is one.
func (p *proc) target() string {
	if p.front != nil {
		return p.front.addr
	}
	return p.addr
}

// runner starts and stops the processes of a run and remembers every one
// it started, so that it stops them, and only them, by PID.
type runner struct {
	opt      *options
	self     string // this binary, for the roles
	upmedic  string // the upmedic binary under test
	out      string // this run's directory
	bins     map[string]string
	mu       sync.Mutex // guards children
	children map[int]*proc
	seq      int
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, chosen below the kernel's ephemeral range: a port from :0 could be
// taken, between this close and a contender's bind, by one of the thousands
// of outgoing connections the loads make (seen as "address already in use").
func freeAddr() (string, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	for range 200 {
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr, nil
	}
	return "", errors.New("no free loopback port below the ephemeral range")
}

// spawn starts argv pinned to cpu with env added to a clean environment,
// its output in a log file under dir.
func (r *runner) spawn(c contender, dir, logName, cpu string, argv, env []string) (*proc, error) {
	logf, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(r.bins["taskset"], append([]string{"-c", cpu}, argv...)...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: if the benchmark dies, the kernel kills what it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &proc{c: c, pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	r.mu.Lock()
	r.children[p.pid] = p
	r.mu.Unlock()
	return p, nil
}

// cleanEnv is the environment without UPMEDIC_ and GOMAXPROCS settings that
// would change what is measured.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "UPMEDIC_") || strings.HasPrefix(kv, "GOMAXPROCS=") ||
			strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMEMLIMIT=") || strings.HasPrefix(kv, "GODEBUG=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// stop ends p: SIGTERM, then SIGKILL after 3s, to its PID only.
func (r *runner) stop(p *proc) {
	if p == nil || p.cmd == nil {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		<-p.done
	}
	r.mu.Lock()
	delete(r.children, p.pid)
	r.mu.Unlock()
}

// stopAll stops every process still running.
func (r *runner) stopAll() {
	r.mu.Lock()
	ps := make([]*proc, 0, len(r.children))
	for _, p := range r.children {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { r.stop(p) })
	}
	wg.Wait()
}

// stopAllTimed is stopAll that says how long it took when it was slow.
func (r *runner) stopAllTimed(what string) {
	t := time.Now()
	r.stopAll()
	if d := time.Since(t); d > time.Second {
		fmt.Fprintf(os.Stderr, "bench: stopping the %s processes took %s\n", what, d.Round(time.Millisecond))
	}
}

// startUpstream starts the app on the load core.
func (r *runner) startUpstream(dir string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := r.spawn(contender{name: "upstream"}, dir, "upstream.log", r.opt.loadCPU,
		[]string{r.self, "role-upstream", addr}, []string{"GOMAXPROCS=1"})
	if err != nil {
		return nil, err
	}
	p.addr = addr
	return p, waitListening(p, 15*time.Second)
}

// start starts contender c in front of upstream on the proxy core. For
// "direct" it returns the upstream itself.
func (r *runner) start(c contender, upstream *proc, upAddr, dir string) (*proc, error) {
	if c.kind == "direct" {
		return &proc{c: c, pid: upstream.pid, addr: upstream.addr}, nil
	}
	if c.live {
		upAddr = upstream.addr
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.seq++
	cdir := filepath.Join(dir, fmt.Sprintf("%s.%d", safeName(c.name), r.seq))
	r.mu.Unlock()
	if err := os.MkdirAll(cdir, 0o755); err != nil {
		return nil, err
	}
	var app *proc
	docroot := ""
	if c.fastcgi {
		if app, docroot, err = r.startPHP(c, cdir); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		upAddr = "fastcgi://unix:" + app.addr
	}
	var argv, env []string
	admin := ""
	switch c.kind {
	case "upmedic":
		if admin, err = freeAddr(); err != nil {
			return nil, err
		}
		bin := r.upmedic
		if c.bin != "" {
			bin = c.bin
		}
		argv = []string{bin, "serve"}
		env = append([]string{"GOMAXPROCS=1", "UPMEDIC_UPSTREAM=" + upAddr, "UPMEDIC_LISTEN=" + addr,
			"UPMEDIC_ADMIN_LISTEN=" + admin, "UPMEDIC_SHUTDOWN_TIMEOUT=2s"}, c.env...)
		if c.fastcgi {
			env = append(env, "UPMEDIC_FASTCGI_ROOT="+docroot)
		}
		if r.opt.smoke {
			env = append(env, c.smokeEnv...)
		}
	case "nginx":
		conf := filepath.Join(cdir, "nginx.conf")
		text := nginxConf(cdir, addr, upAddr, c.streaming, c.bigBuffers)
		if c.fastcgi {
			text = nginxFastCGIConf(cdir, addr, app.addr, docroot, c.keepConn)
		}
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, err
		}
		argv = []string{r.bins["nginx"], "-p", cdir, "-c", conf, "-e", filepath.Join(cdir, "error.log")}
	case "haproxy":
		conf := filepath.Join(cdir, "haproxy.cfg")
		if err := os.WriteFile(conf, []byte(haproxyConf(addr, upAddr)), 0o644); err != nil {
			return nil, err
		}
		argv = []string{r.bins["haproxy"], "-db", "-f", conf}
	case "caddy":
		conf := filepath.Join(cdir, "caddy.json")
		if err := os.WriteFile(conf, []byte(caddyConf(addr, upAddr)), 0o644); err != nil {
			return nil, err
		}
		argv = []string{r.bins["caddy"], "run", "--config", conf}
		env = []string{"GOMAXPROCS=1", "HOME=" + cdir, "XDG_CONFIG_HOME=" + cdir, "XDG_DATA_HOME=" + cdir}
	case "httputil", "fasthttp", "epoll":
		argv = []string{r.self, "role-" + c.kind, addr, upAddr}
		env = []string{"GOMAXPROCS=1"}
	default:
		return nil, fmt.Errorf("BUG: unknown contender kind %q", c.kind)
	}
	p, err := r.spawn(c, cdir, "proxy.log", r.opt.proxyCPU, argv, env)
	if err != nil {
		return nil, err
	}
	p.addr, p.admin, p.app = addr, admin, app
	if err := waitListening(p, 15*time.Second); err != nil {
		return nil, fmt.Errorf("%s: %w (log: %s)", c.name, err, filepath.Join(cdir, "proxy.log"))
	}
	if c.front {
		if p.front, err = r.startFront(c, cdir, p.addr); err != nil {
			return nil, fmt.Errorf("%s: front nginx: %w", c.name, err)
		}
	}
	return p, nil
}

// startFront starts an nginx on the load core that proxy_passes to addr,
// as the HTTP scenarios' nginx does (keepalive 128, HTTP/1.1).
func (r *runner) startFront(c contender, dir, addr string) (*proc, error) {
	dir = filepath.Join(dir, "front")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	faddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, faddr, addr, false, false)), 0o644); err != nil {
		return nil, err
	}
	p, err := r.spawn(contender{name: c.name + "/front"}, dir, "nginx.log", r.opt.loadCPU,
		[]string{r.bins["nginx"], "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")}, nil)
	if err != nil {
		return nil, err
	}
	p.addr = faddr
	return p, waitListening(p, 15*time.Second)
}

// restart replaces p with a fresh instance, keeping its peak RSS.
func (r *runner) restart(p *proc, upstream *proc, upAddr, dir string) (*proc, error) {
	_, hwm, _ := memKiB(p.pid)
	peak := max(p.peak, hwm)
	r.stop(p)
	np, err := r.start(p.c, upstream, upAddr, dir)
	if err != nil {
		return nil, err
	}
	np.peak = peak
	return np, nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// waitListening waits until p accepts connections.
func waitListening(p *proc, timeout time.Duration) error {
	return waitDial(p, "tcp", p.addr, timeout)
}

// answer is what a proxy answered one GET: its status, and upmedic's
// diagnosed cause when there is one.
type answer struct {
	status  int
	cause   string
	latency time.Duration
	err     error
}

func (a answer) String() string {
	if a.err != nil {
		return "error: " + a.err.Error()
	}
	if a.cause != "" {
		return fmt.Sprintf("%d %s", a.status, a.cause)
	}
	return fmt.Sprint(a.status)
}

// probe sends one GET path to addr on a new connection.
func probe(ctx context.Context, addr, path string) answer {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	defer tr.CloseIdleConnections()
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	a := answer{status: resp.StatusCode, latency: time.Since(start)}
	if d := resp.Header.Get("X-Upstream-Diagnosis"); d != "" {
		a.cause, _, _ = strings.Cut(d, ";")
	}
	return a
}

// waitAnswer probes until the answer is want (or any answer when want is
// empty), for at most timeout.
func waitAnswer(ctx context.Context, p *proc, path, want string, timeout time.Duration) answer {
	end := time.Now().Add(timeout)
	var a answer
	for {
		a = probe(ctx, p.target(), path)
		if a.err == nil && (want == "" || a.String() == want) || time.Now().After(end) || ctx.Err() != nil {
			return a
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readLine reads one line from r within timeout.
func readLine(r *bufio.Reader, timeout time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() { s, err := r.ReadString('\n'); ch <- res{s, err} }()
	select {
	case x := <-ch:
		return strings.TrimSpace(x.s), x.err
	case <-time.After(timeout):
		return "", fmt.Errorf("no answer within %s", timeout)
	}
}

// nginxPreamble is the start of every nginx.conf bench writes, up to the
// inside of http {}: one process, one worker (no master), no access log, its
// files under dir.
func nginxPreamble(dir string) string {
	return strings.ReplaceAll(`# generated by bench: one process, one worker (no master), no access log.
master_process off;
daemon off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {
    worker_connections 10240;
}
http {
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
`, "{dir}", dir)
}

func nginxConf(dir, addr, up string, streaming, bigBuffers bool) string {
	extra := ""
	if streaming {
		extra = "proxy_buffering off;\n            proxy_request_buffering off;"
	}
	if bigBuffers {
		extra += "\n            proxy_buffer_size 64k;\n            proxy_buffers 8 64k;\n            proxy_busy_buffers_size 128k;"
	}
	return nginxPreamble(dir) + fmt.Sprintf(`    upstream app {
        server %[3]s;
        keepalive 128;
    }
    server {
        listen %[2]s;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            %[4]s
        }
    }
}
`, dir, addr, up, extra)
}

func haproxyConf(addr, up string) string {
	return fmt.Sprintf(`# generated by bench: one thread, connection reuse always, no logs.
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect 2s
    timeout client 75s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 75s
frontend fe
    bind %s
    default_backend be
backend be
    http-reuse always
    server app %s
`, addr, up)
}

func caddyConf(addr, up string) string {
	// JSON rather than a Caddyfile: a Caddyfile site address listens on every
	// interface, and the benchmark keeps all traffic on 127.0.0.1.
	return fmt.Sprintf(`{
  "admin": {"disabled": true, "config": {"persist": false}},
  "apps": {"http": {"servers": {"bench": {
    "listen": [%q],
    "automatic_https": {"disable": true},
    "routes": [{"handle": [{
      "handler": "reverse_proxy",
      "transport": {"protocol": "http", "keep_alive": {"idle_timeout": 75000000000, "max_idle_conns": 1024, "max_idle_conns_per_host": 1024}},
      "upstreams": [{"dial": %q}]
    }]}]
  }}}}
}
`, addr, up)
}
