package nginxconf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Bounds on what Load reads, so that a configuration that includes itself,
// or a hostile file, cannot take unbounded time or memory.
const (
	maxDepth        = 64      // nested blocks in one file
	maxIncludeDepth = 16      // include within include
	maxFiles        = 4096    // files read in all
	maxFileBytes    = 4 << 20 // one file
)

// Directive is one directive of an nginx configuration: its name, its
// arguments (unquoted and unescaped, as nginx reads them) and, for a block
// directive (http, server, location, upstream, ...), the directives inside
// it. An include directive never appears: Load puts the included files'
// directives in its place.
type Directive struct {
	Name string
	Args []string
	// File and Line are where the directive's name is written.
	File string
	Line int
	// Block holds the directives between the braces; nil for a simple
	// directive, non-nil (possibly empty) for a block.
	Block []*Directive
}

// IsBlock reports whether d was written with braces.
func (d *Directive) IsBlock() bool { return d.Block != nil }

// Arg returns the i-th argument, or "" when there are fewer.
func (d *Directive) Arg(i int) string {
	if i < len(d.Args) {
		return d.Args[i]
	}
	return ""
}

// String returns the directive as it would be written: `proxy_pass
// http://upmedic;`, or its name and arguments followed by "{ ... }".
func (d *Directive) String() string {
	var b strings.Builder
	b.WriteString(d.Name)
	for _, a := range d.Args {
		b.WriteByte(' ')
		b.WriteString(quoteArg(a))
	}
	if d.IsBlock() {
		b.WriteString(" { ... }")
	} else {
		b.WriteByte(';')
	}
	return b.String()
}

// quoteArg quotes an argument that would not read back as one word.
func quoteArg(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\r\n;{}\"'\\#") {
		return a
	}
	return strconv.Quote(a)
}

// SyntaxError is a configuration nginx itself would reject while reading it:
// a stray brace, an unterminated quote, an include that cannot be read. Its
// message reads like nginx's: `unexpected "}" in /etc/nginx/nginx.conf:12`.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return e.Msg + " in " + e.File
	}
	return e.Msg + " in " + e.File + ":" + strconv.Itoa(e.Line)
}

// Parse reads one file's contents, without following its includes (they
// stay include directives). name is the file name the directives and errors
// carry.
func Parse(name string, src []byte) ([]*Directive, error) {
	p := parser{lx: newLexer(name, src)}
	return p.block(0)
}

type parser struct {
	lx *lexer
}

// block reads directives until the "}" that closes a block at depth, or the
// end of the file at depth 0.
func (p *parser) block(depth int) ([]*Directive, error) {
	dirs := []*Directive{}
	var cur *Directive // the directive whose words are being read
	for {
		t, err := p.lx.next()
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case tokWord:
			if cur == nil {
				cur = &Directive{Name: t.text, File: p.lx.file, Line: t.line}
			} else {
				cur.Args = append(cur.Args, t.text)
			}
		case tokSemi:
			if cur == nil {
				return nil, p.lx.errorf(t.line, `unexpected ";"`)
			}
			dirs = append(dirs, cur)
			cur = nil
		case tokOpen:
			if cur == nil {
				return nil, p.lx.errorf(t.line, `unexpected "{"`)
			}
			if depth+1 > maxDepth {
				return nil, p.lx.errorf(t.line, "blocks nested deeper than %d", maxDepth)
			}
			if cur.Block, err = p.block(depth + 1); err != nil {
				return nil, err
			}
			dirs = append(dirs, cur)
			cur = nil
		case tokClose:
			if cur != nil || depth == 0 {
				return nil, p.lx.errorf(t.line, `unexpected "}"`)
			}
			return dirs, nil
		case tokEOF:
			if cur != nil {
				return nil, p.lx.errorf(t.line, `unexpected end of file, expecting ";" or "}"`)
			}
			if depth > 0 {
				return nil, p.lx.errorf(t.line, `unexpected end of file, expecting "}"`)
			}
			return dirs, nil
		}
	}
}

