package viewer

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// FetchSegment asks the owner's node route with the node token in its header, hands the
// whole answer on and counts it with the proxied media; an owner that refuses or has no
// address is an error saying so, without the token.
func TestFetchSegmentFromTheOwnerNode(t *testing.T) {
	file := []byte(strings.Repeat("0123456789", 1000))
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(NodeTokenHeader) != "uzel-token" {
			http.Error(w, "node token required", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != nodeMediaPath(7) || r.URL.RawQuery != "" || r.Header.Get("Range") != "" {
			http.NotFound(w, r)
			return
		}
		w.Write(file)
	}))
	defer owner.Close()
	advertise := map[string]string{"a": owner.URL + "/"}
	peers := &Peers{Self: "b", Token: "uzel-token",
		Advertise: func(_ context.Context, node string) (string, error) { return advertise[node], nil }}
	seg := catalog.Segment{ID: 7, Node: "a"}

	rc, err := peers.FetchSegment(t.Context(), seg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("fetched %d bytes (%v), want the owner's %d", len(got), err, len(file))
	}

	peers.Token = "another-token"
	if _, err := peers.FetchSegment(t.Context(), seg); err == nil || !strings.Contains(err.Error(), "401") ||
		strings.Contains(err.Error(), "another-token") || strings.Contains(err.Error(), "uzel-token") {
		t.Errorf("owner refusing: %v; want an error with its status and no token", err)
	}
	if _, err := peers.FetchSegment(t.Context(), catalog.Segment{ID: 7, Node: "c"}); err == nil || !strings.Contains(err.Error(), "address is unknown") {
		t.Errorf("owner without an address: %v", err)
	}
	owner.Close()
	peers.Token = "uzel-token"
	if _, err := peers.FetchSegment(t.Context(), seg); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("owner stopped: %v; want an error saying it does not answer", err)
	}
	stats := peers.Proxied()
	if want := (ProxyStats{Requests: 3, Bytes: uint64(len(file)), Failures: 2}); stats["a"] != want {
		t.Errorf("counted for a: %+v, want %+v", stats["a"], want)
	}
}
