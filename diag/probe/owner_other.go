//go:build !unix

package probe

import "io/fs"

// fileOwner reports no owner where files have no unix uid and gid: the probe
// then leaves permission checks to the connect itself.
func fileOwner(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }
