// Package s3test gives tests a real S3 server: versitygw with its posix backend in a
// temporary directory, listening on 127.0.0.1 only (package s3server). Each Start is a
// server of its own, stopped when the test ends, so tests never see each other's buckets.
//
// When versitygw cannot be found or started, Start fails the test with the reason; it
// never skips.
package s3test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/townwatch/townwatch/recorder/archive/s3server"
)

// Fixed test keys: the server is on loopback, lives for one test and holds test data.
const (
	AccessKey = "townwatch-test-access"
	SecretKey = "townwatch-test-secret-key"
)

// Server is one running versitygw. Its Dir is the posix backend's directory, which a
// test may change behind the server's back (ObjectFile); Stop kills it (an outage, as a
// test sees it).
type Server struct {
	*s3server.Server
}

// Start runs a new server for t and stops it when t ends. It fails t if the server cannot
// start.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s3")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := s3server.Start(dir, AccessKey, SecretKey)
	if err != nil {
		t.Fatalf("s3test: an S3 server is needed for this test: %v", err)
	}
	t.Cleanup(s.Stop)
	return &Server{s}
}

// Restart starts a stopped server again on its address; it fails t if it cannot.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.Server.Restart(); err != nil {
		t.Fatalf("s3test: restart: %v", err)
	}
}

// ObjectFile is the backend file holding bucket's object key.
func (s *Server) ObjectFile(bucket, key string) string {
	return filepath.Join(s.Dir, bucket, filepath.FromSlash(key))
}

// KeyFiles writes the access and secret keys to files in dir, as storage.archive's
// access_key_file and secret_key_file name them.
func KeyFiles(dir string) (access, secret string, err error) {
	access, secret = filepath.Join(dir, "s3-access"), filepath.Join(dir, "s3-secret")
	err = errors.Join(os.WriteFile(access, []byte(AccessKey+"\n"), 0o600), os.WriteFile(secret, []byte(SecretKey+"\n"), 0o600))
	return access, secret, err
}
