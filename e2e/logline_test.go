package e2e

import "testing"

// TestParseLogLine pins the suite's reader of log_format upmedic to lines
// nginx 1.22 wrote in this suite, so a scenario never passes because the
// parser read nothing.
func TestParseLogLine(t *testing.T) {
	tests := []struct {
		name, line          string
		status              int
		us, diag, ps, cause string
		param, paramValue   string
	}{
		{
			name:   "diagnosed",
			line:   `127.0.0.1 - - [25/Nov/2026:23:11:36 +0000] "GET /?e2e=48b07b9aa058 HTTP/1.1" 502 81 "-" "Go-http-client/1.1" rt=0.003 us=502 urt=0.004 diag="socket_permission_denied;errno=EACCES;elapsed-ms=0" ps="upmedic;error=connection_refused;details=\x22permission denied on upstream socket\x22"`,
			status: 502, us: "502",
			diag:  "socket_permission_denied;errno=EACCES;elapsed-ms=0",
			ps:    `upmedic;error=connection_refused;details="permission denied on upstream socket"`,
			cause: "socket_permission_denied", param: "errno", paramValue: "EACCES",
		},
		{
			name:   "passed through",
			line:   `127.0.0.1 - - [25/Nov/2026:23:11:35 +0000] "GET /?e2e=a3d1bd6cb718 HTTP/1.1" 200 20 "-" "Go-http-client/1.1" rt=0.037 us=200 urt=0.036 diag="-" ps="-"`,
			status: 200, us: "200",
		},
		{
			name:   "upmedic down",
			line:   `127.0.0.1 - - [25/Nov/2026:23:11:35 +0000] "GET /?e2e=2355f4944799 HTTP/1.1" 502 150 "-" "Go-http-client/1.1" rt=0.001 us=502 urt=0.001 diag="-" ps="-"`,
			status: 502, us: "502",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := parseLogLine(tt.line)
			if err != nil {
				t.Fatal(err)
			}
			if l.status != tt.status || l.upstreamStatus != tt.us || l.diagnosis != tt.diag || l.proxyStatus != tt.ps {
				t.Errorf("got status %d us %q diag %q ps %q", l.status, l.upstreamStatus, l.diagnosis, l.proxyStatus)
			}
			cause, ps := params(l.diagnosis)
			if cause != tt.cause || ps[tt.param] != tt.paramValue {
				t.Errorf("params(%q) = %q, %v", l.diagnosis, cause, ps)
			}
			if member, pp := params(l.proxyStatus); tt.ps != "" && (member != "upmedic" || pp["details"] != "permission denied on upstream socket") {
				t.Errorf("params(%q) = %q, %v", l.proxyStatus, member, pp)
			}
		})
	}
	if _, err := parseLogLine(`127.0.0.1 - - [x] "GET / HTTP/1.1" 200 2 "-" "-"`); err == nil {
		t.Error("a combined-format line parsed as log_format upmedic")
	}
}
