package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadScenario is a wrk load against every contender, in interleaved rounds.
type loadScenario struct {
	key, title string
	path       string
	conns      int
	bodyBytes  int  // > 0: POST a body this large
	refused    bool // the upstream refuses connections
	// fastcgi: no shared upstream; each contender has its own php-fpm.
	fastcgi    bool
	contenders []contender
}

// sample is one wrk run against one contender.
type sample struct {
	round    int
	requests int64
	secs     float64 // wall time wrk measured
	cpuSecs  float64 // proxy utime+stime over the run
	// upCPUSecs is the upstream's utime+stime (a php-fpm master and its
	// workers) over the run, frontCPUSecs the front nginx's, if any.
	upCPUSecs, frontCPUSecs float64
	wrkSecs                 float64 // wrk's own utime+stime
	p50, p99                float64 // ms
	errs                    wrkErrors
	steal                   float64 // % over the run
	// foreign is the CPU time, in % of one core, that processes other than
	// the proxy, the upstream and wrk used during the run: the machine's
	// other tenants.
	foreign float64
}

func (s sample) rps() float64 { return float64(s.requests) / s.secs }
func (s sample) perCPU() float64 {
	if s.cpuSecs <= 0 {
		return 0
	}
	return float64(s.requests) / s.cpuSecs
}

type wrkErrors struct{ connect, read, write, status, timeout int64 }

func (e wrkErrors) socket() int64 { return e.connect + e.read + e.write + e.timeout }

// contenderResult is what one contender did in a scenario.
type contenderResult struct {
	c        contender
	scenario string
	answer   answer
	samples  []sample
	peakKiB  int64
	note     string // a problem worth showing
}

// scenarioResult is one load scenario's results.
type scenarioResult struct {
	sc         loadScenario
	results    []*contenderResult
	roundSteal []float64 // % per round, all contenders
	// roundForeign is the median, per round, of the other tenants' CPU use
	// (% of one core) during each measurement.
	roundForeign []float64
}

// runLoad runs one load scenario: fresh upstream and contenders, a warm-up,
// the answer each gives, then the interleaved rounds.
func (r *runner) runLoad(ctx context.Context, sc loadScenario) (*scenarioResult, error) {
	dir := filepath.Join(r.out, sc.key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer trimLogs(dir)
	defer r.stopAllTimed(sc.key)
	var (
		up     *proc
		upAddr string
		err    error
	)
	if !sc.fastcgi {
		if up, err = r.startUpstream(dir); err != nil {
			return nil, err
		}
		upAddr = up.addr
	}
	if sc.refused {
		if upAddr, err = freeAddr(); err != nil { // bound, then closed: refuses
			return nil, err
		}
	}
	lua, err := r.luaScript(dir, sc.bodyBytes)
	if err != nil {
		return nil, err
	}
	res := &scenarioResult{sc: sc}
	procs, err := r.startAll(sc.contenders, up, upAddr, dir)
	if err != nil {
		return nil, err
	}
	for _, c := range sc.contenders {
		res.results = append(res.results, &contenderResult{c: c, scenario: sc.key})
	}
	// Warm up (pools, page cache, Go heap), one after another.
	for _, p := range procs {
		if sc.refused && !p.c.live {
			continue // the answers below are the warm-up
		}
		if err := r.warm(ctx, p, sc, lua); err != nil {
			return nil, fmt.Errorf("%s warm-up: %w", p.c.name, err)
		}
	}
	// Then what each answers, all at once: upmedic's health check needs
	// Fall x Interval (6s by default) to call the upstream down.
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			timeout := 3 * time.Second
			if p.c.want != "" {
				timeout = 20 * time.Second
			}
			cr := res.results[i]
			cr.answer = waitAnswer(ctx, p, sc.path, p.c.want, timeout)
			if p.c.want != "" && cr.answer.String() != p.c.want {
				cr.note = "answered " + cr.answer.String() + ", not " + p.c.want
			}
		})
	}
	wg.Wait()
	order := make([]int, len(procs))
	for round := range r.opt.rounds {
		// Rotate the order each round so no contender always runs first.
		for i := range order {
			order[i] = (i + round) % len(order)
		}
		st0 := readCPUStat()
		one := func(i int) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p := procs[i]
			if p.c.fresh && round > 0 {
				np, err := r.restart(p, up, upAddr, dir)
				if err != nil {
					return err
				}
				procs[i], p = np, np
				if a := waitAnswer(ctx, p, sc.path, p.c.want, 10*time.Second); p.c.want != "" && a.String() != p.c.want {
					res.results[i].note = "answered " + a.String() + ", not " + p.c.want
				}
			}
			s, err := r.measure(ctx, p, up, sc, lua, round)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", p.c.name, round+1, err)
			}
			res.results[i].samples = append(res.results[i].samples, s)
			if r.opt.verbose {
				fmt.Fprintf(os.Stderr, "  %-8s r%d %-18s %9.0f req/s %9.0f req/cpu-s p99 %7.2fms steal %.1f%% others %.0f%%\n",
					sc.key, round+1, p.c.name, s.rps(), s.perCPU(), s.p99, s.steal, s.foreign)
			}
			return nil
		}
		if err := r.each(order, one); err != nil {
			return nil, err
		}
		res.roundSteal = append(res.roundSteal, stealPct(st0, readCPUStat()))
		var fs []float64
		for _, cr := range res.results {
			fs = append(fs, cr.samples[len(cr.samples)-1].foreign)
		}
		res.roundForeign = append(res.roundForeign, median(fs))
	}
	for i, p := range procs {
		_, hwm, _ := memKiB(p.pid)
		res.results[i].peakKiB = max(hwm, p.peak)
	}
	return res, nil
}

