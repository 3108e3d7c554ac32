package fastcgi

import (
	"os"
	"testing"
)

func TestParsePoolStatus(t *testing.T) {
	// Captured from php-fpm 8.2 (pm.status_path?json) with one worker busy
	// and one request waiting on a TCP pool.
	body, err := os.ReadFile("testdata/fpm-status.json")
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParsePoolStatus(body)
	want := PoolStatus{Pool: "busy", ProcessManager: "static", AcceptedConn: 1, ListenQueue: 1, MaxListenQueue: 1,
		ListenQueueLen: 4096, ActiveProcesses: 1, TotalProcesses: 1, MaxActiveProcesses: 1}
	if err != nil || st != want {
		t.Errorf("ParsePoolStatus = %+v, %v; want %+v", st, err, want)
	}
	// Fields it does not know (newer PHP, ?full) are ignored.
	st, err = ParsePoolStatus([]byte(`{"pool":"www","listen queue":3,"memory peak":1234,"processes":[{"pid":1}]}`))
	if err != nil || st.Pool != "www" || st.ListenQueue != 3 {
		t.Errorf("with unknown fields: %+v, %v", st, err)
	}
	for _, bad := range []string{"", "pool: www", `{"listen queue":"three"}`, "<html>"} {
		if _, err := ParsePoolStatus([]byte(bad)); err == nil {
			t.Errorf("ParsePoolStatus(%q) succeeded", bad)
		}
	}
}
