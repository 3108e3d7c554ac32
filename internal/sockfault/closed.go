package sockfault

import (
	"net"
	"testing"
)

// ClosedTCPAddr returns a loopback TCP address nothing listens on: bound,
// then closed, so a connect to it gets ECONNREFUSED. Unlike DenyConnect and
// NoNetwork it changes nothing in the process.
func ClosedTCPAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
