// Command gen runs the installed nginx in front of misbehaving loopback
// upstreams, one location (request path) per fault, and prints the
// error.log nginx wrote. It made real-nginx-1.22.log, from the repository
// root:
//
//	go run ./diag/nginxlog/testdata/gen [/usr/sbin/nginx] > diag/nginxlog/testdata/real-nginx-1.22.log
//
// It must run as root: nginx's workers run as nobody so that a root-owned
// 0600 socket is out of their reach. Everything listens on 127.0.0.1 or in a
// temporary directory; the only process it starts is nginx, which it stops
// by PID.
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("gen: ")
	nginxBin := "/usr/sbin/nginx"
	if len(os.Args) > 1 {
		nginxBin = os.Args[1]
	}
	dir, err := os.MkdirTemp("", "upmedic-nginxlog-")
	check(err)
	defer os.RemoveAll(dir)
	// The workers (nobody) must reach the sockets under dir/run.
	check(os.Chmod(dir, 0o755))
	for _, d := range []string{"conf", "logs", "run", "tmp"} {
		check(os.Mkdir(filepath.Join(dir, d), 0o755))
	}
	run := func(name string) string { return filepath.Join(dir, "run", name) }

	// Unix sockets: missing, root-only, stale (file, no listener), backlog full.
	perm, err := net.Listen("unix", run("perm.sock"))
	check(err)
	defer perm.Close()
	check(os.Chmod(run("perm.sock"), 0o600))
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: run("stale.sock"), Net: "unix"})
	check(err)
	check(os.Chmod(run("stale.sock"), 0o666))
	stale.SetUnlinkOnClose(false)
	stale.Close()
	fullUnix(run("full.sock"))

	closed := closedPort()
	dnsNX, dnsMute := dnsServer(true), dnsServer(false)

	// TCP upstreams, each with one behaviour after reading the request head.
	const cookie40K = 40 << 10
	upstreams := map[string]string{
		"timeout-connect": fullTCP(),
		"close":           serve(func(c net.Conn) {}),
		"reset-header":    serve(func(c net.Conn) { c.(*net.TCPConn).SetLinger(0) }),
		"slow-header":     serve(func(c net.Conn) { time.Sleep(3 * time.Second) }),
		"big-header": serve(func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nSet-Cookie: s="+strings.Repeat("a", cookie40K)+"\r\nContent-Length: 0\r\n\r\n")
		}),
		"garbage":        serve(func(c net.Conn) { io.WriteString(c, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n") }),
		"invalid-header": serve(func(c net.Conn) { io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Bad\x01: 1\r\nContent-Length: 0\r\n\r\n") }),
		"bad-chunk": serve(func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
			time.Sleep(200 * time.Millisecond)
		}),
		"short-body": serve(func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
			time.Sleep(200 * time.Millisecond)
		}),
		"slow-body": serve(func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
			time.Sleep(3 * time.Second)
		}),
		"reset-body": serve(func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
			time.Sleep(200 * time.Millisecond)
			c.(*net.TCPConn).SetLinger(0)
		}),
	}
	// These answer at once, without reading what nginx sends.
	upstreams["http-to-fastcgi"] = serveNow(func(c net.Conn) { io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") })
	upstreams["reset-request"] = serveNow(func(c net.Conn) {
		time.Sleep(200 * time.Millisecond)
		c.(*net.TCPConn).SetLinger(0)
	})
	fcgiNotFound := fastcgi("Primary script unknown", "Status: 404 Not Found\r\nContent-type: text/html; charset=UTF-8\r\n\r\nFile not found.\n")
	fcgiFatal := fastcgi("PHP message: PHP Fatal error:  Uncaught Error: Call to undefined function db_connect() in /var/www/html/index.php:3",
		"Status: 500 Internal Server Error\r\nContent-type: text/html; charset=UTF-8\r\n\r\n")

	port := closedPort() // free now; nginx binds it
	locations := []string{
		"location = /refused { proxy_pass http://127.0.0.1:" + closed + "; }",
		"location = /missing-socket { proxy_pass http://unix:" + run("missing.sock") + ":; }",
		"location = /socket-permission { proxy_pass http://unix:" + run("perm.sock") + ":; }",
		"location = /stale-socket { proxy_pass http://unix:" + run("stale.sock") + ":; }",
		"location = /socket-backlog { proxy_pass http://unix:" + run("full.sock") + ":; }",
		"location = /no-live { proxy_pass http://pair; }",
		"location = /dns-nxdomain { resolver 127.0.0.1:" + dnsNX + " ipv6=off; set $h app.test; proxy_pass http://$h:8080; }",
		"location = /dns-timeout { resolver 127.0.0.1:" + dnsMute + " ipv6=off; resolver_timeout 1s; set $h app.test; proxy_pass http://$h:8080; }",
		"location = /php-missing { include /etc/nginx/fastcgi_params; fastcgi_pass 127.0.0.1:" + fcgiNotFound + "; }",
		"location = /php-fatal { include /etc/nginx/fastcgi_params; fastcgi_pass 127.0.0.1:" + fcgiFatal + "; }",
		"location = /http-to-fastcgi { include /etc/nginx/fastcgi_params; fastcgi_pass 127.0.0.1:" + upstreams["http-to-fastcgi"] + "; }",
		"location = /reset-request { client_max_body_size 64m; proxy_pass http://127.0.0.1:" + upstreams["reset-request"] + "; }",
	}
	paths := []string{"/refused", "/missing-socket", "/socket-permission", "/stale-socket", "/socket-backlog",
		"/no-live", "/no-live", "/dns-nxdomain", "/dns-timeout", "/php-missing", "/php-fatal", "/http-to-fastcgi"}
	for _, name := range []string{"timeout-connect", "close", "reset-header", "slow-header", "big-header", "garbage",
		"invalid-header", "bad-chunk", "short-body", "slow-body", "reset-body"} {
		locations = append(locations, "location = /"+name+" { proxy_pass http://127.0.0.1:"+upstreams[name]+"; }")
		paths = append(paths, "/"+name)
	}
	conf := fmt.Sprintf(`daemon off;
user nobody nogroup;
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
    proxy_connect_timeout 1s; proxy_send_timeout 1s; proxy_read_timeout 1s;
    fastcgi_read_timeout 1s;
    upstream pair {
        server 127.0.0.1:%s max_fails=1 fail_timeout=60s;
        server 127.0.0.1:%s max_fails=1 fail_timeout=60s;
    }
    server {
        listen 127.0.0.1:%s;
        server_name _;
        %s
    }
}
`, closed, closedPort(), port, strings.Join(locations, "\n        "))
	check(os.WriteFile(filepath.Join(dir, "conf", "nginx.conf"), []byte(conf), 0o644))

	cmd := exec.Command(nginxBin, "-p", dir+"/", "-c", "conf/nginx.conf", "-e", "logs/error.log")
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	if !listening("127.0.0.1:" + port) {
		cmd.Process.Kill()
		cmd.Wait()
		log.Fatal("nginx did not start listening on 127.0.0.1:" + port)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	for _, p := range paths {
		resp, err := client.Get("http://127.0.0.1:" + port + p)
		if err != nil {
			log.Printf("GET %s: %v", p, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		log.Printf("GET %s: %s", p, resp.Status)
	}
	// A request body far larger than the socket buffers, to an upstream that
	// resets without reading it.
	resp, err := client.Post("http://127.0.0.1:"+port+"/reset-request", "application/octet-stream",
		io.LimitReader(zeros{}, 32<<20))
	if err == nil {
		resp.Body.Close()
		log.Printf("POST /reset-request: %s", resp.Status)
	}

	// Stop nginx gracefully, by the PID we started.
	check(cmd.Process.Signal(syscall.SIGQUIT))
	cmd.Wait()
	f, err := os.Open(filepath.Join(dir, "logs", "error.log"))
	check(err)
	defer f.Close()
	io.Copy(os.Stdout, f)
}

// serve listens on a loopback port and runs then for each connection after
// reading the request head; the connection is closed when then returns.
func serve(then func(net.Conn)) string {
	return serveNow(func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		then(c)
	})
}

// serveNow is serve without reading anything first.
func serveNow(then func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				then(c)
			}()
		}
	}()
	return port(ln.Addr())
}

