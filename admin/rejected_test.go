package admin

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/upmedic/upmedic/diag"
)

// Requests upmedic refused are counted by rule, in /status and /metrics,
// beside the upstream connections held by client bodies.
func TestRejectedAndClientBodies(t *testing.T) {
	traffic := new(diag.Traffic)
	traffic.Rejected("bare-lf")
	traffic.Rejected("bare-lf")
	traffic.Rejected("client-body-timeout")
	traffic.ClientBody(3)
	traffic.ClientBody(-1)
	h := NewHandler(Settings{Traffic: traffic, Journal: new(diag.Journal), Logger: quiet()})

	code, body := get(t, h, "/status")
	if code != http.StatusOK {
		t.Fatalf("/status %d", code)
	}
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if r := st.Requests.Rejected; len(r) != 2 || r["bare-lf"] != 2 || r["client-body-timeout"] != 1 {
		t.Errorf("rejected %v", r)
	}
	if st.Requests.ClientBodies != 2 {
		t.Errorf("client_bodies %d, want 2", st.Requests.ClientBodies)
	}

	mfs := scrape(t, h)
	if v := sample(t, mfs, "upmedic_rejected_requests_total", "rule", "bare-lf").GetCounter().GetValue(); v != 2 {
		t.Errorf("rejected{bare-lf} = %v, want 2", v)
	}
	if v := sample(t, mfs, "upmedic_upstream_client_body_connections").GetGauge().GetValue(); v != 2 {
		t.Errorf("client body connections = %v, want 2", v)
	}
}
