// Package htmltags lists the elements and attributes of an HTML document,
// for tests that check a page holds no element or attribute it should not
// (markup injected through a value the page shows). It reads the document
// as a browser's tokenizer would for the markup that matters: tags,
// attributes with quoted or unquoted values, comments, and the raw text of
// script, style, title and textarea elements; it resolves no entities.
package htmltags

import (
	"errors"
	"strings"
)

// Tag is one start tag.
type Tag struct {
	// Name is the element's name, lower case.
	Name string
	// Attrs are its attributes in order, names lower case, values as
	// written (entities not decoded).
	Attrs []Attr
}

// Attr is one attribute of a Tag.
type Attr struct {
	Name, Value string
}

// ErrUnclosed is returned for a tag, comment or raw-text element that does
// not end.
var ErrUnclosed = errors.New("htmltags: markup does not end")

// StartTags returns the start tags of doc in document order.
func StartTags(doc string) ([]Tag, error) {
	var tags []Tag
	for i := 0; i < len(doc); {
		lt := strings.IndexByte(doc[i:], '<')
		if lt < 0 {
			break
		}
		i += lt
		rest := doc[i:]
		switch {
		case strings.HasPrefix(rest, "<!--"):
			end := strings.Index(rest, "-->")
			if end < 0 {
				return tags, ErrUnclosed
			}
			i += end + 3
			continue
		case strings.HasPrefix(rest, "<!") || strings.HasPrefix(rest, "</") || strings.HasPrefix(rest, "<?"):
			end := strings.IndexByte(rest, '>')
			if end < 0 {
				return tags, ErrUnclosed
			}
			i += end + 1
			continue
		case len(rest) < 2 || !isLetter(rest[1]):
			i++ // a '<' that starts no tag is text
			continue
		}
		tag, n, err := startTag(rest)
		if err != nil {
			return tags, err
		}
		tags = append(tags, tag)
		i += n
		switch tag.Name {
		case "script", "style", "title", "textarea":
			end := strings.Index(strings.ToLower(doc[i:]), "</"+tag.Name)
			if end < 0 {
				return tags, ErrUnclosed
			}
			i += end
		}
	}
	return tags, nil
}

// startTag reads the start tag at the beginning of s and returns it and
// its length.
func startTag(s string) (Tag, int, error) {
	i := 1
	for i < len(s) && !isSpace(s[i]) && s[i] != '>' && s[i] != '/' {
		i++
	}
	t := Tag{Name: strings.ToLower(s[1:i])}
	for {
		for i < len(s) && (isSpace(s[i]) || s[i] == '/') {
			i++
		}
		if i >= len(s) {
			return t, i, ErrUnclosed
		}
		if s[i] == '>' {
			return t, i + 1, nil
		}
		start := i
		for i < len(s) && !isSpace(s[i]) && s[i] != '=' && s[i] != '>' && s[i] != '/' {
			i++
		}
		a := Attr{Name: strings.ToLower(s[start:i])}
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i < len(s) && s[i] == '=' {
			i++
			for i < len(s) && isSpace(s[i]) {
				i++
			}
			if i < len(s) && (s[i] == '"' || s[i] == '\'') {
				q := s[i]
				end := strings.IndexByte(s[i+1:], q)
				if end < 0 {
					return t, len(s), ErrUnclosed
				}
				a.Value = s[i+1 : i+1+end]
				i += end + 2
			} else {
				start := i
				for i < len(s) && !isSpace(s[i]) && s[i] != '>' {
					i++
				}
				a.Value = s[start:i]
			}
		}
		t.Attrs = append(t.Attrs, a)
	}
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isSpace(c byte) bool  { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }
