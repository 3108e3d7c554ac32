package peers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A program hidden by /dev/null bound over it (how the Go-only run is
// staged), or a file nobody may execute, is missing; a required file that is
// missing makes its peer missing.
func TestFind(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    Peer
		want string
	}{
		{"absolute path", Peer{Programs: []string{prog}}, prog},
		{"first found wins", Peer{Programs: []string{filepath.Join(dir, "none"), prog}}, prog},
		{"a character device", Peer{Programs: []string{"/dev/null"}}, ""},
		{"not executable", Peer{Programs: []string{plain}}, ""},
		{"a requirement missing", Peer{Programs: []string{prog}, Requires: []string{filepath.Join(dir, "python3")}}, ""},
		{"a requirement present", Peer{Programs: []string{prog}, Requires: []string{prog}}, prog},
		{"on PATH", Peer{Programs: []string{"sh"}}, "sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.p.Find()
			if tc.want == "sh" {
				if filepath.Base(got) != "sh" {
					t.Errorf("Find = %q, want a path to sh", got)
				}
				return
			}
			if got != tc.want {
				t.Errorf("Find = %q, want %q", got, tc.want)
			}
		})
	}
}

// Every peer has a Debian package; the names are unique.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range All() {
		if p.Name == "" || p.Package == "" || len(p.Programs) == 0 || seen[p.Name] {
			t.Errorf("peer %+v: want a unique name, a package and programs", p)
		}
		seen[p.Name] = true
	}
}

// .ci/run runs exactly the README's test command, whose first step lists
// the peers.
func TestCIRunsTheREADMECommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	var cmd string
	for line := range strings.Lines(string(readme)) {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "go run ./internal/peers/list && ") {
			cmd = l
		}
	}
	if cmd == "" {
		t.Fatal("README.md has no test command starting with go run ./internal/peers/list")
	}
	lines := strings.Split(strings.TrimSpace(string(ci)), "\n")
	if last := lines[len(lines)-1]; last != cmd {
		t.Errorf(".ci/run ends with\n%s\nthe README's test command is\n%s", last, cmd)
	}
}
