package nginxconf

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// dump writes directives compactly for comparison: name[args]@line{...}.
func dump(dirs []*Directive) string {
	var b strings.Builder
	for i, d := range dirs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(d.Name))
		b.WriteByte('[')
		for j, a := range d.Args {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Quote(a))
		}
		b.WriteString("]@" + strconv.Itoa(d.Line))
		if d.IsBlock() {
			b.WriteString("{" + dump(d.Block) + "}")
		}
	}
	return b.String()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"words and quotes", `a b "c d" 'e\'f';`, `"a"["b","c d","e'f"]@1`},
		{"comments and lines", "# x\na 1; # trailing\n\n  b;", `"a"["1"]@2 "b"[]@4`},
		{"hash inside a word", "a#b c#;", `"a#b"["c#"]@1`},
		{"brace inside a word", "a}b c};", `"a}b"["c}"]@1`},
		{"variables with braces", `set $x ${host}y;`, `"set"["$x","${host}y"]@1`},
		{"braced variable first", `proxy_pass http://${up}/p;`, `"proxy_pass"["http://${up}/p"]@1`},
		{"if with a quoted operand", `if ($a = "b") { return 200; }`, `"if"["($a","=","b",")"]@1{"return"["200"]@1}`},
		{"escapes", `a "\t\n\\\"" x\y '\x';`, `"a"["\t\n\\\"","x\\y","\\x"]@1`},
		{"escaped semicolon stays escaped", `a b\;c;`, `"a"["b\\;c"]@1`},
		{"escaped quote outside quotes", `a \"b;`, `"a"["\"b"]@1`},
		{"empty quoted words", `map $a $b { '' ''; default x; }`, `"map"["$a","$b"]@1{""[""]@1 "default"["x"]@1}`},
		{"quote in the middle is literal", `a b"c d;`, `"a"["b\"c","d"]@1`},
		{"nested blocks", "http {\n  server {\n    location / {\n      x;\n    }\n  }\n}\n",
			`"http"[]@1{"server"[]@2{"location"["/"]@3{"x"[]@4}}}`},
		{"empty block", "events {}", `"events"[]@1{}`},
		{"crlf", "a 1;\r\nb 2;\r\n", `"a"["1"]@1 "b"["2"]@2`},
		{"quoted word across lines", "a \"x\ny\" z;\nb;", `"a"["x\ny","z"]@1 "b"[]@3`},
		{"quote closed before brace", `location "/a" {}`, `"location"["/a"]@1{}`},
		{"quote closed before semicolon", `a "b";`, `"a"["b"]@1`},
		{"regex location", `location ~* \.(png|jpg)$ { expires 1d; }`, `"location"["~*","\\.(png|jpg)$"]@1{"expires"["1d"]@1}`},
		{"nothing", "", ``},
		{"only comments", "# a\n#b", ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dirs, err := Parse("f.conf", []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := dump(dirs); got != tc.want {
				t.Errorf("Parse(%q)\n got %s\nwant %s", tc.in, got, tc.want)
			}
		})
	}
}

// syntaxErrors are configurations nginx rejects while reading them, with
// nginx 1.22's own message and line.
var syntaxErrors = []struct {
	in, want string
}{
	{`events {} a "b`, `unexpected end of file, expecting ";" or "}" in f.conf:1`},
	{"events {}\n}", `unexpected "}" in f.conf:2`},
	{"events {} http {\n", `unexpected end of file, expecting "}" in f.conf:2`},
	{"events {} ;", `unexpected ";" in f.conf:1`},
	{`events {} http { server_tokens "off"x; }`, `unexpected "x" in f.conf:1`},
	{"events {} http", `unexpected end of file, expecting ";" or "}" in f.conf:1`},
	{"events {}\n{", `unexpected "{" in f.conf:2`},
	{"events { } http {\n server { listen 1 }\n}", `unexpected "}" in f.conf:2`},
	{"events { } http { 'a'}", `unexpected "}" in f.conf:1`},
	{"events {} a 'b\nc", `unexpected end of file, expecting ";" or "}" in f.conf:2`},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range syntaxErrors {
		_, err := Parse("f.conf", []byte(tc.in))
		var se *SyntaxError
		if !errors.As(err, &se) || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %v; want %q", tc.in, err, tc.want)
		}
	}
	deep := strings.Repeat("a {", maxDepth+1) + strings.Repeat("}", maxDepth+1)
	if _, err := Parse("f.conf", []byte(deep)); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("deep nesting: %v", err)
	}
}

