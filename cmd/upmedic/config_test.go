package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig([]string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "PATH=/bin", "UPMEDICX=ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.upstream != (address{Network: "tcp", Address: "127.0.0.1:8000"}) || cfg.listen != (address{Network: "tcp", Address: "127.0.0.1:8080"}) ||
		cfg.admin != (address{Network: "tcp", Address: "127.0.0.1:9901"}) {
		t.Errorf("addresses: %+v %+v %+v", cfg.upstream, cfg.listen, cfg.admin)
	}
	if cfg.ConnectTimeout != 2*time.Second || cfg.ResponseTimeout != 45*time.Second || cfg.ReadTimeout != 30*time.Second ||
		cfg.MaxResponseHeaderBytes != 4096 || cfg.BufferBytes != 131072 || cfg.MaxConns != 512 || cfg.Hold != 0 ||
		cfg.HealthPath != "" || cfg.HealthInterval != 2*time.Second || cfg.HealthTimeout != time.Second ||
		cfg.HealthRise != 2 || cfg.HealthFall != 3 || cfg.BreakerFailures != 5 || cfg.BreakerOpenFor != 10*time.Second ||
		cfg.ExposeDetails || cfg.Name != "upmedic" || cfg.LogFormat != "json" || cfg.ShutdownTimeout != 30*time.Second ||
		cfg.listenMode != 0o660 {
		t.Errorf("defaults differ from DESIGN.md: %+v", cfg)
	}
}

func TestConfigUpstreamForms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want address
	}{
		{"127.0.0.1:8000", address{Network: "tcp", Address: "127.0.0.1:8000"}},
		{"http://app:8000", address{Network: "tcp", Address: "app:8000"}},
		{"http://[::1]:8000/", address{Network: "tcp", Address: "[::1]:8000"}},
		{"unix:/run/app.sock", address{Network: "unix", Address: "/run/app.sock"}},
		{"http://unix:/run/app.sock", address{Network: "unix", Address: "/run/app.sock"}},
	} {
		cfg, err := loadConfig([]string{"UPMEDIC_UPSTREAM=" + tc.in})
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if cfg.upstream != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.in, cfg.upstream, tc.want)
		}
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want []string // substrings of the one-line error
	}{
		{"missing upstream", nil, []string{"UPMEDIC_UPSTREAM is required", "unix:/path"}},
		{"bad duration", []string{"UPMEDIC_CONNECT_TIMEOUT=fast"}, []string{`UPMEDIC_CONNECT_TIMEOUT="fast"`, "duration", "500ms"}},
		{"negative duration", []string{"UPMEDIC_READ_TIMEOUT=-1s"}, []string{"UPMEDIC_READ_TIMEOUT", "positive"}},
		{"bad integer", []string{"UPMEDIC_MAX_CONNS=many"}, []string{`UPMEDIC_MAX_CONNS="many"`, "whole number"}},
		{"out of range", []string{"UPMEDIC_MAX_CONNS=0"}, []string{`UPMEDIC_MAX_CONNS="0"`, "from 1"}},
		{"negative health interval", []string{"UPMEDIC_HEALTH_INTERVAL=-2s"}, []string{"UPMEDIC_HEALTH_INTERVAL", "0 or a positive", "0 turns health checks off"}},
		{"negative breaker failures", []string{"UPMEDIC_BREAKER_FAILURES=-1"}, []string{`UPMEDIC_BREAKER_FAILURES="-1"`, "whole number"}},
		{"listen mode not octal", []string{"UPMEDIC_LISTEN_MODE=0668"}, []string{`UPMEDIC_LISTEN_MODE="0668"`, "octal", "0660"}},
		{"listen mode too wide", []string{"UPMEDIC_LISTEN_MODE=4755"}, []string{`UPMEDIC_LISTEN_MODE="4755"`, "0000 to 0777"}},
		{"listen mode symbolic", []string{"UPMEDIC_LISTEN_MODE=u+rw"}, []string{`UPMEDIC_LISTEN_MODE="u+rw"`, "octal"}},
		{"bad bool", []string{"UPMEDIC_EXPOSE_DETAILS=yes please"}, []string{"UPMEDIC_EXPOSE_DETAILS", "true or false"}},
		{"unknown variable", []string{"UPMEDIC_CONECT_TIMEOUT=1s"}, []string{"UPMEDIC_CONECT_TIMEOUT", "unknown variable", "did you mean UPMEDIC_CONNECT_TIMEOUT?"}},
		{"bad upstream", []string{"UPMEDIC_UPSTREAM=unix:run/app.sock"}, []string{`UPMEDIC_UPSTREAM="unix:run/app.sock"`, "absolute path"}},
		{"tls upstream", []string{"UPMEDIC_UPSTREAM=https://app:443"}, []string{"UPMEDIC_UPSTREAM", "TLS"}},
		{"bad port", []string{"UPMEDIC_UPSTREAM=app:99999"}, []string{"UPMEDIC_UPSTREAM", "1 to 65535"}},
		{"bad listen", []string{"UPMEDIC_LISTEN=8080"}, []string{`UPMEDIC_LISTEN="8080"`, "host:port"}},
		{"bad log format", []string{"UPMEDIC_LOG_FORMAT=xml"}, []string{"UPMEDIC_LOG_FORMAT", "json or text"}},
		{"bad name", []string{"UPMEDIC_NAME=my proxy"}, []string{"UPMEDIC_NAME", "token"}},
		{"bad health path", []string{"UPMEDIC_HEALTH_PATH=healthz"}, []string{"UPMEDIC_HEALTH_PATH", "start with /"}},
		{"health path with a space", []string{"UPMEDIC_HEALTH_PATH=/a b"}, []string{"UPMEDIC_HEALTH_PATH", "no spaces"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if tc.name != "missing upstream" && !strings.HasPrefix(strings.Join(env, ""), "UPMEDIC_UPSTREAM=") {
				env = append([]string{"UPMEDIC_UPSTREAM=127.0.0.1:8000"}, env...)
			}
			_, err := loadConfig(env)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is more than one line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			for _, field := range []string{"ConnectTimeout", "MaxConns", "ExposeDetails", "ReadTimeout"} {
				if strings.Contains(msg, field) {
					t.Errorf("error %q names the Go field %s", msg, field)
				}
			}
		})
	}
}

