// Package h1 is upmedic's strict HTTP/1.1 syntax (RFC 9110, RFC 9112): a
// scanner that follows the requests arriving on a front connection byte by
// byte and stops the stream at the first byte that breaks a rule, a parser
// for upstream response header sections, and the chunked framing both
// directions share.
//
// It accepts only what reads one way. Where RFC 9112 lets a recipient choose
// between rejecting a message and repairing it (bare LF, obs-fold, whitespace
// before a colon), h1 rejects. Each error names the rule it enforces.
//
// The package is pure: it does no I/O, imports only the standard library,
// and allocates nothing on the steady path.
package h1

// Limits of what a request or response may hold.
const (
	// MaxRequestHeaderBytes bounds a request's header section: any empty
	// lines before it, the request line, the field lines and the empty line
	// that ends it, CRLFs included. It is nginx's large_client_header_buffers
	// line size, and the size of the front server's read buffer.
	MaxRequestHeaderBytes = 8192
	// MaxRequestFields bounds the field lines of a request (HAProxy's
	// tune.http.maxhdr is 101).
	MaxRequestFields = 100
	// MaxChunkLineBytes bounds a chunk-size line with its extensions.
	MaxChunkLineBytes = 4096
	// MaxTrailerBytes bounds a chunked body's trailer section.
	MaxTrailerBytes = 8192
)

// Framing is how a message's body is delimited (RFC 9112 section 6.3).
type Framing uint8

// The framings. A request is NoBody, Length or Chunked; a response may also
// be Close.
const (
	NoBody  Framing = iota // no body follows the header section
	Length                 // Content-Length bytes follow
	Chunked                // Transfer-Encoding: chunked
	Close                  // the body runs until the connection closes (responses only)
)

// Error is a message that breaks a rule of HTTP/1.1 syntax. The errors h1
// returns are the *Error sentinels below, never wrapped, so they can be
// compared and allocate nothing.
type Error struct {
	// Status is what a server answers a request that breaks the rule: 400,
	// 431, 501 or 505. It is 0 for rules that only responses can break.
	Status int
	// Rule is a short token naming the rule, for logs and metrics.
	Rule string
	// Text says what is wrong, in words fit for a client.
	Text string
}

func (e *Error) Error() string { return "h1: " + e.Text }

// HTTPSyntax marks e as a breach of HTTP syntax, so that a classifier can
// recognise it by interface without importing h1.
func (e *Error) HTTPSyntax() {}

func reqErr(status int, rule, text string) *Error {
	return &Error{Status: status, Rule: rule, Text: text}
}

// Errors for bytes that break a rule. Those with a Status can come from a
// request; those without only from a response. Several apply to both.
var (
	ErrBareLF         = reqErr(400, "bare-lf", "a line ends in LF without CR (RFC 9112 section 2.2)")
	ErrBareCR         = reqErr(400, "bare-cr", "a CR not followed by LF (RFC 9112 section 2.2)")
	ErrRequestLine    = reqErr(400, "request-line", "the request line is not method SP request-target SP HTTP-version (RFC 9112 section 3)")
	ErrMethod         = reqErr(400, "method", "the method is not a token (RFC 9110 section 9.1)")
	ErrTarget         = reqErr(400, "request-target", "the request-target holds a byte outside RFC 3986 or a bad percent-encoding (RFC 9112 section 3.2)")
	ErrTargetForm     = reqErr(400, "request-target-form", "the request-target is neither origin-form, absolute-form with an http or https authority, nor * for OPTIONS (RFC 9112 section 3.2)")
	ErrConnect        = reqErr(501, "connect", "CONNECT is not supported: upmedic is a reverse proxy")
	ErrVersion        = reqErr(400, "http-version", "the HTTP-version is not HTTP/1.0 or HTTP/1.1 (RFC 9112 section 2.3)")
	ErrVersionUnsupp  = reqErr(505, "http-version-unsupported", "only HTTP/1.0 and HTTP/1.1 are supported")
	ErrFieldName      = reqErr(400, "field-name", "a field name is not a token, or whitespace comes before its colon (RFC 9112 section 5.1)")
	ErrFieldValue     = reqErr(400, "field-value", "a field value holds a control character such as NUL, CR or LF (RFC 9110 section 5.5)")
	ErrObsFold        = reqErr(400, "obs-fold", "a field line starts with whitespace: obsolete line folding (RFC 9112 section 5.2)")
	ErrDisguisedField = reqErr(400, "disguised-field", "a field name spells a framing field with _ for - (Transfer_Encoding)")
	ErrTooManyFields  = reqErr(431, "too-many-fields", "more than 100 header fields")
	ErrHeaderTooLarge = reqErr(431, "header-section-size", "the header section is larger than 8192 bytes")
	ErrHost           = reqErr(400, "host", "Host is missing from an HTTP/1.1 request, repeated, or not a valid authority (RFC 9112 section 3.2)")
	ErrContentLength  = reqErr(400, "content-length", "Content-Length is repeated or not a decimal number (RFC 9110 section 8.6)")
	ErrTransferCoding = reqErr(400, "transfer-encoding", "Transfer-Encoding is repeated, malformed, or sent in HTTP/1.0 (RFC 9112 section 6.1)")
	ErrTECodingUnsupp = reqErr(501, "transfer-coding-unsupported", "Transfer-Encoding other than chunked alone is not supported")
	ErrCLAndTE        = reqErr(400, "content-length-and-transfer-encoding", "both Content-Length and Transfer-Encoding (RFC 9112 section 6.3)")
	ErrConnection     = reqErr(400, "connection", "Connection is not a list of tokens, or lists Content-Length, Transfer-Encoding or Host (RFC 9110 section 7.6.1)")
	ErrChunkLine      = reqErr(400, "chunk-size", "a chunk-size line is not hex digits with well-formed extensions (RFC 9112 section 7.1)")
	ErrChunkLineLong  = reqErr(400, "chunk-line-size", "a chunk-size line is longer than 4096 bytes")
	ErrChunkData      = reqErr(400, "chunk-data", "chunk data is not followed by CRLF (RFC 9112 section 7.1)")
	ErrTrailer        = reqErr(400, "trailer", "a trailer field is malformed, names a framing field, or the trailer section is over 8192 bytes (RFC 9112 section 7.1.2)")

	ErrStatusLine     = reqErr(0, "status-line", "the status line is not HTTP-version SP three-digit status [SP reason] (RFC 9112 section 4)")
	ErrStatusCode     = reqErr(0, "status-code", "the status code is not three digits from 100 to 599 (RFC 9110 section 15)")
	ErrReasonPhrase   = reqErr(0, "reason-phrase", "the reason phrase holds a control character (RFC 9112 section 4)")
	ErrResponseFields = reqErr(0, "response-header-size", "the response header section does not fit the buffer")
)
