package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Options say which bucket to use and how to reach it (storage.archive).
type Options struct {
	Endpoint  string // host:port
	Secure    bool   // HTTPS
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
}

// Bucket is the archive's bucket: one object per archived segment, named by the
// segment's catalog path (recordings/<camera>/<YYYY>/<MM>/<DD>/<start>.mp4), so the key
// of any row is known without asking the store.
type Bucket struct {
	c      *minio.Client
	name   string
	region string
}

// New makes the bucket's client. It does not reach the store: a store that is down at
// start-up must not keep the cameras from recording (the job retries; see Ensure).
// Errors name the endpoint and bucket, never the keys.
func New(o Options) (*Bucket, error) {
	c, err := minio.New(o.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure: o.Secure,
		Region: o.Region,
		// No trailing checksums: not every S3-compatible server takes them, and the
		// archive trusts no server-side checksum anyway; it reads every object back
		// and compares its SHA-256 with the catalog row.
		TrailingHeaders: false,
	})
	if err != nil {
		return nil, fmt.Errorf("archive %s/%s: %w", o.Endpoint, o.Bucket, err)
	}
	return &Bucket{c: c, name: o.Bucket, region: o.Region}, nil
}

// Ensure creates the bucket when it does not exist.
func (b *Bucket) Ensure(ctx context.Context) error {
	exists, err := b.c.BucketExists(ctx, b.name)
	if err == nil && !exists {
		err = b.c.MakeBucket(ctx, b.name, minio.MakeBucketOptions{Region: b.region})
		if minio.ToErrorResponse(err).Code == minio.BucketAlreadyOwnedByYou {
			err = nil // made by another node in between
		}
	}
	if err != nil {
		return fmt.Errorf("archive bucket %s: %w", b.name, err)
	}
	return nil
}

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Put stores size bytes of r as key, replacing any object there. S3 makes an object
// visible only once it is whole (multipart uploads included), so a crash mid-upload
// leaves the old object or none, never a torn one.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	_, err := b.c.PutObject(ctx, b.name, key, r, size, minio.PutObjectOptions{ContentType: "video/mp4"})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Size returns the size of the object at key; an absent object wraps fs.ErrNotExist.
func (b *Bucket) Size(ctx context.Context, key string) (int64, error) {
	info, err := b.c.StatObject(ctx, b.name, key, minio.StatObjectOptions{})
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", key, notExist(err))
	}
	return info.Size, nil
}

// Digest reads the whole object at key back and returns its SHA-256 (lowercase hex) and
// length: what the archive compares with the catalog row before it trusts the object.
func (b *Bucket) Digest(ctx context.Context, key string) (string, int64, error) {
	rc, err := b.Get(ctx, key, 0, -1)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", n, fmt.Errorf("read back %s: %w", key, notExist(err))
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Get reads length bytes of the object at key from off (length < 0: to its end).
func (b *Bucket) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	opts := minio.GetObjectOptions{}
	if off > 0 || length >= 0 {
		end := int64(0) // SetRange(off, 0): from off to the end
		if length >= 0 {
			end = off + length - 1
		}
		if err := opts.SetRange(off, end); err != nil {
			return nil, fmt.Errorf("get %s: %w", key, err)
		}
	}
	// The low-level call, so that a missing object is an error here, not at the first
	// Read, and no Seek or Stat is made behind the reader's back.
	rc, _, _, err := minio.Core{Client: b.c}.GetObject(ctx, b.name, key, opts)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, notExist(err))
	}
	return rc, nil
}

// Remove deletes the object at key; an absent one is not an error.
func (b *Bucket) Remove(ctx context.Context, key string) error {
	if err := b.c.RemoveObject(ctx, b.name, key, minio.RemoveObjectOptions{}); err != nil && !errors.Is(notExist(err), fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	return nil
}

// Count returns how many objects the bucket holds (tests, operators' checks).
func (b *Bucket) Count(ctx context.Context) (int, error) {
	n := 0
	for o := range b.c.ListObjects(ctx, b.name, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return n, o.Err
		}
		n++
	}
	return n, nil
}

// notExist makes S3's "no such key" an error wrapping fs.ErrNotExist.
func notExist(err error) error {
	r := minio.ToErrorResponse(err)
	if r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound && r.Code != minio.NoSuchBucket {
		return fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	return err
}
