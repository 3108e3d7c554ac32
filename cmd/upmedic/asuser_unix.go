//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
)

// become makes the whole process id, for good: supplementary groups, then
// the group, then the user (after which it could no longer change the
// others). Only root may become another user; becoming oneself is a no-op.
// On Linux, Go applies each change to every thread of the process.
func become(id identity) error {
	if os.Geteuid() == id.uid && os.Getegid() == id.gid {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("only root may act as another user: run it with sudo")
	}
	if err := syscall.Setgroups(id.groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(id.gid); err != nil {
		return fmt.Errorf("setgid %d: %w", id.gid, err)
	}
	if err := syscall.Setuid(id.uid); err != nil {
		return fmt.Errorf("setuid %d: %w", id.uid, err)
	}
	groups, err := os.Getgroups()
	if os.Geteuid() != id.uid || os.Getegid() != id.gid || err != nil || !slices.Equal(sortedCopy(groups), sortedCopy(id.groups)) {
		return fmt.Errorf("still uid %d gid %d groups %v after changing to %s", os.Geteuid(), os.Getegid(), groups, id.name)
	}
	return nil
}

func sortedCopy(s []int) []int {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}
