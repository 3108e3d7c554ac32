package fastcgi

import (
	"bufio"
	"errors"
	"io"
	"syscall"
)

// minWriteBuffer is the smallest bufio.Writer a Writer works with: a record
// header, a useful piece of body and its padding.
const minWriteBuffer = 512

// Writer writes the records of one request at a time (spec 5: BEGIN_REQUEST,
// PARAMS, STDIN) into a bufio.Writer that the caller owns, typically the
// upstream connection's. Its zero value is unusable until Reset. It
// allocates nothing. A Writer is not safe for concurrent use.
type Writer struct {
	bw *bufio.Writer
	id uint16
}

// Reset makes w write the records of request id to bw, whose buffer must
// hold at least 512 bytes.
func (w *Writer) Reset(bw *bufio.Writer, id uint16) {
	if bw.Size() < minWriteBuffer {
		panic("BUG: fastcgi: Writer needs a bufio.Writer of at least 512 bytes")
	}
	w.bw, w.id = bw, id
}

// room returns bw's free buffer, flushing first if it has less than n bytes
// free, for appending a record header or padding in place.
func (w *Writer) room(n int) ([]byte, error) {
	if w.bw.Available() < n {
		if err := w.bw.Flush(); err != nil {
			return nil, err
		}
	}
	return w.bw.AvailableBuffer(), nil
}

// BeginRequest writes FCGI_BEGIN_REQUEST for the responder role, with
// FCGI_KEEP_CONN when keepConn is set: the application then leaves the
// connection open after FCGI_END_REQUEST, for the next request.
func (w *Writer) BeginRequest(keepConn bool) error {
	var flags byte
	if keepConn {
		flags = FlagKeepConn
	}
	b, err := w.room(2 * HeaderLen)
	if err != nil {
		return err
	}
	b = Header{Version: Version1, Type: TypeBeginRequest, RequestID: w.id, ContentLength: 8}.AppendTo(b)
	b = append(b, 0, RoleResponder, flags, 0, 0, 0, 0, 0)
	_, err = w.bw.Write(b)
	return err
}

// Params writes pairs, a sequence of name-value pairs (AppendPair), as
// FCGI_PARAMS records of at most 65535 bytes, never splitting a pair across
// two records, and then the empty FCGI_PARAMS record that ends the stream.
// A pair too large for one record is ErrPairTooLarge, a malformed one
// ErrPairLength; nothing is written then.
func (w *Writer) Params(pairs []byte) error {
	// Check every pair before writing any.
	for p := pairs; len(p) > 0; {
		_, _, rest, err := NextPair(p)
		if err != nil {
			return err
		}
		if len(p)-len(rest) > MaxContentLength {
			return ErrPairTooLarge
		}
		p = rest
	}
	for len(pairs) > 0 {
		n := 0
		for n < len(pairs) {
			_, _, rest, _ := NextPair(pairs[n:])
			size := len(pairs) - n - len(rest)
			if n+size > MaxContentLength {
				break
			}
			n += size
		}
		if err := w.record(TypeParams, pairs[:n]); err != nil {
			return err
		}
		pairs = pairs[n:]
	}
	return w.record(TypeParams, nil)
}

