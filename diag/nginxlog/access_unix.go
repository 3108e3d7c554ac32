//go:build unix

package nginxlog

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// accessFacts describes, as of now, whether username may reach the socket at
// path on this machine: the socket's owner and mode, and the first directory
// on the way it may not search. It returns "" when the socket is not here
// (the log may come from another machine) or the user is unknown.
func accessFacts(path, username string) string {
	if path == "" || !filepath.IsAbs(path) {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "(" + path + " does not exist on this machine now.) "
	}
	u, err := user.Lookup(username)
	if err != nil {
		return ""
	}
	uid, _ := strconv.Atoi(u.Uid)
	gids := []int{}
	if gid, err := strconv.Atoi(u.Gid); err == nil {
		gids = append(gids, gid)
	}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && !slices.Contains(gids, g) {
				gids = append(gids, g)
			}
		}
	}
	if uid == 0 {
		return ""
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		if di, err := os.Stat(dir); err == nil && !permits(di, uid, gids, 1) {
			return fmt.Sprintf("Now: %s may not search the directory %s (%s). ", username, dir, describeFile(di))
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	verdict := "may"
	if !permits(fi, uid, gids, 2) {
		verdict = "may not"
	}
	return fmt.Sprintf("Now: %s is %s, so %s %s write to it. ", path, describeFile(fi), username, verdict)
}

// permits reports whether a user with uid and groups gids has the
// permission bit want (2 write, 1 search) on fi, by its mode bits.
func permits(fi fs.FileInfo, uid int, gids []int, want fs.FileMode) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case int(st.Uid) == uid:
		return perm>>6&want != 0
	case slices.Contains(gids, int(st.Gid)):
		return perm>>3&want != 0
	}
	return perm&want != 0
}

// describeFile returns "owner root, group www-data, mode 0660".
func describeFile(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("mode %04o", fi.Mode().Perm())
	}
	owner, group := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	if g, err := user.LookupGroupId(group); err == nil {
		group = g.Name
	}
	return fmt.Sprintf("owner %s, group %s, mode %04o", owner, group, fi.Mode().Perm())
}
