package sockfault

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

const childEnv = "SOCKFAULT_TEST_CHILD"

// TestChild is not a test: it is the child process of the tests below.
func TestChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		return
	}
	if mode == "deny" {
		if err := DenyConnect(syscall.EACCES); err != nil {
			os.Exit(3)
		}
	}
	_, err := net.Dial("tcp", os.Getenv(childEnv+"_ADDR"))
	switch {
	case errors.Is(err, syscall.EACCES):
		os.Exit(10)
	case errors.Is(err, syscall.ENETUNREACH):
		os.Exit(11)
	case err == nil:
		os.Exit(12)
	}
	os.Exit(13)
}

func child(t *testing.T, mode string, attr *syscall.SysProcAttr, addr string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childEnv+"_ADDR="+addr)
	cmd.SysProcAttr = attr
	err := cmd.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestDenyConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // live: the denial is not a refusal
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if code := child(t, "plain", nil, ln.Addr().String()); code != 12 {
		t.Fatalf("without the filter the connect should succeed, exit %d", code)
	}
	if code := child(t, "deny", nil, ln.Addr().String()); code != 10 {
		t.Errorf("under DenyConnect(EACCES): exit %d, want 10 (EACCES)", code)
	}
}

func TestNoNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a network namespace needs root")
	}
	if code := child(t, "plain", NoNetwork(), "127.0.0.1:9"); code != 11 {
		t.Errorf("in a namespace with loopback down: exit %d, want 11 (ENETUNREACH)", code)
	}
}
