package probe

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/proxy/fastcgi"
)

// fcgiBodyLimit caps the body of a ping or status answer the probe reads.
const fcgiBodyLimit = 64 << 10

// fcgiAnswer is what a FastCGI GET brought back.
type fcgiAnswer struct {
	status int
	body   []byte
	stderr []byte
	peek   []byte // the first bytes, when they were not FastCGI
}

// fastCGI runs the FastCGI checks on the connected conn: FCGI_GET_VALUES on
// it, then the ping path and the status page, each on a connection of its
// own (PHP-FPM serves one request a connection without keep-conn).
func (p *prober) fastCGI(ctx context.Context, conn net.Conn) {
	if !p.fcgiValues(ctx, conn) {
		return
	}
	conn.Close()
	if p.s.HealthPath != "" {
		p.fcgiPing(ctx)
	} else {
		p.r.add(Finding{Severity: SeverityOK,
			Title:   "no ping path: PHP was not run",
			Details: []string{"FCGI_GET_VALUES is answered by PHP-FPM itself; a request that runs PHP shows more (a pool that answers but cannot serve)"},
			Fix:     []string{"set ping.path = /ping in the pool and UPMEDIC_HEALTH_PATH=/ping to check a worker's answer (pong)"}})
	}
	if p.s.StatusPath != "" {
		p.fcgiStatus(ctx)
	}
}

// fcgiValues sends FCGI_GET_VALUES on conn and judges the answer; it
// reports whether the upstream speaks FastCGI.
func (p *prober) fcgiValues(ctx context.Context, conn net.Conn) bool {
	stop := p.deadline(ctx, conn)
	defer stop()
	start := time.Now()
	br := bufio.NewReader(conn)
	var v fastcgi.Values
	_, err := conn.Write(fastcgi.AppendGetValues(nil))
	if err == nil {
		v, err = fastcgi.ReadValues(br)
	}
	if err != nil {
		peek, _ := br.Peek(br.Buffered())
		p.fcgiFailed("FCGI_GET_VALUES", err, peek)
		return false
	}
	f := Finding{Severity: SeverityOK,
		Title:   "the upstream speaks FastCGI: FCGI_GET_VALUES answered in " + fmtDuration(time.Since(start)),
		Details: []string{fmt.Sprintf("FCGI_MPXS_CONNS=%d FCGI_MAX_CONNS=%s FCGI_MAX_REQS=%s", v.MpxsConns, unanswered(v.MaxConns), unanswered(v.MaxReqs))}}
	if v.MpxsConns == 0 {
		f.Details = append(f.Details, "no multiplexing: one request a connection at a time, as php-fpm does")
	}
	p.r.add(f)
	return true
}

func unanswered(n int) string {
	if n < 0 {
		return "(not answered)"
	}
	return fmt.Sprint(n)
}

// deadline sets conn's deadline to the response timeout, and cuts it short
// when ctx ends; call the returned func when done.
func (p *prober) deadline(ctx context.Context, conn net.Conn) func() bool {
	deadline := time.Now().Add(p.s.ResponseTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}

// fcgiFailed explains a FastCGI exchange (what) that failed with err; peek
// holds the first bytes when they were not FastCGI.
func (p *prober) fcgiFailed(what string, err error, peek []byte) {
	cause := diag.ClassifyIn(diag.PhaseHeader, err)
	if pe, ok := errors.AsType[*diag.PhaseError](err); ok {
		cause = diag.ClassifyIn(pe.Phase, pe.Err)
	}
	f := Finding{Cause: cause, Severity: SeverityFail}
	switch {
	case errors.Is(err, fastcgi.ErrVersion) && fastcgi.Sniff(peek) == fastcgi.ProtocolHTTP:
		f.Cause = diag.HTTPProtocolError
		f.Title = "the upstream speaks HTTP, not FastCGI"
		f.Details = []string{"it answered " + what + " with " + quoteBytes(bytes.TrimRight(firstLine(peek), "\r"), 64)}
		f.Fix = []string{
			"this is an HTTP server: use UPMEDIC_UPSTREAM=http://" + p.s.Address + " (and unset UPMEDIC_FASTCGI_*)",
			"or point UPMEDIC_UPSTREAM=fastcgi://... at php-fpm's listen (grep -r '^listen' /etc/php/*/fpm/pool.d/)",
		}
	case errors.Is(err, fastcgi.ErrVersion):
		proto, _ := guessProtocol(peek)
		f.Cause = diag.HTTPProtocolError
		f.Title = "the upstream does not speak FastCGI: this looks like " + proto
		f.Details = []string{"first bytes: " + quoteBytes(peek, 48)}
		f.Fix = []string{"point UPMEDIC_UPSTREAM=fastcgi://... at php-fpm's listen (grep -r '^listen' /etc/php/*/fpm/pool.d/)"}
	case cause == diag.HTTPResponseTimeout:
		f.Title = fmt.Sprintf("no answer to %s within %s (UPMEDIC_RESPONSE_TIMEOUT)", what, p.s.ResponseTimeout)
		f.Details = []string{
			"php-fpm answers even FCGI_GET_VALUES from a worker: when every worker of the pool is busy, it waits in the listen queue",
			"a gunicorn or other HTTP server also waits silently for an HTTP request line that FastCGI bytes never end",
		}
		f.Fix = []string{
			"see the pool's status page (pm.status_path, with pm.status_listen so it answers when the pool is full) and its slow log (request_slowlog_timeout)",
			"raise pm.max_children if the workers are busy, not stuck",
		}
	case cause == diag.ConnectionTerminated:
		f.Title = "the upstream closed the connection without answering " + what
		f.Details = []string{err.Error(),
			"a php-fpm worker was killed (request_terminate_timeout, the OOM killer, a crash), or the listener is not FastCGI and hung up"}
		f.Fix = []string{"see php-fpm's log (error_log in php-fpm.conf; journalctl -u php8.2-fpm) at this time"}
	default:
		f.Title = what + " failed: " + cause.Details()
		f.Details = []string{err.Error()}
		f.Fix = []string{cause.Hint()}
	}
	p.r.add(f)
}

// fcgiDial connects to network/address for one more FastCGI request; it
// reports a failed connect as a finding and returns nil.
func (p *prober) fcgiDial(ctx context.Context, network, address, what string) net.Conn {
	d := net.Dialer{Timeout: p.s.ConnectTimeout}
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		cause := diag.Classify(err)
		p.r.add(Finding{Cause: cause, Severity: SeverityFail,
			Title:   fmt.Sprintf("connect to %s for %s failed: %s", address, what, cause.Details()),
			Details: []string{err.Error()}, Fix: []string{cause.Hint()}})
		return nil
	}
	return conn
}

