package s3test

import (
	"net"
	"os"
	"testing"
)

// The server listens on loopback, keeps objects as files under Dir, and comes back with
// them after an outage.
func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	if host, _, _ := net.SplitHostPort(s.Addr); host != "127.0.0.1" {
		t.Fatalf("listening on %s, want 127.0.0.1 only", s.Addr)
	}
	s.Stop()
	if c, err := net.Dial("tcp", s.Addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", s.Addr)
	}
	s.Restart(t)
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatalf("not back after Restart: %v", err)
	}
	c.Close()
	if _, err := os.Stat(s.Dir); err != nil {
		t.Fatal(err)
	}
}
