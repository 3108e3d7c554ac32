package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/upmedic/upmedic/diag"
	"github.com/upmedic/upmedic/internal/sockfault"
)

// The journal keeps each failure with the request it answered: the method
// and the raw path, without the query, which carries tokens.
func TestJournalKeepsRequest(t *testing.T) {
	t.Run("refused connect", func(t *testing.T) {
		j := new(diag.Journal)
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: sockfault.ClosedTCPAddr(t), Journal: j})
		wantDiagnosis(t, send(t, addr, "DELETE /api/items/7?token=s3cret HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"),
			http.StatusBadGateway, diag.ConnectionRefused)
		wantEntry(t, j, diag.ConnectionRefused, "DELETE", "/api/items/7")
	})
	t.Run("the app's own 503", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", raw("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"))
		j := new(diag.Journal)
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), Journal: j})
		if r := get(t, addr, "/report?id=1"); r.StatusCode != 503 || string(r.body) != "busy" {
			t.Fatalf("got %d %q, want the app's 503 busy", r.StatusCode, r.body)
		}
		e := wantEntry(t, j, diag.UpstreamStatus, "GET", "/report")
		if e.Diagnosis.ReceivedStatus != 503 || e.Phase != diag.PhaseHeader || e.Aborted {
			t.Errorf("entry %+v, want received-status 503 in the response header phase", e.Diagnosis)
		}
	})
	t.Run("streamed body cut", func(t *testing.T) {
		up := newFakeUpstream(t, "tcp", raw("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("x", 100)))
		j := new(diag.Journal)
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address(), BufferBytes: 10, Journal: j})
		get(t, addr, "/files/big.iso?sig=abc")
		waitFor(t, "the abort to be recorded", func() bool { return j.Count(diag.HTTPResponseIncomplete) == 1 })
		if e := wantEntry(t, j, diag.HTTPResponseIncomplete, "GET", "/files/big.iso"); !e.Aborted {
			t.Errorf("entry not marked aborted: %+v", e)
		}
	})
	t.Run("hostile path kept as sent, cut at 256 bytes", func(t *testing.T) {
		j := new(diag.Journal)
		addr, _ := startProxy(t, Settings{Network: "tcp", Address: sockfault.ClosedTCPAddr(t), Journal: j})
		// upmedic refuses < > " in a request-target (as HAProxy does), so
		// the most hostile path that reaches the journal is one of quotes,
		// ampersands and percent-encoded markup.
		path := `/%3Cscript%3Ealert(1)%3C/script%3E/'onerror='alert(2)'&x=;/` + strings.Repeat("a", 300)
		get(t, addr, path+"?q=1")
		e := wantEntry(t, j, diag.ConnectionRefused, "GET", path[:diag.MaxPathBytes])
		if !e.Request.Truncated() {
			t.Error("a 360-byte path is not marked truncated")
		}
	})
}

// wantEntry checks the newest journal entry's cause, method and path.
func wantEntry(t *testing.T, j *diag.Journal, cause diag.Cause, method, path string) diag.Entry {
	t.Helper()
	rec := j.Recent()
	if len(rec) != 1 {
		t.Fatalf("%d journal entries, want 1: %+v", len(rec), rec)
	}
	e := rec[0]
	if e.Diagnosis.Cause != cause || e.Request.Method() != method || e.Request.Path() != path {
		t.Errorf("entry %s %s %q, want %s %s %q", e.Diagnosis.Cause, e.Request.Method(), e.Request.Path(), cause, method, path)
	}
	return e
}
