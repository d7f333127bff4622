package pgserver

import (
	"net"
	"os"
	"testing"
	"time"
)

// Stop shuts the server down cleanly and leaves nothing behind: no listener on its port,
// no files.
func TestStopLeavesNothing(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatalf("PostgreSQL could not be started: %v", err)
	}
	addr, dir := s.Addr(), s.Dir()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err != nil {
		s.Discard()
		t.Fatalf("the started server does not listen on %s: %v", addr, err)
	} else {
		c.Close()
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", addr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the server's directory %s is still there after Stop (%v)", dir, err)
	}
}
