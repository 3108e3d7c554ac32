package proxy

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/valyala/fasthttp"
)

// errUnaskedUpgrade is returned when the upstream switches protocols on a
// request that did not ask for it.
var errUnaskedUpgrade = fmt.Errorf("proxy: 101 Switching Protocols without an Upgrade request: %w", diag.ErrNotHTTP)

// upgradeRequested returns the request's Upgrade value when its Connection
// header lists "upgrade" (RFC 9110 section 7.8), nil otherwise.
func upgradeRequested(h *fasthttp.RequestHeader) []byte {
	up := h.Peek(fasthttp.HeaderUpgrade)
	if len(up) == 0 || !tokenListed(h.Peek(fasthttp.HeaderConnection), strUpgrade) {
		return nil
	}
	return up
}

var strUpgrade = []byte("upgrade")

// tunnel copies bytes both ways between the downstream connection and the
// upstream one after a 101 Switching Protocols, until either side closes.
// The upstream connection is never reused.
func (p *Proxy) tunnel(client net.Conn, c *conn) {
	_ = c.nc.SetDeadline(time.Time{})
	c.idle = 0
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = client.Close()
			_ = c.nc.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(c.nc, client)
		closeBoth()
	}()
	_, _ = io.Copy(client, c.br) // c.br may already hold the app's first frames
	closeBoth()
	<-done
	p.pool.close(c)
}
