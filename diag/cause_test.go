package diag

import (
	"strings"
	"testing"
	"time"
)

// A premature close at the age of a kill timer gets a hint with its numbers
// and the timers that kill at a fixed age, PHP-FPM's first for FastCGI.
func TestTimerHint(t *testing.T) {
	d := Diagnosis{Cause: ConnectionTerminated, Timer: 30 * time.Second, ClosedAt: 30208 * time.Millisecond, TimerPrior: 4}
	const http = "closed at 30.2 s like the 4 before it: a timer in the app kills requests at ~30 s: " +
		"gunicorn --timeout, php-fpm request_terminate_timeout, uwsgi harakiri; " +
		`the app's log says which (gunicorn "WORKER TIMEOUT", php-fpm "execution timed out", uwsgi "HARAKIRI"). ` +
		"Make the request faster or raise that timer above it, and keep it below UPMEDIC_RESPONSE_TIMEOUT."
	if got := d.Hint(); got != http {
		t.Errorf("hint\n got %s\nwant %s", got, http)
	}
	d.FastCGI = true
	if got := d.Hint(); !strings.HasPrefix(got, "closed at 30.2 s like the 4 before it: a timer in the app kills requests at ~30 s: php-fpm request_terminate_timeout") ||
		strings.Contains(got, "gunicorn") {
		t.Errorf("FastCGI hint %s: want request_terminate_timeout first and no gunicorn", got)
	}
	for _, d := range []Diagnosis{
		{Cause: ConnectionTerminated},
		{Cause: ConnectionRefused, Timer: 30 * time.Second}, // a timer belongs to premature closes only
	} {
		if got := d.Hint(); got != d.Cause.Hint() {
			t.Errorf("%+v: hint %q, want the cause's own", d, got)
		}
	}
}

// A FastCGI upstream's failures get PHP-FPM's hints, and the wrong protocol
// is named with the answered parameter.
func TestFastCGIHints(t *testing.T) {
	for _, c := range []struct {
		d      Diagnosis
		header string
		hint   []string
	}{
		{Diagnosis{Cause: ConnectionTerminated, FastCGI: true}, "connection_terminated;elapsed-ms=0",
			[]string{"FCGI_END_REQUEST", "request_terminate_timeout", "max_execution_time", "memory_limit", "FPM log"}},
		{Diagnosis{Cause: HTTPProtocolError, FastCGI: true, Answered: AnsweredHTTP}, "http_protocol_error;elapsed-ms=0;answered=http",
			[]string{"answered FastCGI with HTTP", "PHP-FPM's listen address"}},
		{Diagnosis{Cause: HTTPProtocolError, Answered: AnsweredFastCGI}, "http_protocol_error;elapsed-ms=0;answered=fastcgi",
			[]string{"FastCGI server (PHP-FPM)", "fastcgi://"}},
		{Diagnosis{Cause: HTTPResponseTimeout, FastCGI: true, Pool: true, ListenQueue: 2, ActiveProcesses: 1, MaxChildren: 1},
			"http_response_timeout;elapsed-ms=0;listen-queue=2;active-processes=1;max-children=1",
			[]string{"pm.max_children", "listen-queue"}},
	} {
		if got := string(c.d.AppendHeader(nil, false)); got != c.header {
			t.Errorf("header %s, want %s", got, c.header)
		}
		hint := c.d.Hint()
		for _, w := range c.hint {
			if !strings.Contains(hint, w) {
				t.Errorf("%s: hint %q lacks %q", c.header, hint, w)
			}
		}
		if hint == c.d.Cause.Hint() {
			t.Errorf("%s: hint is the cause's own", c.header)
		}
	}
}
