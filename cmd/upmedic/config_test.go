package main

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig([]string{"UPMEDIC_UPSTREAM=127.0.0.1:8000", "PATH=/bin", "UPMEDICX=ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.upstream != (address{"tcp", "127.0.0.1:8000"}) || cfg.listen != (address{"tcp", "127.0.0.1:8080"}) ||
		cfg.admin != (address{"tcp", "127.0.0.1:9901"}) {
		t.Errorf("addresses: %+v %+v %+v", cfg.upstream, cfg.listen, cfg.admin)
	}
	if cfg.ConnectTimeout != 2*time.Second || cfg.ResponseTimeout != 30*time.Second || cfg.ReadTimeout != 30*time.Second ||
		cfg.MaxResponseHeaderBytes != 4096 || cfg.BufferBytes != 131072 || cfg.MaxConns != 512 || cfg.Hold != 0 ||
		cfg.HealthPath != "" || cfg.HealthInterval != 2*time.Second || cfg.HealthTimeout != time.Second ||
		cfg.HealthRise != 2 || cfg.HealthFall != 3 || cfg.BreakerFailures != 5 || cfg.BreakerOpenFor != 10*time.Second ||
		cfg.ExposeDetails || cfg.Name != "upmedic" || cfg.LogFormat != "json" || cfg.ShutdownTimeout != 30*time.Second {
		t.Errorf("defaults differ from DESIGN.md: %+v", cfg)
	}
}

func TestConfigUpstreamForms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want address
	}{
		{"127.0.0.1:8000", address{"tcp", "127.0.0.1:8000"}},
		{"http://app:8000", address{"tcp", "app:8000"}},
		{"http://[::1]:8000/", address{"tcp", "[::1]:8000"}},
		{"unix:/run/app.sock", address{"unix", "/run/app.sock"}},
		{"http://unix:/run/app.sock", address{"unix", "/run/app.sock"}},
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
		{"bad bool", []string{"UPMEDIC_EXPOSE_DETAILS=yes please"}, []string{"UPMEDIC_EXPOSE_DETAILS", "true or false"}},
		{"unknown variable", []string{"UPMEDIC_CONECT_TIMEOUT=1s"}, []string{"UPMEDIC_CONECT_TIMEOUT", "unknown variable", "did you mean UPMEDIC_CONNECT_TIMEOUT"}},
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

// FuzzParseUpstream: any string gets an address or an error, never a panic,
// and an accepted address is one upmedic can dial.
func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8000", "http://app:8000/", "unix:/run/app.sock", "http://unix:/x", "https://a:1", "fastcgi://unix:/x", "[::1]:80", ":80", "unix:", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseUpstream(s)
		if err != nil {
			return
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
