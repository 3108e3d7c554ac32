package fastcgi

import (
	"errors"
	"testing"
)

func TestResolve(t *testing.T) {
	front, err := NewResolver("/var/www/site", "", "/index.php")
	if err != nil {
		t.Fatal(err)
	}
	noFront, err := NewResolver("/var/www/site/", "main.php", "")
	if err != nil {
		t.Fatal(err)
	}
	slash, err := NewResolver("/", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                                string
		r                                   *Resolver
		target                              string
		filename, scriptName, pathInfo, uri string
		err                                 error
	}{
		{"a script", front, "/info.php", "/var/www/site/info.php", "/info.php", "", "/info.php", nil},
		{"the query is not the path", front, "/info.php?a=/../x&b=%2f", "/var/www/site/info.php", "/info.php", "", "/info.php", nil},
		{"PATH_INFO", front, "/sub/info.php/extra/path", "/var/www/site/sub/info.php", "/sub/info.php", "/extra/path", "/sub/info.php/extra/path", nil},
		{"PATH_INFO of a slash", front, "/a.php/", "/var/www/site/a.php", "/a.php", "/", "/a.php/", nil},
		{"the first .php wins", front, "/a.php/b.php/c", "/var/www/site/a.php", "/a.php", "/b.php/c", "/a.php/b.php/c", nil},
		{".php must end a segment", front, "/a.phpx/b.php", "/var/www/site/a.phpx/b.php", "/a.phpx/b.php", "", "/a.phpx/b.php", nil},
		{".php alone is no script", front, "/.php/x", "/var/www/site/index.php", "/index.php", "", "/index.php", nil},
		{"case-sensitive, like nginx", front, "/A.PHP", "/var/www/site/index.php", "/index.php", "", "/index.php", nil},
		{"decoded", front, "/caf%C3%A9.php/a%20b%3Fc", "/var/www/site/café.php", "/café.php", "/a b?c", "/café.php/a b?c", nil},
		{"slashes merged", front, "//sub///info.php//x", "/var/www/site/sub/info.php", "/sub/info.php", "/x", "/sub/info.php/x", nil},
		{"the directory index", front, "/", "/var/www/site/index.php", "/index.php", "", "/index.php", nil},
		{"a subdirectory's index", front, "/blog/", "/var/www/site/blog/index.php", "/blog/index.php", "", "/blog/index.php", nil},
		{"another index", noFront, "/blog/", "/var/www/site/blog/main.php", "/blog/main.php", "", "/blog/main.php", nil},
		{"front controller", front, "/blog/hello-world?page=2", "/var/www/site/index.php", "/index.php", "", "/index.php", nil},
		{"a static-looking path", front, "/logo.png", "/var/www/site/index.php", "/index.php", "", "/index.php", nil},
		{"no front controller", noFront, "/blog/hello-world", "", "", "", "", ErrNoScript},
		{"root /", slash, "/x/y.php", "/x/y.php", "/x/y.php", "", "/x/y.php", nil},
		{"root / index", slash, "/", "/index.php", "/index.php", "", "/index.php", nil},
		{"three dots are a name", front, "/.../a.php", "/var/www/site/.../a.php", "/.../a.php", "", "/.../a.php", nil},
		{"dot-prefixed name", front, "/.well-known/x.php", "/var/www/site/.well-known/x.php", "/.well-known/x.php", "", "/.well-known/x.php", nil},

		{"empty", front, "", "", "", "", "", ErrPathNotOrigin},
		{"relative", front, "info.php", "", "", "", "", ErrPathNotOrigin},
		{"absolute-form", front, "http://example.com/info.php", "", "", "", "", ErrPathNotOrigin},
		{"asterisk", front, "*", "", "", "", "", ErrPathNotOrigin},
		{"..", front, "/../etc/passwd.php", "", "", "", "", ErrPathDotSegment},
		{"trailing ..", front, "/a/..", "", "", "", "", ErrPathDotSegment},
		{"trailing .", front, "/a/.", "", "", "", "", ErrPathDotSegment},
		{". in PATH_INFO", front, "/a.php/./x", "", "", "", "", ErrPathDotSegment},
		{".. in PATH_INFO", front, "/a.php/../../x", "", "", "", "", ErrPathDotSegment},
		{"encoded ..", front, "/%2e%2e/x.php", "", "", "", "", ErrPathDotSegment},
		{"half-encoded ..", front, "/.%2E/x.php", "", "", "", "", ErrPathDotSegment},
		{"merged slashes then ..", front, "/a//..//x.php", "", "", "", "", ErrPathDotSegment},
		{"%2F", front, "/a%2Fb.php", "", "", "", "", ErrPathSlash},
		{"%2f", front, "/..%2fx.php", "", "", "", "", ErrPathSlash},
		{"backslash", front, `/a\b.php`, "", "", "", "", ErrPathSlash},
		{"%5C", front, "/..%5cx.php", "", "", "", "", ErrPathSlash},
		{"NUL", front, "/a.php%00.jpg", "", "", "", "", ErrPathControl},
		{"raw NUL", front, "/a\x00.php", "", "", "", "", ErrPathControl},
		{"newline", front, "/a%0a.php", "", "", "", "", ErrPathControl},
		{"DEL", front, "/a%7f.php", "", "", "", "", ErrPathControl},
		{"tab", front, "/a\t.php", "", "", "", "", ErrPathControl},
		{"short escape", front, "/a%2", "", "", "", "", ErrPathEscape},
		{"bad escape", front, "/a%g0.php", "", "", "", "", ErrPathEscape},
		{"escape at the end", front, "/a%", "", "", "", "", ErrPathEscape},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Script
			err := tc.r.Resolve(&s, []byte(tc.target))
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Resolve(%q) = %v, want %v", tc.target, err, tc.err)
			}
			if err != nil {
				return
			}
			if string(s.Filename) != tc.filename || string(s.Name) != tc.scriptName || string(s.PathInfo) != tc.pathInfo || string(s.URI) != tc.uri {
				t.Errorf("Resolve(%q) = filename %q name %q path info %q uri %q", tc.target, s.Filename, s.Name, s.PathInfo, s.URI)
			}
			if s.Root != tc.r.Root() {
				t.Errorf("Root = %q", s.Root)
			}
		})
	}
}

