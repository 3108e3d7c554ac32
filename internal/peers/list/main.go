// Command list prints the programs upmedic's tests drive: each one found or
// missing, what skips without it, and the apt-get line that installs the
// missing ones. It is the first step of the README's test command, because
// go test shows neither a passing package's skips nor, from its cache,
// anything at all. It exits 0; with CI=true, 1 when a peer is missing or the
// tests do not run as root, as CI must run every suite.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/upmedic/upmedic/internal/peers"
)

func main() {
	os.Exit(list(os.Stdout, peers.All(), os.Geteuid() == 0, peers.InCI()))
}

// list writes the table for all to w and returns the exit code.
func list(w io.Writer, all []peers.Peer, root, ci bool) int {
	fmt.Fprintln(w, "peers: the programs the tests drive (a missing one skips its suites; CI=true fails instead):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var missing, pkgs []string
	for _, p := range all {
		path, suites := p.Find(), p.Suites
		if suites == "" {
			suites = "(no test uses it yet)"
		}
		if path == "" {
			path = "MISSING"
			if p.Suites != "" {
				missing = append(missing, p.Name)
				pkgs = append(pkgs, p.Package)
				suites = "skips " + suites
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.Name, path, suites)
	}
	user := "yes"
	if !root {
		user = "NO"
	}
	fmt.Fprintf(tw, "  root\t%s\t%s\n", user, skipped(!root, peers.RootSuites))
	tw.Flush()

	switch {
	case len(missing) == 0 && root:
		fmt.Fprintln(w, "peers: all present: every suite runs")
		return 0
	case len(missing) > 0:
		fmt.Fprintf(w, "peers: missing %s: their suites skip; to run them: apt-get install %s\n",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	if !root {
		fmt.Fprintln(w, "peers: not root: the suites that need root skip; run the tests as root to run them")
	}
	if ci {
		fmt.Fprintln(w, "peers: CI=true: every suite must run (.ci/run installs the packages, as root): failing")
		return 1
	}
	return 0
}

func skipped(skip bool, suites string) string {
	if skip {
		return "skips " + suites
	}
	return suites
}
