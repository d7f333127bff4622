package configs

import (
	"slices"
	"strings"
	"testing"
)

func TestValidateNodeKeys(t *testing.T) {
	expand := validationFixture(t)
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"node keys and a pin", expand("catalog: {url: 'postgres://tw@127.0.0.1:5432/tw'}\nnode: {advertise: 'https://rec-1.example.cz:8443', token_file: $DIR/pw, lease_ttl: 10s}\n") +
			camera("rtsp://10.0.0.21/") + "    node: rec-1\n", nil},
		{"advertise without scheme", "node: {advertise: 'rec-1:8443'}\n", []string{`node.advertise: scheme "rec-1" is not http or https (want https://host:port)`}},
		{"advertise with a password", "node: {advertise: 'https://u:p@rec-1:8443'}\n", []string{"node.advertise: must be only scheme, host, port and path: no user, password, query or fragment"}},
		{"empty token file", expand("node: {token_file: $DIR/empty}\n"), []string{"node.token_file: " + expand("$DIR/empty") + " is empty"}},
		{"CA file without a certificate", expand("node: {ca_file: $DIR/pw}\n"), []string{"node.ca_file: " + expand("$DIR/pw") + " holds no PEM certificate (want one or more -----BEGIN CERTIFICATE----- blocks)"}},
		{"CA file missing", expand("node: {ca_file: $DIR/none.pem}\n"), []string{"node.ca_file: open " + expand("$DIR/none.pem") + ": no such file or directory"}},
		{"lease too short", "node: {lease_ttl: 1s}\n", []string{"node.lease_ttl: 1s is too short (at least 3s: a lease is renewed every third of it)"}},
		{"pin without PostgreSQL", camera("rtsp://10.0.0.21/") + "    node: rec-1\n", []string{`cameras[cam].node: pins the camera to node "rec-1", but several nodes need a shared PostgreSQL catalog (catalog.url)`}},
		{"bad node name", "catalog: {url: 'postgres://tw@127.0.0.1:5432/tw'}\n" + camera("rtsp://10.0.0.21/") + "    node: Rec_1\n", []string{`cameras[cam].node: invalid node name "Rec_1" (want 1-64 lowercase letters, digits and hyphens, not starting or ending with a hyphen)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := problems(t, tt.src); !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCheckNodeNamesEveryMissingKey(t *testing.T) {
	var c Config
	err := c.CheckNode("Bad Name")
	if err == nil {
		t.Fatal("CheckNode accepted a node without catalog, advertise, token or a valid name")
	}
	for _, key := range []string{"-node: invalid node name", "catalog.url: required", "node.advertise: required", "node.token_file: required"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %q", err, key)
		}
	}
}
