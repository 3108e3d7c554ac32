// Command upmedic is a sidecar reverse proxy that sits between nginx and one
// application backend and turns every upstream failure into a diagnosed
// 502/503/504. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/upmedic/upmedic/admin"
	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/health"
	"github.com/upmedic/upmedic/proxy"
	"golang.org/x/sync/errgroup"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: upmedic [command]

commands:
  serve                  run the sidecar (the default)
  check                  exit 0 when the running sidecar reports ready (Docker HEALTHCHECK)
  env                    print every UPMEDIC_ variable: its value in effect, where it came
                         from, its default and meaning
  diag probe [--json] [--as USER] [--path PATH] [UPSTREAM]
                         one-shot doctor against UPSTREAM (default UPMEDIC_UPSTREAM), as USER;
                         fastcgi:// upstreams get FCGI_GET_VALUES, PATH as php-fpm's ping.path,
                         and UPMEDIC_FASTCGI_STATUS_PATH
  diag nginx-log [--json] [--since TIME] [--conf FILE] [FILE|-]
                         classify an nginx error.log; exit 1 when it holds upstream failures
  diag nginx-conf [--json] [FILE]
                         check nginx's configuration (default /etc/nginx/nginx.conf) against upmedic's settings
  demo                   show upmedic's answer to each kind of upstream failure, in-process
  version                print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}

// run is main with its inputs and outputs passed in; it returns the exit
// code: 0 success, 1 a problem found or a runtime failure, 2 bad usage or
// configuration.
func run(args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(environ, stderr)
	case "check":
		return check(environ, stdout, stderr)
	case "env":
		return printEnv(environ, stdout, stderr)
	case "diag":
		return diagCommand(args, environ, stdin, stdout, stderr)
	case "demo":
		return demo(stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "upmedic", version)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "upmedic: unknown command %q\n%s", cmd, usage)
	return 2
}

