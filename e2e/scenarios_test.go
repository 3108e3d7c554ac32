package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// scenario is one fault, staged with real programs:
//
//	client -> nginx (testdata/nginx) -> upmedic (uid 65534) -> app
//	client -> nginx alone              -> app     (the baseline)
//
// run asserts what the client got and the cause nginx logged through log_format
// upmedic, and records both paths in the report.
type scenario struct {
	name string
	run  func(t *testing.T, row *reportRow)
}

var scenarios = []scenario{
	{"healthy gunicorn app", healthy},
	{"app not running (TCP refused)", appNotRunning},
	{"gunicorn unix socket 0600 root", gunicornSocketPermission},
	{"unix socket path missing", socketMissing},
	{"php-fpm socket 0600 root", phpFPMSocketPermission},
	{"gunicorn --timeout 2 kills the worker mid-request", gunicornWorkerTimeout},
	{"gunicorn --timeout 2, the third kill in a row: the kill timer named", gunicornKillTimer},
	{"40 KiB of Set-Cookie", bigResponseHeader},
	{"view slower than UPMEDIC_RESPONSE_TIMEOUT=1s", slowView},
	{"node: big Content-Length, socket destroyed mid-body (streamed)", nodeCutStreamed},
	{"node: small Content-Length, socket destroyed mid-body (buffered)", nodeCutBuffered},
	{"node answers an upload 413 early and resets", nodeRefusesUploadEarly},
	{"upmedic itself stopped", upmedicStopped},
	{"WebSocket echo", webSocketEcho},
	{"server-sent events", serverSentEvents},
}

func TestScenarios(t *testing.T) {
	needRoot(t)
	need(t, "nginx")
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			row := reportRow{order: i, scenario: sc.name}
			sc.run(t, &row)
			if !t.Failed() && !t.Skipped() {
				record(row)
			}
		})
	}
}

// wantDiagnosed checks a response upmedic made because the app failed: the
// client's status, no diagnosis header reaching the client (nginx hides
// both), upmedic's status as $upstream_status (so nginx did not make the
// answer itself), the cause and Proxy-Status error in the access log. It
// returns the diagnosis's parameters.
func wantDiagnosed(t *testing.T, r result, status int, cause, proxyError string) map[string]string {
	t.Helper()
	if r.status != status {
		t.Errorf("client got %d, want %d; body %q", r.status, status, r.body)
	}
	for _, h := range []string{"X-Upstream-Diagnosis", "Proxy-Status"} {
		if v := r.header.Get(h); v != "" {
			t.Errorf("client saw %s: %q; nginx's proxy_hide_header should hide it", h, v)
		}
	}
	if r.line.status != status || r.line.upstreamStatus != strconv.Itoa(status) {
		t.Errorf("access log: status %d, upstream status %q; want %d from upmedic\n%s", r.line.status, r.line.upstreamStatus, status, r.line.raw)
	}
	got, ps := params(r.line.diagnosis)
	if got != cause {
		t.Errorf("access log: diag=%q, want cause %s\n%s", r.line.diagnosis, cause, r.line.raw)
	}
	if _, ok := ps["elapsed-ms"]; !ok {
		t.Errorf("access log: diag=%q has no elapsed-ms", r.line.diagnosis)
	}
	member, pp := params(r.line.proxyStatus)
	if member != "upmedic" || pp["error"] != proxyError {
		t.Errorf("access log: ps=%q, want upmedic;error=%s", r.line.proxyStatus, proxyError)
	}
	if len(r.errors) > 0 {
		t.Errorf("nginx's error.log has lines about a request upmedic answered: %q", r.errors)
	}
	return ps
}

// wantClean checks a response that passed through untouched.
func wantClean(t *testing.T, r result, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("client got %d, want %d; body %q", r.status, status, r.body)
	}
	for _, h := range []string{"X-Upstream-Diagnosis", "Proxy-Status"} {
		if v := r.header.Get(h); v != "" {
			t.Errorf("client saw %s: %q", h, v)
		}
	}
	if r.line.diagnosis != "" || r.line.proxyStatus != "" {
		t.Errorf("access log: diag=%q ps=%q, want both empty\n%s", r.line.diagnosis, r.line.proxyStatus, r.line.raw)
	}
	if r.line.upstreamStatus != strconv.Itoa(status) {
		t.Errorf("access log: upstream status %q, want %d\n%s", r.line.upstreamStatus, status, r.line.raw)
	}
}

