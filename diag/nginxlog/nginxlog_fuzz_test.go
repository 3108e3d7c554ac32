package nginxlog

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParseLine feeds the parser every line of the golden logs and
// the classification cases, mutated. Besides not panicking, a parsed line
// must be made of the input's own bytes, and the analyzer's counts must add
// up.
func FuzzParseLine(f *testing.F) {
	logs, err := filepath.Glob(filepath.Join(nginxLogDir, "*.log"))
	if err != nil || len(logs) == 0 {
		f.Fatalf("seeds: %v, %v", logs, err)
	}
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for line := range bytes.Lines(b) {
			f.Add(line)
		}
	}
	for _, tc := range nginxCauseTests {
		f.Add([]byte(tc.line))
	}

	f.Fuzz(func(t *testing.T, line []byte) {
		l, ok := ParseLine(line)
		if ok {
			checkNginxLine(t, line, &l)
		}
		if trimmed := bytes.TrimRight(line, "\r\n"); len(trimmed) == len(line) {
			// A line ending changes nothing.
			l2, ok2 := ParseLine(append(slices.Clip(line), '\n'))
			if ok2 != ok || l2 != l {
				t.Errorf("with a newline: %+v, %v; without: %+v, %v", l2, ok2, l, ok)
			}
		}

		viaUpmedic := nginxUTC
		viaUpmedic.Listen, viaUpmedic.UpmedicUpstreams = "127.0.0.1:8080", []string{"upmedic"}
		if _, err := Analyze(bytes.NewReader(line), viaUpmedic); err != nil {
			t.Fatal(err)
		}
		rep, err := Analyze(bytes.NewReader(line), nginxUTC)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Failures > rep.Matched {
			t.Errorf("%d failures of %d matched", rep.Failures, rep.Matched)
		}
		if rep.Lines != rep.Matched+rep.Skipped+rep.BeforeSince || rep.Lines > bytes.Count(line, []byte("\n"))+1 {
			t.Errorf("counts do not add up: %+v", *rep)
		}
		n := 0
		for _, g := range rep.Groups {
			n += g.Count
			if g.Cause == "" || g.Fix == "" || g.Upstream == "" || g.Sample == "" || g.Last.Before(g.First) {
				t.Errorf("bad group %+v", g)
			}
		}
		if n != rep.Matched {
			t.Errorf("groups count %d lines, Matched is %d", n, rep.Matched)
		}
	})
}

func checkNginxLine(t *testing.T, line []byte, l *Line) {
	t.Helper()
	s := string(line)
	if !strings.HasPrefix(s, l.Time.Format(nginxTimeLayout)+" ["+l.Level+"] ") {
		t.Errorf("time %v and level %q are not the line's start %q", l.Time, l.Level, s)
	}
	if !slices.Contains(nginxLevels[:], l.Level) || l.PID < 0 || l.TID < 0 || l.Errno < 0 {
		t.Errorf("level %q, pid %d, tid %d, errno %d", l.Level, l.PID, l.TID, l.Errno)
	}
	for name, v := range map[string]string{"Message": l.Message, "Client": l.Client, "Server": l.Server,
		"Request": l.Request, "Upstream": l.Upstream, "Host": l.Host} {
		if !strings.Contains(s, v) {
			t.Errorf("%s %q is not in the line %q", name, v, s)
		}
	}
	if l.Action != "" && !strings.HasSuffix(l.Message, " while "+l.Action) {
		t.Errorf("action %q does not end message %q", l.Action, l.Message)
	}
	if !strings.Contains(l.Message, l.nginxEvent()) {
		t.Errorf("event %q is not in message %q", l.nginxEvent(), l.Message)
	}
	up := nginxUpstream(l)
	if rule := matchNginxRule(l, up); rule < -1 || rule >= len(nginxRules) || up == "" {
		t.Errorf("rule %d, upstream %q", rule, up)
	}
}
