package fastcgi

import "testing"

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name, b string
		want    Protocol
	}{
		{"nginx's 400", "HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\n", ProtocolHTTP},
		{"Node's 400", "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n", ProtocolHTTP},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\n", ProtocolHTTP},
		{"HTTP/2 preface answer", "HTTP/2 200\r\n", ProtocolHTTP},
		{"a STDOUT record", rec(TypeStdout, 1, "Status: 200\r\n\r\n"), ProtocolFastCGI},
		{"a STDERR record", rec(TypeStderr, 1, "Primary script unknown"), ProtocolFastCGI},
		{"END_REQUEST", endRequest(1, 0, 0), ProtocolFastCGI},
		{"GET_VALUES_RESULT", rec(TypeGetValuesResult, 0, ""), ProtocolFastCGI},
		{"a request record is not an answer", rec(TypeBeginRequest, 1, "\x00\x01\x00\x00\x00\x00\x00\x00"), ProtocolUnknown},
		{"too short for either", "HTTP", ProtocolUnknown},
		{"a short record header", "\x01\x06\x00", ProtocolUnknown},
		{"SSH", "SSH-2.0-OpenSSH_9.2\r\n", ProtocolUnknown},
		{"TLS alert", "\x15\x03\x01\x00\x02\x02\x46", ProtocolUnknown},
		{"nothing", "", ProtocolUnknown},
	} {
		if got := Sniff([]byte(tc.b)); got != tc.want {
			t.Errorf("%s: Sniff = %v, want %v", tc.name, got, tc.want)
		}
	}
	if ProtocolHTTP.String() != "HTTP" || ProtocolFastCGI.String() != "FastCGI" || Protocol(7).String() != "unknown" {
		t.Error("Protocol.String")
	}
}
