package main

import (
	"strings"
	"testing"

	"github.com/upmedic/upmedic/internal/peers"
)

func TestList(t *testing.T) {
	present := peers.Peer{Name: "sh", Programs: []string{"sh"}, Package: "dash", Suites: "the shell suite"}
	missing := peers.Peer{Name: "nginx", Programs: []string{"/nonexistent/nginx"}, Package: "nginx", Suites: "e2e: nginx scenarios"}
	unused := peers.Peer{Name: "chromium", Programs: []string{"/nonexistent/chromium"}, Package: "chromium"}
	for _, tc := range []struct {
		name     string
		all      []peers.Peer
		root, ci bool
		code     int
		want     []string // lines or parts of lines, in order
	}{
		{"all present", []peers.Peer{present, unused}, true, true, 0, []string{
			"  sh ", "the shell suite",
			"  chromium ", "MISSING", "(no test uses it yet)",
			"  root ", "yes",
			"peers: all present: every suite runs"}},
		{"missing, developer machine", []peers.Peer{present, missing}, true, false, 0, []string{
			"  nginx ", "MISSING", "skips e2e: nginx scenarios",
			"peers: missing nginx: their suites skip; to run them: apt-get install nginx\n"}},
		{"missing, CI", []peers.Peer{missing}, true, true, 1, []string{
			"peers: missing nginx", "peers: CI=true: every suite must run"}},
		{"not root, developer machine", []peers.Peer{present}, false, false, 0, []string{
			"  root ", "NO", "skips e2e:", "peers: not root"}},
		{"not root, CI", []peers.Peer{present}, false, true, 1, []string{"peers: not root", "peers: CI=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			code := list(&b, tc.all, tc.root, tc.ci)
			out := b.String()
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}
