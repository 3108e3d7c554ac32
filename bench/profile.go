package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pprofInit is added to a copy of cmd/upmedic to make the bench-only
// upmedic-pprof binary: the same sidecar, plus net/http/pprof on
// BENCH_PPROF_LISTEN (the admin API has its own mux, so nothing leaks there).
const pprofInit = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if a := os.Getenv("BENCH_PPROF_LISTEN"); a != "" {
		go func() { _ = http.ListenAndServe(a, nil) }()
	}
}
`

// runProfile profiles upmedic under the 100-byte load: perf record on the
// real binary (kernel and user stacks), a pprof CPU and allocation profile
// from upmedic-pprof, and strace -c syscall counts per request for upmedic
// and, for comparison, its peers.
func (r *runner) runProfile(ctx context.Context, root string) error {
	dir := filepath.Join(r.out, "profile")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer r.stopAll()
	secs := max(int(r.opt.duration/time.Second), 5)
	sc := loadScenario{key: "profile", path: "/small", conns: 64}
	switch r.opt.profileOf {
	case "small":
	case "large":
		sc = loadScenario{key: "profile", path: "/1m", conns: 16}
	case "upload":
		sc = loadScenario{key: "profile", path: "/upload", conns: 16, bodyBytes: uploadBytes}
	default:
		return fmt.Errorf("-profile-scenario %q: want small, large or upload", r.opt.profileOf)
	}
	lua, err := r.luaScript(dir, sc.bodyBytes)
	if err != nil {
		return err
	}
	up, err := r.startUpstream(dir)
	if err != nil {
		return err
	}
	var summary strings.Builder
	method := "GET"
	if sc.bodyBytes > 0 {
		method = fmt.Sprintf("POST (%d-byte body)", sc.bodyBytes)
	}
	fmt.Fprintf(&summary, "# upmedic profile: %s %s, %d connections, %ds per tool\n\n", method, sc.path, sc.conns, secs)

	// 1. perf record on the real binary.
	p, err := r.start(cUpmedic, up, up.addr, dir)
	if err != nil {
		return err
	}
	if err := r.warm(ctx, p, sc, lua); err != nil {
		return err
	}
	perfData := filepath.Join(dir, "perf.data")
	perf := exec.CommandContext(ctx, r.bins["taskset"], "-c", r.opt.loadCPU, r.bins["perf"], "record",
		"-e", "cpu-clock", "-F", "999", "-g", "-p", strconv.Itoa(p.pid), "-o", perfData, "--", "sleep", strconv.Itoa(secs))
	perf.SysProcAttr = pdeathsig()
	perfOut, _ := os.Create(filepath.Join(dir, "perf-record.log"))
	perf.Stdout, perf.Stderr = perfOut, perfOut
	if err := perf.Start(); err != nil {
		return fmt.Errorf("perf record: %w", err)
	}
	time.Sleep(300 * time.Millisecond)
	w, err := r.wrk(ctx, p.addr, sc, lua, time.Duration(secs)*time.Second)
	perfErr := perf.Wait()
	perfOut.Close()
	if err != nil {
		return err
	}
	if perfErr != nil {
		return fmt.Errorf("perf record: %w (see %s)", perfErr, filepath.Join(dir, "perf-record.log"))
	}
	fmt.Fprintf(&summary, "## perf record -e cpu-clock -g (real binary), %d requests, %.0f req/s\n\n", w.requests, w.rps())
	for _, rep := range []struct{ name, title string }{
		{"perf-self.txt", "self time by symbol (top 30)"},
		{"perf-children.txt", "inclusive time by symbol (top 30)"},
		{"perf-dso.txt", "by binary / kernel"},
	} {
		args := []string{"report", "-i", perfData, "--stdio", "--percent-limit", "0.3"}
		switch rep.name {
		case "perf-self.txt":
			args = append(args, "--no-children", "--sort", "symbol", "-g", "none")
		case "perf-children.txt":
			args = append(args, "--children", "--sort", "symbol", "-g", "none")
		case "perf-dso.txt":
			args = append(args, "--no-children", "--sort", "dso", "-g", "none")
		}
		out, err := exec.CommandContext(ctx, r.bins["perf"], args...).Output()
		if err != nil {
			return fmt.Errorf("perf report: %w", err)
		}
		_ = os.WriteFile(filepath.Join(dir, rep.name), out, 0o644)
		fmt.Fprintf(&summary, "### %s\n\n```\n%s```\n\n", rep.title, topLines(string(out), 30))
	}
	r.stop(p)

	// 2. pprof from upmedic-pprof: CPU, and allocations over the same load.
	bin, err := r.buildPprof(ctx, root)
	if err != nil {
		return err
	}
	pprofAddr, err := freeAddr()
	if err != nil {
		return err
	}
	pc := cUpmedic
	pc.name = "upmedic-pprof"
	pc.env = []string{"BENCH_PPROF_LISTEN=" + pprofAddr, "GODEBUG=gctrace=1"}
	saved := r.upmedic
	r.upmedic = bin
	p, err = r.start(pc, up, up.addr, dir)
	r.upmedic = saved
	if err != nil {
		return err
	}
	if err := r.warm(ctx, p, sc, lua); err != nil {
		return err
	}
	base := "http://" + pprofAddr + "/debug/pprof/"
	if err := fetch(ctx, base+"allocs", filepath.Join(dir, "allocs-before.pprof")); err != nil {
		return err
	}
	gcBefore := countGC(p)
	cpuDone := make(chan error, 1)
	go func() {
		cpuDone <- fetch(ctx, base+"profile?seconds="+strconv.Itoa(secs), filepath.Join(dir, "cpu.pprof"))
	}()
	time.Sleep(200 * time.Millisecond)
	w, err = r.wrk(ctx, p.addr, sc, lua, time.Duration(secs)*time.Second)
	if err != nil {
		return err
	}
	if err := <-cpuDone; err != nil {
		return err
	}
	gcs := countGC(p) - gcBefore
	if err := fetch(ctx, base+"allocs", filepath.Join(dir, "allocs-after.pprof")); err != nil {
		return err
	}
	fmt.Fprintf(&summary, "## go tool pprof (upmedic-pprof: cmd/upmedic + net/http/pprof), %d requests, %.0f req/s, %d GC cycles (%.1f per 100k requests)\n\n",
		w.requests, w.rps(), gcs, 1e5*float64(gcs)/float64(max(w.requests, 1)))
	for _, rep := range []struct {
		name, title string
		args        []string
	}{
		{"pprof-top.txt", "CPU, flat (top 35)", []string{"-top", "-nodecount=35", bin, filepath.Join(dir, "cpu.pprof")}},
		{"pprof-cum.txt", "CPU, cumulative (top 35)", []string{"-top", "-cum", "-nodecount=35", bin, filepath.Join(dir, "cpu.pprof")}},
		{"pprof-allocs.txt", "allocated bytes during the load under fasthttp's server (top 15)", []string{"-top", "-nodecount=15", "-sample_index=alloc_space", "-focus=fasthttp",
			"-diff_base", filepath.Join(dir, "allocs-before.pprof"), bin, filepath.Join(dir, "allocs-after.pprof")}},
	} {
		cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof"}, rep.args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof: %w: %s", err, lastLines(string(out), 3))
		}
		_ = os.WriteFile(filepath.Join(dir, rep.name), out, 0o644)
		fmt.Fprintf(&summary, "### %s\n\n```\n%s```\n\n", rep.title, topLines(string(out), 45))
	}
	r.stop(p)

	// 3. perf stat on syscall tracepoints: the real counts per request,
	// without strace's slowdown (which changes how often reads find no data).
	fmt.Fprintf(&summary, "## perf stat on syscall tracepoints: syscalls per request at full speed\n\n")
	summary.WriteString("EAGAIN = reads that found no data (the runtime or event loop then waits for readiness and reads again).\n\n")
	var rows []string
	var cols []string
	for _, c := range []contender{cUpmedic, cFastHTTP, cNginxBuf, cHAProxy} {
		p, err := r.start(c, up, up.addr, dir)
		if err != nil {
			return err
		}
		if err := r.warm(ctx, p, sc, lua); err != nil {
			return err
		}
		counts, w, err := r.perfStatSyscalls(ctx, p, sc, lua, dir)
		r.stop(p)
		if err != nil {
			return err
		}
		if cols == nil {
			for _, e := range syscallEvents {
				cols = append(cols, e.label)
			}
		}
		row := fmt.Sprintf("| %s | %d | %.0f |", c.name, w.requests, w.rps())
		for _, e := range syscallEvents {
			row += fmt.Sprintf(" %.2f |", float64(counts[e.label])/float64(max(w.requests, 1)))
		}
		rows = append(rows, row)
	}
	summary.WriteString("| proxy | requests | req/s |")
	for _, c := range cols {
		summary.WriteString(" " + c + " |")
	}
	summary.WriteString("\n|---|--:|--:|" + strings.Repeat("--:|", len(cols)) + "\n")
	for _, row := range rows {
		summary.WriteString(row + "\n")
	}
	summary.WriteString("\n")

	// 4. strace -c: syscalls per request, upmedic and its peers.
	fmt.Fprintf(&summary, "## strace -c -f: syscalls per request (strace slows each proxy several-fold; the counts per request still hold)\n\n")
	for _, c := range []contender{cUpmedic, cFastHTTP, cNginxBuf, cHAProxy} {
		p, err := r.start(c, up, up.addr, dir)
		if err != nil {
			return err
		}
		if err := r.warm(ctx, p, sc, lua); err != nil {
			return err
		}
		table, err := r.straceCount(ctx, p, sc, lua, dir)
		r.stop(p)
		if err != nil {
			return err
		}
		summary.WriteString(table)
	}
	path := filepath.Join(dir, "summary.md")
	if err := os.WriteFile(path, []byte(summary.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(summary.String())
	fmt.Fprintf(os.Stderr, "bench: profile written to %s (perf.data, cpu.pprof: go tool pprof -http=: %s %s)\n",
		dir, bin, filepath.Join(dir, "cpu.pprof"))
	return nil
}

// buildPprof builds upmedic-pprof from a copy of cmd/upmedic inside the
// module (bench/out is ignored by git), so that it imports the same
// packages at the same versions.
func (r *runner) buildPprof(ctx context.Context, root string) (string, error) {
	src := filepath.Join(root, "bench", "out", fmt.Sprintf("pprof-src-%d", os.Getpid()))
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	files, err := filepath.Glob(filepath.Join(root, "cmd", "upmedic", "*.go"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(src, filepath.Base(f)), b, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(src, "zz_bench_pprof.go"), []byte(pprofInit), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(r.out, "upmedic-pprof")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir, cmd.Stdout, cmd.Stderr = src, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build upmedic-pprof: %w", err)
	}
	return bin, nil
}

// straceCount attaches strace -c -f to p for one wrk run and returns a
// markdown table of syscalls per request.
func (r *runner) straceCount(ctx context.Context, p *proc, sc loadScenario, lua, dir string) (string, error) {
	out := filepath.Join(dir, "strace-"+safeName(p.c.name)+".txt")
	st := exec.CommandContext(ctx, r.bins["taskset"], "-c", r.opt.loadCPU, r.bins["strace"], "-c", "-f", "-q", "-o", out, "-p", strconv.Itoa(p.pid))
	st.SysProcAttr = pdeathsig()
	if err := st.Start(); err != nil {
		return "", fmt.Errorf("strace: %w", err)
	}
	time.Sleep(500 * time.Millisecond) // attach to every thread
	w, err := r.wrk(ctx, p.addr, sc, lua, 4*time.Second)
	_ = syscall.Kill(st.Process.Pid, syscall.SIGINT) // strace prints its table on SIGINT
	done := make(chan error, 1)
	go func() { done <- st.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = st.Process.Kill()
		<-done
	}
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return "", err
	}
	calls, total := parseStrace(string(b))
	if w.requests == 0 {
		return "", errors.New("strace run: no requests")
	}
	var t strings.Builder
	fmt.Fprintf(&t, "### %s: %d requests under strace, %.2f syscalls per request\n\n| syscall | calls | per request |\n|---|--:|--:|\n",
		p.c.name, w.requests, float64(total)/float64(w.requests))
	for i, c := range calls {
		if i == 12 {
			break
		}
		fmt.Fprintf(&t, "| %s | %d | %.3f |\n", c.name, c.n, float64(c.n)/float64(w.requests))
	}
	t.WriteString("\n")
	return t.String(), nil
}

// syscallEvents are the tracepoints perfStatSyscalls counts. A filter
// applies to the event just before it.
var syscallEvents = []struct{ label, event, filter string }{
	{"all", "raw_syscalls:sys_enter", ""},
	{"read", "syscalls:sys_enter_read", ""},
	{"read EAGAIN", "syscalls:sys_exit_read", "ret == -11"},
	{"recvfrom", "syscalls:sys_enter_recvfrom", ""},
	{"recvfrom EAGAIN", "syscalls:sys_exit_recvfrom", "ret == -11"},
	{"write", "syscalls:sys_enter_write", ""},
	{"writev", "syscalls:sys_enter_writev", ""},
	{"sendto", "syscalls:sys_enter_sendto", ""},
	{"epoll_(p)wait", "syscalls:sys_enter_epoll_pwait", ""},
	{"epoll_wait", "syscalls:sys_enter_epoll_wait", ""},
	{"epoll_ctl", "syscalls:sys_enter_epoll_ctl", ""},
	{"futex", "syscalls:sys_enter_futex", ""},
	{"nanosleep", "syscalls:sys_enter_nanosleep", ""},
	{"getsockopt", "syscalls:sys_enter_getsockopt", ""},
}

// perfStatSyscalls counts p's syscalls with perf stat over one wrk run.
func (r *runner) perfStatSyscalls(ctx context.Context, p *proc, sc loadScenario, lua, dir string) (map[string]int64, sample, error) {
	out := filepath.Join(dir, "perf-stat-"+safeName(p.c.name)+".csv")
	secs := 4
	args := []string{"stat", "-x,", "-o", out, "-p", strconv.Itoa(p.pid)}
	for _, e := range syscallEvents {
		args = append(args, "-e", e.event)
		if e.filter != "" {
			args = append(args, "--filter", e.filter)
		}
	}
	args = append(args, "--", "sleep", strconv.Itoa(secs+1))
	ps := exec.CommandContext(ctx, r.bins["taskset"], append([]string{"-c", r.opt.loadCPU, r.bins["perf"]}, args...)...)
	ps.SysProcAttr = pdeathsig()
	var errOut strings.Builder
	ps.Stderr = &errOut
	if err := ps.Start(); err != nil {
		return nil, sample{}, fmt.Errorf("perf stat: %w", err)
	}
	time.Sleep(300 * time.Millisecond)
	w, err := r.wrk(ctx, p.addr, sc, lua, time.Duration(secs)*time.Second)
	if werr := ps.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("perf stat: %w: %s", werr, lastLines(errOut.String(), 3))
	}
	if err != nil {
		return nil, sample{}, err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, sample{}, err
	}
	// perf stat -x, lines: value,unit,event,... in the order given; the
	// filtered events repeat an event name, so match by position.
	counts := map[string]int64{}
	i := 0
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) < 3 || !strings.Contains(f[2], ":") || i >= len(syscallEvents) {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64) // "<not counted>" is 0
		counts[syscallEvents[i].label] = n
		i++
	}
	// The counts cover the whole window: wrk's run plus a moment either
	// side with no load, so they are per request within a few percent.
	return counts, w, nil
}

type syscallCount struct {
	name string
	n    int64
}

// parseStrace reads strace -c's table (sorted by time) and returns the rows
// sorted by calls, and the total calls.
func parseStrace(s string) ([]syscallCount, int64) {
	var rows []syscallCount
	var total int64
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		// % time, seconds, usecs/call, calls, [errors], syscall
		if len(f) < 5 || strings.HasPrefix(f[0], "%") || strings.HasPrefix(f[0], "-") {
			continue
		}
		name := f[len(f)-1]
		n, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			continue
		}
		if name == "total" {
			total = n
			continue
		}
		rows = append(rows, syscallCount{name, n})
	}
	for i := 1; i < len(rows); i++ { // insertion sort, by calls descending
		for j := i; j > 0 && rows[j].n > rows[j-1].n; j-- {
			rows[j], rows[j-1] = rows[j-1], rows[j]
		}
	}
	return rows, total
}

// fetch saves url to path.
func fetch(ctx context.Context, url, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// countGC counts the gctrace lines in p's log so far.
func countGC(p *proc) int {
	b, _ := os.ReadFile(filepath.Join(p.cmd.Dir, "proxy.log"))
	return strings.Count(string(b), "\ngc ")
}

// topLines keeps perf's or pprof's header-free top n lines.
func topLines(s string, n int) string {
	var b strings.Builder
	k := 0
	for line := range strings.Lines(s) {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		b.WriteString(line)
		if k++; k >= n {
			break
		}
	}
	return b.String()
}
