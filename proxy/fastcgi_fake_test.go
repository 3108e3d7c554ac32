package proxy

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/upmedic/upmedic/proxy/fastcgi"
)

// fastFastCGIUpstream serves a canned FastCGI answer (a CGI header and a
// 100-byte body) to every request, on kept connections, and returns its
// address. It allocates nothing per request, so that the zero-allocation
// guards and benchmarks measure the proxy alone.
func fastFastCGIUpstream(tb testing.TB) string {
	tb.Helper()
	body := make([]byte, 100)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	stdout := append([]byte("Content-Type: text/plain\r\nX-Powered-By: fake\r\n\r\n"), body...)
	var answer []byte
	answer = fastcgi.Header{Version: fastcgi.Version1, Type: fastcgi.TypeStdout, RequestID: 1,
		ContentLength: uint16(len(stdout))}.AppendTo(answer)
	answer = append(answer, stdout...)
	answer = fastcgi.Header{Version: fastcgi.Version1, Type: fastcgi.TypeEndRequest, RequestID: 1,
		ContentLength: 8}.AppendTo(answer)
	answer = append(answer, 0, 0, 0, 0, byte(fastcgi.RequestComplete), 0, 0, 0)

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
			go serveFakeFastCGI(c, answer)
		}
	}()
	return ln.Addr().String()
}

// serveFakeFastCGI reads records from c and writes answer after each
// request's empty FCGI_STDIN record.
func serveFakeFastCGI(c net.Conn, answer []byte) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	buf := make([]byte, 66<<10)
	for {
		h, _, err := readRecord(br, buf)
		if err != nil {
			return
		}
		if h.Type == fastcgi.TypeStdin && h.ContentLength == 0 {
			setRequestIDs(answer, h.RequestID)
			if _, err := c.Write(answer); err != nil {
				return
			}
		}
	}
}

// setRequestIDs sets the request id of every whole record in b to id.
func setRequestIDs(b []byte, id uint16) {
	for len(b) >= fastcgi.HeaderLen {
		b[2], b[3] = byte(id>>8), byte(id)
		n := fastcgi.HeaderLen + (int(b[4])<<8 | int(b[5])) + int(b[6])
		if n > len(b) {
			return
		}
		b = b[n:]
	}
}

// readRecord reads one record from br into buf, which must hold 66 KiB (a record at its largest), and
// returns its header and content (a slice of buf).
func readRecord(br *bufio.Reader, buf []byte) (fastcgi.Header, []byte, error) {
	if _, err := io.ReadFull(br, buf[:fastcgi.HeaderLen]); err != nil {
		return fastcgi.Header{}, nil, err
	}
	h, err := fastcgi.ParseHeader(buf[:fastcgi.HeaderLen])
	if err != nil {
		return h, nil, err
	}
	n := int(h.ContentLength) + int(h.PaddingLength)
	if n > len(buf) {
		return h, nil, io.ErrShortBuffer
	}
	if _, err := io.ReadFull(br, buf[:n]); err != nil {
		return h, nil, err
	}
	return h, buf[:h.ContentLength], nil
}
