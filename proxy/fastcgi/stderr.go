package fastcgi

import "bytes"

// StderrKind is what a STDERR text from PHP-FPM says. The zero StderrKind is
// StderrText: nothing upmedic recognizes.
type StderrKind uint8

// The kinds of STDERR text, from PHP-FPM's own messages (sapi/fpm).
const (
	// StderrText is any other text: PHP's warnings and errors ("PHP
	// message: PHP Fatal error: ..." with catch_workers_output), a
	// script's own error_log() lines.
	StderrText StderrKind = iota
	// StderrScriptUnknown is "Primary script unknown": no file at
	// SCRIPT_FILENAME. PHP-FPM answers 404 "File not found.".
	StderrScriptUnknown
	// StderrScriptUnreadable is "Unable to open primary script: PATH
	// (REASON)": the file exists but the pool's user cannot open it. PHP-FPM
	// answers 403 "Access denied." for EACCES, else 404 "No input file
	// specified.".
	StderrScriptUnreadable
	// StderrAccessDenied is "Access to the script 'PATH' has been denied
	// (see security.limit_extensions)": the file's extension is not one
	// PHP-FPM may run. PHP-FPM answers 403 "Access denied.".
	StderrAccessDenied
)

var stderrKindNames = [...]string{"text", "script unknown", "script unreadable", "access denied"}

// String returns a short phrase for k.
func (k StderrKind) String() string {
	if int(k) < len(stderrKindNames) {
		return stderrKindNames[k]
	}
	return "unknown"
}

// ClassifyStderr returns what PHP-FPM's STDERR text says, looking at it line
// by line for PHP-FPM's own messages; the first one found wins. For
// StderrScriptUnreadable and StderrAccessDenied it also returns the script
// path the message names (a slice of text), for the log; PHP-FPM names none
// with "Primary script unknown". Pass Reader.Stderr. It allocates nothing.
func ClassifyStderr(text []byte) (kind StderrKind, script []byte) {
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		line = bytes.TrimRight(line, "\r")
		switch {
		case bytes.Contains(line, []byte("Primary script unknown")):
			return StderrScriptUnknown, nil
		case bytes.Contains(line, []byte("(see security.limit_extensions)")):
			_, rest, ok := bytes.Cut(line, []byte("Access to the script '"))
			if ok {
				if path, _, ok := bytes.Cut(rest, []byte("' has been denied")); ok {
					return StderrAccessDenied, path
				}
			}
			return StderrAccessDenied, nil
		case bytes.Contains(line, []byte("Unable to open primary script: ")):
			_, rest, _ := bytes.Cut(line, []byte("Unable to open primary script: "))
			if i := bytes.LastIndex(rest, []byte(" (")); i >= 0 {
				rest = rest[:i]
			}
			return StderrScriptUnreadable, rest
		}
	}
	return StderrText, nil
}