// fill puts what the client got and what nginx logged into row.
func fill(row *reportRow, via, alone result) {
	row.status = describeStatus(via)
	row.diagnosis = via.line.diagnosis
	row.aloneStatus = describeStatus(alone)
	row.aloneLog = strings.Join(alone.errors, " / ")
}

func describeStatus(r result) string {
	s := strconv.Itoa(r.status)
	if r.bodyErr != nil {
		if cl := r.header.Get("Content-Length"); cl != "" {
			s += fmt.Sprintf(", body cut at %d of %s bytes", len(r.body), cl)
		} else {
			s += ", body cut"
		}
	}
	return s
}

// both runs the request through upmedic and through nginx alone at once, for
// the scenarios that take seconds.
func both(t *testing.T, s *stack, path string) (via, alone result) {
	t.Helper()
	var wg sync.WaitGroup
	var aloneErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		alone, aloneErr = s.alone.fetch(path)
	}()
	via, viaErr := s.via.fetch(path)
	wg.Wait()
	if viaErr != nil || aloneErr != nil {
		t.Fatalf("via upmedic: %v; nginx alone: %v", viaErr, aloneErr)
	}
	return via, alone
}

func healthy(t *testing.T, row *reportRow) {
	need(t, "nginx", "gunicorn")
	dir := scenarioDir(t)
	app := loopback(freePort(t))
	startGunicorn(t, dir, app, "--workers", "1")
	s := newStack(t, dir, stackConfig{Upstream: app, Alone: "proxy_pass http://" + app + ";"})

	via := s.via.get(t, "/")
	wantClean(t, via, http.StatusOK)
	if string(via.body) != "hello from gunicorn\n" || via.header.Get("Content-Type") != "text/plain" {
		t.Errorf("body %q, Content-Type %q: want the app's own", via.body, via.header.Get("Content-Type"))
	}
	if len(via.errors) > 0 {
		t.Errorf("error.log: %q", via.errors)
	}
	alone := s.alone.get(t, "/")
	fill(row, via, alone)

	// nginx keeps its connection to upmedic open (keepalive); idle for a
	// second, upmedic parks it. The next request wakes it and reaches the
	// app whole, and nginx sees nothing amiss.
	s.waitParked(t)
	again := s.via.get(t, "/method")
	wantClean(t, again, http.StatusOK)
	if string(again.body) != "GET\n" || len(again.errors) > 0 {
		t.Errorf("after parking: the app got method %q; error.log %q", again.body, again.errors)
	}
}

