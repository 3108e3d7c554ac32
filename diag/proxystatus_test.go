package diag

import (
	"strings"
	"testing"
)

func TestFilterProxyStatus(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"upmedic; error=connection_refused", "", true},
		{`"upmedic"; error=connection_refused`, "", true},
		{"envoy; error=http_response_timeout, upmedic; error=connection_refused", "envoy; error=http_response_timeout", true},
		{"upmedic, upmedic;received-status=502, cdn;received-status=200", "cdn;received-status=200", true},
		{`cdn; details="a, upmedic; b", upmedic`, `cdn; details="a, upmedic; b"`, true},
		{"upmedicx, xupmedic, *upmedic", "upmedicx, xupmedic, *upmedic", true},
		{"(upmedic cdn);a=1, upmedic", "(upmedic cdn);a=1", true},
		{"a;n=-1.5;d=@1700000000;b=?1;y=:aGk=:;s=%\"caf%c3%a9\"", "a;n=-1.5;d=@1700000000;b=?1;y=:aGk=:;s=%\"caf%c3%a9\"", true},
		{"", "", true},
		{"   upmedic   ", "", true},
		{"upmedic,", "", false},
		{"upmedic;Error=x", "", false},
		{`upmedic;details="unterminated`, "", false},
		{"up medic", "", false},
		{"upmedic;error=connection_refused\x00", "", false},
		{"a,,b", "", false},
		{"1234567890123456", "", false},
	}
	for _, tt := range tests {
		out, ok := FilterProxyStatus(nil, []byte(tt.in), "upmedic")
		if ok != tt.ok || string(out) != tt.want {
			t.Errorf("FilterProxyStatus(%q) = %q, %v; want %q, %v", tt.in, out, ok, tt.want, tt.ok)
		}
	}
}

func TestFilterProxyStatusAllocs(t *testing.T) {
	dst := make([]byte, 0, 256)
	in := []byte("envoy; error=http_response_timeout, upmedic; error=connection_refused")
	if n := testing.AllocsPerRun(100, func() { dst, _ = FilterProxyStatus(dst[:0], in, "upmedic") }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// FuzzFilterProxyStatus checks that what the filter keeps is itself a valid
// list with no member of upmedic's name, and that filtering is idempotent.
func FuzzFilterProxyStatus(f *testing.F) {
	for _, s := range []string{"upmedic; error=connection_refused", `cdn; details="x, upmedic", upmedic`, "(a b);c, upmedic", "a;b=?1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := FilterProxyStatus(nil, []byte(in), "upmedic")
		if !ok {
			return
		}
		again, ok := FilterProxyStatus(nil, out, "upmedic")
		if !ok || string(again) != string(out) {
			t.Fatalf("filter(%q) = %q, which filters to %q, %v", in, out, again, ok)
		}
		if strings.HasPrefix(string(out), "upmedic") && (len(out) == 7 || strings.ContainsAny(string(out[7:8]), ";, ")) {
			t.Fatalf("filter(%q) kept upmedic's member: %q", in, out)
		}
	})
}