// Stdin writes p as FCGI_STDIN records of at most 65535 bytes each. An empty
// p writes nothing: EndStdin ends the stream.
func (w *Writer) Stdin(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), MaxContentLength)
		if err := w.record(TypeStdin, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// ReadFrom copies src into FCGI_STDIN records until src returns io.EOF,
// reading straight into bw's buffer (no copy of its own), and returns the
// number of body bytes written. It does not end the stream: EndStdin does.
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	var total int64
	for empty := 0; ; {
		if w.bw.Available() < minWriteBuffer {
			if err := w.bw.Flush(); err != nil {
				return total, err
			}
		}
		buf := w.bw.AvailableBuffer()
		buf = buf[:cap(buf)]
		limit := min(len(buf)-HeaderLen-7, MaxContentLength)
		n, err := src.Read(buf[HeaderLen : HeaderLen+limit])
		if n > 0 {
			empty = 0
			pad := int(padding(n))
			Header{Version: Version1, Type: TypeStdin, RequestID: w.id, ContentLength: uint16(n), PaddingLength: uint8(pad)}.AppendTo(buf[:0])
			clear(buf[HeaderLen+n : HeaderLen+n+pad])
			if _, werr := w.bw.Write(buf[:HeaderLen+n+pad]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		switch {
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, err
		case n == 0:
			if empty++; empty > 100 {
				return total, io.ErrNoProgress
			}
		}
	}
}

// EndStdin writes the empty FCGI_STDIN record that ends the request and
// flushes everything to the connection.
func (w *Writer) EndStdin() error {
	if err := w.record(TypeStdin, nil); err != nil {
		return err
	}
	return w.bw.Flush()
}

// record writes one record of type t holding content (at most 65535 bytes).
func (w *Writer) record(t RecordType, content []byte) error {
	pad := padding(len(content))
	b, err := w.room(HeaderLen)
	if err != nil {
		return err
	}
	b = Header{Version: Version1, Type: t, RequestID: w.id, ContentLength: uint16(len(content)), PaddingLength: pad}.AppendTo(b)
	if _, err := w.bw.Write(b); err != nil {
		return err
	}
	if _, err := w.bw.Write(content); err != nil {
		return err
	}
	if pad == 0 {
		return nil
	}
	if b, err = w.room(int(pad)); err != nil {
		return err
	}
	_, err = w.bw.Write(append(b, make([]byte, pad)...))
	return err
}

// defaultStderrCap is how much STDERR a Reader keeps unless told otherwise.
const defaultStderrCap = 2048

// Reader reads what an application answers to one request at a time from a
// bufio.Reader that the caller owns, typically the upstream connection's:
// STDOUT through Read, WriteTo or ReadHeader; STDERR collected on the side;
// FCGI_END_REQUEST checked at the end. It is strict: every record must be
// version 1, of a type an application sends, for the request in progress.
// Its zero value is unusable until Reset. It allocates nothing once Stderr
// has its capacity. A Reader is not safe for concurrent use.
type Reader struct {
	br  *bufio.Reader
	id  uint16
	n   int   // STDOUT content bytes left in the current record
	pad int   // padding bytes left after the current record's content
	err error // sticky: io.EOF once FCGI_END_REQUEST said complete, or the failure

	stdoutEnded bool
	received    bool
	done        bool
	end         EndRequest

	// Stderr holds the first cap(Stderr) bytes of the request's STDERR
	// stream (PHP-FPM's "Primary script unknown", PHP's messages with
	// catch_workers_output). Reset empties it and gives it 2 KiB when it has
	// no capacity; set a larger capacity once to keep more.
	Stderr []byte
	// StderrLen counts the STDERR content bytes received, kept or not.
	StderrLen int64
}

// Reset makes r read the answer to request id from br.
func (r *Reader) Reset(br *bufio.Reader, id uint16) {
	stderr := r.Stderr[:0]
	if cap(stderr) == 0 {
		stderr = make([]byte, 0, defaultStderrCap)
	}
	*r = Reader{br: br, id: id, Stderr: stderr}
}

// Received reports whether any byte of the answer has arrived. A reused
// keep-alive connection that ends with nothing received was closed by the
// application before the request reached it.
func (r *Reader) Received() bool { return r.received }

// Done reports whether FCGI_END_REQUEST arrived and said the request is
// complete, so that the connection may serve the next request.
func (r *Reader) Done() bool { return r.done }

// End returns the FCGI_END_REQUEST content, zero before it arrived.
func (r *Reader) End() EndRequest { return r.end }

// Read reads STDOUT content into p. It returns io.EOF only after
// FCGI_END_REQUEST with FCGI_REQUEST_COMPLETE: a response is never complete
// before that. A connection that ends first is ErrNoEndRequest or
// ErrTruncatedRecord; read errors of the connection (deadlines, resets) come
// back as they are.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err // sticky, also after a failure inside a record
	}
	if len(p) == 0 {
		return 0, nil
	}
	for r.n == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	if len(p) > r.n {
		p = p[:r.n]
	}
	n, err := r.br.Read(p)
	r.n -= n
	if err != nil {
		r.err = closed(err, true)
		return n, r.err
	}
	return n, nil
}

