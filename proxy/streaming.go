package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/proxy/h1"
	"github.com/valyala/fasthttp"
)

// How a streamed response body is framed.
const (
	framingLength  = iota // Content-Length bytes
	framingChunked        // Transfer-Encoding: chunked, decoded here and re-chunked by fasthttp
	framingClose          // until the upstream closes (HTTP/1.0 style)
	framingFastCGI        // FastCGI STDOUT until FCGI_END_REQUEST; remaining bytes when not negative
)

// errBadChunk is returned when chunked framing is malformed: the upstream
// stopped speaking HTTP.
var errBadChunk = fmt.Errorf("proxy: malformed chunked encoding: %w", diag.ErrNotHTTP)

// bodyStream streams an upstream response body to fasthttp after the response
// status went downstream. A failure now cannot change the status: Read
// returns an error (never io.EOF early), which makes fasthttp cut the
// downstream connection instead of completing a truncated response, and the
// cause is recorded.
type bodyStream struct {
	p         *Proxy
	c         *conn
	start     time.Time
	framing   int
	remaining int64 // framingLength: bytes left; framingChunked: bytes left in this chunk
	inChunk   bool  // framingChunked: a chunk's data was started, its CRLF is due
	reusable  bool  // the connection may be reused once the body is complete
	done      bool
	err       error
	head      []byte           // closeDelimited: the response head it writes
	front     *frontConn       // closeDelimited: the client's connection, to reset
	req       diag.RequestLine // the request, for the journal if the body fails
	prefix    []byte           // framingFastCGI: body bytes read before streaming began
}

var bodyStreamPool = sync.Pool{New: func() any { return new(bodyStream) }}

// streamBufPool holds the buffers WriteTo copies bodies through.
var streamBufPool = sync.Pool{New: func() any { b := make([]byte, streamBufBytes); return &b }}

// streamBufBytes is the most one WriteTo step reads from the upstream and
// writes downstream: eight times fewer read and write syscalls than the
// 32 KiB of io.Copy on a fast body.
const streamBufBytes = 256 << 10

// WriteTo copies the body to w through a pooled buffer. Without it fasthttp
// copies the body with io.Copy (through bufio.Writer.ReadFrom and
// net.TCPConn.ReadFrom), which allocates a 32 KiB buffer per response and
// moves 32 KiB per read and write. Errors are Read's: a failed body is
// recorded and never ends in io.EOF.
func (s *bodyStream) WriteTo(w io.Writer) (int64, error) {
	buf := streamBufPool.Get().(*[]byte)
	defer streamBufPool.Put(buf)
	return copyThrough(w, s, *buf)
}

