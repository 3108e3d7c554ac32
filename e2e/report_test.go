package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// reportRow is one scenario of the table the suite leaves in
// e2e/tmp/scenarios.md: what the client and the access log show with
// upmedic, and what nginx alone (straight to the app) shows for the same
// fault. It documents; it asserts nothing.
type reportRow struct {
	order       int
	scenario    string
	status      string // client status with upmedic
	diagnosis   string // diag= in nginx's access log with upmedic
	aloneStatus string // client status with nginx alone
	aloneLog    string // nginx alone's error.log
}

// report collects the rows from parallel scenarios. It is test-only state,
// written under mu and read once by TestMain after every test ended.
var report struct {
	mu   sync.Mutex
	rows []reportRow
}

func record(r reportRow) {
	report.mu.Lock()
	defer report.mu.Unlock()
	report.rows = append(report.rows, r)
}

// writeReport writes the table as Markdown to e2e/tmp/scenarios.md and to
// stderr (which go test shows with -v or on failure).
func writeReport() {
	report.mu.Lock()
	rows := slices.Clone(report.rows)
	report.mu.Unlock()
	if len(rows) == 0 || root.repo == "" {
		return
	}
	slices.SortFunc(rows, func(a, b reportRow) int { return a.order - b.order })
	var b strings.Builder
	b.WriteString("| scenario | client status | logged diagnosis (diag=) | nginx alone: status | nginx alone: error.log |\n")
	b.WriteString("|---|---|---|---|---|\n")
	// Socket paths under the run directory, as <dir>/app.sock.
	scenarioPath := regexp.MustCompile(regexp.QuoteMeta(root.run) + `/[^/\s]+/`)
	cell := func(s string) string {
		if s == "" {
			return "(empty)"
		}
		s = scenarioPath.ReplaceAllString(s, "<dir>/")
		return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.scenario, r.status, cell(r.diagnosis), r.aloneStatus, cell(r.aloneLog))
	}
	dir := filepath.Join(root.repo, "e2e", "tmp")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "scenarios.md"), []byte(b.String()), 0o644)
	}
	fmt.Fprint(os.Stderr, "e2e: scenarios (also in e2e/tmp/scenarios.md):\n"+b.String())
}
