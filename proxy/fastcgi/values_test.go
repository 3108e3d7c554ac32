package fastcgi

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

func TestAppendGetValues(t *testing.T) {
	content := "\x0e\x00FCGI_MAX_CONNS\x0d\x00FCGI_MAX_REQS\x0f\x00FCGI_MPXS_CONNS"
	if got, want := string(AppendGetValues([]byte("x"))), "x"+rec(TypeGetValues, 0, content); got != want {
		t.Errorf("AppendGetValues =\n%q, want\n%q", got, want)
	}
}

func TestReadValues(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		want      Values
		err       error
	}{
		{"PHP-FPM's answer", rec(TypeGetValuesResult, 0, "\x0f\x01FCGI_MPXS_CONNS0"), Values{-1, -1, 0}, nil},
		{"all three", rec(TypeGetValuesResult, 0, "\x0e\x02FCGI_MAX_CONNS10\x0d\x02FCGI_MAX_REQS50\x0f\x01FCGI_MPXS_CONNS1\x03\x01FOOx"), Values{10, 50, 1}, nil},
		{"not a number", rec(TypeGetValuesResult, 0, "\x0e\x02FCGI_MAX_CONNSab"), Values{}, ErrValuesResult},
		{"negative", rec(TypeGetValuesResult, 0, "\x0e\x02FCGI_MAX_CONNS-1"), Values{}, ErrValuesResult},
		{"malformed pair", rec(TypeGetValuesResult, 0, "\x0e\x09FCGI_MAX_CONNS1"), Values{}, ErrPairLength},
		{"unknown type", rec(TypeUnknownType, 0, "\x09\x00\x00\x00\x00\x00\x00\x00"), Values{}, ErrValuesResult},
		{"a request's record", rec(TypeStdout, 1, "x"), Values{}, ErrValuesResult},
		{"not id 0", rec(TypeGetValuesResult, 1, ""), Values{}, ErrValuesResult},
		{"HTTP", "HTTP/1.1 400 Bad Request\r\n\r\n", Values{}, ErrVersion},
		{"closed", "", Values{}, ErrNoEndRequest},
		{"cut", rec(TypeGetValuesResult, 0, "\x0f\x01FCGI_MPXS_CONNS0")[:12], Values{}, ErrTruncatedRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ReadValues(bufio.NewReader(strings.NewReader(tc.raw)))
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) || (err == nil && v != tc.want) {
				t.Errorf("ReadValues = %+v, %v; want %+v, %v", v, err, tc.want, tc.err)
			}
		})
	}
}
