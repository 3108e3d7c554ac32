package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// A minimal RFC 6455 client: the opening handshake, single-frame messages
// (masked, as a client must send them) and the closing handshake. Enough to
// prove that an Upgrade travels nginx -> upmedic -> app and that the tunnel
// carries frames both ways.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsAccept is the Sec-WebSocket-Accept a server must answer key with.
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsConn is an open WebSocket connection.
type wsConn struct {
	c  net.Conn
	br *bufio.Reader
}

// wsDial opens a WebSocket to path at addr. It returns the handshake's HTTP
// status with the error when the server did not switch protocols.
func wsDial(addr, path string) (*wsConn, int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, 0, err
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr, key); err != nil {
		c.Close()
		return nil, 0, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		c.Close()
		return nil, 0, fmt.Errorf("read the handshake's response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		c.Close()
		return nil, resp.StatusCode, fmt.Errorf("handshake answered %s, not 101 Switching Protocols; headers %v; body %q", resp.Status, resp.Header, body)
	}
	switch {
	case !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket"):
		err = fmt.Errorf("101 with Upgrade %q, want websocket", resp.Header.Get("Upgrade"))
	case !strings.Contains(strings.ToLower(resp.Header.Get("Connection")), "upgrade"):
		err = fmt.Errorf("101 with Connection %q, want upgrade", resp.Header.Get("Connection"))
	case resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key):
		err = fmt.Errorf("101 with Sec-WebSocket-Accept %q, want %q", resp.Header.Get("Sec-WebSocket-Accept"), wsAccept(key))
	}
	if err != nil {
		c.Close()
		return nil, resp.StatusCode, err
	}
	return &wsConn{c: c, br: br}, resp.StatusCode, nil
}

// write sends one final, masked frame.
func (w *wsConn) write(opcode byte, payload []byte) error {
	var hdr []byte
	hdr = append(hdr, 0x80|opcode)
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	masked := make([]byte, len(payload))
	for i, b := range payload {
		masked[i] = b ^ mask[i%4]
	}
	_, err := w.c.Write(append(hdr, masked...))
	return err
}

// read reads one frame; a server's frames are not masked.
func (w *wsConn) read() (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 {
		return 0, nil, fmt.Errorf("a fragmented frame (FIN unset): the echo server sends none")
	}
	if h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("a masked frame from the server")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 16<<20 {
		return 0, nil, fmt.Errorf("a %d-byte frame", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(w.br, payload)
	return h[0] & 0x0f, payload, err
}

// echo sends payload as one message and checks the echo server returns it.
func (w *wsConn) echo(opcode byte, payload []byte) error {
	if err := w.write(opcode, payload); err != nil {
		return fmt.Errorf("send a %d-byte message: %w", len(payload), err)
	}
	op, got, err := w.read()
	if err != nil {
		return fmt.Errorf("read the echo of a %d-byte message: %w", len(payload), err)
	}
	if op != opcode || !bytes.Equal(got, payload) {
		return fmt.Errorf("echo of a %d-byte message (opcode %d) came back as %d bytes, opcode %d", len(payload), opcode, len(got), op)
	}
	return nil
}

// close runs the closing handshake (status 1000) and closes the connection.
func (w *wsConn) close() error {
	defer w.c.Close()
	if err := w.write(0x8, []byte{0x03, 0xe8}); err != nil {
		return err
	}
	op, _, err := w.read()
	if err != nil {
		return fmt.Errorf("read the close reply: %w", err)
	}
	if op != 0x8 {
		return fmt.Errorf("a frame of opcode %d instead of the close reply", op)
	}
	return nil
}
