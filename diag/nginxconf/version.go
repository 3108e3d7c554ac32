package nginxconf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// version is an nginx release, major.minor.patch.
type version [3]int

// keepAliveRelease is the first nginx release that talks HTTP/1.1 with
// keep-alive to upstreams by default: proxy_http_version 1.1, no
// "Connection: close", and keepalive in every upstream block (mainline
// 1.29.7, March 2026; stable from 1.30.0). Before it, the defaults are
// proxy_http_version 1.0 and "Connection: close".
func keepAliveRelease() version { return version{1, 29, 7} }

// parseVersion reads "1.22.1", or the version in nginx -v's output
// ("nginx version: nginx/1.22.1 (Debian)", "openresty/1.21.4.3").
func parseVersion(s string) (version, bool) {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
	}
	s, _, _ = strings.Cut(strings.TrimSpace(s), " ")
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return version{}, false
	}
	var v version
	for i := 0; i < 3 && i < len(parts); i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 || n > 9999 {
			return version{}, false
		}
		v[i] = n
	}
	return v, true
}

func (v version) atLeast(o version) bool {
	for i := range v {
		if v[i] != o[i] {
			return v[i] > o[i]
		}
	}
	return true
}

func (v version) String() string {
	return strconv.Itoa(v[0]) + "." + strconv.Itoa(v[1]) + "." + strconv.Itoa(v[2])
}

// Version runs nginx -v with the nginx binary bin and returns the version
// it prints ("1.22.1").
func Version(ctx context.Context, bin string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-v")
	cmd.Stdout, cmd.Stderr = &out, &out // nginx -v writes to stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("run %s -v: %w", bin, err)
	}
	first, _, _ := strings.Cut(out.String(), "\n")
	v, ok := parseVersion(first)
	if !ok {
		return "", errors.New("nginxconf: no version in " + strconv.Quote(first))
	}
	return v.String(), nil
}
