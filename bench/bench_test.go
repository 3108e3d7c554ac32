package main

import (
	"math"
	"os"
	"strings"
	"testing"
)

func TestParseWrk(t *testing.T) {
	out := "Running 1s test @ http://127.0.0.1:1/small\n" +
		"BENCH requests=1234 duration_us=1000500 connect=0 read=2 write=0 status=7 timeout=1 p50_us=850 p99_us=4200\n"
	s, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if s.requests != 1234 || s.p50 != 0.85 || s.p99 != 4.2 || s.errs.read != 2 || s.errs.status != 7 || s.errs.timeout != 1 {
		t.Errorf("parsed %+v", s)
	}
	if _, err := parseWrk("no result"); err == nil {
		t.Error("no error for output without a result line")
	}
}

func TestParseStrace(t *testing.T) {
	out := `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 67.05    0.430252          12     35727           writev
 31.75    0.203740           5     35744        16 recvfrom
  0.35    0.002224          23        95           epoll_wait
------ ----------- ----------- --------- --------- ----------------
100.00    0.641663           8     71566        16 total
`
	rows, total := parseStrace(out)
	if total != 71566 || len(rows) != 3 || rows[0].name != "recvfrom" || rows[0].n != 35744 {
		t.Errorf("rows %v total %d", rows, total)
	}
}

func TestPairedRatio(t *testing.T) {
	a := &contenderResult{c: contender{name: "a"}, scenario: "s",
		samples: []sample{{round: 0, requests: 200, secs: 1}, {round: 1, requests: 100, secs: 1}, {round: 2, requests: 330, secs: 1}}}
	b := &contenderResult{c: contender{name: "b"}, scenario: "s",
		samples: []sample{{round: 0, requests: 100, secs: 1}, {round: 1, requests: 50, secs: 1}, {round: 2, requests: 100, secs: 1}}}
	// Per round: 2, 2, 3.3: median 2 (the ratio of medians would be 2).
	if v, ok := pairedRatio(a, b, sample.rps); !ok || math.Abs(v-2) > 1e-9 {
		t.Errorf("paired ratio %v %v, want 2", v, ok)
	}
	b.scenario = "other" // different scenarios: ratio of medians, 200/100
	if v, _ := pairedRatio(a, b, sample.rps); math.Abs(v-2) > 1e-9 {
		t.Errorf("ratio of medians %v, want 2", v)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestStealPct(t *testing.T) {
	a := cpuStat{total: 1000, busy: 500, steal: 10}
	b := cpuStat{total: 2000, busy: 900, steal: 60}
	if got := stealPct(a, b); got != 5 {
		t.Errorf("steal %v%%, want 5%%", got)
	}
	if got := stealPct(b, a); got != 0 {
		t.Errorf("steal backwards %v, want 0", got)
	}
}

func TestParentPID(t *testing.T) {
	if got, want := parentPID(os.Getpid()), os.Getppid(); got != want {
		t.Errorf("parentPID(self) = %d, want %d", got, want)
	}
	if got := parentPID(-5); got != -1 {
		t.Errorf("parentPID(-5) = %d, want -1", got)
	}
}

func TestFastCGISection(t *testing.T) {
	mk := func(c contender, cpu, p50 float64) *contenderResult {
		cr := &contenderResult{c: c, scenario: "fastcgi", answer: answer{status: 200}}
		for round := range 3 {
			cr.samples = append(cr.samples, sample{round: round, requests: 1000, secs: 1, cpuSecs: cpu, p50: p50, p99: 2 * p50})
		}
		return cr
	}
	sr := &scenarioResult{sc: loadScenario{key: "fastcgi", fastcgi: true}, results: []*contenderResult{
		mk(cNginxFastCGI, 0.020, 0.3), mk(cUpmedicFastCGI, 0.030, 0.5),
	}}
	out := fastcgiSection(sr)
	for _, want := range []string{
		"| nginx-fastcgi | 200 | 1000 | 20.0 | - |",
		"upmedic CPU/req ÷ nginx fastcgi_pass CPU/req: **1.50x**",
		"p50 added to nginx -> php-fpm direct: +0.20 ms paired",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("section lacks %q:\n%s", want, out)
		}
	}
}

func TestNginxFastCGIConf(t *testing.T) {
	keep := nginxFastCGIConf("/d", "127.0.0.1:1", "/d/fpm.sock", "/d/root", true)
	stock := nginxFastCGIConf("/d", "127.0.0.1:1", "/d/fpm.sock", "/d/root", false)
	for _, want := range []string{"server unix:/d/fpm.sock;", "keepalive 16;", "fastcgi_keep_conn on;", "root /d/root;",
		"fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;"} {
		if !strings.Contains(keep, want) {
			t.Errorf("keep-alive config lacks %q", want)
		}
	}
	if strings.Contains(stock, "keepalive") || !strings.Contains(stock, "fastcgi_keep_conn off;") {
		t.Errorf("stock config keeps connections:\n%s", stock)
	}
}
