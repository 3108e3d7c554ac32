// Package nginxconf reads nginx's configuration and checks it against
// upmedic's settings: `upmedic diag nginx-conf`.
//
// Load reads the configuration as nginx does (its own tokenizer: words,
// quotes, escapes, variables, comments, blocks, and include with
// wildcards); Check finds every location whose proxy_pass goes to upmedic,
// directly or through an upstream{} block, and judges what nginx's
// inheritance puts in effect there: the timeout chain
// (proxy_read_timeout above UPMEDIC_RESPONSE_TIMEOUT), proxy_buffer_size
// against UPMEDIC_MAX_RESPONSE_HEADER_BYTES, keep-alive to upmedic, the
// diagnosis headers hidden from clients and kept in the access log, and
// locations that go to the app past upmedic. Each finding names the file
// and line to change and the line to write.
package nginxconf