func TestConfigEmptyAdminListenDisables(t *testing.T) {
	cfg, err := loadConfig([]string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "UPMEDIC_ADMIN_LISTEN="})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.admin.Network != "" {
		t.Errorf("admin = %+v, want disabled", cfg.admin)
	}
}

// 0 turns health checks and the breaker off; the other values stay.
func TestConfigZeroTurnsOff(t *testing.T) {
	cfg, err := loadConfig([]string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "UPMEDIC_HEALTH_INTERVAL=0", "UPMEDIC_BREAKER_FAILURES=0"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HealthInterval != 0 || cfg.BreakerFailures != 0 {
		t.Errorf("interval %v, failures %d; want 0 and 0", cfg.HealthInterval, cfg.BreakerFailures)
	}
}

func TestConfigListenMode(t *testing.T) {
	for in, want := range map[string]os.FileMode{"0660": 0o660, "660": 0o660, "0o600": 0o600, "0666": 0o666, "0": 0, "0000": 0, "777": 0o777} {
		cfg, err := loadConfig([]string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "UPMEDIC_LISTEN_MODE=" + in})
		if err != nil || cfg.listenMode != want {
			t.Errorf("UPMEDIC_LISTEN_MODE=%s: %v %#o, want %#o", in, err, cfgMode(cfg), want)
		}
	}
}

func cfgMode(c *Config) os.FileMode {
	if c == nil {
		return 0
	}
	return c.listenMode
}