// WriteTo writes the rest of STDOUT to w straight from the bufio.Reader's
// buffer, as it arrives, until FCGI_END_REQUEST; it returns nil then, and
// otherwise what Read would.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		for r.n == 0 || r.err != nil {
			if errors.Is(r.err, io.EOF) {
				return total, nil
			}
			if r.err != nil {
				return total, r.err
			}
			r.err = r.next()
		}
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				r.err = closed(err, true)
				return total, r.err
			}
		}
		b, _ := r.br.Peek(min(r.n, r.br.Buffered()))
		m, err := w.Write(b)
		total += int64(m)
		r.n -= m
		_, _ = r.br.Discard(m) // m bytes are buffered
		if err == nil && m < len(b) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return total, err
		}
	}
}

// next reads record headers until one starts STDOUT content (nil), the
// answer is complete (io.EOF) or something fails.
func (r *Reader) next() error {
	for {
		if r.pad > 0 {
			if _, err := r.br.Discard(r.pad); err != nil {
				return closed(err, true)
			}
			r.pad = 0
		}
		b, err := r.br.Peek(HeaderLen)
		if len(b) > 0 {
			r.received = true
		}
		if err != nil {
			return closed(err, len(b) > 0)
		}
		h, err := ParseHeader(b)
		if err != nil {
			return err
		}
		if err := r.check(h); err != nil {
			return err
		}
		_, _ = r.br.Discard(HeaderLen) // peeked
		r.pad = int(h.PaddingLength)
		switch h.Type {
		case TypeStdout:
			if h.ContentLength == 0 {
				r.stdoutEnded = true
				continue
			}
			if r.stdoutEnded {
				return ErrStdoutAfterEnd
			}
			r.n = int(h.ContentLength)
			return nil
		case TypeStderr:
			if err := r.stderr(int(h.ContentLength)); err != nil {
				return err
			}
		case TypeEndRequest:
			c, err := r.br.Peek(8)
			if err != nil {
				return closed(err, true)
			}
			r.end = EndRequest{
				AppStatus:      uint32(c[0])<<24 | uint32(c[1])<<16 | uint32(c[2])<<8 | uint32(c[3]),
				ProtocolStatus: ProtocolStatus(c[4]),
			}
			_, _ = r.br.Discard(8)
			if _, err := r.br.Discard(r.pad); err != nil {
				return closed(err, true)
			}
			r.pad = 0
			if err := r.end.err(); err != nil {
				return err
			}
			r.done = true
			return io.EOF
		}
	}
}

// check applies the rules a record header must follow in the middle of a
// request.
func (r *Reader) check(h Header) error {
	switch h.Type {
	case TypeStdout, TypeStderr, TypeEndRequest:
	case TypeBeginRequest, TypeAbortRequest, TypeParams, TypeStdin, TypeData,
		TypeGetValues, TypeGetValuesResult, TypeUnknownType:
		return ErrUnexpectedType
	default:
		return ErrUnknownType
	}
	if h.RequestID != r.id {
		return ErrRequestID
	}
	if h.Type == TypeEndRequest && h.ContentLength != 8 {
		return ErrEndRequestLength
	}
	return nil
}

// stderr keeps what fits of n bytes of STDERR content and skips the rest.
func (r *Reader) stderr(n int) error {
	for n > 0 {
		b, err := r.br.Peek(min(n, r.br.Size()))
		keep := min(len(b), cap(r.Stderr)-len(r.Stderr))
		r.Stderr = append(r.Stderr, b[:keep]...)
		r.StderrLen += int64(len(b))
		_, _ = r.br.Discard(len(b))
		n -= len(b)
		if err != nil && n > 0 {
			return closed(err, true)
		}
	}
	return nil
}

// closed turns the end of the connection into the sentinel for where it
// happened: inside a record, or between records. A reset is an end too (a
// killed PHP-FPM worker resets the connection when our final empty STDIN
// record is still unread in its socket): it keeps its errno beside the
// sentinel. Other errors pass as they are.
func closed(err error, inRecord bool) error {
	sentinel := ErrNoEndRequest
	if inRecord {
		sentinel = ErrTruncatedRecord
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return sentinel
	case errors.Is(err, syscall.ECONNRESET):
		return &resetError{sentinel: sentinel, err: err}
	}
	return err
}

// resetError is a connection reset before FCGI_END_REQUEST: errors.Is finds
// both the sentinel and the errno.
type resetError struct{ sentinel, err error }

func (e *resetError) Error() string   { return e.sentinel.Error() + ": " + e.err.Error() }
func (e *resetError) Unwrap() []error { return []error{e.sentinel, e.err} }
