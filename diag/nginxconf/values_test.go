package nginxconf

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"60": 60 * time.Second, "60s": 60 * time.Second, "500ms": 500 * time.Millisecond, "2m": 2 * time.Minute,
		"1h30m": 90 * time.Minute, "1d": 24 * time.Hour, "1w": 7 * 24 * time.Hour, "1M": 30 * 24 * time.Hour,
		"1y": 365 * 24 * time.Hour, "1m30s": 90 * time.Second, "0": 0,
	} {
		if got, ok := parseTime(in); !ok || got != want {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "s", "1x", "-1s", "1.5s", "1 s", "9999999999s", "1000y"} {
		if got, ok := parseTime(in); ok {
			t.Errorf("parseTime(%q) = %v, true; want false", in, got)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"4096": 4096, "4k": 4096, "8K": 8192, "1m": 1 << 20, "2G": 2 << 30, "0": 0} {
		if got, ok := parseSize(in); !ok || got != want {
			t.Errorf("parseSize(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "k", "4kb", "-4k", "4.5k", "1234567890"} {
		if got, ok := parseSize(in); ok {
			t.Errorf("parseSize(%q) = %v, true; want false", in, got)
		}
	}
}

func TestFmt(t *testing.T) {
	for d, want := range map[time.Duration]string{60 * time.Second: "60s", 120 * time.Second: "120s", 5 * time.Minute: "5m",
		time.Hour: "1h", 1500 * time.Millisecond: "1500ms", 130 * time.Second: "130s"} {
		if got := fmtTime(d); got != want {
			t.Errorf("fmtTime(%v) = %q, want %q", d, got, want)
		}
		if back, ok := parseTime(fmtTime(d)); !ok || back != d {
			t.Errorf("parseTime(fmtTime(%v)) = %v", d, back)
		}
	}
	if fmtSize(8192) != "8k" || fmtSize(4097) != "4097" {
		t.Errorf("fmtSize: %s %s", fmtSize(8192), fmtSize(4097))
	}
}

func TestEndpoints(t *testing.T) {
	local := func(ip string) bool { return ip == "10.1.2.3" }
	tests := []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", "127.0.0.1:8081", false},
		{"localhost:8080", "127.0.0.1:8080", true},
		{"localhost:8080", "[::1]:8080", true},
		{"127.0.0.2:8080", "127.0.0.1:8080", false},
		{"[::1]:8080", "[0:0:0:0:0:0:0:1]:8080", true},
		{"0.0.0.0:8080", "127.0.0.1:8080", true},
		{"[::]:8080", "localhost:8080", true},
		{":8080", "10.1.2.3:8080", true},
		{"0.0.0.0:8080", "10.9.9.9:8080", false},
		{"0.0.0.0:8080", "app:8080", false},
		{"App:8000", "app:8000", true},
		{"unix:/run/a.sock", "unix:/run/./a.sock", true},
		{"unix:/run/a.sock", "unix:/run/b.sock", false},
		{"unix:/run/a.sock", "127.0.0.1:80", false},
	}
	for _, tc := range tests {
		a, okA := parseAddress(tc.a, "")
		b, okB := parseAddress(tc.b, "")
		if !okA || !okB {
			t.Fatalf("parseAddress(%q), (%q): %v %v", tc.a, tc.b, okA, okB)
		}
		if got := sameEndpoint(a, b, local); got != tc.want || sameEndpoint(b, a, local) != tc.want {
			t.Errorf("sameEndpoint(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	for in, want := range map[string]string{"app": "app:80", "9000": ":9000", "/run/php.sock": "unix:/run/php.sock", "[::1]": "[::1]:80"} {
		if e, ok := parseAddress(in, "80"); !ok || e.String() != want {
			t.Errorf("parseAddress(%q, 80) = %v, %v; want %s", in, e, ok, want)
		}
	}
	for _, in := range []string{"", "unix:", "$host:80", "a:b", "a:70000", "app"} {
		if e, ok := parseAddress(in, ""); ok {
			t.Errorf("parseAddress(%q) = %v, true", in, e)
		}
	}
	for in, want := range map[string]bool{"80": false, "*:80": false, "0.0.0.0:80": false, "127.0.0.1:80": true,
		"[::1]:80": true, "localhost:80": true, "unix:/run/n.sock": true, "10.0.0.1": false} {
		if got := isLoopbackListen(in); got != want {
			t.Errorf("isLoopbackListen(%q) = %v", in, got)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{
		"1.22.1": "1.22.1", "nginx version: nginx/1.22.1": "1.22.1", "nginx version: nginx/1.18.0 (Ubuntu)": "1.18.0",
		"nginx version: openresty/1.21.4.3": "1.21.4", "1.29": "1.29.0",
	} {
		if v, ok := parseVersion(in); !ok || v.String() != want {
			t.Errorf("parseVersion(%q) = %v, %v; want %s", in, v, ok, want)
		}
	}
	for _, in := range []string{"", "nginx", "1", "a.b.c"} {
		if _, ok := parseVersion(in); ok {
			t.Errorf("parseVersion(%q) ok", in)
		}
	}
	for in, want := range map[string]bool{"1.22.1": false, "1.29.6": false, "1.29.7": true, "1.30.0": true, "2.0.0": true} {
		v, _ := parseVersion(in)
		if v.atLeast(keepAliveRelease()) != want {
			t.Errorf("%s at least 1.29.7: %v", in, !want)
		}
	}
}

func TestVersionOfInstalledNginx(t *testing.T) {
	bin := findNginx()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but nginx is not installed")
		}
		t.Skip("skipped: nginx is not installed (apt-get install nginx)")
	}
	v, err := Version(t.Context(), bin)
	if _, ok := parseVersion(v); err != nil || !ok {
		t.Fatalf("Version(%s) = %q, %v", bin, v, err)
	}
	if _, err := Version(t.Context(), filepath.Join(t.TempDir(), "no-nginx")); err == nil {
		t.Error("no error for a missing binary")
	}
}

func TestReadPools(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"php-fpm.conf": "[global]\npid = /run/php/php-fpm.pid\ninclude=pool.d/*.conf\n",
		"pool.d/a.conf": "; comment\n[shop]\nlisten = /run/php/$pool.sock\nrequest_terminate_timeout = \"90\"\n" +
			"[tcp]\nlisten = 9001\nrequest_terminate_timeout = 1h ; an hour\n[nolisten]\nrequest_terminate_timeout = 5s\n",
	})
	pools := readPools([]string{filepath.Join(dir, "php-fpm.conf"), filepath.Join(dir, "missing", "*.conf")})
	if len(pools) != 2 {
		t.Fatalf("pools: %+v", pools)
	}
	if p := pools[0]; p.name != "shop" || p.listen.String() != "unix:/run/php/shop.sock" || p.timeout != 90*time.Second || p.line != 4 ||
		p.file != filepath.Join(dir, "pool.d/a.conf") {
		t.Errorf("shop: %+v", p)
	}
	if p := pools[1]; p.name != "tcp" || p.listen.String() != ":9001" || p.timeout != time.Hour {
		t.Errorf("tcp: %+v", p)
	}
}
