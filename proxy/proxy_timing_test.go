package proxy

import (
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/health"
	"github.com/upmedic/upmedic/internal/sockfault"
	"github.com/valyala/fasthttp"
)

// quietLogger drops warnings: the failure log line allocates and is rate
// limited to logBurst a second per cause, so it is left out of allocation
// counts and measured on its own.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

// fastUpstream serves a 100-byte body with fasthttp on a loopback port.
func fastUpstream(tb testing.TB) string {
	body := make([]byte, 100)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	return fasthttpUpstream(tb, func(ctx *fasthttp.RequestCtx) { ctx.SetBody(body) })
}

// fasthttpUpstream serves h with fasthttp on a loopback port and returns
// its address.
func fasthttpUpstream(tb testing.TB, h fasthttp.RequestHandler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go srv.Serve(ln)
	tb.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// newCtx returns a RequestCtx holding a GET as nginx sends it.
func newCtx() *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod("GET")
	req.SetRequestURI("/api/items?page=2")
	req.Header.SetHost("app.test")
	req.Header.Set("X-Real-IP", "127.0.0.1")
	req.Header.Set("X-Forwarded-For", "127.0.0.1")
	req.Header.Set("Accept", "*/*")
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	return ctx
}

// serveOnce runs one request through p and checks the status.
func serveOnce(tb testing.TB, p *Proxy, ctx *fasthttp.RequestCtx, want int) {
	ctx.Response.Reset()
	p.ServeHTTP(ctx)
	if got := ctx.Response.StatusCode(); got != want {
		tb.Fatalf("status %d, want %d: %s", got, want, ctx.Response.Header.Peek(diag.HeaderDiagnosis))
	}
}

// openBreaker returns a breaker opened by real refused connections.
func openBreaker(tb testing.TB) (*health.Breaker, *Proxy) {
	b := health.NewBreaker(health.BreakerSettings{Failures: 1, OpenFor: time.Hour, Logger: quietLogger()})
	p := New(Settings{Network: "tcp", Address: sockfault.ClosedTCPAddr(tb), Breaker: b, Logger: quietLogger(), Journal: new(diag.Journal), Traffic: new(diag.Traffic)})
	serveOnce(tb, p, newCtx(), fasthttp.StatusBadGateway) // opens it
	return b, p
}

// downHealth is a health checker that says the upstream is down.
type downHealth struct{ up chan struct{} }

func (downHealth) Down() bool { return true }
func (downHealth) LastFailure() (diag.Cause, syscall.Errno) {
	return diag.ConnectionRefused, syscall.ECONNREFUSED
}
func (downHealth) NextProbe() time.Time      { return time.Now().Add(1500 * time.Millisecond) }
func (h downHealth) WaitUp() <-chan struct{} { return h.up }

func BenchmarkProxiedGET(b *testing.B) {
	p := New(Settings{Network: "tcp", Address: fastUpstream(b), Logger: quietLogger(),
		Journal: new(diag.Journal), Traffic: new(diag.Traffic),
		Breaker: health.NewBreaker(health.BreakerSettings{Logger: quietLogger()})})
	defer p.Close()
	ctx := newCtx()
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, p, ctx, 200)
	}
}

// BenchmarkProxiedFastCGI is BenchmarkProxiedGET with a FastCGI upstream:
// the same 100-byte answer, as records.
func BenchmarkProxiedFastCGI(b *testing.B) {
	p := New(Settings{Network: "tcp", Address: fastFastCGIUpstream(b), Logger: quietLogger(),
		Journal: new(diag.Journal), Traffic: new(diag.Traffic),
		Breaker: health.NewBreaker(health.BreakerSettings{Logger: quietLogger()}),
		FastCGI: &FastCGI{Root: "/var/www/app", FrontController: "/index.php"}})
	defer p.Close()
	ctx := newCtx()
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, p, ctx, 200)
	}
}

func BenchmarkProxiedGETParallel(b *testing.B) {
	p := New(Settings{Network: "tcp", Address: fastUpstream(b), Logger: quietLogger(),
		Journal: new(diag.Journal), Traffic: new(diag.Traffic),
		Breaker: health.NewBreaker(health.BreakerSettings{Logger: quietLogger()})})
	defer p.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := newCtx()
		for pb.Next() {
			serveOnce(b, p, ctx, 200)
		}
	})
}

// BenchmarkDiagnosed502 is the whole refused path as served: one connect per
// 100 ms (the refusal memo), every other request answered from it. The
// "dial" case connects every time (memo off): Go's net.Dial allocates its
// error values; upmedic's own share is in BenchmarkDiagnosis.
func BenchmarkDiagnosed502(b *testing.B) {
	for _, bc := range []struct {
		name string
		memo time.Duration
	}{{"memo", refusalMemo}, {"dial", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			p := New(Settings{Network: "tcp", Address: sockfault.ClosedTCPAddr(b), Logger: quietLogger(),
				Journal: new(diag.Journal), Traffic: new(diag.Traffic)})
			p.pool.memo = bc.memo
			ctx := newCtx()
			b.ReportAllocs()
			for b.Loop() {
				serveOnce(b, p, ctx, fasthttp.StatusBadGateway)
			}
		})
	}
}

// BenchmarkDiagnosis is upmedic's share of a diagnosed 502: classifying a
// real ECONNREFUSED, recording it and writing the response.
func BenchmarkDiagnosis(b *testing.B) {
	p, x, err := refusedExchange(b)
	b.ReportAllocs()
	for b.Loop() {
		diagnose(p, x, err)
	}
}

func BenchmarkBreakerOpen503(b *testing.B) {
	_, p := openBreaker(b)
	ctx := newCtx()
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, p, ctx, fasthttp.StatusServiceUnavailable)
	}
}

// refusedExchange returns an exchange and the real error of a refused dial.
func refusedExchange(tb testing.TB) (*Proxy, *exchange, error) {
	addr := sockfault.ClosedTCPAddr(tb)
	_, err := net.Dial("tcp", addr)
	if err == nil {
		tb.Fatal("dial to a closed port succeeded")
	}
	p := New(Settings{Network: "tcp", Address: addr, Logger: quietLogger(), Journal: new(diag.Journal)})
	x := p.exchanges.Get().(*exchange)
	x.ctx, x.start = newCtx(), time.Now()
	return p, x, err
}

func diagnose(p *Proxy, x *exchange, err error) {
	x.ctx.Response.Reset()
	x.attempts = 1
	x.failed(diag.PhaseConnect, err, nil)
	p.answer(x)
}
