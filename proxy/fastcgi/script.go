package fastcgi

import (
	"errors"
	"path"
	"strings"
)

// scriptExt is the extension that ends a script's segment, as in nginx's
// `location ~ [^/]\.php(/|$)` and `fastcgi_split_path_info ^(.+?\.php)(/.*)$`
// (case-sensitive, like both, and like PHP-FPM's security.limit_extensions).
const scriptExt = ".php"

// Resolver maps a request path to the script PHP-FPM is to run, under a
// document root, so that no path can name a file outside it. Build it with
// NewResolver; it is immutable and safe for concurrent use.
//
// From the raw request-target Resolve:
//  1. ignores the query (from the first '?');
//  2. requires a leading '/' (ErrPathNotOrigin);
//  3. percent-decodes, rejecting a malformed escape (ErrPathEscape), a
//     control byte raw or encoded, NUL included (ErrPathControl), and an
//     encoded slash %2F or a backslash raw or encoded (ErrPathSlash);
//  4. merges repeated slashes, like nginx's merge_slashes;
//  5. rejects any "." or ".." segment (ErrPathDotSegment): nothing is
//     "normalized away", so what runs is what the segments say;
//  6. splits at the first segment that ends in ".php" and has a name before
//     it: that is SCRIPT_NAME, the rest PATH_INFO
//     ("/sub/info.php/extra/path" runs "/sub/info.php" with PATH_INFO
//     "/extra/path");
//  7. without such a segment, a path ending in '/' runs the directory's
//     index ("/sub/" runs "/sub/index.php"), and any other path runs the
//     front controller ("/blog/hello" runs "/index.php", with no PATH_INFO,
//     as nginx's `try_files $uri /index.php` does), or is ErrNoScript when
//     the Resolver has none.
//
// SCRIPT_FILENAME is the root joined with SCRIPT_NAME. Whether the file
// exists, may be read, or has an extension PHP-FPM may run is PHP-FPM's
// to say (security.limit_extensions, open_basedir): upmedic cannot see its
// file system, which may be another container's.
type Resolver struct {
	root   string // DOCUMENT_ROOT as configured, cleaned
	prefix string // root without its trailing slash: "" for "/"
	index  string
	front  string
}

// NewResolver returns a Resolver for the document root as PHP-FPM sees it
// (an absolute path), the directory index (a file name ending in ".php";
// "" means "index.php"), and the front controller for paths that name no
// script ("/index.php"; "" for none).
func NewResolver(root, index, frontController string) (*Resolver, error) {
	if !strings.HasPrefix(root, "/") || strings.ContainsAny(root, "\x00\\") {
		return nil, errors.New("fastcgi: document root must be an absolute path")
	}
	root = path.Clean(root)
	if index == "" {
		index = "index.php"
	}
	if strings.ContainsAny(index, "/\\\x00") || len(index) <= len(scriptExt) || !strings.HasSuffix(index, scriptExt) {
		return nil, errors.New("fastcgi: directory index must be a file name ending in .php")
	}
	r := &Resolver{root: root, prefix: strings.TrimSuffix(root, "/"), index: index}
	if frontController != "" {
		var s Script
		if err := r.Resolve(&s, []byte(frontController)); err != nil || string(s.Name) != frontController || len(s.PathInfo) > 0 {
			return nil, errors.New("fastcgi: front controller must be a clean path ending in .php, such as /index.php")
		}
		r.front = frontController
	}
	return r, nil
}

// Root returns the document root, DOCUMENT_ROOT.
func (r *Resolver) Root() string { return r.root }

// Script is a resolved request path: what PHP-FPM is to run and the CGI
// parameters that say so. Its zero value is ready for Resolve; reuse it, so
// that its buffer keeps its capacity. Its slices are valid until the next
// Resolve into it. A Script may also be filled by hand, for requests that
// name no file (PHP-FPM's ping.path and pm.status_path).
type Script struct {
	// Root is DOCUMENT_ROOT.
	Root string
	// Filename is SCRIPT_FILENAME: Root joined with Name.
	Filename []byte
	// Name is SCRIPT_NAME, decoded: "/sub/info.php".
	Name []byte
	// PathInfo is PATH_INFO, decoded: "/extra/path", or empty.
	PathInfo []byte
	// URI is DOCUMENT_URI: Name followed by PathInfo, as nginx's $uri after
	// its index or try_files step.
	URI []byte

	buf []byte // prefix, Name, PathInfo, in that order
}

// Resolve resolves target, the raw request-target ("/sub/info.php/x?a=1"),
// into s. It returns one of the path errors (ErrPathNotOrigin,
// ErrPathEscape, ErrPathControl, ErrPathSlash, ErrPathDotSegment: answer
// 400) or ErrNoScript (answer 404); s is not valid then. It allocates
// nothing once s's buffer has grown.
func (r *Resolver) Resolve(s *Script, target []byte) error {
	for i, c := range target {
		if c == '?' {
			target = target[:i]
			break
		}
	}
	if len(target) == 0 || target[0] != '/' {
		return ErrPathNotOrigin
	}
	b := append(s.buf[:0], r.prefix...)
	start := len(b)
	for i := 0; i < len(target); i++ {
		c := target[i]
		if c == '%' {
			if i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2]) {
				return ErrPathEscape
			}
			c = unhex(target[i+1])<<4 | unhex(target[i+2])
			i += 2
			if c == '/' {
				return ErrPathSlash
			}
		} else if c == '/' {
			if len(b) > start && b[len(b)-1] == '/' {
				continue // merge slashes
			}
			if isDotSegment(b[start:]) {
				return ErrPathDotSegment
			}
		}
		switch {
		case c == '\\':
			return ErrPathSlash
		case c < 0x20 || c == 0x7f:
			return ErrPathControl
		}
		b = append(b, c)
	}
	if isDotSegment(b[start:]) {
		return ErrPathDotSegment
	}

	split := scriptEnd(b[start:])
	switch {
	case split >= 0:
		split += start
	case b[len(b)-1] == '/':
		b = append(b, r.index...)
		split = len(b)
	case r.front != "":
		b = append(b[:start], r.front...)
		split = len(b)
	default:
		return ErrNoScript
	}
	s.buf = b
	s.Root = r.root
	s.Filename = b[:split]
	s.Name = b[start:split]
	s.PathInfo = b[split:]
	s.URI = b[start:]
	return nil
}

// isDotSegment reports whether the last segment of the decoded path p (which
// starts with '/') is "." or "..".
func isDotSegment(p []byte) bool {
	i := len(p) - 1
	for i >= 0 && p[i] != '/' {
		i--
	}
	seg := p[i+1:]
	return len(seg) == 1 && seg[0] == '.' || len(seg) == 2 && seg[0] == '.' && seg[1] == '.'
}

// scriptEnd returns the end of the first segment of p that ends in ".php"
// with a name before it, or -1.
func scriptEnd(p []byte) int {
	segStart := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		if seg := p[segStart:i]; len(seg) > len(scriptExt) && string(seg[len(seg)-len(scriptExt):]) == scriptExt {
			return i
		}
		segStart = i + 1
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
