//go:build !race

package proxy

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/health"
	"github.com/upmedic/upmedic/internal/sockfault"
	"github.com/valyala/fasthttp"
)

// The hot paths allocate nothing per request (the race detector allocates,
// hence the build tag).
func TestZeroAllocs(t *testing.T) {
	t.Run("proxied GET with breaker", func(t *testing.T) {
		p := New(Settings{Network: "tcp", Address: fastUpstream(t), Logger: quietLogger(),
			Journal: new(diag.Journal), Traffic: new(diag.Traffic),
			Breaker: health.NewBreaker(health.BreakerSettings{Logger: quietLogger()})})
		defer p.Close()
		ctx := newCtx()
		serveOnce(t, p, ctx, 200)
		if n := testing.AllocsPerRun(500, func() { serveOnce(t, p, ctx, 200) }); n != 0 {
			t.Errorf("proxied GET: %v allocs per request, want 0", n)
		}
	})
	t.Run("FastCGI GET", func(t *testing.T) {
		p := New(Settings{Network: "tcp", Address: fastFastCGIUpstream(t), Logger: quietLogger(),
			Journal: new(diag.Journal), Traffic: new(diag.Traffic),
			Breaker: health.NewBreaker(health.BreakerSettings{Logger: quietLogger()}),
			FastCGI: &FastCGI{Root: "/var/www/app", FrontController: "/index.php"}})
		defer p.Close()
		ctx := newCtx()
		serveOnce(t, p, ctx, 200)
		if got := string(ctx.Response.Body()); len(got) != 100 || got[:3] != "abc" {
			t.Fatalf("body %q", got)
		}
		if n := testing.AllocsPerRun(500, func() { serveOnce(t, p, ctx, 200) }); n != 0 {
			t.Errorf("FastCGI GET: %v allocs per request, want 0", n)
		}
		if opened := p.traffic.OpenConns(); opened != 1 {
			t.Errorf("%d upstream connections open, want the one kept", opened)
		}
	})
	t.Run("app's own 502, labelled and journalled", func(t *testing.T) {
		journal := new(diag.Journal)
		addr := fasthttpUpstream(t, func(ctx *fasthttp.RequestCtx) {
			ctx.SetStatusCode(fasthttp.StatusBadGateway)
			ctx.SetBodyString("app 502")
		})
		p := New(Settings{Network: "tcp", Address: addr, Logger: quietLogger(),
			Journal: journal, Traffic: new(diag.Traffic),
			Breaker: health.NewBreaker(health.BreakerSettings{Logger: quietLogger()})})
		defer p.Close()
		ctx := newCtx()
		serveOnce(t, p, ctx, fasthttp.StatusBadGateway)
		if n := testing.AllocsPerRun(500, func() { serveOnce(t, p, ctx, fasthttp.StatusBadGateway) }); n != 0 {
			t.Errorf("app's own 502: %v allocs per request, want 0", n)
		}
		if journal.Count(diag.UpstreamStatus) < 500 {
			t.Errorf("journal counted %d upstream_status, want every request", journal.Count(diag.UpstreamStatus))
		}
	})
	t.Run("proxied GET, idle limit learned", func(t *testing.T) {
		p := New(Settings{Network: "tcp", Address: fastUpstream(t), Logger: quietLogger(),
			Journal: new(diag.Journal), Traffic: new(diag.Traffic)})
		defer p.Close()
		for range 3 {
			p.pool.idles.died(time.Hour, time.Now())
		}
		ctx := newCtx()
		serveOnce(t, p, ctx, 200)
		if n := testing.AllocsPerRun(500, func() { serveOnce(t, p, ctx, 200) }); n != 0 {
			t.Errorf("proxied GET with a learned idle limit: %v allocs per request, want 0", n)
		}
		if p.AppTimers().IdleLimit.Limit != time.Hour {
			t.Error("no idle limit learned")
		}
	})
	t.Run("timer-matched 502", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", closeAfterRequest)
		p := New(Settings{Network: "tcp", Address: up.address(), Logger: quietLogger(), Journal: new(diag.Journal)})
		c, err := p.pool.get(time.Now(), false)
		if err != nil {
			t.Fatal(err)
		}
		defer p.pool.close(c)
		_, _ = c.bw.WriteString("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if err := c.bw.Flush(); err != nil {
			t.Fatal(err)
		}
		_, err = c.br.Peek(1) // the app closes without a byte
		x := p.exchanges.Get().(*exchange)
		x.ctx, x.start = newCtx(), time.Now()
		kill := func() {
			x.ctx.Response.Reset()
			x.attempts, x.sent = 1, time.Now().Add(-30*time.Second) // as if written 30 s ago
			x.failed(diag.PhaseHeader, err, c)
			p.answer(x)
		}
		for range 3 {
			kill()
		}
		if got := string(x.ctx.Response.Header.Peek(diag.HeaderDiagnosis)); !strings.Contains(got, ";timer-s=30") {
			t.Fatalf("diagnosis %q, want timer-s=30 at the third close", got)
		}
		if n := testing.AllocsPerRun(500, kill); n != 0 {
			t.Errorf("diagnosis of a close at a kill timer: %v allocs, want 0", n)
		}
	})
	t.Run("diagnosed 502", func(t *testing.T) {
		p, x, err := refusedExchange(t)
		diagnose(p, x, err)
		if got := x.ctx.Response.Header.Peek(diag.HeaderDiagnosis); len(got) == 0 {
			t.Fatal("no diagnosis written")
		}
		if n := testing.AllocsPerRun(500, func() { diagnose(p, x, err) }); n != 0 {
			t.Errorf("diagnosis of a refused connect: %v allocs, want 0", n)
		}
	})
	t.Run("remembered 502", func(t *testing.T) {
		p := New(Settings{Network: "tcp", Address: sockfault.ClosedTCPAddr(t), Logger: quietLogger(),
			Journal: new(diag.Journal), Traffic: new(diag.Traffic)})
		p.pool.memo = time.Hour // every request after the first is answered from the memo
		ctx := newCtx()
		serveOnce(t, p, ctx, fasthttp.StatusBadGateway)
		if n := testing.AllocsPerRun(500, func() { serveOnce(t, p, ctx, fasthttp.StatusBadGateway) }); n != 0 {
			t.Errorf("remembered refusal 502: %v allocs per request, want 0", n)
		}
	})
	t.Run("breaker-open 503", func(t *testing.T) {
		_, p := openBreaker(t)
		ctx := newCtx()
		serveOnce(t, p, ctx, fasthttp.StatusServiceUnavailable)
		if n := testing.AllocsPerRun(500, func() { serveOnce(t, p, ctx, fasthttp.StatusServiceUnavailable) }); n != 0 {
			t.Errorf("breaker-open 503: %v allocs per request, want 0", n)
		}
	})
	t.Run("unhealthy 503", func(t *testing.T) {
		p := New(Settings{Network: "tcp", Address: sockfault.ClosedTCPAddr(t), Health: downHealth{}, Logger: quietLogger(),
			Journal: new(diag.Journal), Traffic: new(diag.Traffic)})
		ctx := newCtx()
		serveOnce(t, p, ctx, fasthttp.StatusServiceUnavailable)
		if n := testing.AllocsPerRun(500, func() { serveOnce(t, p, ctx, fasthttp.StatusServiceUnavailable) }); n != 0 {
			t.Errorf("unhealthy 503: %v allocs per request, want 0", n)
		}
	})
}

