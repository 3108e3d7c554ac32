package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report turns a run's results into markdown.
type report struct {
	opt     *options
	started time.Time
	elapsed time.Duration
	loads   []*scenarioResult
	idle    []idleResult
	stream  []streamResult
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func (cr *contenderResult) series(f func(sample) float64) []float64 {
	xs := make([]float64, len(cr.samples))
	for i, s := range cr.samples {
		xs[i] = f(s)
	}
	return xs
}

func (cr *contenderResult) med(f func(sample) float64) float64 { return median(cr.series(f)) }

// spread is (max-min)/median of requests/s over the rounds.
func (cr *contenderResult) spread() float64 {
	xs := cr.series(sample.rps)
	if len(xs) < 2 {
		return 0
	}
	m := median(xs)
	if m == 0 {
		return 0
	}
	return 100 * (slices.Max(xs) - slices.Min(xs)) / m
}

func mib(kib int64) string { return fmt.Sprintf("%.1f", float64(kib)/1024) }

func (rep *report) markdown() string {
	var b strings.Builder
	o := rep.opt
	mode := "full"
	if o.smoke {
		mode = "smoke (numbers are not comparable)"
	}
	fmt.Fprintf(&b, "# upmedic bench (%s)\n\n", mode)
	fmt.Fprintf(&b, "%s, %d round(s) x %s per contender, interleaved (order rotated each round), medians over rounds.\n", rep.started.UTC().Format(time.RFC3339), o.rounds, o.duration)
	fmt.Fprintf(&b, "Each proxy: `taskset -c %s`, one worker / GOMAXPROCS=1. wrk (`-t1`) and the upstream (fasthttp, GOMAXPROCS=1): `taskset -c %s`.\n", o.proxyCPU, o.loadCPU)
	b.WriteString("req/CPU-s = requests / proxy (utime+stime) from /proc/PID/stat; CPU% = proxy CPU time / wall time; peak RSS = VmHWM at the scenario's end; spread = (max-min)/median of req/s.\n\n")
	b.WriteString(machine())
	for _, sr := range rep.loads {
		fmt.Fprintf(&b, "\n## %s\n\n", sr.sc.title)
		if sr.sc.fastcgi {
			b.WriteString(fastcgiSection(sr))
		} else {
			b.WriteString("| proxy | answer | req/s | req/CPU-s | CPU% | p50 ms | p99 ms | peak RSS MiB | spread | errors |\n")
			b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
			for _, cr := range sr.results {
				fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %.0f | %.2f | %.2f | %s | %.0f%% | %s |\n",
					cr.c.name, cr.answer, cr.med(sample.rps), cr.med(sample.perCPU),
					cr.med(func(s sample) float64 { return 100 * s.cpuSecs / s.secs }),
					cr.med(func(s sample) float64 { return s.p50 }), cr.med(func(s sample) float64 { return s.p99 }),
					mib(cr.peakKiB), cr.spread(), errorsCell(cr, sr.sc.refused))
			}
		}
		b.WriteString("\nsteal per round (% of all CPU time): ")
		for i, s := range sr.roundSteal {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%.1f", s)
		}
		b.WriteString("; other tenants' CPU per round (median over the round's runs, % of one core): ")
		for i, s := range sr.roundForeign {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%.0f", s)
		}
		b.WriteString("\n")
	}
	if len(rep.idle) > 0 {
		fmt.Fprintf(&b, "\n## %d idle keep-alive connections from the front\n\n", o.idleConns)
		fmt.Fprintf(&b, "Each connection made one GET /small and stays open. RSS = VmRSS after a warm-up; the largest while the connections opened and made their request; then after they were idle %v (upmedic parks a connection idle for 1s and returns the memory of a batch of parked ones 2s later).\n\n", idleSettle)
		b.WriteString("| proxy | opened | RSS before MiB | RSS while opening MiB | RSS idle MiB | KiB per idle connection |\n|---|--:|--:|--:|--:|--:|\n")
		for _, ir := range rep.idle {
			per := 0.0
			if ir.opened > 0 {
				per = float64(ir.rssWith-ir.rssBefore) / float64(ir.opened)
			}
			note := ""
			if ir.err != nil {
				note = " (" + ir.err.Error() + ")"
			}
			fmt.Fprintf(&b, "| %s | %d%s | %s | %s | %s | %.1f |\n", ir.c.name, ir.opened, note, mib(ir.rssBefore), mib(ir.rssOpening), mib(ir.rssWith), per)
		}
	}
	if len(rep.stream) > 0 {
		fmt.Fprintf(&b, "\n## one %d MiB streamed response\n\n", o.streamBytes>>20)
		b.WriteString("growth = peak RSS during the download (VmHWM reset first, and VmRSS sampled every 50 ms) minus RSS before it.\n\n")
		b.WriteString("| proxy | status | MiB received | MiB/s | RSS before MiB | peak MiB | growth MiB |\n|---|--:|--:|--:|--:|--:|--:|\n")
		for _, sr := range rep.stream {
			if sr.err != nil {
				fmt.Fprintf(&b, "| %s | error: %s | | | | | |\n", sr.c.name, sr.err)
				continue
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %.0f | %s | %s | %s |\n", sr.c.name, sr.status, sr.bytes>>20,
				float64(sr.bytes)/(1<<20)/sr.secs, mib(sr.rssBefore), mib(sr.peak), mib(sr.peak-sr.rssBefore))
		}
	}
	b.WriteString(rep.goals())
	b.WriteString("\n## Contenders\n\n")
	seen := map[string]bool{}
	for _, c := range append(append(append([]contender{cDirect}, proxiesAll...), cNginx64k, cUpmedicProxied, cUpmedicUnhealthy, cUpmedic502, cUpmedicBreaker), fastcgiContenders...) {
		key := c.name + c.note
		if seen[key] {
			continue
		}
		seen[key] = true
		fmt.Fprintf(&b, "- **%s**: %s\n", c.name, c.note)
	}
	fmt.Fprintf(&b, "\nTotal time: %s.\n", rep.elapsed.Round(time.Second))
	return b.String()
}