// each calls f for each index in order: one after another, or all at once
// in a smoke run, where the numbers do not count and only time does.
func (r *runner) each(order []int, f func(i int) error) error {
	if !r.opt.smoke {
		for _, i := range order {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for k, i := range order {
		wg.Go(func() { errs[k] = f(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startAll starts the contenders side by side.
func (r *runner) startAll(cs []contender, up *proc, upAddr, dir string) ([]*proc, error) {
	procs := make([]*proc, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { procs[i], errs[i] = r.start(c, up, upAddr, dir) })
	}
	wg.Wait()
	return procs, errors.Join(errs...)
}

// warm sends the warm-up load to p, or one request when there is none.
func (r *runner) warm(ctx context.Context, p *proc, sc loadScenario, lua string) error {
	if r.opt.warmup <= 0 {
		if a := probe(ctx, p.target(), sc.path); a.err != nil {
			return a.err
		}
		return nil
	}
	_, err := r.wrk(ctx, p.target(), sc, lua, r.opt.warmup)
	return err
}

// measure runs wrk once against p and reads p's CPU time around it.
func (r *runner) measure(ctx context.Context, p, up *proc, sc loadScenario, lua string, round int) (sample, error) {
	upTicks := func() int64 {
		if p.app != nil {
			t, _ := treeTicks(p.app.pid)
			return t
		}
		if up == nil || up.pid == p.pid {
			return 0
		}
		t, _ := cpuTicks(up.pid)
		return t
	}
	frontTicks := func() int64 {
		if p.front == nil {
			return 0
		}
		t, _ := cpuTicks(p.front.pid)
		return t
	}
	st0 := readCPUStat()
	up0, front0 := upTicks(), frontTicks()
	cpu0, err := cpuTicks(p.pid)
	if err != nil {
		return sample{}, err
	}
	w, err := r.wrk(ctx, p.target(), sc, lua, r.opt.duration)
	if err != nil {
		return sample{}, err
	}
	cpu1, err := cpuTicks(p.pid)
	if err != nil {
		return sample{}, err
	}
	up1, front1 := upTicks(), frontTicks()
	st1 := readCPUStat()
	w.round = round
	w.cpuSecs = float64(cpu1-cpu0) / clockTicks
	w.upCPUSecs = float64(up1-up0) / clockTicks
	w.frontCPUSecs = float64(front1-front0) / clockTicks
	w.steal = stealPct(st0, st1)
	ours := w.cpuSecs + w.upCPUSecs + w.frontCPUSecs + w.wrkSecs
	w.foreign = max(0, 100*(float64(busyTicks(st0, st1))/clockTicks-ours)/w.secs)
	return w, nil
}

// luaScript writes the wrk script: the request (a POST body when asked) and
// a done() that prints one machine-readable line.
func (r *runner) luaScript(dir string, bodyBytes int) (string, error) {
	var b strings.Builder
	if bodyBytes > 0 {
		fmt.Fprintf(&b, "wrk.method = \"POST\"\nwrk.body = string.rep(\"u\", %d)\n", bodyBytes)
		b.WriteString("wrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n")
	}
	b.WriteString(`done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`)
	path := filepath.Join(dir, fmt.Sprintf("wrk-%d.lua", bodyBytes))
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// wrk runs wrk on the load core for d and parses its result line.
func (r *runner) wrk(ctx context.Context, addr string, sc loadScenario, lua string, d time.Duration) (sample, error) {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bins["taskset"], "-c", r.opt.loadCPU, r.bins["wrk"],
		"-t1", "-c"+strconv.Itoa(sc.conns), "-d"+strconv.Itoa(secs)+"s", "--latency", "--timeout", "10s",
		"-s", lua, "http://"+addr+sc.path)
	cmd.SysProcAttr = pdeathsig()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return sample{}, fmt.Errorf("wrk: %w: %s", err, lastLines(string(out), 5))
	}
	s, err := parseWrk(string(out))
	if ps := cmd.ProcessState; ps != nil {
		s.wrkSecs = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	return s, err
}

// parseWrk reads the line the done() callback printed.
func parseWrk(out string) (sample, error) {
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "BENCH ")
		if !ok {
			continue
		}
		v := map[string]int64{}
		for f := range strings.FieldsSeq(rest) {
			k, n, _ := strings.Cut(f, "=")
			x, err := strconv.ParseFloat(n, 64)
			if err != nil {
				return sample{}, fmt.Errorf("wrk: bad %q", f)
			}
			v[k] = int64(x)
		}
		if v["duration_us"] <= 0 {
			return sample{}, errors.New("wrk: zero duration")
		}
		return sample{
			requests: v["requests"],
			secs:     float64(v["duration_us"]) / 1e6,
			p50:      float64(v["p50_us"]) / 1e3,
			p99:      float64(v["p99_us"]) / 1e3,
			errs:     wrkErrors{v["connect"], v["read"], v["write"], v["status"], v["timeout"]},
		}, nil
	}
	return sample{}, fmt.Errorf("wrk: no result line in %q", lastLines(out, 5))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// startWarmable starts the upstream and every contender for the scenario
// name, and returns them with the small-response load that warms each up.
// The caller stops them with r.stopAll.
func (r *runner) startWarmable(cs []contender, name string) ([]*proc, loadScenario, string, error) {
	dir := filepath.Join(r.out, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, loadScenario{}, "", err
	}
	up, err := r.startUpstream(dir)
	if err != nil {
		return nil, loadScenario{}, "", err
	}
	sc := loadScenario{path: "/small", conns: 64}
	lua, err := r.luaScript(dir, 0)
	if err != nil {
		return nil, loadScenario{}, "", err
	}
	procs, err := r.startAll(cs, up, up.addr, dir)
	return procs, sc, lua, err
}

// idleResult is one contender holding N idle keep-alive connections.
type idleResult struct {
	c            contender
	opened, fail int
	rssBefore    int64 // KiB
	rssOpening   int64 // KiB, the largest while the connections opened and made their request
	rssWith      int64 // KiB, once they have been idle idleSettle
	err          error
}

// idleSettle is how long the connections are left idle before RSS is read:
// upmedic parks a connection idle for 1s and returns the memory of a batch
// of parked ones 2s after the batch.
const idleSettle = 4 * time.Second

// runIdle opens N idle keep-alive connections to each contender in turn and
// reads its RSS before and while it holds them.
func (r *runner) runIdle(ctx context.Context, cs []contender) ([]idleResult, error) {
	defer r.stopAll()
	procs, sc, lua, err := r.startWarmable(cs, "idle")
	if err != nil {
		return nil, err
	}
	res := make([]idleResult, len(cs))
	err = r.each(indexes(len(cs)), func(i int) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, p := cs[i], procs[i]
		ir := idleResult{c: c}
		if err := r.warm(ctx, p, sc, lua); err != nil {
			return fmt.Errorf("%s warm-up: %w", c.name, err)
		}
		time.Sleep(200 * time.Millisecond)
		ir.rssBefore, _, _ = memKiB(p.pid)
		ir.opened, ir.fail, ir.rssOpening, ir.rssWith, ir.err = r.holdIdle(ctx, p)
		res[i] = ir
		if r.opt.verbose {
			fmt.Fprintf(os.Stderr, "  idle     %-18s opened %d: RSS %s -> %s while opening -> %s MiB idle\n", c.name, ir.opened, mib(ir.rssBefore), mib(ir.rssOpening), mib(ir.rssWith))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// holdIdle has a role-idle process open the connections, then reads p's
// RSS while they open and once they have been idle, and lets them go.
func (r *runner) holdIdle(ctx context.Context, p *proc) (opened, failed int, opening, rss int64, err error) {
	cmd := exec.CommandContext(ctx, r.bins["taskset"], "-c", r.opt.loadCPU, r.self, "role-idle",
		p.addr, strconv.Itoa(r.opt.idleConns), "/small", "90s")
	cmd.SysProcAttr = pdeathsig()
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, 0, err
	}
	defer func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	stopSampling := make(chan struct{})
	sampled := make(chan int64)
	go func() {
		var peak int64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			cur, _, _ := memKiB(p.pid)
			peak = max(peak, cur)
			select {
			case <-stopSampling:
				sampled <- peak
				return
			case <-t.C:
			}
		}
	}()
	line, err := readLine(bufio.NewReader(stdout), 90*time.Second)
	close(stopSampling)
	opening = <-sampled
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("role-idle: %w", err)
	}
	if _, err := fmt.Sscanf(line, "READY opened=%d failed=%d", &opened, &failed); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("role-idle said %q", line)
	}
	// Leave the connections idle (upmedic parks them and returns their
	// memory), then take the largest of a few readings.
	settle := idleSettle
	if r.opt.smoke {
		settle = 0
	}
	time.Sleep(settle)
	for range 5 {
		time.Sleep(200 * time.Millisecond)
		cur, _, _ := memKiB(p.pid)
		rss = max(rss, cur)
	}
	return opened, failed, max(opening, rss), rss, nil
}

// streamResult is one contender streaming one large response.
type streamResult struct {
	c         contender
	bytes     int64
	secs      float64
	status    int
	rssBefore int64 // KiB
	peak      int64 // KiB, VmHWM after a reset, or the largest VmRSS seen
	hwmReset  bool
	err       error
}

// runStream downloads one large response through each contender in turn
// and reads how far its RSS rose.
func (r *runner) runStream(ctx context.Context, cs []contender) ([]streamResult, error) {
	defer r.stopAll()
	procs, sc, lua, err := r.startWarmable(cs, "stream")
	if err != nil {
		return nil, err
	}
	res := make([]streamResult, len(cs))
	err = r.each(indexes(len(cs)), func(i int) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, p := cs[i], procs[i]
		if err := r.warm(ctx, p, sc, lua); err != nil {
			return fmt.Errorf("%s warm-up: %w", c.name, err)
		}
		time.Sleep(200 * time.Millisecond)
		sr := streamResult{c: c}
		sr.hwmReset = resetPeakRSS(p.pid)
		sr.rssBefore, _, _ = memKiB(p.pid)
		sr.status, sr.bytes, sr.secs, sr.peak, sr.err = r.download(ctx, p, fmt.Sprintf("/stream?n=%d", r.opt.streamBytes))
		res[i] = sr
		if r.opt.verbose {
			fmt.Fprintf(os.Stderr, "  stream   %-18s %d MiB in %.2fs: RSS %s -> peak %s MiB\n", c.name, sr.bytes>>20, sr.secs, mib(sr.rssBefore), mib(sr.peak))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// download runs role-get through p, sampling p's RSS meanwhile.
func (r *runner) download(ctx context.Context, p *proc, path string) (status int, n int64, secs float64, peak int64, err error) {
	cmd := exec.CommandContext(ctx, r.bins["taskset"], "-c", r.opt.loadCPU, r.self, "role-get",
		"http://"+p.addr+path, "120s")
	cmd.SysProcAttr = pdeathsig()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err = <-done:
			_, hwm, _ := memKiB(p.pid)
			peak = max(peak, hwm)
			if err != nil {
				return 0, 0, 0, peak, fmt.Errorf("role-get: %w: %s", err, lastLines(out.String(), 3))
			}
			line := lastLines(out.String(), 1)
			if _, err := fmt.Sscanf(line, "GOT status=%d bytes=%d secs=%f", &status, &n, &secs); err != nil {
				return 0, 0, 0, peak, fmt.Errorf("role-get said %q", line)
			}
			return status, n, secs, peak, nil
		case <-tick.C:
			cur, _, _ := memKiB(p.pid)
			peak = max(peak, cur)
		}
	}
}

func indexes(n int) []int {
	xs := make([]int, n)
	for i := range xs {
		xs[i] = i
	}
	return xs
}

// trimLogs keeps only the last MiB of any log over 16 MiB under dir: nginx,
// Caddy and httputil write a line per failed request, about 100 MB per
// proxy in the refused scenario.
func trimLogs(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.Size() <= 16<<20 {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		tail := make([]byte, 1<<20)
		n, _ := f.ReadAt(tail, fi.Size()-int64(len(tail)))
		f.Close()
		note := fmt.Sprintf("[bench: %d bytes cut; the last %d follow]\n", fi.Size()-int64(n), n)
		_ = os.WriteFile(path, append([]byte(note), tail[:n]...), 0o644)
		return nil
	})
}