// serve runs the sidecar until SIGINT or SIGTERM, then drains.
func serve(environ []string, stderr io.Writer) int {
	cfg, err := loadConfig(environ)
	if err != nil {
		printError(stderr, "upmedic: ", err)
		return 2
	}
	log := newLogger(cfg.LogFormat, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serveConfig(ctx, cfg, log, nil); err != nil {
		log.Error("upmedic stopped", "error", err.Error())
		return 1
	}
	return 0
}

// serveConfig runs the proxy, the health checker and the admin API until ctx
// ends. ready, when not nil, gets the listeners' addresses once they listen.
func serveConfig(ctx context.Context, cfg *Config, log *slog.Logger, ready chan<- [2]string) error {
	started := time.Now()
	journal := new(diag.Journal)
	traffic := new(diag.Traffic)
	ps := proxy.Settings{
		Network: cfg.upstream.Network, Address: cfg.upstream.Address, Display: cfg.upstream.String(),
		ConnectTimeout: cfg.ConnectTimeout, ResponseTimeout: cfg.ResponseTimeout, ReadTimeout: cfg.ReadTimeout,
		ClientHeaderTimeout: cfg.ClientHeaderTimeout, ClientBodyTimeout: cfg.ClientBodyTimeout,
		ClientSendTimeout:      cfg.ClientSendTimeout,
		MaxResponseHeaderBytes: cfg.MaxResponseHeaderBytes, BufferBytes: bufferBytes(cfg.BufferBytes),
		MaxConns: cfg.MaxConns, Hold: cfg.Hold, ExposeDetails: cfg.ExposeDetails, Name: cfg.Name,
		Journal: journal, Traffic: traffic, Logger: log,
		FastCGI: cfg.fastCGI(),
	}
	// UPMEDIC_HEALTH_INTERVAL=0 and UPMEDIC_BREAKER_FAILURES=0 turn them off:
	// nil in every Settings (and never a nil pointer in proxy's interfaces).
	var checker *health.Checker
	if cfg.HealthInterval > 0 {
		checker = health.NewChecker(health.Settings{
			Network: cfg.upstream.Network, Address: cfg.upstream.Address,
			Path: cfg.HealthPath, Interval: cfg.HealthInterval, Timeout: cfg.HealthTimeout,
			Rise: cfg.HealthRise, Fall: cfg.HealthFall,
			MaxHeaderBytes: cfg.MaxResponseHeaderBytes, Logger: log,
			FastCGI: cfg.upstream.FastCGI, StatusPath: cfg.FastCGIStatusPath,
			StatusNetwork: cfg.status.Network, StatusAddress: cfg.status.Address,
		})
		ps.Health = checker
		if ps.FastCGI != nil && cfg.FastCGIStatusPath != "" {
			ps.FastCGI.Pool = checker
		}
	}
	var breaker *health.Breaker
	if cfg.BreakerFailures > 0 {
		breaker = health.NewBreaker(health.BreakerSettings{
			Failures: cfg.BreakerFailures, OpenFor: cfg.BreakerOpenFor, Logger: log,
		})
		ps.Breaker = breaker
	}
	p := proxy.New(ps)
	defer p.Close()
	var stderrLines admin.FastCGIStderr
	if ps.FastCGI != nil {
		stderrLines = p
	}

	ln, err := listen(cfg.listen, cfg.listenMode)
	if err != nil {
		return fmt.Errorf("listen on UPMEDIC_LISTEN: %w", err)
	}
	var adminLn net.Listener
	if cfg.admin.Network != "" {
		if adminLn, err = listen(cfg.admin, cfg.listenMode); err != nil {
			ln.Close()
			return fmt.Errorf("listen on UPMEDIC_ADMIN_LISTEN: %w", err)
		}
	}

	g, ctx := errgroup.WithContext(ctx)
	srv := p.Server()
	g.Go(func() error { return srv.Serve(ln) })
	if checker != nil {
		g.Go(func() error { return checker.Run(ctx) })
	}
	var adminSrv *http.Server
	if adminLn != nil {
		adminSrv = &http.Server{
			Handler: admin.NewHandler(admin.Settings{
				Upstream: cfg.upstream.String(), Journal: journal, Traffic: traffic,
				Checker: checker, Breaker: breaker, Timers: p, Logger: log, Version: version,
				Started: started, Config: configInEffect(cfg), FastCGI: stderrLines,
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		g.Go(func() error {
			if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	healthChecks, breakerState := "every "+cfg.HealthInterval.String(), "closed"
	if checker == nil {
		healthChecks = "off"
	}
	if breaker == nil {
		breakerState = "off"
	}
	log.Info("upmedic serving", "listen", cfg.listen.String(), "upstream", cfg.upstream.String(),
		"admin", cfg.admin.String(), "health_checks", healthChecks, "breaker", breakerState, "version", version)
	if ready != nil {
		a := [2]string{ln.Addr().String(), ""}
		if adminLn != nil {
			a[1] = adminLn.Addr().String()
		}
		ready <- a
	}
	g.Go(func() error {
		<-ctx.Done()
		log.Info("upmedic draining", "timeout", cfg.ShutdownTimeout.String())
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		err := srv.ShutdownWithContext(sctx)
		if adminSrv != nil {
			_ = adminSrv.Shutdown(sctx)
		}
		return err
	})
	err = g.Wait()
	if cfg.listen.Network == "unix" {
		_ = os.Remove(cfg.listen.Address)
	}
	return err
}

// bufferBytes maps UPMEDIC_BUFFER_BYTES to proxy.Settings: 0 streams all.
func bufferBytes(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// listen opens a TCP or unix listener. A stale unix socket file left by a
// previous run is removed first, and a new socket gets mode (UPMEDIC_LISTEN_MODE)
// right after it is made: chmod is not subject to the umask, which a
// systemd unit's UMask=0077 would otherwise apply (srwx------).
func listen(a address, mode os.FileMode) (net.Listener, error) {
	if a.Network != "unix" {
		return net.Listen(a.Network, a.Address)
	}
	if fi, err := os.Lstat(a.Address); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.Dial("unix", a.Address); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by a running process", a.Address)
		}
		_ = os.Remove(a.Address)
	}
	ln, err := net.Listen("unix", a.Address)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(a.Address, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("set mode %#o (UPMEDIC_LISTEN_MODE): %w", mode, err)
	}
	return ln, nil
}

// printError writes err to w, prefix before each of its lines: a
// ConfigErrors holds one line per variable.
func printError(w io.Writer, prefix string, err error) {
	for line := range strings.Lines(err.Error()) {
		fmt.Fprint(w, prefix, strings.TrimSuffix(line, "\n"), "\n")
	}
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

// check asks the running sidecar's admin API whether it is ready.
func check(environ []string, stdout, stderr io.Writer) int {
	cfg, err := loadConfigForTools(environ)
	if err != nil {
		printError(stderr, "upmedic: ", err)
		return 2
	}
	if cfg.admin.Network == "" {
		fmt.Fprintln(stderr, "upmedic check: UPMEDIC_ADMIN_LISTEN is empty: the admin API is disabled, nothing to ask")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.Check(ctx, cfg.admin.String()); err != nil {
		fmt.Fprintln(stderr, "not ready:", err)
		return 1
	}
	fmt.Fprintln(stdout, "ready")
	return 0
}

// loadConfigForTools reads the configuration for commands that talk to a
// running sidecar or its upstream; UPMEDIC_UPSTREAM may be absent for check.
func loadConfigForTools(environ []string) (*Config, error) {
	has := false
	for _, kv := range environ {
		if len(kv) >= len(envPrefix+"UPSTREAM=") && kv[:len(envPrefix+"UPSTREAM=")] == envPrefix+"UPSTREAM=" {
			has = true
		}
	}
	if !has {
		environ = append(environ[:len(environ):len(environ)], envPrefix+"UPSTREAM=127.0.0.1:1")
	}
	return loadConfig(environ)
}
