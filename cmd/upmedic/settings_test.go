package main

import "testing"

func TestConfigInEffect(t *testing.T) {
	cfg, err := loadConfig([]string{"UPMEDIC_UPSTREAM=unix:/run/app.sock", "UPMEDIC_CONNECT_TIMEOUT=500ms",
		"UPMEDIC_ADMIN_LISTEN=", "UPMEDIC_HEALTH_RISE=4"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range configInEffect(cfg) {
		got[c.Name] = c.Value
	}
	if len(got) != len(configFields()) {
		t.Errorf("%d settings, want one per variable (%d)", len(got), len(configFields()))
	}
	want := map[string]string{
		"UPMEDIC_UPSTREAM":         "unix:/run/app.sock",
		"UPMEDIC_CONNECT_TIMEOUT":  "500ms", // given
		"UPMEDIC_RESPONSE_TIMEOUT": "45s",   // default
		"UPMEDIC_ADMIN_LISTEN":     "",      // disabled
		"UPMEDIC_HEALTH_RISE":      "4",
		"UPMEDIC_EXPOSE_DETAILS":   "false",
		"UPMEDIC_HEALTH_PATH":      "",
	}
	for k, w := range want {
		if v, ok := got[k]; !ok || v != w {
			t.Errorf("%s = %q (present %v), want %q", k, v, ok, w)
		}
	}
}