// TestZeroAllocsFront guards the front side as it runs: a keep-alive
// connection through the strict scanner, the client timeouts and the send
// deadline, to the upstream and back, allocates nothing per request. The
// count covers every goroutine, the test's client too, which reads into a
// fixed buffer.
func TestZeroAllocsFront(t *testing.T) {
	p := New(Settings{Network: "tcp", Address: fastUpstream(t), Logger: quietLogger(),
		Journal: new(diag.Journal), Traffic: new(diag.Traffic)})
	defer p.Close()
	addr := serve(t, p.Server())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /api/items?page=2 HTTP/1.1\r\nHost: app.test\r\nX-Real-IP: 127.0.0.1\r\n\r\n")
	buf := make([]byte, 4096)
	want := 0
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		got := 0
		for want == 0 || got < want {
			n, err := c.Read(buf[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += n
			if want == 0 {
				want = responseSize(buf[:got]) // learnt once, from the first
			}
		}
	}
	for range 10 {
		roundTrip()
	}
	if n := testing.AllocsPerRun(500, roundTrip); n != 0 {
		t.Errorf("front keep-alive GET: %v allocs per request, want 0", n)
	}
}

// responseSize returns the length of the response at the start of b, once
// its header has arrived: the header and its Content-Length; 0 before.
func responseSize(b []byte) int {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return 0
	}
	_, after, ok := bytes.Cut(b[:end], []byte("Content-Length: "))
	if !ok {
		return 0
	}
	n := 0
	for _, c := range after {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return end + 4 + n
}
