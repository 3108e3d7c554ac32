package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/proxy"
)

// demoCase is one misbehaving upstream the demo puts a sidecar in front of.
type demoCase struct {
	failure string
	// start returns the upstream's network and address; stop is called when
	// the demo ends.
	start func(dir string, stop <-chan struct{}) (network, address string, err error)
	tune  func(*proxy.Settings)
}

// demo starts in-process misbehaving upstreams with a sidecar in front of
// each, sends one request per failure and prints what upmedic answered.
func demo(stdout, stderr io.Writer) int {
	dir, err := os.MkdirTemp("", "upmedic-demo-")
	if err != nil {
		fmt.Fprintln(stderr, "upmedic demo:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	stop := make(chan struct{})
	defer close(stop)

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAILURE\tSTATUS\tX-UPSTREAM-DIAGNOSIS\tHINT")
	for _, c := range demoCases() {
		status, diagnosis, hint := runDemoCase(c, dir, stop)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.failure, status, diagnosis, hint)
	}
	if err := tw.Flush(); err != nil {
		return 1
	}
	fmt.Fprintln(stdout, "\nnginx logs these with $upstream_http_x_upstream_diagnosis; see README.md.")
	return 0
}

// runDemoCase starts one upstream and sidecar and sends one request.
func runDemoCase(c demoCase, dir string, stop <-chan struct{}) (status, diagnosis, hint string) {
	network, address, err := c.start(dir, stop)
	if err != nil {
		return "-", "(could not start: " + err.Error() + ")", ""
	}
	s := proxy.Settings{
		Network: network, Address: address,
		ConnectTimeout: 300 * time.Millisecond, ResponseTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if c.tune != nil {
		c.tune(&s)
	}
	p := proxy.New(s)
	defer p.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "-", "(could not listen: " + err.Error() + ")", ""
	}
	srv := p.Server()
	go srv.Serve(ln)
	defer srv.Shutdown()

	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		return "-", "(request failed: " + err.Error() + ")", ""
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	diagnosis = resp.Header.Get(diag.HeaderDiagnosis)
	if cause, ok := diag.ParseCause(strings.SplitN(diagnosis, ";", 2)[0]); ok && cause != diag.UpstreamStatus {
		hint = firstSentence(cause.Hint())
	}
	if diagnosis == "" {
		diagnosis = "(none: the app's own answer)"
	}
	return fmt.Sprint(resp.StatusCode), diagnosis, hint
}

func firstSentence(s string) string {
	if i := strings.IndexAny(s, ":."); i > 0 {
		return s[:i]
	}
	return s
}

// demoCases lists the failures the demo shows, one real socket-level fault
// each.
func demoCases() []demoCase {
	answer := func(resp string) func(string, <-chan struct{}) (string, string, error) {
		return serveTCP(func(c net.Conn, stop <-chan struct{}) {
			if readRequest(c) {
				io.WriteString(c, resp)
			}
		})
	}
	stall := func(resp string) func(string, <-chan struct{}) (string, string, error) {
		return serveTCP(func(c net.Conn, stop <-chan struct{}) {
			if readRequest(c) {
				io.WriteString(c, resp)
				<-stop
			}
		})
	}
	return []demoCase{
		{failure: "healthy app", start: answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")},
		{failure: "app not running (TCP)", start: func(string, <-chan struct{}) (string, string, error) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return "", "", err
			}
			ln.Close()
			return "tcp", ln.Addr().String(), nil
		}},
		{failure: "socket path missing", start: func(dir string, _ <-chan struct{}) (string, string, error) {
			return "unix", filepath.Join(dir, "missing.sock"), nil
		}},
		{failure: "stale socket (app died)", start: func(dir string, _ <-chan struct{}) (string, string, error) {
			path := filepath.Join(dir, "stale.sock")
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				return "", "", err
			}
			ln.SetUnlinkOnClose(false)
			ln.Close()
			return "unix", path, nil
		}},
		{failure: "app crashed mid-request", start: serveTCP(func(c net.Conn, _ <-chan struct{}) { readRequest(c) })},
		{failure: "connection reset", start: serveTCP(func(c net.Conn, _ <-chan struct{}) {
			if readRequest(c) {
				c.(*net.TCPConn).SetLinger(0)
			}
		})},
		{failure: "70 KiB Set-Cookie", start: answer("HTTP/1.1 200 OK\r\nSet-Cookie: s=" + strings.Repeat("x", 70<<10) + "\r\nContent-Length: 2\r\n\r\nok")},
		{failure: "slow app (no header in time)", start: stall("")},
		{failure: "not HTTP (php-fpm port?)", start: answer("\x01\x06\x00\x01\x00\x08\x00\x00garbage!")},
		{failure: "body shorter than announced", start: answer("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")},
		{failure: "body stalls", start: stall("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")},
		{failure: "connect never completes", start: blackhole},
		{failure: "the app's own 502", start: answer("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\napp")},
	}
}

// serveTCP starts a loopback listener that hands each connection to fn.
func serveTCP(fn func(c net.Conn, stop <-chan struct{})) func(string, <-chan struct{}) (string, string, error) {
	return func(_ string, stop <-chan struct{}) (string, string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", err
		}
		var once sync.Once
		go func() {
			<-stop
			once.Do(func() { ln.Close() })
		}()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					fn(c, stop)
				}()
			}
		}()
		return "tcp", ln.Addr().String(), nil
	}
}

// readRequest reads one request header and reports whether it could.
func readRequest(c net.Conn) bool {
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if line == "\r\n" || line == "\n" {
			return true
		}
	}
}

// blackhole returns a loopback address whose connects never finish: a
// listener with backlog 0 whose accept queue one unaccepted connection fills.
func blackhole(_ string, stop <-chan struct{}) (string, string, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", "", err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return "", "", err
	}
	if err := syscall.Listen(fd, 0); err != nil {
		syscall.Close(fd)
		return "", "", err
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	var fillers []net.Conn
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			break
		}
		fillers = append(fillers, c)
	}
	go func() {
		<-stop
		for _, c := range fillers {
			c.Close()
		}
		syscall.Close(fd)
	}()
	return "tcp", addr, nil
}