// fastcgi serves one FastCGI exchange per connection, answering with stderr
// and stdout records the way php-fpm does.
func fastcgi(stderr, stdout string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var h [8]byte
				for {
					if _, err := io.ReadFull(c, h[:]); err != nil {
						return
					}
					n := int(binary.BigEndian.Uint16(h[4:])) + int(h[6])
					if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
						return
					}
					if h[1] == 5 && n == 0 { // empty FCGI_STDIN: request complete
						break
					}
				}
				id := binary.BigEndian.Uint16(h[2:])
				record := func(typ byte, body string) {
					r := []byte{1, typ, byte(id >> 8), byte(id), byte(len(body) >> 8), byte(len(body)), 0, 0}
					c.Write(append(r, body...))
				}
				record(7, stderr)
				record(6, stdout)
				record(6, "")
				record(3, "\x00\x00\x00\x00\x00\x00\x00\x00")
			}()
		}
	}()
	return port(ln.Addr())
}

// dnsServer answers every query NXDOMAIN, or never when answer is false.
func dnsServer(answer bool) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	check(err)
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if !answer || n < 12 {
				continue
			}
			msg := append([]byte(nil), buf[:n]...)
			msg[2] |= 0x80    // QR
			msg[3] = 0x80 | 3 // RA, RCODE NXDOMAIN
			clear(msg[6:12])  // no answers, authority or additional
			pc.WriteTo(msg, addr)
		}
	}()
	return port(pc.LocalAddr())
}

// fullTCP returns a port whose accept queue is full and never drained, so a
// new connect hangs until the connector's timeout.
func fullTCP() string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	check(err)
	check(syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	check(syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	check(err)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for i := 0; i < 8; i++ {
		if _, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err != nil {
			break // the queue is full; keep the connections made so far
		}
	}
	return addr[len("127.0.0.1:"):]
}

// fullUnix makes a unix socket with a full listen backlog: Linux answers a
// further connect with EAGAIN.
func fullUnix(path string) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	check(err)
	check(syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}))
	check(os.Chmod(path, 0o666))
	check(syscall.Listen(fd, 0))
	for i := 0; i < 8; i++ {
		c, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
		check(err)
		if syscall.Connect(c, &syscall.SockaddrUnix{Name: path}) != nil {
			syscall.Close(c)
			return
		}
	}
	log.Fatal("unix backlog never filled")
}

// closedPort returns a loopback port that nothing listens on.
func closedPort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return port(ln.Addr())
}

func port(a net.Addr) string {
	_, p, err := net.SplitHostPort(a.String())
	check(err)
	return p
}

func listening(addr string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
