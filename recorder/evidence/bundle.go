// Package evidence writes and checks signed evidence bundles: one ZIP holding an MP4 per
// camera of a time range, a manifest.json describing the clips and every recorded segment
// they came from, SHA256SUMS, an Ed25519 signature of the manifest, the public key and a
// README (Czech and English) saying how to check it all without townwatch. See
// docs/evidence-export.md.
package evidence

import (
	"archive/zip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // the default Europe/Prague must not depend on the host's zoneinfo

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// Format is manifest.json's format field: Verify reads this version.
const Format = "townwatch-evidence/1"

// The fixed file names in a bundle; the README tells people to use them.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.json.sig"
	SumsName      = "SHA256SUMS"
	PublicKeyName = "townwatch-export-key.pub.pem"
	ReadmeName    = "README.txt"
)

// DefaultTimeZone is the zone a bundle shows local times in when Request.TimeZone is nil.
const DefaultTimeZone = "Europe/Prague"

// bundleFileMode is every file's mode in the ZIP: readable by whoever unpacks it.
const bundleFileMode = 0o644

// Request is what to export and why. Reason, Case, Recipient and Requester are the access
// log's answers for this copy of footage; AuditRowID is that log row, committed before
// the export starts, so that the bundle and the log point at each other.
type Request struct {
	Cameras    []string
	From, To   time.Time
	Reason     string
	Case       string // the case reference (č.j.)
	Recipient  string
	Requester  string
	AuditRowID int64
	TimeZone   *time.Location // for local times in the manifest and README; nil: Europe/Prague
	Version    string         // townwatch's version, recorded in the manifest
}

// Manifest is manifest.json. Times are UTC; the *Local fields repeat the range in
// TimeZone for people.
type Manifest struct {
	Format           string    `json:"format"`
	Created          time.Time `json:"created"`
	TownwatchVersion string    `json:"townwatch_version"`
	From             time.Time `json:"from"`
	To               time.Time `json:"to"`
	TimeZone         string    `json:"time_zone"`
	FromLocal        string    `json:"from_local"`
	ToLocal          string    `json:"to_local"`
	Requester        string    `json:"requester"`
	Reason           string    `json:"reason"`
	Case             string    `json:"case"`
	Recipient        string    `json:"recipient"`
	AuditRowID       int64     `json:"audit_row_id"`
	SigningKey       KeyInfo   `json:"signing_key"`
	Cameras          []Clip    `json:"cameras"`
	// Files are every file of the bundle but manifest.json itself, SHA256SUMS and the
	// signature, so that the signature covers the README and the key file as well.
	Files []File `json:"files"`
}

// KeyInfo names the key that signed the manifest.
type KeyInfo struct {
	Algorithm   string `json:"algorithm"` // "Ed25519"
	File        string `json:"file"`
	Fingerprint string `json:"fingerprint_sha256"` // see Fingerprint
}

// Clip is one camera's MP4 in the bundle.
type Clip struct {
	Camera string    `json:"camera"`
	File   string    `json:"file"`
	Bytes  int64     `json:"bytes"`
	SHA256 string    `json:"sha256"`
	Start  time.Time `json:"start"` // the first frame: the keyframe at or before From
	End    time.Time `json:"end"`   // just after the last frame
	Frames int64     `json:"frames"`
	Gaps   []Gap     `json:"gaps"` // parts of [From, To) without footage; [] if none
	// Sources are the recorded segment files the clip was cut from, in order.
	Sources []Source `json:"sources"`
}

// Gap is a part of the range without footage.
type Gap struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Source is one recorded segment file as the catalog indexes it.
type Source struct {
	ID     int64     `json:"id"`
	Path   string    `json:"path"` // relative to storage.path
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Bytes  int64     `json:"bytes"`
	SHA256 string    `json:"sha256,omitempty"` // absent while the segment is still being recorded
	// PrevSHA256 is the camera's previous segment's SHA-256, the link of the catalog's
	// hash chain ("" for the first segment); absent for segments closed before the
	// catalog kept the chain, and for an open one.
	PrevSHA256 *string `json:"prev_sha256,omitempty"`
	Open       bool    `json:"open,omitempty"` // being recorded: its length was checked, not its hash
}

// File is one file of the bundle and its digest.
type File struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Result describes a bundle Write wrote.
type Result struct {
	Manifest Manifest
	Bytes    int64 // of the ZIP
}