// errorsCell is the errors column: wrk's socket errors and non-2xx answers
// (not counted where refusals are the point), and the contender's note.
func errorsCell(cr *contenderResult, refused bool) string {
	errs := wrkErrors{}
	for _, s := range cr.samples {
		errs.connect += s.errs.connect
		errs.read += s.errs.read
		errs.write += s.errs.write
		errs.timeout += s.errs.timeout
		errs.status += s.errs.status
	}
	e := "-"
	if errs.socket() > 0 || (errs.status > 0 && !refused) {
		e = fmt.Sprintf("c%d r%d w%d t%d non2xx %d", errs.connect, errs.read, errs.write, errs.timeout, errs.status)
	}
	if cr.note != "" {
		e += "; " + cr.note
	}
	return e
}

// pairedRatio is the median over rounds of f(a)/f(b) within each round, when
// a and b ran in the same rounds; else the ratio of their medians.
func pairedRatio(a, b *contenderResult, f func(sample) float64) (float64, bool) {
	byRound := map[int]sample{}
	for _, s := range b.samples {
		byRound[s.round] = s
	}
	var rs []float64
	for _, s := range a.samples {
		if t, ok := byRound[s.round]; ok && f(t) > 0 && a.c.name != b.c.name && sameScenario(a, b) {
			rs = append(rs, f(s)/f(t))
		}
	}
	if len(rs) > 0 {
		return median(rs), true
	}
	if b.med(f) == 0 {
		return 0, false
	}
	return a.med(f) / b.med(f), true
}

func sameScenario(a, b *contenderResult) bool { return a.scenario == b.scenario }

// find returns the result of contender name in scenario key.
func (rep *report) find(key, name string) *contenderResult {
	for _, sr := range rep.loads {
		if sr.sc.key != key {
			continue
		}
		for _, cr := range sr.results {
			if cr.c.name == name && len(cr.samples) > 0 {
				return cr
			}
		}
	}
	return nil
}

