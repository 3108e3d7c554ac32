package nginxconf

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestQueries(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "keepalive", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if user, d := cfg.WorkerUser(); user != "www-data" || d == nil || d.Line != 3 {
		t.Errorf("WorkerUser() = %q, %+v", user, d)
	}
	if got := cfg.UpstreamsTo("127.0.0.1:8080"); !slices.Equal(got, []string{"upmedic", "plain", "lingering"}) {
		t.Errorf("UpstreamsTo(127.0.0.1:8080) = %q", got)
	}
	if got := cfg.UpstreamsTo("127.0.0.1:9999"); len(got) != 0 {
		t.Errorf("UpstreamsTo(127.0.0.1:9999) = %q", got)
	}
	none := &Config{}
	if user, d := none.WorkerUser(); user != "" || d != nil {
		t.Errorf("no user directive: %q, %v", user, d)
	}
}
