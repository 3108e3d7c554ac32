//go:build unix

package nginxlog

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAccessFacts checks the socket facts against real sockets: what the
// mode bits let nobody (uid 65534, not in root's group) do.
func TestAccessFacts(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: the sockets must belong to root, not to the user the test describes")
	}
	public, err := os.MkdirTemp("", "upmedic-access-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(public) })
	if err := os.Chmod(public, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Dir(public), "/"} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by other users", d)
		}
	}
	sock := func(dir string, mode os.FileMode) string {
		path := filepath.Join(dir, "s"+mode.String()[7:]+".sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	private := filepath.Join(public, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	owner := "owner " + ownerName(t, public)
	tests := []struct {
		path, want string
	}{
		{sock(public, 0o600), " is " + owner + ", mode 0600, so nobody may not write to it. "},
		{sock(public, 0o666), " is " + owner + ", mode 0666, so nobody may write to it. "},
		{sock(private, 0o666), "Now: nobody may not search the directory " + private + " (" + owner + ", mode 0700). "},
		{filepath.Join(public, "absent.sock"), "does not exist on this machine now.) "},
	}
	for _, tc := range tests {
		if got := accessFacts(tc.path, "nobody"); !strings.HasSuffix(got, tc.want) {
			t.Errorf("accessFacts(%s) = %q, want ...%q", tc.path, got, tc.want)
		}
	}
	if got := accessFacts(tests[0].path, "no-such-user-here"); got != "" {
		t.Errorf("unknown user: %q", got)
	}
	off := Options{}
	if got := off.accessFacts(tests[0].path, "nobody"); got != "" {
		t.Errorf("without CheckSockets: %q", got)
	}
}

// ownerName returns describeFile's "root, group root" part for path.
func ownerName(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	d := describeFile(fi)
	d = strings.TrimPrefix(d, "owner ")
	return d[:strings.Index(d, ", mode")]
}
