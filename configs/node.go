package configs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"
)

// Node configures this townwatch as one of several recorder nodes sharing a PostgreSQL
// catalog (`townwatch serve -node NAME`; docs/nodes.md). Unused by a single node.
type Node struct {
	// Advertise is the URL the other nodes (and browsers sent on for live view) reach
	// this node at, e.g. https://rec-2.example.cz:8443. Required with -node.
	Advertise string `yaml:"advertise"`
	// TokenFile holds the secret every node of the cluster shares; a node fetching
	// footage from another's disk presents it in a header. Required with -node.
	TokenFile string `yaml:"token_file"`
	// LeaseTTL is how long a camera lease lasts unrenewed (default 10s, at least 3s):
	// about the longest a dead node's cameras go unrecorded. Every node must use the same.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// CAFile is a PEM file of the certificate authorities that sign the other nodes'
	// HTTPS certificates (a town's own CA, or the nodes' self-signed certificates). When
	// set, node-to-node requests trust these and nothing else: the node token travels in
	// those requests, so a node must not hand it to whoever a public CA vouches for. Unset:
	// the system's roots.
	CAFile string `yaml:"ca_file"`
}

// DefaultLeaseTTL is node.lease_ttl's default.
const DefaultLeaseTTL = 10 * time.Second

// TTL is node.lease_ttl or its default.
func (n Node) TTL() time.Duration {
	if n.LeaseTTL > 0 {
		return n.LeaseTTL.Std()
	}
	return DefaultLeaseTTL
}

// Token reads the node token from node.token_file.
func (n Node) Token() (string, error) {
	if n.TokenFile == "" {
		return "", errors.New("node.token_file: required when running as a node (-node)")
	}
	return readSecret(n.TokenFile, "node.token_file", "", "")
}

// CAPool reads node.ca_file: nil (the system's roots) when it is unset, an error naming
// the file when it holds no PEM certificate.
func (n Node) CAPool() (*x509.CertPool, error) {
	if n.CAFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(n.CAFile)
	if err != nil {
		return nil, err // *fs.PathError names the file
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate (want one or more -----BEGIN CERTIFICATE----- blocks)", n.CAFile)
	}
	return pool, nil
}

// nodes checks the node keys and the cameras' pins, which only make sense with a shared
// PostgreSQL catalog.
func (v *validator) nodes(c *Config) {
	n := c.Node
	if n.Advertise != "" {
		if err := checkAdvertise(n.Advertise); err != nil {
			v.add("node.advertise", "%v", err)
		}
	}
	if n.TokenFile != "" {
		if err := checkPasswordFile(n.TokenFile); err != nil {
			v.add("node.token_file", "%v", err)
		}
	}
	if n.CAFile != "" {
		if _, err := n.CAPool(); err != nil {
			v.add("node.ca_file", "%v", err)
		}
	}
	if n.LeaseTTL != 0 && n.LeaseTTL.Std() < 3*time.Second {
		v.add("node.lease_ttl", "%s is too short (at least 3s: a lease is renewed every third of it)", n.LeaseTTL.Std())
	}
	for i, cam := range c.Cameras {
		if cam.Node == "" {
			continue
		}
		path := fmt.Sprintf("cameras[%d].node", i)
		if cameraID.MatchString(cam.ID) {
			path = "cameras[" + cam.ID + "].node"
		}
		switch {
		case !cameraID.MatchString(cam.Node):
			v.add(path, "invalid node name %q (want 1-64 lowercase letters, digits and hyphens, not starting or ending with a hyphen)", cam.Node)
		case c.Catalog.URL == "":
			v.add(path, "pins the camera to node %q, but several nodes need a shared PostgreSQL catalog (catalog.url)", cam.Node)
		}
	}
}

// checkAdvertise checks a node's URL for the others: http(s), a host, nothing secret.
func checkAdvertise(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a valid URL (want https://host:port)", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q is not http or https (want https://host:port)", u.Scheme)
	case u.Host == "":
		return fmt.Errorf("%q names no host (want https://host:port)", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return errors.New("must be only scheme, host, port and path: no user, password, query or fragment")
	}
	return nil
}

// CheckNode says what keeps this configuration from running as node name (serve -node):
// one error naming every missing or wrong key, or nil.
func (c *Config) CheckNode(name string) error {
	var v validator
	if !cameraID.MatchString(name) {
		v.add("-node", "invalid node name %q (want 1-64 lowercase letters, digits and hyphens, not starting or ending with a hyphen)", name)
	}
	if c.Catalog.URL == "" {
		v.add("catalog.url", "required with -node: the nodes share a PostgreSQL catalog")
	}
	if c.Node.Advertise == "" {
		v.add("node.advertise", "required with -node: the URL the other nodes reach this one at")
	}
	if c.Node.TokenFile == "" {
		v.add("node.token_file", "required with -node: the secret the nodes share")
	}
	if len(v.problems) > 0 {
		return &ValidationError{Problems: v.problems}
	}
	return nil
}