// goals checks the run against the targets of issue 6.
func (rep *report) goals() string {
	var b strings.Builder
	b.WriteString("\n## Goals (ratios from this run)\n\n")
	b.WriteString("A ratio between two contenders is the median over the rounds of their ratio within each round (they ran seconds apart, so the machine's drift cancels); where the two ran in different scenarios it is the ratio of their medians.\n\n")
	b.WriteString("| goal | measured | target | met |\n|---|--:|--:|:-:|\n")
	row := func(goal string, v float64, target string, ok bool, format string) {
		mark := "no"
		if ok {
			mark = "yes"
		}
		fmt.Fprintf(&b, "| %s | "+format+" | %s | %s |\n", goal, v, target, mark)
	}
	ratio := func(key, a, bName string, f func(sample) float64) (float64, bool) {
		x, y := rep.find(key, a), rep.find(key, bName)
		if x == nil || y == nil {
			return 0, false
		}
		return pairedRatio(x, y, f)
	}
	perCPU := sample.perCPU
	rps := sample.rps
	p99 := func(s sample) float64 { return s.p99 }
	for _, g := range []struct {
		goal, other string
		min         float64
	}{
		{"100 B: upmedic req/CPU-s vs nginx (buffered)", "nginx", 1},
		{"100 B: upmedic req/CPU-s vs nginx-nobuf", "nginx-nobuf", 1},
		{"100 B: upmedic req/CPU-s vs HAProxy", "haproxy", 1},
		{"100 B: upmedic req/CPU-s vs httputil", "httputil", 3},
		{"100 B: upmedic req/CPU-s vs Caddy", "caddy", 3},
		{"100 B: upmedic req/CPU-s vs fasthttp floor (info)", "fasthttp-floor", 0},
	} {
		if v, ok := ratio("small", "upmedic", g.other, perCPU); ok {
			row(g.goal, v, fmt.Sprintf(">= %.1fx", g.min), v >= g.min, "%.2fx")
		}
	}
	for _, other := range []string{"nginx", "nginx-nobuf"} {
		if v, ok := ratio("small", "upmedic", other, p99); ok {
			row("100 B, 64 conns: upmedic p99 / "+other+" p99", v, "<= 1.0x", v <= 1, "%.2fx")
		}
	}
	// The failure paths against the proxied path measured in the same
	// rounds (upmedic-proxied), else in the 100-byte scenario.
	base, baseName := rep.find("refused", "upmedic-proxied"), "upmedic-proxied"
	if base == nil {
		base, baseName = rep.find("small", "upmedic"), "100 B upmedic"
	}
	if base != nil && base.med(rps) > 0 {
		for _, g := range []struct{ goal, name string }{
			{"diagnosed 502 (upmedic-502)", "upmedic-502"},
			{"breaker-open 503 (upmedic-breaker)", "upmedic-breaker"},
			{"upstream_unhealthy 503 (upmedic, defaults)", "upmedic"},
		} {
			if cr := rep.find("refused", g.name); cr != nil {
				if v, ok := pairedRatio(cr, base, rps); ok {
					row(g.goal+" req/s vs "+baseName, v, ">= 2.0x", v >= 2, "%.2fx")
				}
				if v, ok := pairedRatio(cr, base, perCPU); ok {
					row(g.goal+" req/CPU-s vs "+baseName+" (info)", v, "-", true, "%.2fx")
				}
			}
		}
	}
	if v, ok := ratio("fastcgi", cUpmedicFastCGI.name, cNginxFastCGI.name, cpuPerReq); ok {
		row("FastCGI: upmedic CPU/req ÷ nginx fastcgi_pass CPU/req (keepalive)", v, "<= 1.0x", v <= 1, "%.2fx")
	}
	if v, ok := ratio("fastcgi", cUpmedicFastCGI.name, cNginxFastCGIFronted.name, cpuPerReq); ok {
		row("FastCGI: upmedic CPU/req ÷ nginx fastcgi_pass CPU/req, both behind a front nginx (info)", v, "-", true, "%.2fx")
	}
	if v, ok := ratio("fastcgi", cUpmedicFastCGI.name, cNginxFastCGIStock.name, cpuPerReq); ok {
		row("FastCGI: upmedic CPU/req ÷ nginx fastcgi_pass CPU/req (stock, no keepalive) (info)", v, "-", true, "%.2fx")
	}
	if v, ok := ratio("large", "upmedic", "nginx-nobuf", rps); ok {
		row("1 MiB: upmedic req/s vs nginx-nobuf", v, ">= 1.0x", v >= 1, "%.2fx")
	}
	if v, ok := ratio("large", "upmedic", "nginx-nobuf", perCPU); ok {
		row("1 MiB: upmedic req/CPU-s vs nginx-nobuf", v, ">= 1.0x", v >= 1, "%.2fx")
	}
	for _, sr := range rep.stream {
		if sr.c.name == "upmedic" && sr.err == nil {
			g := float64(sr.peak-sr.rssBefore) / 1024
			row(fmt.Sprintf("%d MiB stream: upmedic RSS growth (MiB)", rep.opt.streamBytes>>20), g, "< 16", g < 16, "%.1f")
		}
	}
	if cr := rep.find("small", "upmedic"); cr != nil {
		m := float64(cr.peakKiB) / 1024
		row("100 B load: upmedic peak RSS (MiB)", m, "<= 32", m <= 32, "%.1f")
	}
	for _, ir := range rep.idle {
		if ir.c.name == "upmedic" {
			m := float64(ir.rssWith) / 1024
			row(fmt.Sprintf("%d idle connections: upmedic RSS (MiB)", ir.opened), m, "< 64", m < 64, "%.1f")
		}
	}
	return b.String()
}