// TestParseErrorsMatchNginx runs the real nginx -t on each syntax error and
// checks that it says what Parse says, at the same line.
func TestParseErrorsMatchNginx(t *testing.T) {
	bin := findNginx()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but nginx is not installed")
		}
		t.Skip("skipped: nginx is not installed (apt-get install nginx)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "f.conf")
	for _, tc := range syntaxErrors {
		if err := os.WriteFile(conf, []byte(tc.in), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(bin, "-t", "-p", dir+"/", "-c", conf, "-e", filepath.Join(dir, "error.log")).CombinedOutput()
		want := "nginx: [emerg] " + strings.Replace(tc.want, "f.conf", conf, 1)
		if first, _, _ := strings.Cut(string(out), "\n"); first != want {
			t.Errorf("nginx -t on %q says\n%s\nParse says\n%s", tc.in, first, want)
		}
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadIncludes(t *testing.T) {
	other := writeFiles(t, map[string]string{"abs.conf": ""})
	// Relative paths are read from the main file's directory, whichever
	// file includes them (nginx's conf prefix).
	dir := writeFiles(t, map[string]string{
		"nginx.conf":       "a;\nhttp {\n  include conf.d/*.conf;\n  include none/*.conf;\n  include " + other + "/abs.conf;\n}\n",
		"conf.d/b.conf":    "b1;\nb2 { include snip; }\n",
		"conf.d/a.conf":    "a1;",
		"conf.d/c.txt":     "not included;",
		"snip":             "s 1;\n\ns 2;",
		"conf.d/skip.conf": "# only a comment",
	})
	cfg, err := Load(filepath.Join(dir, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dump(cfg.Directives), `"a"[]@1 "http"[]@2{"a1"[]@1 "b1"[]@1 "b2"[]@2{"s"["1"]@1 "s"["2"]@3}}`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	http := cfg.Directives[1]
	if f := http.Block[0].File; f != filepath.Join(dir, "conf.d/a.conf") {
		t.Errorf("a1 is from %s", f)
	}
	if f := http.Block[2].Block[1].File; f != filepath.Join(dir, "snip") {
		t.Errorf("s 2 is from %s", f)
	}
	var rel []string
	for _, f := range cfg.Files {
		r, _ := filepath.Rel(dir, f)
		rel = append(rel, r)
	}
	if got := strings.Join(rel[:len(rel)-1], " ") + " " + cfg.Files[len(rel)-1]; got != "nginx.conf conf.d/a.conf conf.d/b.conf snip conf.d/skip.conf "+other+"/abs.conf" {
		t.Errorf("files read: %s", got)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"missing include", map[string]string{"nginx.conf": "a;\ninclude missing.conf;"},
			`open() "DIR/missing.conf" failed (no such file or directory) in DIR/nginx.conf:2`},
		{"include of a directory", map[string]string{"nginx.conf": "include d;", "d/x": ""},
			`open() "DIR/d" failed (is a directory) in DIR/nginx.conf:1`},
		{"include with two arguments", map[string]string{"nginx.conf": "include a b;"},
			`invalid number of arguments in "include" directive in DIR/nginx.conf:1`},
		{"syntax error in an included file", map[string]string{"nginx.conf": "http { include x.conf; }", "x.conf": "a;\n}"},
			`unexpected "}" in DIR/x.conf:2`},
		{"a file that includes itself", map[string]string{"nginx.conf": "include nginx.conf;"},
			`includes nested deeper than 16 (does a file include itself?) in DIR/nginx.conf:1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, tc.files)
			_, err := Load(filepath.Join(dir, "nginx.conf"))
			var se *SyntaxError
			if !errors.As(err, &se) || err.Error() != strings.ReplaceAll(tc.want, "DIR", dir) {
				t.Errorf("got %v\nwant %s", err, strings.ReplaceAll(tc.want, "DIR", dir))
			}
		})
	}
	_, err := Load(filepath.Join(t.TempDir(), "absent.conf"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing main file: %v", err)
	}
}

func TestDirectiveString(t *testing.T) {
	dirs, err := Parse("f", []byte(`proxy_set_header Connection ""; location "/a b" { x; } a 'q"';`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range dirs {
		got = append(got, d.String())
	}
	if s := strings.Join(got, " | "); s != `proxy_set_header Connection ""; | location "/a b" { ... } | a "q\"";` {
		t.Errorf("got %s", s)
	}
}
