// Package sockfault makes real kernel-made socket faults for upmedic's tests:
// a closed port, a connect(2) that the kernel refuses with an errno, as an
// SELinux denial, systemd's IPAddressDeny= or a container's seccomp profile
// do, and a network namespace in which no address is routable. The last two
// change the whole process for good, so tests apply them in a child process
// made for the purpose.
package sockfault

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"
)

// ErrUnsupported is returned by DenyConnect on architectures it has no
// system call numbers for.
var ErrUnsupported = errors.New("sockfault: seccomp filter not supported on " + runtime.GOOS + "/" + runtime.GOARCH)

type sockFilter struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

type sockFprog struct {
	len    uint16
	filter *sockFilter
}

// DenyConnect installs a seccomp filter on every thread of the calling
// process that fails connect(2) with errno. It cannot be undone: call it
// only in a child process.
func DenyConnect(errno syscall.Errno) error {
	var nrPrctl, nrSeccomp, nrConnect uintptr
	var auditArch uint32
	switch {
	case runtime.GOOS != "linux":
		return ErrUnsupported
	case runtime.GOARCH == "amd64":
		nrPrctl, nrSeccomp, nrConnect, auditArch = 157, 317, 42, 0xc000003e
	case runtime.GOARCH == "arm64":
		nrPrctl, nrSeccomp, nrConnect, auditArch = 167, 277, 203, 0xc00000b7
	default:
		return ErrUnsupported
	}
	const (
		ldAbs    = 0x20 // BPF_LD | BPF_W | BPF_ABS
		jeqK     = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
		retK     = 0x06 // BPF_RET | BPF_K
		allow    = 0x7fff0000
		retErrno = 0x00050000
	)
	prog := []sockFilter{
		{ldAbs, 0, 0, 4}, // seccomp_data.arch
		{jeqK, 1, 0, auditArch},
		{retK, 0, 0, allow},
		{ldAbs, 0, 0, 0}, // seccomp_data.nr
		{jeqK, 0, 1, uint32(nrConnect)},
		{retK, 0, 0, retErrno | uint32(errno)},
		{retK, 0, 0, allow},
	}
	fp := sockFprog{len: uint16(len(prog)), filter: &prog[0]}
	if _, _, e := syscall.RawSyscall(nrPrctl, 38 /* PR_SET_NO_NEW_PRIVS */, 1, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", e)
	}
	r1, _, e := syscall.RawSyscall(nrSeccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 1 /* SECCOMP_FILTER_FLAG_TSYNC */, uintptr(unsafe.Pointer(&fp)))
	runtime.KeepAlive(prog)
	if e != 0 {
		return fmt.Errorf("seccomp: %w", e)
	}
	if r1 != 0 {
		return fmt.Errorf("seccomp: thread %d could not be synchronized", r1)
	}
	return nil
}

// NoNetwork returns process attributes that start a child in a network
// namespace of its own, whose loopback interface is down: a connect to any
// address, 127.0.0.1 included, fails with ENETUNREACH without a packet
// leaving the machine. It needs root (CAP_SYS_ADMIN).
func NoNetwork() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
}
