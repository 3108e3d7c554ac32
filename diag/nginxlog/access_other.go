//go:build !unix

package nginxlog

// accessFacts has nothing to say where files have no unix owner and mode.
func accessFacts(path, username string) string { return "" }
