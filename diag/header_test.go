package diag

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAppendHeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		d      Diagnosis
		expose bool
		want   string
	}{
		{"refused", Diagnosis{Cause: ConnectionRefused, Errno: syscall.ECONNREFUSED, Elapsed: 3 * time.Millisecond},
			false, "connection_refused;errno=ECONNREFUSED;elapsed-ms=3"},
		{"header size", Diagnosis{Cause: HTTPResponseHeaderSectionSize, Elapsed: time.Millisecond, HeaderSectionSize: 71702, Limit: 4096},
			false, "http_response_header_section_size;elapsed-ms=1;header-section-size=71702;limit=4096"},
		{"breaker", Diagnosis{Cause: BreakerOpen, TrippedBy: ConnectionRefused, RetryIn: 4200 * time.Millisecond},
			false, "breaker_open;elapsed-ms=0;tripped-by=connection_refused;retry-in-ms=4200"},
		{"held", Diagnosis{Cause: SocketNotFound, Errno: syscall.ENOENT, Attempts: 51, Held: 5 * time.Second, Elapsed: 5 * time.Second},
			false, "socket_not_found;errno=ENOENT;elapsed-ms=5000;attempts=51;held-ms=5000"},
		{"remembered", Diagnosis{Cause: ConnectionRefused, Errno: syscall.ECONNREFUSED, Recalled: true},
			false, "connection_refused;errno=ECONNREFUSED;elapsed-ms=0;age-ms=0"},
		{"unhealthy, errno beside the probe's cause", Diagnosis{Cause: UpstreamUnhealthy, LastCause: SocketPermissionDenied, Errno: syscall.EACCES, RetryIn: 1840 * time.Millisecond},
			false, "upstream_unhealthy;elapsed-ms=0;last-cause=socket_permission_denied;errno=EACCES;retry-in-ms=1840"},
		{"unhealthy, last cause with no errno", Diagnosis{Cause: UpstreamUnhealthy, LastCause: HTTPResponseTimeout},
			false, "upstream_unhealthy;elapsed-ms=0;last-cause=http_response_timeout"},
		{"kill timer", Diagnosis{Cause: ConnectionTerminated, Elapsed: 30210 * time.Millisecond, Timer: 30 * time.Second, ClosedAt: 30208 * time.Millisecond, TimerPrior: 4},
			false, "connection_terminated;elapsed-ms=30210;timer-s=30"},
		{"upstream status", Diagnosis{Cause: UpstreamStatus, ReceivedStatus: 502},
			false, "upstream_status;received-status=502"},
		{"script not found", Diagnosis{Cause: ScriptNotFound, ReceivedStatus: 404, Elapsed: 3 * time.Millisecond},
			false, "script_not_found;received-status=404"},
		{"script access denied, exposed", Diagnosis{Cause: ScriptAccessDenied, ReceivedStatus: 403, Upstream: "fastcgi://unix:/run/php.sock"},
			true, "script_access_denied;received-status=403"},
		{"exposed", Diagnosis{Cause: ConnectionRefused, Upstream: `unix:/run/a "b".sock`},
			true, `connection_refused;elapsed-ms=0;upstream="unix:/run/a \"b\".sock";hint="` + strings.ReplaceAll(ConnectionRefused.Hint(), `"`, `\"`) + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(tc.d.AppendHeader(nil, tc.expose)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	for _, d := range []Diagnosis{{Cause: ScriptNotFound, ReceivedStatus: 404}, {Cause: ScriptAccessDenied, ReceivedStatus: 403}} {
		want := "upmedic;received-status=" + strconv.Itoa(d.ReceivedStatus)
		if got := string(d.AppendProxyStatus(nil, "upmedic")); got != want {
			t.Errorf("Proxy-Status for %s = %s, want %s (no error)", d.Cause, got, want)
		}
	}
	d := Diagnosis{Cause: HTTPResponseTimeout}
	if got := string(d.AppendProxyStatus(nil, "upmedic")); got != `upmedic;error=http_response_timeout;details="upstream sent no response header in time"` {
		t.Errorf("Proxy-Status = %s", got)
	}
}

func TestAppendStringEscapes(t *testing.T) {
	got := string(AppendString(nil, "a\"b\\c\r\nX-Injected: 1\x00é"))
	if got != `"a\"b\\c??X-Injected: 1???"` {
		t.Errorf("got %s", got)
	}
}

// FuzzAppendString: whatever reaches an sf-string can never end the header
// or start a new one, and reads back as what was sanitized.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", `"`, `\`, "a\r\nb", "unix:/run/app.sock", "é\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString(nil, s)
		if len(out) < 2 || out[0] != '"' || out[len(out)-1] != '"' {
			t.Fatalf("not quoted: %q", out)
		}
		var back []byte
		for i := 1; i < len(out)-1; i++ {
			c := out[i]
			if c < 0x20 || c >= 0x7f {
				t.Fatalf("byte %#x in %q", c, out)
			}
			if c == '"' {
				t.Fatalf("unescaped quote in %q", out)
			}
			if c == '\\' {
				i++
				if i >= len(out)-1 || (out[i] != '"' && out[i] != '\\') {
					t.Fatalf("bad escape in %q", out)
				}
				c = out[i]
			}
			back = append(back, c)
		}
		if len(back) != len(s) {
			t.Fatalf("read back %d bytes from %d", len(back), len(s))
		}
	})
}

func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{"upmedic": true, "*x": true, "edge-1.example:8080/a": true, "": false, "1abc": false, "a b": false, `a"`: false} {
		if IsToken(s) != want {
			t.Errorf("IsToken(%q) != %v", s, want)
		}
	}
}