// Config is an nginx configuration read by Load, includes expanded.
type Config struct {
	// File is the main file, as given to Load.
	File string
	// Prefix is the directory relative include paths are read from: the
	// main file's directory, as nginx's conf prefix is for nginx -c FILE.
	Prefix string
	// Files lists every file read, the main file first, in reading order.
	Files []string
	// Directives are the main context's directives.
	Directives []*Directive
}

// Load reads the nginx configuration in file and every file it includes,
// as nginx -t -c file would: a relative include path is read from the main
// file's directory, a path with a wildcard (*, ?, [) includes every match
// in name order and may match none, and a plain path must exist. Its error
// is a *SyntaxError for a configuration nginx would reject while reading it,
// or the error of reading the main file.
func Load(file string) (*Config, error) {
	ld := &loader{cfg: &Config{File: file, Prefix: filepath.Dir(file)}}
	dirs, err := ld.read(file, 0)
	if err != nil {
		return nil, err
	}
	ld.cfg.Directives = dirs
	return ld.cfg, nil
}

type loader struct {
	cfg *Config
}

// read parses one file and expands its includes; depth counts includes.
func (ld *loader) read(file string, depth int) ([]*Directive, error) {
	if len(ld.cfg.Files) >= maxFiles {
		return nil, &SyntaxError{File: file, Msg: fmt.Sprintf("more than %d files included", maxFiles)}
	}
	src, err := readFile(file)
	if err != nil {
		return nil, err
	}
	ld.cfg.Files = append(ld.cfg.Files, file)
	dirs, err := Parse(file, src)
	if err != nil {
		return nil, err
	}
	return ld.expand(dirs, depth)
}

// readFile reads a configuration file of at most maxFileBytes.
func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("read %s: %w", name, syscall.EISDIR)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("read %s: %w", name, syscall.EFBIG)
	}
	return b, nil
}

// expand replaces each include directive in dirs, at any depth, with the
// directives of the files it names.
func (ld *loader) expand(dirs []*Directive, depth int) ([]*Directive, error) {
	out := make([]*Directive, 0, len(dirs))
	for _, d := range dirs {
		if d.Name != "include" || d.IsBlock() {
			if d.IsBlock() {
				block, err := ld.expand(d.Block, depth)
				if err != nil {
					return nil, err
				}
				d.Block = block
			}
			out = append(out, d)
			continue
		}
		if len(d.Args) != 1 {
			return nil, &SyntaxError{File: d.File, Line: d.Line, Msg: `invalid number of arguments in "include" directive`}
		}
		if depth+1 > maxIncludeDepth {
			return nil, &SyntaxError{File: d.File, Line: d.Line, Msg: fmt.Sprintf("includes nested deeper than %d (does a file include itself?)", maxIncludeDepth)}
		}
		files, err := ld.resolve(d)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			inc, err := ld.read(f, depth+1)
			if err != nil {
				var se *SyntaxError
				if errors.As(err, &se) {
					return nil, err
				}
				return nil, &SyntaxError{File: d.File, Line: d.Line, Msg: fmt.Sprintf("open() %q failed (%v)", f, rootCause(err))}
			}
			out = append(out, inc...)
		}
	}
	return out, nil
}

// resolve returns the files an include names, relative to the prefix.
func (ld *loader) resolve(d *Directive) ([]string, error) {
	path := d.Args[0]
	if !filepath.IsAbs(path) {
		path = filepath.Join(ld.cfg.Prefix, path)
	}
	if !strings.ContainsAny(path, "*?[") {
		return []string{path}, nil
	}
	files, err := filepath.Glob(path)
	if err != nil {
		return nil, &SyntaxError{File: d.File, Line: d.Line, Msg: fmt.Sprintf("bad include pattern %q: %v", d.Args[0], err)}
	}
	return files, nil // Glob sorts by name, as glob(3) does for nginx
}

// rootCause returns the innermost error, for nginx-like messages:
// "no such file or directory", not "open /x: no such file or directory".
func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}
