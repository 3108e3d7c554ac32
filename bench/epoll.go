package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// roleEpoll is the epoll floor: the least a Go proxy on an event loop of its
// own can do, to tell what Go's netpoller costs against nginx's and
// HAProxy's loops. One locked thread runs a level-triggered epoll loop, so
// every read finds data (no empty reads), and waits in epoll_wait as a raw
// syscall: the thread blocks without telling Go's scheduler (nothing else
// needs to run here), so sysmon does not hand its P to another thread at
// every wait. With syscall.EpollWait instead it ran no faster than the
// fasthttp floor (0.3 context switches per request). The loop:
// each client connection gets its own upstream connection, a request is
// read once its head is complete and written upstream as it is, and the
// answer is written back once its Content-Length body is in. It proxies
// bodyless requests with small Content-Length answers and nothing else (no
// chunking, bodies, pipelining, timeouts or errors beyond closing): the
// "small" scenario only. args: listen address, upstream address.
func roleEpoll(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: role-epoll LISTEN UPSTREAM")
	}
	listen, err := sockaddr(args[0])
	if err != nil {
		return err
	}
	upstream, err := sockaddr(args[1])
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if err := syscall.Bind(lfd, listen); err != nil {
		return err
	}
	if err := syscall.Listen(lfd, 4096); err != nil {
		return err
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := epollAdd(ep, lfd); err != nil {
		return err
	}
	// No exitWithParent: the blocked thread holds the only P, so no other
	// goroutine runs; the Pdeathsig the bench starts every proxy with ends it.

	// conns[fd] is the connection a client or upstream fd belongs to.
	conns := map[int]*epollConn{}
	closeConn := func(c *epollConn) {
		delete(conns, c.client)
		delete(conns, c.up)
		syscall.Close(c.client)
		syscall.Close(c.up)
	}
	events := make([]syscall.EpollEvent, 256)
	for {
		r1, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), ^uintptr(0), 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		n := int(r1)
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == lfd {
				for {
					cfd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
					if err != nil {
						break // EAGAIN: none left
					}
					_ = syscall.SetsockoptInt(cfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
					ufd, err := dialBlocking(upstream)
					if err != nil {
						syscall.Close(cfd)
						continue
					}
					c := &epollConn{client: cfd, up: ufd}
					conns[cfd], conns[ufd] = c, c
					if epollAdd(ep, cfd) != nil || epollAdd(ep, ufd) != nil {
						closeConn(c)
					}
				}
				continue
			}
			c := conns[fd]
			if c == nil {
				continue
			}
			if !c.readable(fd) {
				closeConn(c)
			}
		}
	}
}

// epollConn is a client connection and its upstream connection.
type epollConn struct {
	client, up int
	req        [8192]byte
	nreq       int
	resp       [8192]byte
	nresp      int
	want       int // the answer's full length once its head is in; 0 before
}

// readable reads what fd has and moves a complete request or answer on. It
// reports false when the connection should close.
func (c *epollConn) readable(fd int) bool {
	if fd == c.client {
		n, err := syscall.Read(fd, c.req[c.nreq:])
		if n <= 0 || err != nil {
			return false
		}
		c.nreq += n
		if bytes.Index(c.req[:c.nreq], []byte("\r\n\r\n")) < 0 {
			return c.nreq < len(c.req)
		}
		ok := writeAll(c.up, c.req[:c.nreq])
		c.nreq = 0
		return ok
	}
	n, err := syscall.Read(fd, c.resp[c.nresp:])
	if n <= 0 || err != nil {
		return false
	}
	c.nresp += n
	if c.want == 0 {
		end := bytes.Index(c.resp[:c.nresp], []byte("\r\n\r\n"))
		if end < 0 {
			return c.nresp < len(c.resp)
		}
		cl := contentLength(c.resp[:end])
		if cl < 0 || end+4+cl > len(c.resp) {
			return false
		}
		c.want = end + 4 + cl
	}
	if c.nresp < c.want {
		return true
	}
	ok := c.nresp == c.want && writeAll(c.client, c.resp[:c.nresp])
	c.nresp, c.want = 0, 0
	return ok
}

// contentLength finds Content-Length in a response head; -1 if absent.
func contentLength(head []byte) int {
	for _, line := range bytes.Split(head, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Length")) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(value)))
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// writeAll writes b to a non-blocking socket with room for it (a small
// answer or request always fits the send buffer here).
func writeAll(fd int, b []byte) bool {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err != nil || n <= 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

func epollAdd(ep, fd int) error {
	return syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
}

// dialBlocking connects to sa (loopback: at once) and makes the socket
// non-blocking.
func dialBlocking(sa syscall.Sockaddr) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.Connect(fd, sa); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// sockaddr parses an IPv4 host:port.
func sockaddr(addr string) (*syscall.SockaddrInet4, error) {
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return nil, err
	}
	ip := ap.IP.To4()
	if ip == nil {
		return nil, fmt.Errorf("%s: not IPv4", addr)
	}
	sa := &syscall.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ip)
	return sa, nil
}