// Every unknown variable is named at once, sorted, one line each, each with
// its own suggestion (or none when nothing is close).
func TestConfigUnknownVariables(t *testing.T) {
	_, err := loadConfig([]string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "UPMEDIC_UPSTREAM_TIMEOUT=5s", "UPMEDIC_FOO=1", "UPMEDIC_HEALTHPATH=/h", "UPMEDIC_LISTEN_PORT=80"})
	want := strings.Join([]string{
		`UPMEDIC_FOO="1": unknown variable; ` + "`upmedic env`" + ` lists the accepted ones`,
		`UPMEDIC_HEALTHPATH="/h": unknown variable; ` + "`upmedic env`" + ` lists the accepted ones; did you mean UPMEDIC_HEALTH_PATH?`,
		`UPMEDIC_LISTEN_PORT="80": unknown variable; ` + "`upmedic env`" + ` lists the accepted ones; did you mean UPMEDIC_LISTEN or UPMEDIC_LISTEN_MODE?`,
		`UPMEDIC_UPSTREAM_TIMEOUT="5s": unknown variable; ` + "`upmedic env`" + ` lists the accepted ones; did you mean UPMEDIC_CONNECT_TIMEOUT, UPMEDIC_RESPONSE_TIMEOUT, UPMEDIC_READ_TIMEOUT, UPMEDIC_CLIENT_HEADER_TIMEOUT, UPMEDIC_CLIENT_BODY_TIMEOUT, UPMEDIC_CLIENT_SEND_TIMEOUT, UPMEDIC_HEALTH_TIMEOUT or UPMEDIC_SHUTDOWN_TIMEOUT?`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Var != "UPMEDIC_FOO" {
		t.Errorf("errors.As gives %+v, want the first ConfigError", ce)
	}
}

// FuzzParseUpstream: any string gets an address or an error, never a panic,
// and an accepted address is one upmedic can dial.
func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8000", "http://app:8000/", "unix:/run/app.sock", "http://unix:/x", "https://a:1", "fastcgi://unix:/x", "[::1]:80", ":80", "unix:", "",
		"fastcgi://127.0.0.1:9000", "fastcgi://[::1]:9000/", "fastcgi://unix:/x//", "fastcgi://", "fastcgi://http://a:1", "http://fastcgi://a:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseUpstream(s)
		if err != nil {
			return
		}
		// What /status and the log show parses back to the same upstream.
		if back, err := parseUpstream(a.String()); err != nil || back != a {
			t.Errorf("%q: %+v shows as %q, which parses to %+v, %v", s, a, a.String(), back, err)
		}
		switch a.Network {
		case "unix":
			if !strings.HasPrefix(a.Address, "/") {
				t.Errorf("%q: unix address %q is not absolute", s, a.Address)
			}
		case "tcp":
			if _, _, err := net.SplitHostPort(a.Address); err != nil {
				t.Errorf("%q: tcp address %q: %v", s, a.Address, err)
			}
		default:
			t.Errorf("%q: network %q", s, a.Network)
		}
	})
}

// FuzzParseMode: any string gets a mode or an error, never a panic; an
// accepted mode holds permission bits only and reads back the same in the
// form `upmedic env` shows.
func FuzzParseMode(f *testing.F) {
	for _, s := range []string{"0660", "660", "0o600", "0", "0777", "01777", "0668", "-660", "+660", "0x1b6", "6_60", " 0660", "u+rw", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMode(s)
		if err != nil {
			return
		}
		if m&^os.ModePerm != 0 {
			t.Fatalf("%q: mode %v has bits beyond the permissions", s, m)
		}
		if back, err := parseMode(fmt.Sprintf("%04o", uint32(m))); err != nil || back != m {
			t.Fatalf("%q: %#o reads back as %#o, %v", s, m, back, err)
		}
	})
}

