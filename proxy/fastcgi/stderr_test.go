package fastcgi

import "testing"

func TestClassifyStderr(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		kind       StderrKind
		script     string
	}{
		{"PHP-FPM's missing script", "Primary script unknown", StderrScriptUnknown, ""},
		{"with a newline and a prefix", "PHP message: PHP Warning:  x\nERROR: Primary script unknown\n", StderrScriptUnknown, ""},
		{"limit_extensions", "Access to the script '/srv/www/uploads/a.jpg' has been denied (see security.limit_extensions)", StderrAccessDenied, "/srv/www/uploads/a.jpg"},
		{"limit_extensions with a quote in the path", "Access to the script '/srv/it's.jpg' has been denied (see security.limit_extensions)", StderrAccessDenied, "/srv/it's.jpg"},
		{"limit_extensions, path cut off", "Access to the script '/srv/x (see security.limit_extensions)", StderrAccessDenied, ""},
		{"unreadable", "Unable to open primary script: /srv/www/index.php (Permission denied)", StderrScriptUnreadable, "/srv/www/index.php"},
		{"unreadable, CRLF", "Unable to open primary script: /srv/a (b).php (No such file or directory)\r\n", StderrScriptUnreadable, "/srv/a (b).php"},
		{"a fatal error", "PHP message: PHP Fatal error:  Allowed memory size of 134217728 bytes exhausted", StderrText, ""},
		{"empty", "", StderrText, ""},
		{"the first message wins", "Access to the script '/a' has been denied (see security.limit_extensions)\nPrimary script unknown", StderrAccessDenied, "/a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, script := ClassifyStderr([]byte(tc.text))
			if kind != tc.kind || string(script) != tc.script {
				t.Errorf("ClassifyStderr = %v %q, want %v %q", kind, script, tc.kind, tc.script)
			}
		})
	}
	if StderrAccessDenied.String() != "access denied" || StderrKind(9).String() != "unknown" {
		t.Error("StderrKind.String")
	}
}