// fcgiPing requests the ping path, which must answer 2xx pong.
func (p *prober) fcgiPing(ctx context.Context) {
	conn := p.fcgiDial(ctx, p.s.Network, p.s.Address, "the ping path")
	if conn == nil {
		return
	}
	defer conn.Close()
	start := time.Now()
	a, err := p.fcgiGet(ctx, conn, p.s.HealthPath, "")
	took := time.Since(start)
	if err != nil {
		p.fcgiFailed("GET "+p.s.HealthPath, err, a.peek)
		return
	}
	p.r.Status = a.status
	body := bytes.TrimSpace(a.body)
	if a.status >= 200 && a.status <= 299 && string(body) == "pong" {
		p.r.add(Finding{Severity: SeverityOK,
			Title: fmt.Sprintf("ping path %s answered %d pong in %s: a worker runs", p.s.HealthPath, a.status, fmtDuration(took))})
		return
	}
	f := Finding{Cause: diag.UpstreamStatus, Severity: SeverityFail,
		Title:   fmt.Sprintf("ping path %s answered %d %s, not 200 pong", p.s.HealthPath, a.status, quoteBytes(firstLine(body), 40)),
		Details: []string{"UPMEDIC_HEALTH_PATH of a fastcgi upstream is php-fpm's ping.path, whose answer is ping.response (pong by default)"},
		Fix: []string{
			"set in the pool: ping.path = " + p.s.HealthPath + " and ping.response = pong, then reload php-fpm",
			"or unset UPMEDIC_HEALTH_PATH: the health check then sends FCGI_GET_VALUES, which runs no PHP",
		}}
	if len(a.stderr) > 0 {
		f.Details = append(f.Details, "php-fpm's STDERR: "+quoteBytes(firstLine(a.stderr), 120))
	}
	p.r.add(f)
}

