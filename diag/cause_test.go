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
		{Cause: ConnectionTerminated, FastCGI: true},
		{Cause: ConnectionRefused, Timer: 30 * time.Second}, // a timer belongs to premature closes only
	} {
		if got := d.Hint(); got != d.Cause.Hint() {
			t.Errorf("%+v: hint %q, want the cause's own", d, got)
		}
	}
}