// waitParked waits until upmedic reports a parked front connection.
func (s *stack) waitParked(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + s.admin + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(body), "\n") {
				if v, ok := strings.CutPrefix(line, "upmedic_front_parked_connections "); ok && v != "0" {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no front connection parked within 15s (metrics: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func appNotRunning(t *testing.T, row *reportRow) {
	dir := scenarioDir(t)
	app := loopback(freePort(t)) // bound, then closed: nothing listens
	s := newStack(t, dir, stackConfig{Upstream: app, Alone: "proxy_pass http://" + app + ";"})

	via := s.via.get(t, "/")
	ps := wantDiagnosed(t, via, http.StatusBadGateway, "connection_refused", "connection_refused")
	if ps["errno"] != "ECONNREFUSED" {
		t.Errorf("errno=%q, want ECONNREFUSED", ps["errno"])
	}
	fill(row, via, s.alone.get(t, "/"))
}

// wantRootOnlySocket checks that path is a socket only root may open, so
// that the scenario stages what it says.
func wantRootOnlySocket(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 || st.Uid != 0 {
		t.Fatalf("%s: mode %v uid %d; want a 0600 socket owned by root", path, fi.Mode(), st.Uid)
	}
}

func gunicornSocketPermission(t *testing.T, row *reportRow) {
	need(t, "nginx", "gunicorn")
	dir := scenarioDir(t)
	sock := filepath.Join(dir, "app.sock")
	// gunicorn runs as root; --umask 0o177 makes its socket 0600.
	startGunicorn(t, dir, "unix:"+sock, "--workers", "1", "--umask", "0o177")
	wantRootOnlySocket(t, sock)
	s := newStack(t, dir, stackConfig{Upstream: "unix:" + sock, Alone: "proxy_pass http://unix:" + sock + ":;"})

	via := s.via.get(t, "/")
	ps := wantDiagnosed(t, via, http.StatusBadGateway, "socket_permission_denied", "connection_refused")
	if ps["errno"] != "EACCES" {
		t.Errorf("errno=%q, want EACCES", ps["errno"])
	}
	if bytes.Contains(via.body, []byte(sock)) {
		t.Errorf("the client's body names the socket path: %q", via.body)
	}
	fill(row, via, s.alone.get(t, "/"))
}

func socketMissing(t *testing.T, row *reportRow) {
	dir := scenarioDir(t)
	sock := filepath.Join(dir, "missing.sock")
	s := newStack(t, dir, stackConfig{Upstream: "unix:" + sock, Alone: "proxy_pass http://unix:" + sock + ":;"})

	via := s.via.get(t, "/")
	ps := wantDiagnosed(t, via, http.StatusBadGateway, "socket_not_found", "connection_refused")
	if ps["errno"] != "ENOENT" {
		t.Errorf("errno=%q, want ENOENT", ps["errno"])
	}
	fill(row, via, s.alone.get(t, "/"))
}

// phpFPMSocketPermission: upmedic speaks FastCGI to the pool, as nginx's
// fastcgi_pass does; the fault strikes at the connect.
func phpFPMSocketPermission(t *testing.T, row *reportRow) {
	need(t, "nginx", "php-fpm")
	dir := scenarioDir(t)
	_, sock := startPHPFPM(t, dir)
	wantRootOnlySocket(t, sock)
	s := newStack(t, dir, stackConfig{Upstream: "fastcgi://unix:" + sock, Env: []string{"UPMEDIC_FASTCGI_ROOT=/var/www"},
		Alone: "fastcgi_pass unix:" + sock + "; fastcgi_param SCRIPT_FILENAME /var/www/index.php;"})

	via := s.via.get(t, "/index.php")
	ps := wantDiagnosed(t, via, http.StatusBadGateway, "socket_permission_denied", "connection_refused")
	if ps["errno"] != "EACCES" {
		t.Errorf("errno=%q, want EACCES", ps["errno"])
	}
	fill(row, via, s.alone.get(t, "/index.php"))
}

func gunicornWorkerTimeout(t *testing.T, row *reportRow) {
	need(t, "nginx", "gunicorn")
	dir := scenarioDir(t)
	app := loopback(freePort(t))
	// Two workers: one for upmedic's request, one for nginx alone's. Each is
	// killed by the arbiter once it has been silent for 2s.
	startGunicorn(t, dir, app, "--workers", "2", "--timeout", "2", "--graceful-timeout", "1")
	s := newStack(t, dir, stackConfig{Upstream: app, Alone: "proxy_pass http://" + app + ";"})

	via, alone := both(t, s, "/sleep?s=30")
	wantDiagnosed(t, via, http.StatusBadGateway, "connection_terminated", "connection_terminated")
	if via.line.requestTime < 1.5 || via.line.requestTime > 20 {
		t.Errorf("answered after %.3fs; gunicorn kills the worker after about 2-3s", via.line.requestTime)
	}
	fill(row, via, alone)
}

func bigResponseHeader(t *testing.T, row *reportRow) {
	need(t, "nginx", "gunicorn")
	dir := scenarioDir(t)
	app := loopback(freePort(t))
	startGunicorn(t, dir, app, "--workers", "1")
	s := newStack(t, dir, stackConfig{Upstream: app, Alone: "proxy_pass http://" + app + ";"})

	via := s.via.get(t, "/cookies?kib=40")
	ps := wantDiagnosed(t, via, http.StatusBadGateway, "http_response_header_section_size", "http_response_header_section_size")
	size, err := strconv.Atoi(ps["header-section-size"])
	if err != nil || size <= 4096 {
		t.Errorf("header-section-size=%q, want a size over the 4096 limit (the app sent about 41000 bytes)", ps["header-section-size"])
	}
	if ps["limit"] != "4096" {
		t.Errorf("limit=%q, want 4096", ps["limit"])
	}
	fill(row, via, s.alone.get(t, "/cookies?kib=40"))
}

func slowView(t *testing.T, row *reportRow) {
	need(t, "nginx", "gunicorn")
	dir := scenarioDir(t)
	app := loopback(freePort(t))
	startGunicorn(t, dir, app, "--workers", "2", "--timeout", "30", "--graceful-timeout", "1")
	// nginx keeps the snippet's proxy_read_timeout (60s); nginx alone gets
	// the 1s that upmedic has, for a like-for-like baseline.
	s := newStack(t, dir, stackConfig{Upstream: app, Env: []string{"UPMEDIC_RESPONSE_TIMEOUT=1s"},
		Alone: "proxy_pass http://" + app + "; proxy_read_timeout 1s;"})

	via, alone := both(t, s, "/sleep?s=4")
	wantDiagnosed(t, via, http.StatusGatewayTimeout, "http_response_timeout", "http_response_timeout")
	// upmedic answered, at its 1s, long before the app (4s) and nginx (60s).
	if via.line.requestTime < 0.9 || via.line.requestTime > 3.5 {
		t.Errorf("answered after %.3fs, want about 1s (UPMEDIC_RESPONSE_TIMEOUT)", via.line.requestTime)
	}
	if b := readFile(t, s.via.errorLog); strings.Contains(b, "timed out") {
		t.Errorf("nginx timed out itself: the timeout chain is broken:\n%s", b)
	}
	fill(row, via, alone)
}

func nodeCutStreamed(t *testing.T, row *reportRow) {
	need(t, "nginx", "node")
	dir := scenarioDir(t)
	_, app := startNode(t, dir)
	s := newStack(t, dir, stackConfig{Upstream: app, Alone: "proxy_pass http://" + app + ";"})

	// 1 MiB announced, over UPMEDIC_BUFFER_BYTES (128 KiB): upmedic streams
	// it, so its 200 is gone before the cut; it can only cut the client off.
	const path = "/cut?length=1048576&send=65536"
	via := s.via.get(t, path)
	if via.status != http.StatusOK || via.header.Get("Content-Length") != "1048576" {
		t.Errorf("client got %d with Content-Length %q, want the app's 200 and 1048576", via.status, via.header.Get("Content-Length"))
	}
	if via.bodyErr == nil || len(via.body) >= 1048576 {
		t.Errorf("client read %d bytes and error %v: want a body cut short, never a complete-looking one", len(via.body), via.bodyErr)
	}
	if via.line.diagnosis != "" || via.line.status != http.StatusOK {
		t.Errorf("access log: status %d diag=%q; want 200 and no diagnosis (the status left before the cut)", via.line.status, via.line.diagnosis)
	}
	// upmedic's own log names the cause.
	waitUpmedicLogged(t, s.upmedic, `"cause":"http_response_incomplete"`, `"aborted":true`)
	alone := s.alone.get(t, path)
	fill(row, via, alone)
	row.diagnosis = "(none: upmedic logs http_response_incomplete, aborted) nginx: " + strings.Join(via.errors, " / ")
}

func nodeCutBuffered(t *testing.T, row *reportRow) {
	need(t, "nginx", "node")
	dir := scenarioDir(t)
	_, app := startNode(t, dir)
	s := newStack(t, dir, stackConfig{Upstream: app, Alone: "proxy_pass http://" + app + ";"})

	// 8 KiB announced, under UPMEDIC_BUFFER_BYTES: upmedic receives it
	// whole before answering, so the cut becomes a diagnosed 502.
	const path = "/cut?length=8192&send=1000"
	via := s.via.get(t, path)
	wantDiagnosed(t, via, http.StatusBadGateway, "http_response_incomplete", "http_response_incomplete")
	if via.bodyErr != nil {
		t.Errorf("reading upmedic's 502: %v", via.bodyErr)
	}
	fill(row, via, s.alone.get(t, path))
}

func nodeRefusesUploadEarly(t *testing.T, row *reportRow) {
	need(t, "nginx", "node")
	dir := scenarioDir(t)
	_, app := startNode(t, dir)
	s := newStack(t, dir, stackConfig{Upstream: app, Alone: "proxy_pass http://" + app + ";"})

	// 1 MiB, so upmedic streams it (over 64 KiB) and the app's reset comes
	// while it is still sending. upmedic forwards the early 413 and drains
	// the rest from nginx before it closes (a lingering close), so nginx
	// reads the answer instead of a broken pipe. Twenty tries: before the
	// lingering close some of them lost the answer.
	body := bytes.Repeat([]byte("u"), 1<<20)
	var via result
	for i := range 20 {
		via = s.via.post(t, "/refuse-upload", body)
		if via.status != http.StatusRequestEntityTooLarge || string(via.body) != "too large\n" ||
			via.line.upstreamStatus != "413" || via.line.diagnosis != "" {
			t.Fatalf("try %d: client %d %q, access log us=%q diag=%q; want the app's 413\n%s\nerror.log: %q",
				i, via.status, via.body, via.line.upstreamStatus, via.line.diagnosis, via.line.raw, via.errors)
		}
	}
	fill(row, via, s.alone.post(t, "/refuse-upload", body))
}

func upmedicStopped(t *testing.T, row *reportRow) {
	need(t, "nginx", "node")
	dir := scenarioDir(t)
	_, app := startNode(t, dir)
	s := newStack(t, dir, stackConfig{Upstream: app, Alone: "proxy_pass http://" + app + ";"})

	// Working first, so nginx holds a keep-alive connection to upmedic.
	if r := s.via.get(t, "/"); r.status != http.StatusOK {
		t.Fatalf("before the stop: %d %q", r.status, r.body)
	}
	s.upmedic.stop()
	if s.upmedic.err != nil {
		t.Errorf("upmedic did not exit cleanly on SIGTERM: %v\n%s", s.upmedic.err, s.upmedic.output())
	}
	via := s.via.get(t, "/")
	if via.status != http.StatusBadGateway || !bytes.Contains(via.body, []byte("nginx")) {
		t.Errorf("client got %d %q, want nginx's own 502 page", via.status, via.body)
	}
	if via.line.status != http.StatusBadGateway || via.line.upstreamStatus != "502" || via.line.diagnosis != "" || via.line.proxyStatus != "" {
		t.Errorf("access log: status %d upstream %q diag=%q ps=%q; want 502, 502 and both empty (the hop to upmedic failed)\n%s",
			via.line.status, via.line.upstreamStatus, via.line.diagnosis, via.line.proxyStatus, via.line.raw)
	}
	if !strings.Contains(strings.Join(via.errors, "\n"), "Connection refused") {
		t.Errorf("nginx's error.log: %q, want connect() ... Connection refused", via.errors)
	}
	row.status = describeStatus(via)
	row.diagnosis = via.line.diagnosis
	row.aloneStatus = "n/a (this is nginx -> upmedic)"
	row.aloneLog = strings.Join(via.errors, " / ")
}

func webSocketEcho(t *testing.T, row *reportRow) {
	need(t, "nginx", "node")
	dir := scenarioDir(t)
	_, app := startNode(t, dir)
	s := newStack(t, dir, stackConfig{Upstream: app, Alone: "proxy_pass http://" + app + "; proxy_http_version 1.1; " +
		"proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;"})

	run := func(f front) (string, logLine, []string) {
		tok := token()
		ws, status, err := wsDial(f.addr, "/ws/echo?e2e="+tok)
		if err != nil {
			return fmt.Sprintf("%d: %v", status, err), f.waitLogLine(t, tok), f.errorLines(tok)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16) // 100 KiB: 64-bit length, many TCP segments
		for _, m := range []struct {
			op byte
			p  []byte
		}{{0x1, []byte("hello through upmedic")}, {0x2, big}, {0x1, bytes.Repeat([]byte("x"), 300)}} {
			if err := ws.echo(m.op, m.p); err != nil {
				ws.c.Close()
				return "101, then " + err.Error(), f.waitLogLine(t, tok), f.errorLines(tok)
			}
		}
		if err := ws.close(); err != nil {
			return "101, then " + err.Error(), f.waitLogLine(t, tok), f.errorLines(tok)
		}
		return "", f.waitLogLine(t, tok), f.errorLines(tok)
	}

	failure, line, errs := run(s.via)
	if failure != "" {
		t.Errorf("WebSocket through nginx and upmedic: %s\naccess log: %s\nerror.log: %q\nupmedic:\n%s", failure, line.raw, errs, s.upmedic.output())
	}
	if line.status != http.StatusSwitchingProtocols || line.diagnosis != "" {
		t.Errorf("access log: status %d diag=%q, want 101 and no diagnosis\n%s", line.status, line.diagnosis, line.raw)
	}
	aloneFailure, aloneLine, aloneErrs := run(s.alone)
	if aloneFailure != "" {
		t.Errorf("WebSocket through nginx alone (the baseline) failed: %s", aloneFailure)
	}
	row.status = fmt.Sprintf("%d, 3 messages echoed", line.status)
	if failure != "" {
		row.status = failure
	}
	row.diagnosis = line.diagnosis
	row.aloneStatus = strconv.Itoa(aloneLine.status)
	row.aloneLog = strings.Join(aloneErrs, " / ")
}

func serverSentEvents(t *testing.T, row *reportRow) {
	need(t, "nginx", "node")
	dir := scenarioDir(t)
	_, app := startNode(t, dir)
	s := newStack(t, dir, stackConfig{Upstream: app, Alone: "proxy_pass http://" + app + "; proxy_buffering off;"})

	// sse reads the stream through f: the first event must arrive while the
	// app still holds the stream open (it ends it only when /release is
	// asked, after that event was read), then the second and the end.
	sse := func(f front) (logLine, error) {
		tok := token()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+f.addr+"/events/stream?id="+tok+"&e2e="+tok, nil)
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			return logLine{}, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			return logLine{}, fmt.Errorf("got %s with Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
		}
		br := bufio.NewReader(resp.Body)
		first := make(chan string, 1)
		go func() { first <- readEvent(br) }()
		select {
		case ev := <-first:
			if ev != "data: one" {
				return logLine{}, fmt.Errorf("first event %q, want data: one", ev)
			}
		case <-time.After(5 * time.Second):
			return logLine{}, fmt.Errorf("no event within 5s while the app holds the stream open: something buffers it")
		}
		// Straight to the app: the stream must still be open there.
		rel, err := http.Get("http://" + app + "/release?id=" + tok)
		if err != nil {
			return logLine{}, err
		}
		rel.Body.Close()
		if rel.StatusCode != http.StatusOK {
			return logLine{}, fmt.Errorf("release: %s: the app's stream had already ended", rel.Status)
		}
		if ev := readEvent(br); ev != "data: two" {
			return logLine{}, fmt.Errorf("second event %q, want data: two", ev)
		}
		if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
			return logLine{}, fmt.Errorf("after the last event: %q, %v; want a clean end", rest, err)
		}
		return f.waitLogLine(t, tok), nil
	}

	line, err := sse(s.via)
	if err != nil {
		t.Fatalf("server-sent events through nginx and upmedic: %v\nupmedic:\n%s", err, s.upmedic.output())
	}
	if line.status != http.StatusOK || line.diagnosis != "" {
		t.Errorf("access log: status %d diag=%q, want 200 and no diagnosis", line.status, line.diagnosis)
	}
	aloneLine, err := sse(s.alone)
	if err != nil {
		t.Errorf("server-sent events through nginx alone (the baseline): %v", err)
	}
	row.status = "200, first event read while the app held the stream open"
	row.diagnosis = line.diagnosis
	row.aloneStatus = strconv.Itoa(aloneLine.status)
}

// readEvent returns the first non-empty line of the next event, or the
// error's text.
func readEvent(br *bufio.Reader) string {
	var ev string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "error: " + err.Error()
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if ev != "" {
				return ev
			}
			continue
		}
		if ev == "" {
			ev = line
		}
	}
}
