package nginxconf

import (
	"fmt"
	"strings"
)

// This file is nginx's configuration tokenizer, rule for rule as
// ngx_conf_read_token in src/core/ngx_conf_file.c reads a file:
//
//   - Space, tab, CR and LF separate words; ";" ends a directive, "{" opens
//     a block and "}" closes one.
//   - "#" at the start of a word begins a comment to the end of the line; in
//     the middle of a word it is part of the word ("a#b").
//   - "}" ends a block only at the start of a word: unquoted, "a}" is one
//     word, as nginx reads it.
//   - A word in double or single quotes may hold any of these; after the
//     closing quote must come a space, ";", "{" or ")" (which starts a new
//     word, as in if ($a = "b")).
//   - "\" escapes the next character, in or out of quotes. When the word is
//     built, \" \' and \\ lose their backslash, \t \r \n become tab, CR and
//     LF, and any other \x keeps both characters.
//   - "$" followed by "{" is a variable (${name}), so that "{" does not open
//     a block.

type tokenKind uint8

const (
	tokWord  tokenKind = iota // a word, quoted or not; text is unescaped
	tokSemi                   // ;
	tokOpen                   // {
	tokClose                  // }
	tokEOF                    // the end of the input
)

// token is one word or punctuation mark and the line it starts on.
type token struct {
	kind tokenKind
	text string
	line int
}

// lexer reads tokens from one file's contents.
type lexer struct {
	file string
	src  []byte
	pos  int
	line int // the line of src[pos], from 1
}

func newLexer(file string, src []byte) *lexer {
	return &lexer{file: file, src: src, line: 1}
}

func (lx *lexer) errorf(line int, format string, args ...any) error {
	return &SyntaxError{File: lx.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// next returns the next token.
func (lx *lexer) next() (token, error) {
	// Between words: spaces and comments.
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		if isSpace(c) {
			lx.advance()
			continue
		}
		if c == '#' {
			for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' {
				lx.pos++
			}
			continue
		}
		break
	}
	if lx.pos == len(lx.src) {
		return token{kind: tokEOF, line: lx.line}, nil
	}
	line := lx.line
	switch lx.src[lx.pos] {
	case ';':
		lx.pos++
		return token{kind: tokSemi, line: line}, nil
	case '{':
		lx.pos++
		return token{kind: tokOpen, line: line}, nil
	case '}':
		lx.pos++
		return token{kind: tokClose, line: line}, nil
	case '"', '\'':
		return lx.quoted(line)
	}
	return lx.word(line)
}

// advance moves past one byte, counting lines.
func (lx *lexer) advance() {
	if lx.src[lx.pos] == '\n' {
		lx.line++
	}
	lx.pos++
}

// quoted reads a word in quotes, from the opening quote at lx.pos.
func (lx *lexer) quoted(line int) (token, error) {
	q := lx.src[lx.pos]
	lx.pos++
	start := lx.pos
	for {
		if lx.pos == len(lx.src) {
			return token{}, lx.errorf(lx.line, `unexpected end of file, expecting ";" or "}"`)
		}
		c := lx.src[lx.pos]
		if c == '\\' && lx.pos+1 < len(lx.src) {
			lx.advance()
			lx.advance()
			continue
		}
		if c == q {
			break
		}
		lx.advance()
	}
	text := unescape(lx.src[start:lx.pos])
	lx.pos++ // the closing quote
	if lx.pos < len(lx.src) {
		switch c := lx.src[lx.pos]; {
		case isSpace(c), c == ';', c == '{', c == ')':
		default:
			return token{}, lx.errorf(lx.line, `unexpected "%c"`, c)
		}
	}
	return token{kind: tokWord, text: text, line: line}, nil
}

// word reads an unquoted word from lx.pos.
func (lx *lexer) word(line int) (token, error) {
	start := lx.pos
	variable := false
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		if c == '{' && variable {
			variable = false
			lx.pos++
			continue
		}
		variable = false
		switch {
		case c == '\\':
			lx.advance()
			if lx.pos < len(lx.src) {
				lx.advance()
			}
			continue
		case c == '$':
			variable = true
		case isSpace(c), c == ';', c == '{':
			return token{kind: tokWord, text: unescape(lx.src[start:lx.pos]), line: line}, nil
		}
		lx.advance()
	}
	return token{kind: tokWord, text: unescape(lx.src[start:lx.pos]), line: line}, nil
}

// unescape builds a word as nginx does: \" \' \\ lose the backslash, \t \r
// \n become control characters, any other backslash stays.
func unescape(b []byte) string {
	if !strings.Contains(string(b), `\`) {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) {
			switch b[i+1] {
			case '"', '\'', '\\':
				i++
			case 't':
				sb.WriteByte('\t')
				i++
				continue
			case 'r':
				sb.WriteByte('\r')
				i++
				continue
			case 'n':
				sb.WriteByte('\n')
				i++
				continue
			}
		}
		sb.WriteByte(b[i])
	}
	return sb.String()
}
