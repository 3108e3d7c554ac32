package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// maxReasonBytes bounds how much of a /readyz body Check reads.
const maxReasonBytes = 512

// Check asks the admin API at addr whether upmedic is ready, for `upmedic
// check` (a Docker HEALTHCHECK in an image with no curl). addr is the admin
// API's listen address: "host:port" or "unix:/path/to.sock". A host that
// means all interfaces (0.0.0.0, [::] or none) is asked on loopback
// (127.0.0.1 or [::1]). It returns nil when GET /readyz answers 200.
// Otherwise its error's text is one line: for a 503, the reason /readyz gave
// ("upstream down: connection_refused"); for another status, the status and
// the body's first line; when the API could not be asked, "ask <address
// dialled>: <why>", naming no other address. ctx bounds the whole check:
// give it a deadline.
func Check(ctx context.Context, addr string) error {
	network, address, note := "tcp", dialAddress(addr), ""
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, address = "unix", path
	} else if address != addr {
		note = " (loopback: the admin API listens on all interfaces)"
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, address)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	// The host in the URL is only the Host header: the dialler above picks
	// the address.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost/readyz", nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		shown := addr
		if network == "tcp" {
			shown = address
		}
		return fmt.Errorf("ask %s%s: %w", shown, note, askError(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxReasonBytes))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	reason := firstLine(body)
	switch {
	case reason == "":
		return errors.New(resp.Status)
	case resp.StatusCode != http.StatusServiceUnavailable:
		// Not an answer /readyz gives: say what came back.
		return fmt.Errorf("%s: %s", resp.Status, reason)
	}
	return errors.New(reason)
}

// firstLine returns b's first line, trimmed, with any byte that is not
// printable ASCII replaced by '?', so it is safe to print on a terminal.
func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f {
			return '?'
		}
		return r
	}, line)
}

// dialAddress returns the address to dial for a TCP listen address: a host
// that means all interfaces becomes loopback of the same family.
func dialAddress(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		return net.JoinHostPort("127.0.0.1", port)
	case "::":
		return net.JoinHostPort("::1", port)
	}
	return addr
}

// askError strips from an http.Client error what names an address again
// ("Get \"http://localhost/readyz\": dial tcp 127.0.0.1:9901: "): the system
// call and its errno ("connect: connection refused"), or that no answer came
// in time.
func askError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return errors.New("no answer in time")
	}
	if se, ok := errors.AsType[*os.SyscallError](err); ok {
		return se
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