// problems lists what shows that a scenario did not work: the smoke test.
func (rep *report) problems() []string {
	var ps []string
	for _, sr := range rep.loads {
		for _, cr := range sr.results {
			a := cr.answer
			switch {
			case a.err != nil:
				ps = append(ps, fmt.Sprintf("%s/%s: probe failed: %v", sr.sc.key, cr.c.name, a.err))
			case (!sr.sc.refused || cr.c.live) && a.status != 200:
				ps = append(ps, fmt.Sprintf("%s/%s: answered %s, want 200", sr.sc.key, cr.c.name, a))
			case sr.sc.refused && !cr.c.live && a.status < 500:
				ps = append(ps, fmt.Sprintf("%s/%s: answered %s with the upstream refusing", sr.sc.key, cr.c.name, a))
			}
			if cr.note != "" {
				ps = append(ps, fmt.Sprintf("%s/%s: %s", sr.sc.key, cr.c.name, cr.note))
			}
			// A proxy that takes longer than a round to answer (HAProxy
			// retrying a refused connect for 3s) may finish none in it.
			slow := a.latency > rep.opt.duration/2
			for _, s := range cr.samples {
				if s.requests == 0 && !slow {
					ps = append(ps, fmt.Sprintf("%s/%s round %d: no requests", sr.sc.key, cr.c.name, s.round+1))
				}
				if (!sr.sc.refused || cr.c.live) && s.errs.status > 0 {
					ps = append(ps, fmt.Sprintf("%s/%s round %d: %d non-2xx answers", sr.sc.key, cr.c.name, s.round+1, s.errs.status))
				}
			}
		}
	}
	for _, ir := range rep.idle {
		if ir.err != nil || ir.opened != rep.opt.idleConns {
			ps = append(ps, fmt.Sprintf("idle/%s: opened %d of %d: %v", ir.c.name, ir.opened, rep.opt.idleConns, ir.err))
		}
	}
	for _, sr := range rep.stream {
		if sr.err != nil || sr.status != 200 || sr.bytes != rep.opt.streamBytes {
			ps = append(ps, fmt.Sprintf("stream/%s: status %d, %d of %d bytes: %v", sr.c.name, sr.status, sr.bytes, rep.opt.streamBytes, sr.err))
		}
	}
	return ps
}

// machine describes the machine and the versions of the tools.
func machine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	first := func(name string, args ...string) string {
		p := lookPath(name)
		if p == "" {
			return "missing"
		}
		out, _ := exec.Command(p, args...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return strings.TrimSpace(line)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %d CPUs (nproc), %s, kernel %s, %s.\n", runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), runtime.Version())
	fmt.Fprintf(&b, "Versions: %s; %s; %s; caddy %s; %s; %s.\n", first("go", "version"), first("nginx", "-v"),
		first("haproxy", "-v"), first("caddy", "version"), first("wrk", "-v"), first(phpFPM, "-v"))
	return b.String()
}
