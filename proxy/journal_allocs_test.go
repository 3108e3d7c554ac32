//go:build !race

package proxy

import (
	"testing"

	"github.com/upmedic/upmedic/diag"
	"github.com/valyala/fasthttp"
)

// A passed-through 5xx of the app is journaled (upstream_status) without an
// allocation, like every other answer.
func TestZeroAllocsAppStatus(t *testing.T) {
	addr := fasthttpUpstream(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("busy")
	})
	j := new(diag.Journal)
	p := New(Settings{Network: "tcp", Address: addr, Logger: quietLogger(), Journal: j, Traffic: new(diag.Traffic)})
	defer p.Close()
	ctx := newCtx()
	serveOnce(t, p, ctx, fasthttp.StatusServiceUnavailable)
	if n := testing.AllocsPerRun(500, func() { serveOnce(t, p, ctx, fasthttp.StatusServiceUnavailable) }); n != 0 {
		t.Errorf("app 503: %v allocs per request, want 0", n)
	}
	if got := j.Count(diag.UpstreamStatus); got != 502 {
		t.Errorf("%d upstream_status entries, want 502 (1 + 500 + AllocsPerRun's warm-up)", got)
	}
}
