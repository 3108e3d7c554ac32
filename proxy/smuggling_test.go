package proxy

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/upmedic/upmedic/proxy/h1"
)

// strictApp is an upstream that reads what upmedic forwards with proxy/h1's
// strict scanner, answers every complete request 200, and records the
// requests and any byte that breaks a rule: upmedic must only ever forward
// what reads one way.
type strictApp struct {
	mu     sync.Mutex
	reqs   []string // each request as received, header and body
	broken []string // what the scanner refused, with the bytes before it
}

func (a *strictApp) behaviour(c net.Conn) {
	var s h1.RequestScanner
	var cur []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		b := buf[:n]
		for len(b) > 0 {
			before := s.State()
			m, serr := s.Scan(b[:1])
			if serr != nil || m != 1 {
				a.mu.Lock()
				a.broken = append(a.broken, fmt.Sprintf("%v after %q", serr, cur))
				a.mu.Unlock()
				return
			}
			cur = append(cur, b[0])
			b = b[1:]
			if after := s.State(); before != h1.Idle && (after == h1.Idle || after == h1.Paused) {
				s.Resume() // this app never switches protocols
				a.mu.Lock()
				a.reqs = append(a.reqs, string(cur))
				a.mu.Unlock()
				cur = cur[:0]
				if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (a *strictApp) seen() (reqs, broken []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.reqs...), append([]string(nil), a.broken...)
}

// smugglerGadgets returns the Transfer-Encoding mutations of the
// request-smuggling scanner "smuggler" (defparam/smuggler: its default,
// exhaustive and doubles sets), by name, written out again here.
func smugglerGadgets() map[string]string {
	g := map[string]string{
		"nameprefix1": " Transfer-Encoding: chunked", "tabprefix1": "Transfer-Encoding:\tchunked",
		"tabprefix2": "Transfer-Encoding\t:\tchunked", "spacejoin1": "Transfer Encoding: chunked",
		"underjoin1": "Transfer_Encoding: chunked", "smashed": "Transfer Encoding:chunked",
		"space1": "Transfer-Encoding : chunked", "valueprefix1": "Transfer-Encoding:  chunked",
		"vertprefix1": "Transfer-Encoding:\x0bchunked", "commaCow": "Transfer-Encoding: chunked, cow",
		"cowComma": "Transfer-Encoding: cow, chunked", "contentEnc": "Content-Encoding: chunked",
		"linewrapped1": "Transfer-Encoding:\n chunked", "quoted": "Transfer-Encoding: \"chunked\"",
		"aposed": "Transfer-Encoding: 'chunked'", "lazygrep": "Transfer-Encoding: chunk",
		"sarcasm": "TrAnSFer-EnCODinG: cHuNkeD", "yelling": "TRANSFER-ENCODING: CHUNKED",
		"0dsuffix": "Transfer-Encoding: chunked\r", "tabsuffix": "Transfer-Encoding: chunked\t",
		"revdualchunk": "Transfer-Encoding: cow\r\nTransfer-Encoding: chunked", "0dspam": "Transfer\r-Encoding: chunked",
		"nested": "Transfer-Encoding: cow chunked bar", "spaceFF": "Transfer-Encoding:\xffchunked",
		"accentCH": "Transfer-Encoding: ch\x96nked", "accentTE": "Transf\x82r-Encoding: chunked",
		"x-rout": "X:X\rTransfer-Encoding: chunked", "x-nout": "X:X\nTransfer-Encoding: chunked",
	}
	each := func(c byte) {
		g[fmt.Sprintf("midspace-%02x", c)] = fmt.Sprintf("Transfer-Encoding:%cchunked", c)
		g[fmt.Sprintf("postspace-%02x", c)] = fmt.Sprintf("Transfer-Encoding%c: chunked", c)
		g[fmt.Sprintf("prespace-%02x", c)] = fmt.Sprintf("%cTransfer-Encoding: chunked", c)
		g[fmt.Sprintf("endspace-%02x", c)] = fmt.Sprintf("Transfer-Encoding: chunked%c", c)
		g[fmt.Sprintf("xprespace-%02x", c)] = fmt.Sprintf("X: X%cTransfer-Encoding: chunked", c)
		g[fmt.Sprintf("endspacex-%02x", c)] = fmt.Sprintf("Transfer-Encoding: chunked%cX: X", c)
		g[fmt.Sprintf("rxprespace-%02x", c)] = fmt.Sprintf("X: X\r%cTransfer-Encoding: chunked", c)
		g[fmt.Sprintf("xnprespace-%02x", c)] = fmt.Sprintf("X: X%c\nTransfer-Encoding: chunked", c)
		g[fmt.Sprintf("endspacerx-%02x", c)] = fmt.Sprintf("Transfer-Encoding: chunked\r%cX: X", c)
		g[fmt.Sprintf("endspacexn-%02x", c)] = fmt.Sprintf("Transfer-Encoding: chunked%c\nX: X", c)
		g[fmt.Sprintf("%02x-%02x-XX-XX", c, c)] = fmt.Sprintf("%cTransfer-Encoding%c: chunked", c, c)
		g[fmt.Sprintf("%02x-XX-%02x-XX", c, c)] = fmt.Sprintf("%cTransfer-Encoding:%cchunked", c, c)
		g[fmt.Sprintf("%02x-XX-XX-%02x", c, c)] = fmt.Sprintf("%cTransfer-Encoding: chunked%c", c, c)
		g[fmt.Sprintf("XX-%02x-%02x-XX", c, c)] = fmt.Sprintf("Transfer-Encoding%c:%cchunked", c, c)
		g[fmt.Sprintf("XX-%02x-XX-%02x", c, c)] = fmt.Sprintf("Transfer-Encoding%c: chunked%c", c, c)
		g[fmt.Sprintf("XX-XX-%02x-%02x", c, c)] = fmt.Sprintf("Transfer-Encoding:%cchunked%c", c, c)
	}
	for c := 0x01; c <= 0x20; c++ {
		each(byte(c))
	}
	for c := 0x7f; c <= 0xff; c++ {
		each(byte(c))
	}
	return g
}

// Item 8: every smuggler gadget, in a CL.TE and a TE.CL probe, either gets
// upmedic's own 4xx with nothing reaching the app, or reaches it as
// exactly one request that strict parsing reads one way, framed by its
// Content-Length, with no Transfer-Encoding the app could honour.
func TestSmugglerGadgets(t *testing.T) {
	app := new(strictApp)
	up := newFakeUpstream(t, "tcp", app.behaviour)
	addr, _ := startProxy(t, Settings{Network: "tcp", Address: up.address()})
	probes := []struct{ name, body string }{
		// CL.TE: a reader honouring the chunked gadget waits for more; one
		// honouring Content-Length: 4 leaves "Q..." as the next request.
		{"CL.TE", "Content-Length: 4\r\n\r\n1\r\nZ\r\nQ\r\n\r\n"},
		// TE.CL: a reader honouring the gadget ends at "0\r\n\r\n" and
		// leaves "X"; one honouring Content-Length: 6 takes it all.
		{"TE.CL", "Content-Length: 6\r\n\r\n0\r\n\r\nX"},
	}
	gadgets := smugglerGadgets()
	forwarded, refused := 0, 0
	for name, gadget := range gadgets {
		for _, probe := range probes {
			before, _ := app.seen()
			raw := "POST /probe HTTP/1.1\r\n" + gadget + "\r\nHost: app.test\r\nConnection: close\r\n" + probe.body
			out := exchangeRaw(t, addr, raw)
			reqs, broken := app.seen()
			if len(broken) > 0 {
				t.Fatalf("%s %s: the app read bytes that break a rule: %q", name, probe.name, broken)
			}
			got := reqs[len(before):]
			switch {
			case len(got) == 0:
				refused++
				if !strings.HasPrefix(string(out), "HTTP/1.1 4") && !strings.HasPrefix(string(out), "HTTP/1.1 5") ||
					!strings.Contains(string(out), "error=http_request_error") {
					t.Errorf("%s %s: nothing reached the app, but the answer was %q", name, probe.name, out)
				}
			case len(got) == 1:
				forwarded++
				req := got[0]
				head, body, _ := strings.Cut(req, "\r\n\r\n")
				for _, line := range strings.Split(head, "\r\n")[1:] {
					k, _, _ := strings.Cut(line, ":")
					if strings.EqualFold(k, "Transfer-Encoding") {
						t.Errorf("%s %s: forwarded with %q", name, probe.name, line)
					}
				}
				want := probe.body[strings.Index(probe.body, "\r\n\r\n")+4:]
				if n := len("1\r\nZ"); probe.name == "CL.TE" {
					want = want[:n]
				}
				if body != want {
					t.Errorf("%s %s: the app got body %q, want %q (framed by Content-Length)", name, probe.name, body, want)
				}
			default:
				t.Errorf("%s %s: one client request reached the app as %d: %q", name, probe.name, len(got), got)
			}
		}
	}
	t.Logf("%d gadgets x %d probes: %d refused by upmedic, %d forwarded as one strict request", len(gadgets), len(probes), refused, forwarded)
}
