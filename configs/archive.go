package configs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Archive is storage.archive: an S3-compatible bucket that closed segments move to once
// they are older than After. The keys live in files only (AccessKeyFile, SecretKeyFile),
// never in the YAML, a URL, a log line or an API answer.
type Archive struct {
	// URL is s3://host:port/bucket. s3:// speaks HTTPS, except to a loopback host
	// (127.0.0.0/8, ::1, localhost), where the traffic never leaves the machine and plain
	// HTTP is used; s3+http:// forces plain HTTP (a store on a trusted network only).
	URL string `yaml:"url"`
	// After is the age (since a segment's end) at which it is archived, e.g. "2d".
	After         Duration `yaml:"after"`
	AccessKeyFile string   `yaml:"access_key_file"`
	SecretKeyFile string   `yaml:"secret_key_file"`
	Region        string   `yaml:"region"` // default "us-east-1"
	// CacheSize bounds the local copies of archived segments kept for whole-segment reads
	// (export, verify-archive, stills); default 1 GiB.
	CacheSize ByteSize `yaml:"cache_size"`
}

// DefaultArchiveRegion is the region signed into requests when storage.archive.region is
// empty; most S3-compatible servers accept any region.
const DefaultArchiveRegion = "us-east-1"

// DefaultArchiveCacheSize is storage.archive.cache_size when unset.
const DefaultArchiveCacheSize ByteSize = 1 << 30

// ArchiveEndpoint is storage.archive.url taken apart.
type ArchiveEndpoint struct {
	Host   string // host:port
	Bucket string
	Secure bool // HTTPS
}

// Endpoint parses URL; its errors never repeat the URL (it could hold keys by mistake).
func (a *Archive) Endpoint() (ArchiveEndpoint, error) {
	u, err := url.Parse(a.URL)
	if err != nil {
		return ArchiveEndpoint{}, errors.New("is not a valid URL (want s3://host:port/bucket)")
	}
	var e ArchiveEndpoint
	switch u.Scheme {
	case "s3":
		e.Secure = !isLoopbackHost(u.Hostname())
	case "s3+http":
	default:
		return e, fmt.Errorf("scheme %q is not s3 (want s3://host:port/bucket)", u.Scheme)
	}
	switch {
	case u.User != nil:
		return e, errors.New("must not hold keys (put them in access_key_file and secret_key_file)")
	case u.RawQuery != "":
		return e, errors.New("must not have a query (keys go in access_key_file and secret_key_file)")
	case u.Host == "" || u.Port() == "":
		return e, errors.New("names no host:port (want s3://host:port/bucket)")
	}
	e.Host = u.Host
	e.Bucket = strings.Trim(u.Path, "/")
	if !validBucket(e.Bucket) {
		return e, fmt.Errorf("bucket %q is not a valid S3 bucket name (3 to 63 of a-z, 0-9, '.', '-'; want s3://host:port/bucket)", e.Bucket)
	}
	return e, nil
}

// RegionOrDefault is Region, or DefaultArchiveRegion when it is empty.
func (a *Archive) RegionOrDefault() string {
	if a.Region == "" {
		return DefaultArchiveRegion
	}
	return a.Region
}

// CacheBytes is CacheSize, or DefaultArchiveCacheSize when it is unset.
func (a *Archive) CacheBytes() int64 {
	if a.CacheSize == 0 {
		return int64(DefaultArchiveCacheSize)
	}
	return int64(a.CacheSize)
}

// Keys reads the access and secret keys from their files. Errors name the field and the
// file, never the content.
func (a *Archive) Keys() (access, secret string, err error) {
	if access, err = readSecret(a.AccessKeyFile, "storage.archive.access_key_file", "", ""); err != nil {
		return "", "", err
	}
	if secret, err = readSecret(a.SecretKeyFile, "storage.archive.secret_key_file", "", ""); err != nil {
		return "", "", err
	}
	return access, secret, nil
}

func (a *Archive) check(v *validator) {
	if _, err := a.Endpoint(); err != nil {
		v.add("storage.archive.url", "%v", err)
	}
	if a.After.Std() <= 0 {
		v.add("storage.archive.after", "must be a positive age such as 2d, is %s", a.After)
	}
	for _, f := range []struct{ key, path string }{
		{"storage.archive.access_key_file", a.AccessKeyFile},
		{"storage.archive.secret_key_file", a.SecretKeyFile},
	} {
		if f.path == "" {
			v.add(f.key, "must name a file holding the key")
		} else if err := checkPasswordFile(f.path); err != nil {
			v.add(f.key, "%v", err)
		}
	}
	if a.CacheSize < 0 {
		v.add("storage.archive.cache_size", "must not be negative")
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return false
		}
	}
	return b[0] != '.' && b[0] != '-' && b[len(b)-1] != '.' && b[len(b)-1] != '-'
}