// cameraID is what a camera id may hold (configs validates the same): it is part of file
// names inside the ZIP and of FileName.
var cameraID = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$`)

// check validates the request and returns it with the default time zone filled in.
func (req Request) check() (Request, error) {
	switch {
	case len(req.Cameras) == 0:
		return req, errors.New("no camera")
	case req.From.IsZero() || req.To.IsZero() || !req.To.After(req.From):
		return req, fmt.Errorf("range [%s, %s) is empty or unset", utcStamp(req.From), utcStamp(req.To))
	case req.AuditRowID <= 0:
		return req, errors.New("no audit row: log the export request before writing the bundle")
	}
	for _, f := range []struct{ name, v string }{{"reason", req.Reason}, {"case", req.Case}, {"recipient", req.Recipient}, {"requester", req.Requester}} {
		if strings.TrimSpace(f.v) == "" {
			return req, fmt.Errorf("%s is required", f.name)
		}
	}
	for i, c := range req.Cameras {
		if !cameraID.MatchString(c) {
			return req, fmt.Errorf("camera %q is not a camera id", c)
		}
		if slices.Contains(req.Cameras[:i], c) {
			return req, fmt.Errorf("camera %s is listed twice", c)
		}
	}
	if req.TimeZone == nil {
		loc, err := time.LoadLocation(DefaultTimeZone)
		if err != nil {
			return req, err
		}
		req.TimeZone = loc
	}
	return req, nil
}

// fileStamp is a time in a form safe in file names on every system: 20261205T221000Z.
func fileStamp(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// utcStamp is a time in RFC 3339 UTC, for messages.
func utcStamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ClipName is the name of camera's MP4 in a bundle of [from, to).
func ClipName(camera string, from, to time.Time) string {
	return camera + "_" + fileStamp(from) + "_" + fileStamp(to) + ".mp4"
}

// FileName suggests a name for req's bundle: the cameras (their number beyond three) and
// the range in UTC.
func FileName(req Request) string {
	cams := strings.Join(req.Cameras, "+")
	if len(req.Cameras) > 3 {
		cams = fmt.Sprintf("%d-cameras", len(req.Cameras))
	}
	return "evidence_" + cams + "_" + fileStamp(req.From) + "_" + fileStamp(req.To) + ".zip"
}

// Write streams one evidence bundle of req to w. Each camera's MP4 is exported straight
// into the ZIP (stored: video does not compress) and hashed on the way, so memory stays
// bounded however long the range. Every source segment is checked against its catalog
// SHA-256 as it is read; a camera without footage in the range, a segment that does not
// match the catalog, a codec change within the range or a cancelled ctx fails the whole
// bundle with an error naming the camera and segment: a bundle never has a silent hole.
// On error, what was written to w is not a bundle; the caller discards it.
//
// progress, if not nil, is called with the source bytes read and the total over all
// cameras; the total is the catalog's estimate and is corrected as each camera's export
// finds its segments (an open segment grows).
func Write(ctx context.Context, w io.Writer, st *recorder.Storage, cat *catalog.Catalog, key ed25519.PrivateKey, req Request, progress func(done, total int64)) (Result, error) {
	req, err := req.check()
	if err != nil {
		return Result{}, fmt.Errorf("evidence bundle: %w", err)
	}
	if len(key) != ed25519.PrivateKeySize {
		return Result{}, errors.New("evidence bundle: no signing key")
	}
	if st == nil || cat == nil || w == nil {
		return Result{}, errors.New("evidence bundle: storage, catalog and output are required")
	}
	out := &countingWriter{w: w}
	b := &bundle{zw: zip.NewWriter(out), created: time.Now().UTC().Truncate(time.Second)}
	pub := key.Public().(ed25519.PublicKey)
	m := Manifest{
		Format: Format, Created: b.created, TownwatchVersion: req.Version,
		From: req.From.UTC(), To: req.To.UTC(), TimeZone: req.TimeZone.String(),
		FromLocal: req.From.In(req.TimeZone).Format(time.RFC3339Nano), ToLocal: req.To.In(req.TimeZone).Format(time.RFC3339Nano),
		Requester: req.Requester, Reason: req.Reason, Case: req.Case, Recipient: req.Recipient, AuditRowID: req.AuditRowID,
		SigningKey: KeyInfo{Algorithm: "Ed25519", File: PublicKeyName, Fingerprint: Fingerprint(pub)},
	}
	estimates, err := estimateBytes(ctx, cat, req)
	if err != nil {
		return Result{}, fmt.Errorf("evidence bundle: %w", err)
	}
	var doneBefore int64
	for i, camera := range req.Cameras {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("evidence bundle: %w", err)
		}
		rest := sumInt64(estimates[i+1:])
		var last int64
		report := func(done, total int64) {
			last = total
			if progress != nil {
				progress(doneBefore+done, doneBefore+total+rest)
			}
		}
		clip, err := b.clip(ctx, st, cat, camera, req.From, req.To, report)
		if err != nil {
			return Result{}, fmt.Errorf("evidence bundle: %w", err)
		}
		doneBefore += last
		m.Cameras = append(m.Cameras, clip)
	}
	if err := b.add(ReadmeName, []byte(readme(&m, req.TimeZone))); err != nil {
		return Result{}, err
	}
	if err := b.add(PublicKeyName, PublicKeyPEM(pub)); err != nil {
		return Result{}, err
	}
	m.Files = slices.Clone(b.files)
	manifest, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return Result{}, fmt.Errorf("evidence bundle: manifest: %w", err)
	}
	manifest = append(manifest, '\n')
	if err := b.add(ManifestName, manifest); err != nil {
		return Result{}, err
	}
	if err := b.add(SignatureName, ed25519.Sign(key, manifest)); err != nil {
		return Result{}, err
	}
	// sha256sum -c reads "<hex>  <name>" lines; the signature is left out because it is
	// checked with openssl, and SHA256SUMS cannot list itself.
	var sums strings.Builder
	for _, f := range b.files {
		if f.Name != SignatureName {
			fmt.Fprintf(&sums, "%s  %s\n", f.SHA256, f.Name)
		}
	}
	if err := b.add(SumsName, []byte(sums.String())); err != nil {
		return Result{}, err
	}
	if err := b.zw.Close(); err != nil {
		return Result{}, fmt.Errorf("evidence bundle: %w", err)
	}
	return Result{Manifest: m, Bytes: out.n}, nil
}

// bundle is a ZIP being written and the digests of the files in it so far.
type bundle struct {
	zw      *zip.Writer
	created time.Time
	files   []File
}

// create starts a file in the ZIP.
func (b *bundle) create(name string) (io.Writer, error) {
	h := &zip.FileHeader{Name: name, Method: zip.Store, Modified: b.created}
	h.SetMode(bundleFileMode)
	w, err := b.zw.CreateHeader(h)
	if err != nil {
		return nil, fmt.Errorf("evidence bundle: %s: %w", name, err)
	}
	return w, nil
}

// add writes a small file whole.
func (b *bundle) add(name string, data []byte) error {
	w, err := b.create(name)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("evidence bundle: %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	b.files = append(b.files, File{Name: name, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	return nil
}

// clip exports one camera's range into the ZIP, hashing it on the way.
func (b *bundle) clip(ctx context.Context, st *recorder.Storage, cat *catalog.Catalog, camera string, from, to time.Time, progress func(done, total int64)) (Clip, error) {
	name := ClipName(camera, from, to)
	w, err := b.create(name)
	if err != nil {
		return Clip{}, err
	}
	h := sha256.New()
	res, err := recorder.Export(ctx, st, cat, camera, from, to, io.MultiWriter(w, h), progress)
	if err != nil {
		// With ErrConfigChanged a complete clip up to the change was written; a bundle
		// still cannot hold it, since the range asked for would not be covered.
		return Clip{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	b.files = append(b.files, File{Name: name, Bytes: res.Bytes, SHA256: sum})
	c := Clip{Camera: camera, File: name, Bytes: res.Bytes, SHA256: sum, Start: res.Start.UTC(), End: res.End.UTC(),
		Frames: res.Frames, Gaps: []Gap{}}
	for _, g := range res.Gaps {
		c.Gaps = append(c.Gaps, Gap{From: g.From.UTC(), To: g.To.UTC()})
	}
	for _, s := range res.Sources {
		src := Source{ID: s.ID, Path: s.Path, Start: s.Start.UTC(), End: s.End.UTC(), Bytes: s.Bytes, SHA256: s.SHA256, Open: s.Open}
		if s.Chained {
			src.PrevSHA256 = &s.PrevSHA256
		}
		c.Sources = append(c.Sources, src)
	}
	return c, nil
}

// estimateBytes is each camera's main-stream bytes in the range as the catalog has them,
// for a progress total over all cameras before their exports begin.
func estimateBytes(ctx context.Context, cat *catalog.Catalog, req Request) ([]int64, error) {
	out := make([]int64, len(req.Cameras))
	for i, camera := range req.Cameras {
		segs, err := cat.Segments(ctx, camera, req.From, req.To)
		if err != nil {
			return nil, fmt.Errorf("camera %s: %w", camera, err)
		}
		for _, s := range segs {
			if s.Stream == ingest.StreamMain {
				out[i] += s.Bytes
			}
		}
	}
	return out, nil
}

func sumInt64(v []int64) int64 {
	var n int64
	for _, x := range v {
		n += x
	}
	return n
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
