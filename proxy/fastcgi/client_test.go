package fastcgi

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// client drives the codec over one connection the way the proxy does: one
// Writer, Reader, Params and ResponseHeader, reused for every request.
type client struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	w    Writer
	r    Reader
	p    Params
	h    ResponseHeader
	hbuf []byte // the header buffer: its capacity is the header limit
	id   uint16
}

// response is what one exchange produced.
type response struct {
	status   int
	fields   []Field
	header   *ResponseHeader
	body     []byte
	stderr   string
	err      error // the first error, from ReadHeader or the body
	received bool
	done     bool
}

func newClient(t testing.TB, conn net.Conn, headerLimit int) *client {
	t.Helper()
	c := &client{t: t, conn: conn, br: bufio.NewReaderSize(conn, 16<<10), bw: bufio.NewWriterSize(conn, 16<<10),
		hbuf: make([]byte, 0, headerLimit)}
	t.Cleanup(func() { conn.Close() })
	return c
}

func dialClient(t testing.TB, network, addr string, headerLimit int) *client {
	t.Helper()
	conn, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	return newClient(t, conn, headerLimit)
}

// send writes one request: BEGIN_REQUEST with FCGI_KEEP_CONN, pairs, body.
func (c *client) send(pairs []byte, body io.Reader) error {
	c.id = c.id%65535 + 1
	c.w.Reset(c.bw, c.id)
	if err := c.w.BeginRequest(true); err != nil {
		return err
	}
	if err := c.w.Params(pairs); err != nil {
		return err
	}
	if body != nil {
		if _, err := c.w.ReadFrom(body); err != nil {
			return err
		}
	}
	return c.w.EndStdin()
}

// do runs one request built from req and s, and reads the whole answer.
func (c *client) do(req *Request, s *Script, body io.Reader) *response {
	c.t.Helper()
	pairs, err := c.p.Build(req, s)
	if err != nil {
		c.t.Fatalf("Build: %v", err)
	}
	return c.doPairs(pairs, body)
}

// doPairs runs one request with the given parameters.
func (c *client) doPairs(pairs []byte, body io.Reader) *response {
	c.t.Helper()
	// A safety net against a hang, not an assertion on time.
	_ = c.conn.SetDeadline(time.Now().Add(20 * time.Second))
	if err := c.send(pairs, body); err != nil {
		c.t.Fatalf("send: %v", err)
	}
	return c.read()
}

// read reads one answer: the CGI header, the body, STDERR and END_REQUEST.
func (c *client) read() *response {
	c.r.Reset(c.br, c.id)
	resp := &response{header: &c.h}
	first, err := c.r.ReadHeader(&c.h, c.hbuf)
	if err == nil {
		resp.status = c.h.Status
		for _, f := range c.h.Fields { // copies: hbuf serves the next request
			resp.fields = append(resp.fields, Field{Name: []byte(string(f.Name)), Value: []byte(string(f.Value))})
		}
		resp.body = append(resp.body, first...)
		var rest []byte
		rest, err = io.ReadAll(&c.r)
		resp.body = append(resp.body, rest...)
	}
	resp.err = err
	resp.stderr = string(c.r.Stderr)
	resp.received, resp.done = c.r.Received(), c.r.Done()
	return resp
}

// field returns the values of the named response field.
func (r *response) field(name string) []string {
	var vs []string
	for _, f := range r.fields {
		if equalFold(f.Name, name) {
			vs = append(vs, string(f.Value))
		}
	}
	return vs
}