func TestConfigFastCGIUpstreamForms(t *testing.T) {
	for _, tc := range []struct {
		in, show string
		want     address
	}{
		{"fastcgi://unix:/run/php/php8.2-fpm.sock", "fastcgi://unix:/run/php/php8.2-fpm.sock", address{Network: "unix", Address: "/run/php/php8.2-fpm.sock", FastCGI: true}},
		{"fastcgi://127.0.0.1:9000", "fastcgi://127.0.0.1:9000", address{Network: "tcp", Address: "127.0.0.1:9000", FastCGI: true}},
		{"fastcgi://[::1]:9000/", "fastcgi://[::1]:9000", address{Network: "tcp", Address: "[::1]:9000", FastCGI: true}},
		{"fastcgi://php:9000", "fastcgi://php:9000", address{Network: "tcp", Address: "php:9000", FastCGI: true}},
	} {
		cfg, err := loadConfig([]string{"UPMEDIC_UPSTREAM=" + tc.in, "UPMEDIC_FASTCGI_ROOT=/var/www/html"})
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if cfg.upstream != tc.want || cfg.upstream.String() != tc.show {
			t.Errorf("%s: got %+v %q, want %+v %q", tc.in, cfg.upstream, cfg.upstream.String(), tc.want, tc.show)
		}
		f := cfg.fastCGI()
		if f == nil || f.Root != "/var/www/html" || f.Index != "index.php" || f.FrontController != "/index.php" || f.Pool != nil {
			t.Errorf("%s: proxy settings %+v", tc.in, f)
		}
	}
	cfg, err := loadConfig([]string{"UPMEDIC_UPSTREAM=127.0.0.1:8000"})
	if err != nil || cfg.fastCGI() != nil || cfg.upstream.String() != "127.0.0.1:8000" {
		t.Errorf("an HTTP upstream: %v %+v", err, cfg)
	}
}

func TestConfigFastCGISettings(t *testing.T) {
	base := []string{"UPMEDIC_UPSTREAM=fastcgi://127.0.0.1:9000", "UPMEDIC_FASTCGI_ROOT=/srv/app/public"}
	for _, tc := range []struct {
		name   string
		env    []string
		front  string
		status address
		nets   []string
	}{
		{"front controller off", []string{"UPMEDIC_FASTCGI_FRONT_CONTROLLER=off"}, "", address{}, nil},
		{"front controller set empty", []string{"UPMEDIC_FASTCGI_FRONT_CONTROLLER="}, "", address{}, nil},
		{"front controller", []string{"UPMEDIC_FASTCGI_FRONT_CONTROLLER=/app.php"}, "/app.php", address{}, nil},
		{"status on its own socket", []string{"UPMEDIC_FASTCGI_STATUS_PATH=/fpm-status", "UPMEDIC_FASTCGI_STATUS_UPSTREAM=unix:/run/php/status.sock"},
			"/index.php", address{Network: "unix", Address: "/run/php/status.sock", FastCGI: true}, nil},
		{"status on tcp", []string{"UPMEDIC_FASTCGI_STATUS_PATH=/fpm-status", "UPMEDIC_FASTCGI_STATUS_UPSTREAM=127.0.0.1:9001"},
			"/index.php", address{Network: "tcp", Address: "127.0.0.1:9001", FastCGI: true}, nil},
		{"trusted", []string{"UPMEDIC_TRUSTED_PROXIES=10.0.0.0/8, 192.0.2.7,2001:db8::/32"}, "/index.php", address{},
			[]string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(append(slices.Clone(base), tc.env...))
			if err != nil {
				t.Fatal(err)
			}
			f := cfg.fastCGI()
			if f.FrontController != tc.front || cfg.status != tc.status {
				t.Errorf("front %q status %+v, want %q %+v", f.FrontController, cfg.status, tc.front, tc.status)
			}
			var nets []string
			for _, p := range f.Trusted {
				nets = append(nets, p.String())
			}
			if !slices.Equal(nets, tc.nets) {
				t.Errorf("trusted %v, want %v", nets, tc.nets)
			}
		})
	}
}

