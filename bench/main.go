// Command bench is upmedic's end-to-end load benchmark against its peers:
// nginx (buffered and not), HAProxy, Caddy, Go's httputil.ReverseProxy and a
// bare fasthttp HostClient proxy. Every proxy is pinned to one core with one
// worker; wrk and the upstream share the other core. See bench/README.md.
//
//	go run ./bench            # the full run, about 15 minutes
//	go run ./bench -smoke     # every scenario once, ~1s each: CI
//	go run ./bench -profile   # perf, pprof and strace of upmedic under load
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	smoke       bool
	profile     bool
	profileOf   string
	scenarios   string
	idleConns   int
	streamBytes int64
	proxyCPU    string
	loadCPU     string
	out         string
	verbose     bool
	noInstall   bool
	candidate   string
	only        string
}

var allScenarios = []string{"small", "large", "upload", "refused", "fastcgi", "idle", "stream"}

func main() {
	if len(os.Args) > 1 {
		if role, ok := roles[os.Args[1]]; ok {
			if err := role(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
				os.Exit(1)
			}
			return
		}
	}
	var o options
	flag.IntVar(&o.rounds, "rounds", 6, "interleaved rounds per load scenario")
	flag.DurationVar(&o.duration, "d", 4*time.Second, "wrk duration of one contender in one round (whole seconds)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "wrk warm-up per contender before the rounds; 0 skips it")
	flag.BoolVar(&o.smoke, "smoke", false, "CI mode: every scenario once, 1s, fewer bytes; fail unless each works")
	flag.BoolVar(&o.profile, "profile", false, "instead of the comparison: profile upmedic under the 100-byte load (perf, pprof, strace)")
	flag.StringVar(&o.profileOf, "profile-scenario", "small", "with -profile: the load to profile: small, large or upload")
	flag.StringVar(&o.scenarios, "scenarios", strings.Join(allScenarios, ","), "comma-separated subset of "+strings.Join(allScenarios, ","))
	flag.IntVar(&o.idleConns, "idle-conns", 5000, "idle keep-alive connections opened to each proxy")
	flag.Int64Var(&o.streamBytes, "stream-bytes", 1<<30, "size of the one streamed response")
	flag.StringVar(&o.proxyCPU, "proxy-cpu", "0", "core every proxy is pinned to")
	flag.StringVar(&o.loadCPU, "load-cpu", "1", "core wrk and the upstream are pinned to")
	flag.StringVar(&o.out, "out", "", "directory for configs, logs and results (default bench/out/<time>)")
	flag.BoolVar(&o.verbose, "v", true, "print each measurement to stderr as it happens")
	flag.StringVar(&o.candidate, "candidate", "", "an upmedic binary to compare too (\"upmedic-cand\", next to each upmedic), e.g. one built with a proposal applied")
	flag.StringVar(&o.only, "only", "", "comma-separated contender names to keep (default all), e.g. upmedic,upmedic-cand,nginx")
	flag.BoolVar(&o.noInstall, "no-install", false, "do not apt-get install missing tools")
	flag.Parse()
	if o.smoke {
		// A 1 MiB scenario measured cold for 1s sometimes finished no request:
		// warm each contender up for 1s first.
		o.rounds, o.duration, o.warmup = 1, time.Second, time.Second
		o.streamBytes = min(o.streamBytes, 64<<20)
		o.idleConns = min(o.idleConns, 1000)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) error {
	if runtime.GOOS != "linux" {
		return errors.New("the benchmark reads /proc and pins cores with taskset: Linux only")
	}
	if o.rounds < 1 || o.duration < time.Second || o.idleConns < 1 || o.streamBytes < 1 {
		return errors.New("-rounds, -d (>= 1s), -idle-conns and -stream-bytes must be positive")
	}
	for _, s := range strings.Split(o.scenarios, ",") {
		if !slices.Contains(allScenarios, s) {
			return fmt.Errorf("unknown scenario %q; known: %s", s, strings.Join(allScenarios, ","))
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	need := []string{"taskset", "wrk", "nginx", "haproxy"}
	if o.profile {
		need = append(need, "perf", "strace")
	} else {
		need = append(need, "caddy")
	}
	bins, err := tools(need, !o.noInstall)
	if me, ok := errors.AsType[*missingError](err); ok && o.smoke && o.noInstall && os.Getenv("CI") != "true" {
		// The README's test command on a machine without the contenders:
		// skip, saying so; CI (CI=true) installs them and must not skip.
		fmt.Fprintf(os.Stderr, "bench: -smoke skipped: %v; CI=true makes this a failure\n", me)
		return nil
	}
	if err != nil {
		return err
	}
	if !o.profile && slices.Contains(strings.Split(o.scenarios, ","), "fastcgi") {
		p, err := findPHPFPM(!o.noInstall)
		if me, ok := errors.AsType[*missingError](err); ok && os.Getenv("CI") != "true" {
			// php-fpm is only the FastCGI scenario's peer: the others run.
			fmt.Fprintf(os.Stderr, "bench: fastcgi scenario skipped: %v; CI=true makes this a failure\n", me)
			o.scenarios = strings.Join(slices.DeleteFunc(strings.Split(o.scenarios, ","), func(s string) bool { return s == "fastcgi" }), ",")
		} else if err != nil {
			return fmt.Errorf("fastcgi scenario: %w", err)
		} else {
			bins[phpFPM] = p
		}
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "out", time.Now().Format("20060102-150405"))
	}
	// Contenders run in their own directories: a relative -out would not
	// name their config files from there.
	if o.out, err = filepath.Abs(o.out); err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	raiseNoFile()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r := &runner{opt: o, self: self, out: o.out, bins: bins, children: map[int]*proc{}}
	defer r.stopAll()
	r.upmedic = filepath.Join(o.out, "upmedic")
	fmt.Fprintf(os.Stderr, "bench: building upmedic into %s\n", r.upmedic)
	build := exec.CommandContext(ctx, "go", "build", "-o", r.upmedic, "./cmd/upmedic")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/upmedic: %w", err)
	}
	if o.profile {
		return r.runProfile(ctx, root)
	}
	return r.runAll(ctx)
}

// runAll runs the selected scenarios and prints the report.
func (r *runner) runAll(ctx context.Context) error {
	o := r.opt
	start := time.Now()
	rep := &report{opt: o, started: start}
	want := func(s string) bool { return slices.Contains(strings.Split(o.scenarios, ","), s) }
	withDirect := append([]contender{cDirect}, proxiesAll...)
	loads := []loadScenario{
		{key: "small", title: "100-byte responses, 64 connections", path: "/small", conns: 64, contenders: append(slices.Clone(withDirect), cEpoll)},
		{key: "large", title: "1 MiB responses, 16 connections", path: "/1m", conns: 16, contenders: append(withDirect, cNginx64k)},
		{key: "upload", title: "64 KiB uploads (POST), 16 connections", path: "/upload", conns: 16, bodyBytes: uploadBytes, contenders: proxiesAll},
		{key: "refused", title: "upstream refusing connections, 64 connections: each proxy's own answer", path: "/small", conns: 64, refused: true,
			contenders: []contender{cUpmedicProxied, cUpmedicUnhealthy, cUpmedic502, cUpmedicBreaker, cFastHTTP, cNginxBuf, cHAProxy, cCaddy, cHTTPUtil}},
		{key: "fastcgi", title: fmt.Sprintf("PHP-FPM over FastCGI: a 100-byte PHP answer, %d connections", fastcgiConns), path: "/index.php",
			conns: fastcgiConns, fastcgi: true, contenders: fastcgiContenders},
	}
	proxies := proxiesAll
	streamers := append(slices.Clone(proxiesAll), cNginx64k)
	if o.candidate != "" {
		loads, proxies = withCandidate(loads, o.candidate)
		streamers = append(slices.Clone(proxies), cNginx64k)
	}
	if o.only != "" {
		keep := func(cs []contender) []contender {
			return slices.DeleteFunc(slices.Clone(cs), func(c contender) bool {
				return !slices.Contains(strings.Split(o.only, ","), c.name)
			})
		}
		for i := range loads {
			loads[i].contenders = keep(loads[i].contenders)
		}
		proxies, streamers = keep(proxies), keep(streamers)
	}
	for _, sc := range loads {
		if !want(sc.key) || len(sc.contenders) == 0 {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s (%s) at %s\n", sc.key, sc.title, time.Since(start).Round(time.Second))
		res, err := r.runLoad(ctx, sc)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.key, err)
		}
		rep.loads = append(rep.loads, res)
	}
	if want("idle") {
		fmt.Fprintf(os.Stderr, "bench: idle (%d keep-alive connections) at %s\n", o.idleConns, time.Since(start).Round(time.Second))
		res, err := r.runIdle(ctx, proxies)
		if err != nil {
			return fmt.Errorf("idle: %w", err)
		}
		rep.idle = res
	}
	if want("stream") {
		fmt.Fprintf(os.Stderr, "bench: stream (%d bytes) at %s\n", o.streamBytes, time.Since(start).Round(time.Second))
		res, err := r.runStream(ctx, streamers)
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		rep.stream = res
	}
	rep.elapsed = time.Since(start)
	md := rep.markdown()
	fmt.Print(md)
	path := filepath.Join(r.out, "results.md")
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: done in %s; results, configs and logs in %s\n", rep.elapsed.Round(time.Second), r.out)
	if problems := rep.problems(); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "bench: FAIL:", p)
		}
		if o.smoke {
			return fmt.Errorf("smoke: %d problem(s)", len(problems))
		}
	} else if o.smoke {
		fmt.Fprintln(os.Stderr, "bench: smoke ok")
	}
	return nil
}