// A Script is reused: a shorter path after a longer one leaves nothing of it.
func TestResolveReuse(t *testing.T) {
	r, _ := NewResolver("/srv", "", "")
	var s Script
	_ = r.Resolve(&s, []byte("/a/very/long/path/script.php/with/path/info"))
	if err := r.Resolve(&s, []byte("/b.php")); err != nil || string(s.Filename) != "/srv/b.php" || len(s.PathInfo) != 0 {
		t.Errorf("%v %q %q", err, s.Filename, s.PathInfo)
	}
}

func TestNewResolver(t *testing.T) {
	for _, tc := range []struct {
		root, index, front string
		ok                 bool
		wantRoot           string
	}{
		{"/var/www", "", "", true, "/var/www"},
		{"/var/www/", "", "", true, "/var/www"},
		{"/var//www/./x/..", "", "", true, "/var/www"},
		{"/", "", "", true, "/"},
		{"var/www", "", "", false, ""},
		{"", "", "", false, ""},
		{"/var/www\x00", "", "", false, ""},
		{"/var/www", "index.html", "", false, ""},
		{"/var/www", "a/index.php", "", false, ""},
		{"/var/www", ".php", "", false, ""},
		{"/var/www", "app.php", "/app.php", true, "/var/www"},
		{"/var/www", "", "index.php", false, ""},
		{"/var/www", "", "/index.html", false, ""},
		{"/var/www", "", "/../index.php", false, ""},
		{"/var/www", "", "/a.php/x", false, ""},
		{"/var/www", "", "/public//index.php", false, ""},
		{"/var/www", "", "/public/index.php", true, "/var/www"},
	} {
		r, err := NewResolver(tc.root, tc.index, tc.front)
		if (err == nil) != tc.ok || (tc.ok && r.Root() != tc.wantRoot) {
			t.Errorf("NewResolver(%q, %q, %q) = %v, %v", tc.root, tc.index, tc.front, r, err)
		}
	}
}
