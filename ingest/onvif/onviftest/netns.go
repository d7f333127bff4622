package onviftest

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// netnsChild names, in the environment of a re-executed test binary, the test that is to
// run inside the network namespace.
const netnsChild = "TOWNWATCH_ONVIF_NETNS"

// InNetns runs the calling test again, in a child process in a new network namespace
// (CLONE_NEWNET: root or CAP_SYS_ADMIN), and reports its result; it returns true in the
// child, where the test body runs, and false in the parent, which must return. Multicast
// from the test then reaches nothing but the namespace. In there, the loopback interface
// is the only one, and it is prepared for WS-Discovery:
//
//	ip link set lo up
//	ip link set lo multicast on
//	ip route add 224.0.0.0/4 dev lo
//	ip addr add 169.254.77.1/32 dev lo
//
// The link-local address is for Debian's wsdd, which ignores 127/8 and would not answer.
func InNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsChild) == t.Name() {
		for _, args := range [][]string{
			{"link", "set", "lo", "up"},
			{"link", "set", "lo", "multicast", "on"},
			{"route", "add", "224.0.0.0/4", "dev", "lo"},
			{"addr", "add", "169.254.77.1/32", "dev", "lo"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v: %s (iproute2 is needed: apt-get install iproute2)", strings.Join(args, " "), err, out)
			}
		}
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), netnsChild+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	t.Logf("in a network namespace of its own:\n%s", out)
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Fatalf("a network namespace needs root or CAP_SYS_ADMIN: %v", err)
		}
		t.Fatalf("the test failed in its network namespace: %v", err)
	}
	return false
}