// withCandidate adds, after each upmedic contender, the same one running the
// candidate binary.
func withCandidate(loads []loadScenario, bin string) ([]loadScenario, []contender) {
	add := func(cs []contender) []contender {
		var out []contender
		for _, c := range cs {
			out = append(out, c)
			if c.kind == "upmedic" {
				cand := c
				cand.name, cand.bin = c.name+"-cand", bin
				cand.note = c.note + "; candidate binary " + bin
				out = append(out, cand)
			}
		}
		return out
	}
	for i := range loads {
		loads[i].contenders = add(loads[i].contenders)
	}
	return loads, add(proxiesAll)
}

// moduleRoot finds the upmedic module's directory from the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/upmedic/upmedic\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the upmedic repository (no go.mod for github.com/upmedic/upmedic above the working directory)")
		}
		dir = parent
	}
}

// packages maps a tool to the Debian package that has it.
var packages = map[string]string{
	"taskset": "util-linux", "wrk": "wrk", "nginx": "nginx", "haproxy": "haproxy",
	"caddy": "caddy", "perf": "linux-perf", "strace": "strace", phpFPM: "php8.2-fpm",
}

// missingError is tools' answer when a tool is missing and it may not or
// cannot install it.
type missingError struct{ missing, pkgs []string }

func (e *missingError) Error() string {
	return fmt.Sprintf("missing %s (apt-get install %s)", strings.Join(e.missing, ", "), strings.Join(e.pkgs, " "))
}

// tools finds each tool (sbin included), installing the missing ones with
// apt-get when allowed.
func tools(names []string, install bool) (map[string]string, error) {
	find := func() (map[string]string, []string) {
		found, missing := map[string]string{}, []string(nil)
		for _, n := range names {
			if p := lookPath(n); p != "" {
				found[n] = p
			} else {
				missing = append(missing, n)
			}
		}
		return found, missing
	}
	found, missing := find()
	if len(missing) == 0 {
		return found, nil
	}
	var pkgs []string
	for _, m := range missing {
		pkgs = append(pkgs, packages[m])
	}
	if !install || lookPath("apt-get") == "" || os.Geteuid() != 0 {
		return nil, &missingError{missing: missing, pkgs: pkgs}
	}
	fmt.Fprintf(os.Stderr, "bench: apt-get install %s\n", strings.Join(pkgs, " "))
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("apt-get %s: %w", args[0], err)
		}
	}
	if found, missing = find(); len(missing) > 0 {
		return nil, fmt.Errorf("still missing after apt-get: %s", strings.Join(missing, ", "))
	}
	return found, nil
}

func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// raiseNoFile lifts the open-file limit to its hard limit: the children
// (the idle-connection client and every proxy) inherit it.
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func pdeathsig() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
