//go:build !race

package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"

	"github.com/upmedic/upmedic/diag"
	"github.com/valyala/fasthttp"
)

// dialProxyTo starts a fasthttp upstream serving h and a proxy in front of
// it, both on real loopback sockets, and returns a client connection to the
// proxy.
func dialProxyTo(t *testing.T, h fasthttp.RequestHandler) net.Conn {
	t.Helper()
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: fasthttpUpstream(t, h), Logger: quietLogger(),
		Traffic: new(diag.Traffic)})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// allocPerRequest runs one exchange a few times and returns the bytes the
// whole process allocated per run.
func allocPerRequest(exchange func()) uint64 {
	exchange()
	var before, after runtime.MemStats
	const runs = 20
	runtime.ReadMemStats(&before)
	for range runs {
		exchange()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

// A request body of known length goes upstream through a pooled buffer:
// bufio.Writer.ReadFrom would hand it to net.TCPConn.ReadFrom, whose
// io.Copy allocates 32 KiB per request.
func TestZeroAllocsUpload(t *testing.T) {
	const size = 64 << 10
	c := dialProxyTo(t, func(ctx *fasthttp.RequestCtx) {
		if len(ctx.PostBody()) != size {
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
		}
	})
	br := bufio.NewReader(c)
	req := append([]byte(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n", size)), make([]byte, size)...)
	per := allocPerRequest(func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	// The client's http.ReadResponse allocates a few KiB; the 32 KiB copy
	// buffer would be far above this.
	if per > 16<<10 {
		t.Errorf("a 64 KiB upload allocated %d bytes in the process, want < 16 KiB", per)
	}
}

// A streamed body (larger than BufferBytes) goes downstream through one
// pooled buffer: fasthttp's fallback, io.Copy through net.TCPConn.ReadFrom,
// allocates 32 KiB per response. Real sockets on both sides, because that
// fallback only happens on a *net.TCPConn.
func TestZeroAllocsStreamedBody(t *testing.T) {
	const size = 1 << 20
	body := make([]byte, size)
	c := dialProxyTo(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBody(body) })
	br := bufio.NewReaderSize(c, 64<<10)
	buf := make([]byte, 64<<10)
	get := func() {
		if _, err := fmt.Fprint(c, "GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
		resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("read %d of %d bytes: %v", n, size, err)
		}
	}
	per := allocPerRequest(get)
	// The client's http.ReadResponse allocates a few KiB; the 32 KiB copy
	// buffer would be far above this.
	if per > 16<<10 {
		t.Errorf("a streamed 1 MiB response allocated %d bytes in the process, want < 16 KiB", per)
	}
}