// copyThrough copies r to w through buf until r ends with io.EOF. Unlike
// io.CopyBuffer it never hands over to w's ReadFrom or r's WriteTo, which
// would copy through a buffer of their own.
func copyThrough(w io.Writer, r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			nw, werr := w.Write(buf[:n])
			total += int64(nw)
			if werr != nil {
				return total, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Read implements io.Reader.
func (s *bodyStream) Read(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.done {
		return 0, io.EOF
	}
	switch s.framing {
	case framingLength:
		if s.remaining == 0 {
			s.done = true
			return 0, io.EOF
		}
	case framingChunked:
		if s.remaining == 0 {
			if err := s.nextChunk(); err != nil {
				return 0, s.fail(err)
			}
			if s.done {
				return 0, io.EOF
			}
		}
	case framingFastCGI:
		return s.readFastCGI(b)
	default: // framingClose: the body ends when the upstream closes
		n, err := s.c.br.Read(b)
		if err == io.EOF {
			s.done = true
			return n, io.EOF
		}
		if err != nil {
			return n, s.fail(err)
		}
		return n, nil
	}
	// Length and chunked framing: read no more than the body or chunk holds.
	if int64(len(b)) > s.remaining {
		b = b[:s.remaining]
	}
	n, err := s.c.br.Read(b)
	s.remaining -= int64(n)
	if err != nil {
		return n, s.fail(err)
	}
	return n, nil
}

// readFastCGI reads a FastCGI upstream's body: the bytes read before the
// stream began, then STDOUT. A body that announced its length ends there,
// and the connection is reused only if FCGI_END_REQUEST follows at once; a
// body that did not ends with FCGI_END_REQUEST.
func (s *bodyStream) readFastCGI(b []byte) (int, error) {
	fc := s.c.fcgi
	limited := s.remaining >= 0
	if limited && s.remaining == 0 {
		s.done = true
		if n, err := fc.r.Read(fc.one[:]); n > 0 || !errors.Is(err, io.EOF) {
			s.reusable = false // more than announced, or no clean end: not reused
		}
		return 0, io.EOF
	}
	if limited && int64(len(b)) > s.remaining {
		b = b[:s.remaining]
	}
	var n int
	var err error
	if len(s.prefix) > 0 {
		n = copy(b, s.prefix)
		s.prefix = s.prefix[n:]
	} else {
		n, err = fc.r.Read(b)
	}
	if limited {
		s.remaining -= int64(n)
	}
	switch {
	case errors.Is(err, io.EOF) && limited && s.remaining > 0:
		return n, s.fail(io.ErrUnexpectedEOF) // the script announced more
	case errors.Is(err, io.EOF):
		s.done = true
		return n, io.EOF
	case err != nil:
		return n, s.fail(fastCGIProtocol(err))
	}
	return n, nil
}

// nextChunk reads the CRLF that ends the previous chunk, then the next chunk
// size line. At the last chunk it reads the trailer section and sets done.
// Framing that is not strict RFC 9112 is a protocol error (see proxy/h1).
func (s *bodyStream) nextChunk() error {
	if s.inChunk {
		if line, err := s.readLine(); err != nil {
			return err
		} else if len(line) != 0 {
			return errBadChunk
		}
	}
	line, err := s.readLine()
	if err != nil {
		return err
	}
	size, err := h1.ParseChunkLine(line)
	if err != nil {
		return fmt.Errorf("proxy: %w: %w", err, errBadChunk)
	}
	if size > 0 {
		s.remaining, s.inChunk = size, true
		return nil
	}
	for { // trailer section, checked and dropped: fasthttp cannot forward it in order
		line, err := s.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			s.done = true
			return nil
		}
		if !h1.ValidFieldLine(line) {
			return errBadChunk
		}
	}
}

// readLine returns the next line without its CRLF. A line must end in CRLF
// and fit the connection's read buffer: anything else is a protocol error,
// never a header-size one.
func (s *bodyStream) readLine() ([]byte, error) {
	line, err := s.c.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, errBadChunk
	case errors.Is(err, io.EOF):
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		return nil, errBadChunk
	}
	return line[:n-2], nil
}

// fail records why the body broke off and returns the error that makes
// fasthttp abort the downstream connection. It is never io.EOF.
func (s *bodyStream) fail(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	s.err = err
	s.p.recordAbort(s.c, s.start, err, &s.req)
	return err
}

// CloseWithError is called by fasthttp when it is done with the body, with
// the error that ended writing it downstream (nil on success). The upstream
// connection goes back to the pool only after a complete, clean body.
func (s *bodyStream) CloseWithError(wErr error) error {
	s.p.pool.put(s.c, s.reusable && s.done && s.err == nil && wErr == nil)
	*s = bodyStream{head: s.head[:0]}
	bodyStreamPool.Put(s)
	return nil
}

// closeDelimited sends the response to an HTTP/1.0 client with a body that
// ends when the connection closes: no chunked framing, which HTTP/1.0 does
// not know. fasthttp can only chunk a body of unknown length, so upmedic
// takes the connection over and writes the status line, the header and the
// body itself. A body that fails is cut with a reset, never a clean close,
// so the client cannot take a cut body for a whole one.
func (s *bodyStream) closeDelimited(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	b := append(s.head[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(h.StatusCode()), 10)
	b = append(b, ' ')
	if msg := h.StatusMessage(); len(msg) > 0 {
		b = append(b, msg...)
	} else {
		b = append(b, fasthttp.StatusMessage(h.StatusCode())...)
	}
	b = append(b, "\r\n"...)
	for k, v := range h.All() {
		b = append(b, k...)
		b = append(b, ": "...)
		b = append(b, v...)
		b = append(b, "\r\n"...)
	}
	s.head = append(b, "Connection: close\r\n\r\n"...)
	s.front, _ = ctx.Conn().(*frontConn)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(s.serveClosed)
}

// serveClosed writes the prepared head and the body to client, and closes.
func (s *bodyStream) serveClosed(client net.Conn) {
	_, err := client.Write(s.head)
	if err == nil {
		_, err = s.WriteTo(client)
	}
	if s.err != nil && s.front != nil {
		s.front.abort()
	}
	_ = s.CloseWithError(err)
}
