package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/upmedic/upmedic/diag"
)

// upgradeEcho accepts a protocol switch and then echoes every byte.
func upgradeEcho(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Header.Get("Upgrade") != "websocket" || req.Header.Get("Connection") != "Upgrade" {
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 17\r\n\r\nno upgrade header")
		return
	}
	io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\nhello from app|")
	_, _ = io.Copy(c, br)
}

func TestWebSocketTunnel(t *testing.T) {
	up := newFakeUpstream(t, "tcp", upgradeEcho)
	tr := new(diag.Traffic)
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), Traffic: tr, ReadTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Connection") != "Upgrade" ||
		resp.Header.Get("Sec-WebSocket-Accept") != "abc" {
		t.Fatalf("handshake answer: %d %v", resp.StatusCode, resp.Header)
	}
	first := make([]byte, len("hello from app|"))
	if _, err := io.ReadFull(br, first); err != nil || string(first) != "hello from app|" {
		t.Fatalf("first frame %q %v", first, err)
	}
	// Silence longer than READ_TIMEOUT must not end a tunnel.
	time.Sleep(300 * time.Millisecond)
	for _, msg := range []string{"ping", "pong-pong"} {
		io.WriteString(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo of %q: %q %v", msg, got, err)
		}
	}
	c.Close()
	waitFor(t, "the upstream connection to close", func() bool { return tr.OpenConns() == 0 })
}

func TestUnaskedUpgradeIsProtocolError(t *testing.T) {
	up := newFakeUpstream(t, "tcp", raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"))
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
	wantDiagnosis(t, get(t, addr, "/"), http.StatusBadGateway, diag.HTTPProtocolError)
}