func TestConfigFastCGIErrorsNameTheVariable(t *testing.T) {
	fcgi := "UPMEDIC_UPSTREAM=fastcgi://unix:/run/php/php8.2-fpm.sock"
	root := "UPMEDIC_FASTCGI_ROOT=/var/www/html"
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"root missing", []string{fcgi}, []string{"UPMEDIC_FASTCGI_ROOT is required with a fastcgi upstream"}},
		{"root relative", []string{fcgi, "UPMEDIC_FASTCGI_ROOT=www"}, []string{`UPMEDIC_FASTCGI_ROOT="www"`, "absolute"}},
		{"root not clean", []string{fcgi, "UPMEDIC_FASTCGI_ROOT=/var/../www"}, []string{`UPMEDIC_FASTCGI_ROOT="/var/../www"`}},
		{"index not php", []string{fcgi, root, "UPMEDIC_FASTCGI_INDEX=index.html"}, []string{`UPMEDIC_FASTCGI_INDEX="index.html"`, ".php"}},
		{"front not php", []string{fcgi, root, "UPMEDIC_FASTCGI_FRONT_CONTROLLER=/index.html"}, []string{`UPMEDIC_FASTCGI_FRONT_CONTROLLER="/index.html"`, ".php"}},
		{"status path relative", []string{fcgi, root, "UPMEDIC_FASTCGI_STATUS_PATH=status"}, []string{`UPMEDIC_FASTCGI_STATUS_PATH="status"`, "pm.status_path"}},
		{"status path with query", []string{fcgi, root, "UPMEDIC_FASTCGI_STATUS_PATH=/status?json"}, []string{"UPMEDIC_FASTCGI_STATUS_PATH", "no query"}},
		{"status path without health checks", []string{fcgi, root, "UPMEDIC_FASTCGI_STATUS_PATH=/s", "UPMEDIC_HEALTH_INTERVAL=0"}, []string{"UPMEDIC_FASTCGI_STATUS_PATH", "UPMEDIC_HEALTH_INTERVAL=0"}},
		{"status upstream without path", []string{fcgi, root, "UPMEDIC_FASTCGI_STATUS_UPSTREAM=127.0.0.1:9001"}, []string{"UPMEDIC_FASTCGI_STATUS_UPSTREAM", "needs UPMEDIC_FASTCGI_STATUS_PATH"}},
		{"status upstream bad", []string{fcgi, root, "UPMEDIC_FASTCGI_STATUS_PATH=/s", "UPMEDIC_FASTCGI_STATUS_UPSTREAM=9001"}, []string{`UPMEDIC_FASTCGI_STATUS_UPSTREAM="9001"`, "pm.status_listen"}},
		{"fastcgi upstream bad", []string{"UPMEDIC_UPSTREAM=fastcgi://unix:php.sock", root}, []string{"UPMEDIC_UPSTREAM", "absolute path"}},
		{"fastcgi upstream no port", []string{"UPMEDIC_UPSTREAM=fastcgi://127.0.0.1", root}, []string{"UPMEDIC_UPSTREAM", "fastcgi://127.0.0.1:9000"}},
		{"trusted bad", []string{fcgi, root, "UPMEDIC_TRUSTED_PROXIES=10.0.0.0/8,nginx"}, []string{`UPMEDIC_TRUSTED_PROXIES="10.0.0.0/8,nginx"`, `"nginx" is neither`}},
		{"root with http", []string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", root}, []string{"UPMEDIC_FASTCGI_ROOT", "fastcgi upstream only"}},
		{"index with http", []string{"UPMEDIC_UPSTREAM=unix:/run/app.sock", "UPMEDIC_FASTCGI_INDEX=main.php"}, []string{"UPMEDIC_FASTCGI_INDEX", "fastcgi upstream only"}},
		{"front off with http", []string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "UPMEDIC_FASTCGI_FRONT_CONTROLLER=off"}, []string{"UPMEDIC_FASTCGI_FRONT_CONTROLLER", "fastcgi upstream only"}},
		{"status path with http", []string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "UPMEDIC_FASTCGI_STATUS_PATH=/fpm-status"}, []string{"UPMEDIC_FASTCGI_STATUS_PATH", "fastcgi upstream only"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.env)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || strings.Contains(msg, "FastCGIRoot") {
				t.Errorf("error %q: more than one line or names a Go field", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}
