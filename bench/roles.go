package main

// The helper processes the benchmark starts by re-running its own binary
// with a role name: the upstream, two Go proxies that are contenders, and
// two clients (idle connections, one long download). Each role is bounded
// in time and exits on its own when its parent goes away.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// roles maps a role name (os.Args[1]) to its main.
var roles = map[string]func(args []string) error{
	"role-upstream": roleUpstream,
	"role-httputil": roleHTTPUtil,
	"role-fasthttp": roleFastHTTP,
	"role-epoll":    roleEpoll,
	"role-idle":     roleIdle,
	"role-get":      roleGet,
}

const (
	smallBytes  = 100
	largeBytes  = 1 << 20
	uploadBytes = 64 << 10
)

// roleUpstream is the app: a fasthttp server answering
//
//	GET  /small       100 bytes
//	GET  /1m          1 MiB
//	GET  /stream?n=N  N bytes (streamed from a 1 MiB block)
//	POST /upload      reads the body, answers 100 bytes
//
// args: listen address.
func roleUpstream(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: role-upstream ADDR")
	}
	small := bytes.Repeat([]byte("s"), smallBytes)
	large := bytes.Repeat([]byte("L"), largeBytes)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain")
			switch string(ctx.Path()) {
			case "/small", "/upload":
				ctx.SetBody(small)
			case "/1m":
				ctx.SetBody(large)
			case "/stream":
				n, err := strconv.ParseInt(string(ctx.QueryArgs().Peek("n")), 10, 64)
				if err != nil || n < 0 {
					ctx.Error("bad n\n", fasthttp.StatusBadRequest)
					return
				}
				ctx.SetBodyStream(&repeatReader{block: large, left: n}, int(n))
			default:
				ctx.Error("not found\n", fasthttp.StatusNotFound)
			}
		},
		Name:                  "bench-upstream",
		NoDefaultDate:         false,
		ReadBufferSize:        16 << 10,
		MaxRequestBodySize:    4 << 20,
		IdleTimeout:           120 * time.Second,
		NoDefaultServerHeader: false,
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	go exitWithParent()
	return srv.Serve(ln)
}

// repeatReader yields left bytes copied from block, writing whole blocks
// when the copy goes through WriteTo.
type repeatReader struct {
	block []byte
	left  int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(int64(len(p)), r.left)], r.block)
	r.left -= int64(n)
	return n, nil
}

func (r *repeatReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.left > 0 {
		n, err := w.Write(r.block[:min(int64(len(r.block)), r.left)])
		total += int64(n)
		r.left -= int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// roleHTTPUtil is the standard library's reverse proxy: net/http's server
// and httputil.ReverseProxy, with an idle pool large enough for the load.
// args: listen address, upstream address.
func roleHTTPUtil(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: role-httputil LISTEN UPSTREAM")
	}
	target := &url.URL{Scheme: "http", Host: args[1]}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     75 * time.Second,
			DisableCompression:  true,
		},
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	go exitWithParent()
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 75 * time.Second}
	return srv.Serve(ln)
}

// roleFastHTTP is the floor: the least a fasthttp proxy can do, a server
// whose handler hands the request to a HostClient and the response back,
// streaming response bodies so that 1 GiB does not sit in memory.
// args: listen address, upstream address.
func roleFastHTTP(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: role-fasthttp LISTEN UPSTREAM")
	}
	hc := &fasthttp.HostClient{
		Addr:                          args[1],
		MaxConns:                      512,
		MaxIdleConnDuration:           75 * time.Second,
		ReadTimeout:                   30 * time.Second,
		StreamResponseBody:            true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Request.Header.Del(fasthttp.HeaderConnection)
			if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Response.Reset()
				ctx.Error("502 Bad Gateway\n", fasthttp.StatusBadGateway)
				return
			}
			ctx.Response.Header.Del(fasthttp.HeaderConnection)
		},
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		IdleTimeout:           75 * time.Second,
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	go exitWithParent()
	return srv.Serve(ln)
}

// roleIdle opens N keep-alive connections to ADDR, sends one GET PATH on
// each and reads the answer, prints "READY opened=N failed=F", then holds
// them open until its stdin closes or HOLD passes.
// args: address, N, path, hold.
func roleIdle(args []string) error {
	if len(args) != 4 {
		return errors.New("usage: role-idle ADDR N PATH HOLD")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n <= 0 || n > 50000 {
		return fmt.Errorf("bad N %q", args[1])
	}
	hold, err := time.ParseDuration(args[3])
	if err != nil {
		return err
	}
	req := []byte("GET " + args[2] + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench-idle\r\n\r\n")
	conns := make([]net.Conn, n)
	var failed int
	var mu sync.Mutex // guards failed
	var wg sync.WaitGroup
	next := make(chan int)
	deadline := time.Now().Add(60 * time.Second)
	for range 32 {
		wg.Go(func() {
			br := bufio.NewReaderSize(nil, 4096)
			for i := range next {
				c, err := openOne(args[0], req, br, deadline)
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	fmt.Printf("READY opened=%d failed=%d\n", n-failed, failed)
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(hold):
	}
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
	return nil
}

func openOne(addr string, req []byte, br *bufio.Reader, deadline time.Time) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	br.Reset(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || resp.Close || br.Buffered() > 0 {
		c.Close()
		return nil, fmt.Errorf("status %d close %v: %v", resp.StatusCode, resp.Close, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// roleGet downloads URL once, discarding the body, and prints
// "GOT status=S bytes=N secs=T". args: URL, timeout.
func roleGet(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: role-get URL TIMEOUT")
	}
	timeout, err := time.ParseDuration(args[1])
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableCompression: true, Proxy: nil}}
	start := time.Now()
	resp, err := c.Get(args[0])
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
	fmt.Printf("GOT status=%d bytes=%d secs=%.3f\n", resp.StatusCode, n, time.Since(start).Seconds())
	return err
}

// exitWithParent ends a long-running role once the benchmark that started it
// is gone (its parent changes), so an interrupted run leaves nothing behind
// even where Pdeathsig did not fire.
func exitWithParent() {
	ppid := os.Getppid()
	for {
		time.Sleep(time.Second)
		if os.Getppid() != ppid {
			os.Exit(3)
		}
	}
}
