package nginxconf

import "strings"

// WorkerUser returns the user nginx's workers run as, from the main
// context's user directive, and that directive; "" and nil when there is
// none (nginx then runs them as nobody, when started as root).
func (c *Config) WorkerUser() (string, *Directive) {
	for _, d := range c.Directives {
		if d.Name == "user" && len(d.Args) > 0 {
			return d.Args[0], d
		}
	}
	return "", nil
}

// UpstreamsTo returns the names of the upstream{} blocks with a server at
// addr ("127.0.0.1:8080", "unix:/run/upmedic.sock"), in the order they are
// written.
func (c *Config) UpstreamsTo(addr string) []string {
	e, ok := parseAddress(strings.TrimPrefix(addr, "http://"), "")
	if !ok {
		return nil
	}
	var names []string
	for _, h := range c.Directives {
		if h.Name != "http" {
			continue
		}
		for _, d := range h.Block {
			if d.Name != "upstream" || !d.IsBlock() || len(d.Args) != 1 {
				continue
			}
			u := newUpstreamBlock(d)
			if (target{block: u, ends: u.servers}).reaches(e, interfaceAddress) {
				names = append(names, d.Args[0])
			}
		}
	}
	return names
}
