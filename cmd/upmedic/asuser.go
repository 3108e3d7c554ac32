package main

import (
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"strings"
)

// identity is a user to act as: uid, primary gid and supplementary groups.
type identity struct {
	uid, gid int
	groups   []int
	name     string // for messages: "www-data", or the uid
}

// lookupIdentity resolves --as: a user name or uid, optionally with a
// group name or gid after a colon ("www-data", "65534", "65532:65532",
// "nobody:www-data"), as docker run --user takes it. A known user gets its
// primary group and its supplementary groups from the system; a bare uid
// without a passwd entry gets gid = uid and no others; a group given after
// the colon replaces the primary group.
func lookupIdentity(spec string) (identity, error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	if name == "" || (hasGroup && group == "") {
		return identity{}, errors.New("give a user name or uid, optionally :group")
	}
	var id identity
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			n, convErr := strconv.Atoi(name)
			if convErr != nil || n < 0 {
				return identity{}, fmt.Errorf("no user %q on this machine", name)
			}
			u = nil
			id = identity{uid: n, gid: n, name: name}
		}
	}
	if u != nil {
		id.name = u.Username
		id.uid, _ = strconv.Atoi(u.Uid)
		id.gid, _ = strconv.Atoi(u.Gid)
		if ids, err := u.GroupIds(); err == nil {
			for _, s := range ids {
				if g, err := strconv.Atoi(s); err == nil {
					id.groups = append(id.groups, g)
				}
			}
		}
	}
	if hasGroup {
		g, err := user.LookupGroup(group)
		if err != nil {
			g, err = user.LookupGroupId(group)
		}
		switch {
		case err == nil:
			id.gid, _ = strconv.Atoi(g.Gid)
		default:
			n, convErr := strconv.Atoi(group)
			if convErr != nil || n < 0 {
				return identity{}, fmt.Errorf("no group %q on this machine", group)
			}
			id.gid = n
		}
	}
	if !slices.Contains(id.groups, id.gid) {
		id.groups = append([]int{id.gid}, id.groups...)
	}
	return id, nil
}
