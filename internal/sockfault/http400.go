package sockfault

import (
	"io"
	"net"
	"testing"
	"time"
)

// HTTPAnswersAnything returns a loopback TCP address where a server
// answers whatever arrives with "HTTP/1.1 400 Bad Request" and closes, as
// nginx and Node answer FastCGI bytes: the wrong protocol at an address.
// It stops when the test ends.
func HTTPAnswersAnything(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				var b [16]byte
				if _, err := c.Read(b[:]); err == nil {
					_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				}
			}()
		}
	}()
	return ln.Addr().String()
}
