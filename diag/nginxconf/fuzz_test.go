package nginxconf

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// render writes directives back as configuration text, every word quoted,
// so that Parse must read back the same names and arguments.
func render(b *strings.Builder, dirs []*Directive) {
	quote := func(s string) {
		b.WriteByte('"')
		for i := 0; i < len(s); i++ {
			if s[i] == '"' || s[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[i])
		}
		b.WriteByte('"')
	}
	for _, d := range dirs {
		quote(d.Name)
		for _, a := range d.Args {
			b.WriteByte(' ')
			quote(a)
		}
		if d.IsBlock() {
			b.WriteString(" {\n")
			render(b, d.Block)
			b.WriteString("}\n")
		} else {
			b.WriteString(";\n")
		}
	}
}

// shape is dump without line numbers.
func shape(dirs []*Directive) string {
	var b strings.Builder
	var walk func([]*Directive)
	walk = func(ds []*Directive) {
		for _, d := range ds {
			b.WriteString(d.Name + "\x00" + strings.Join(d.Args, "\x00") + "\x01")
			if d.IsBlock() {
				b.WriteString("{")
				walk(d.Block)
				b.WriteString("}")
			}
		}
	}
	walk(dirs)
	return b.String()
}

// FuzzParse feeds the tokenizer every configuration in testdata and the
// parse tests' inputs, mutated. A configuration that parses must read back
// the same after rendering, its lines must lie in the input, and Check must
// judge it without failing.
func FuzzParse(f *testing.F) {
	var seeds []string
	_ = filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".conf") || strings.Contains(p, "sites-enabled")) {
			seeds = append(seeds, p)
		}
		return nil
	})
	if len(seeds) < 10 {
		f.Fatalf("seeds: %v", seeds)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, tc := range syntaxErrors {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(`a "\t\n\\\"" x\y '\x'; set $x ${host}y; if ($a = "b") { return 200; } a}b c};`))

	f.Fuzz(func(t *testing.T, src []byte) {
		dirs, err := Parse("f.conf", src)
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("error %v is not a *SyntaxError", err)
			}
			return
		}
		lines := bytes.Count(src, []byte("\n")) + 1
		var walk func([]*Directive)
		walk = func(ds []*Directive) {
			for _, d := range ds {
				if d.Line < 1 || d.Line > lines || d.File != "f.conf" {
					t.Errorf("directive %q at %s:%d of %d lines", d.Name, d.File, d.Line, lines)
				}
				for _, a := range d.Args {
					parseTime(a)
					parseSize(a)
					parseAddress(a, "80")
					isLoopbackListen(a)
				}
				walk(d.Block)
			}
		}
		walk(dirs)

		var b strings.Builder
		render(&b, dirs)
		again, err := Parse("f.conf", []byte(b.String()))
		if err != nil {
			t.Fatalf("rendered configuration does not parse: %v\n%s", err, b.String())
		}
		if shape(again) != shape(dirs) {
			t.Errorf("rendered configuration reads back differently:\n%q\n%q", shape(dirs), shape(again))
		}

		s := baseSettings()
		s.Upstream = "unix:/run/app.sock"
		rep := Check(&Config{File: "f.conf", Files: []string{"f.conf"}, Directives: dirs}, s)
		for _, fd := range rep.Findings {
			if fd.File == "" || fd.Directive == "" || fd.Fix == "" || fd.Message == "" {
				t.Errorf("incomplete finding %+v", fd)
			}
		}
	})
}

// FuzzParsePHPFPM feeds the php-fpm reader the pool file in testdata,
// mutated.
func FuzzParsePHPFPM(f *testing.F) {
	b, err := os.ReadFile("testdata/php-fpm/www.conf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("[global]\ninclude=pool.d/*.conf\n[a]\nlisten = \"$pool.sock\"\nrequest_terminate_timeout=1d\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		settings, _ := parsePHPFPM(src)
		lines := bytes.Count(src, []byte("\n")) + 1
		for _, s := range settings {
			if s.line < 1 || s.line > lines || s.key == "" || s.section == "" {
				t.Errorf("setting %+v of %d lines", s, lines)
			}
			if d, ok := parseFPMTime(s.value); ok && d < 0 {
				t.Errorf("negative time %v from %q", d, s.value)
			}
		}
	})
}