// fcgiStatus reads the status page with ?json and prints the pool.
func (p *prober) fcgiStatus(ctx context.Context) {
	network, address := p.s.StatusNetwork, p.s.StatusAddress
	if address == "" {
		network, address = p.s.Network, p.s.Address
	}
	conn := p.fcgiDial(ctx, network, address, "the status page")
	if conn == nil {
		return
	}
	defer conn.Close()
	a, err := p.fcgiGet(ctx, conn, p.s.StatusPath, "json")
	if err != nil {
		p.fcgiFailed("GET "+p.s.StatusPath+"?json", err, a.peek)
		return
	}
	fix := []string{"set pm.status_path = " + p.s.StatusPath + " in the pool (and pm.status_listen for a socket of its own), then reload php-fpm"}
	if a.status != 200 {
		p.r.add(Finding{Severity: SeverityWarn,
			Title:   fmt.Sprintf("status page %s answered %d: not php-fpm's pm.status_path", p.s.StatusPath, a.status),
			Details: []string{"upmedic reads it to say when a request waited for a free worker (UPMEDIC_FASTCGI_STATUS_PATH)"},
			Fix:     fix})
		return
	}
	st, err := fastcgi.ParsePoolStatus(a.body)
	if err != nil {
		p.r.add(Finding{Severity: SeverityWarn, Title: "status page " + p.s.StatusPath + "?json is not php-fpm's JSON status",
			Details: []string{err.Error(), "first bytes: " + quoteBytes(a.body, 48)}, Fix: fix})
		return
	}
	f := Finding{Severity: SeverityOK,
		Title: fmt.Sprintf("pool %s (pm = %s): %d active, %d idle, %d total processes; listen queue %d (max %d, of %d)",
			st.Pool, st.ProcessManager, st.ActiveProcesses, st.IdleProcesses, st.TotalProcesses, st.ListenQueue, st.MaxListenQueue, st.ListenQueueLen),
		Details: []string{fmt.Sprintf("accepted conn %d, max active processes %d, max children reached %d, slow requests %d",
			st.AcceptedConn, st.MaxActiveProcesses, st.MaxChildrenReached, st.SlowRequests)}}
	if network == "unix" {
		f.Details = append(f.Details, "php-fpm reports the listen queue for a TCP listen socket only: on a unix socket it stays 0")
	}
	if address == p.s.Address {
		f.Details = append(f.Details, "the status page is served by a worker of the pool: when all are busy it waits too; pm.status_listen gives it a socket of its own (UPMEDIC_FASTCGI_STATUS_UPSTREAM)")
	}
	if st.ListenQueue > 0 || st.MaxChildrenReached > 0 {
		f.Severity = SeverityWarn
		f.Fix = []string{"the pool ran out of workers: raise pm.max_children (memory allowing), or find the slow requests (request_slowlog_timeout)"}
	}
	p.r.add(f)
}

// fcgiGet sends a FastCGI GET for path?query on conn, as health checks do:
// SCRIPT_NAME and SCRIPT_FILENAME are the path (php-fpm's ping and status
// paths name no file), CONTENT_LENGTH 0, no keep-conn.
func (p *prober) fcgiGet(ctx context.Context, conn net.Conn, path, query string) (fcgiAnswer, error) {
	stop := p.deadline(ctx, conn)
	defer stop()
	var w fastcgi.Writer
	var params fastcgi.Params
	w.Reset(bufio.NewWriter(conn), 1)
	if err := fastcgi.WriteNamelessGet(&w, &params, path, query, "upmedic-probe"); err != nil {
		return fcgiAnswer{}, &diag.PhaseError{Phase: diag.PhaseRequest, Err: err}
	}
	br := bufio.NewReader(conn)
	var r fastcgi.Reader
	r.Reset(br, 1)
	var h fastcgi.ResponseHeader
	first, err := r.ReadHeader(&h, make([]byte, 0, p.s.MaxHeaderBytes))
	if err != nil {
		a := fcgiAnswer{stderr: r.Stderr}
		a.peek, _ = br.Peek(br.Buffered())
		return a, err
	}
	a := fcgiAnswer{status: h.Status, body: append([]byte(nil), first...)}
	rest, err := io.ReadAll(io.LimitReader(&r, fcgiBodyLimit))
	a.body = append(a.body, rest...)
	a.stderr = r.Stderr
	if err != nil {
		return a, &diag.PhaseError{Phase: diag.PhaseBody, Err: err}
	}
	return a, nil
}

// fpmConnectHints adds php-fpm's words to the finding a failed connect to
// a fastcgi upstream left last: the pool's listen, listen.owner,
// listen.group and listen.mode make the socket.
func (p *prober) fpmConnectHints() {
	if !p.s.FastCGI || len(p.r.Findings) == 0 {
		return
	}
	f := &p.r.Findings[len(p.r.Findings)-1]
	pools := "/etc/php/*/fpm/pool.d/*.conf"
	switch f.Cause {
	case diag.SocketPermissionDenied:
		f.Details = append(f.Details, "php-fpm creates its socket with the pool's listen.owner and listen.group (default: the pool's user and group) and listen.mode (default 0660); a socket of root with mode 0600 is listen.mode = 0600 or the owner lines left out under a root-run pool")
		f.Fix = append(f.Fix, fmt.Sprintf("in the pool (%s): listen.owner = <upmedic's user>, listen.group = <a group upmedic is in>, listen.mode = 0660, then reload php-fpm (systemctl reload php8.2-fpm); a chmod is undone when php-fpm restarts", pools))
	case diag.SocketNotFound:
		f.Details = append(f.Details, "php-fpm makes the socket named by the pool's listen when it starts and removes it when it stops")
		f.Fix = append(f.Fix, "see whether php-fpm runs and where its pools listen: systemctl status php8.2-fpm; grep -H '^listen' "+pools)
	case diag.ConnectionRefused:
		f.Fix = append(f.Fix, "see whether php-fpm runs and where its pools listen: systemctl status php8.2-fpm; grep -H '^listen' "+pools)
	}
}
