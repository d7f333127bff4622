package evidence

import (
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Report is what Verify checked of a bundle.
type Report struct {
	Manifest    Manifest
	Fingerprint string // of the key in the bundle that signed it
	Files       int    // files whose digest matched
}

// maxSmallFile bounds the files Verify reads whole (manifest, sums, key, signature): the
// manifest lists every source segment (about 350 bytes each), so 16 cameras × 24 h of
// 60 s segments is 8 MB; beyond this bound it is not a bundle townwatch made.
const maxSmallFile = 64 << 20

// Verify checks a bundle offline, the way a court's expert would without townwatch: the
// ZIP's structure is exactly what Write makes (so no byte outside the files' data can
// change unnoticed), every file but SHA256SUMS and the signature is listed in SHA256SUMS
// and in the manifest with the digest it has, nothing else is in the ZIP, and the
// manifest's Ed25519 signature verifies with the public key in the bundle. With
// trustedFingerprint (the one the town published, `townwatch key show`), that key must be
// the town's. The error names the first problem: the file and what is wrong with it.
func Verify(r io.ReaderAt, size int64, trustedFingerprint string) (Report, error) {
	var rep Report
	if err := checkZip(r, size); err != nil {
		return rep, err
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return rep, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		if files[f.Name] != nil {
			return rep, fmt.Errorf("%w: %q is in it twice", ErrDamaged, f.Name)
		}
		files[f.Name] = f
	}
	small := map[string][]byte{}
	for _, name := range []string{ManifestName, SignatureName, SumsName, PublicKeyName} {
		f := files[name]
		if f == nil {
			return rep, fmt.Errorf("%s is missing", name)
		}
		b, err := readSmall(f)
		if err != nil {
			return rep, err
		}
		small[name] = b
	}
	sums, err := parseSums(small[SumsName])
	if err != nil {
		return rep, err
	}
	pub, err := ParsePublicKeyPEM(small[PublicKeyName])
	if err != nil {
		return rep, fmt.Errorf("%s: %w", PublicKeyName, err)
	}
	if !ed25519.Verify(pub, small[ManifestName], small[SignatureName]) {
		return rep, fmt.Errorf("%s: the signature does not verify with %s: the manifest or the signature was changed", SignatureName, PublicKeyName)
	}
	rep.Fingerprint = Fingerprint(pub)
	if trustedFingerprint != "" && normalizeFingerprint(trustedFingerprint) != normalizeFingerprint(rep.Fingerprint) {
		return rep, fmt.Errorf("%s: signed by key %s, not by the trusted key %s", PublicKeyName, rep.Fingerprint, trustedFingerprint)
	}
	dec := json.NewDecoder(bytes.NewReader(small[ManifestName]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep.Manifest); err != nil {
		return rep, fmt.Errorf("%s: %v", ManifestName, err)
	}
	m := &rep.Manifest
	if m.Format != Format {
		return rep, fmt.Errorf("%s: format %q, this townwatch reads %q", ManifestName, m.Format, Format)
	}
	if m.SigningKey.Fingerprint != rep.Fingerprint {
		return rep, fmt.Errorf("%s: names key %s but %s is %s", ManifestName, m.SigningKey.Fingerprint, PublicKeyName, rep.Fingerprint)
	}
	// The signed list of files must be exactly what is in the ZIP, with the same digests:
	// SHA256SUMS is not signed, the manifest is.
	if len(m.Files)+3 != len(zr.File) {
		return rep, fmt.Errorf("%s lists %d files, the bundle has %d besides the manifest, %s and the signature", ManifestName, len(m.Files), len(zr.File)-3, SumsName)
	}
	for _, f := range m.Files {
		if sums[f.Name] != f.SHA256 {
			return rep, fmt.Errorf("%s: %s has SHA-256 %s in the manifest and %q in %s", ManifestName, f.Name, f.SHA256, sums[f.Name], SumsName)
		}
	}
	for _, c := range m.Cameras {
		if sums[c.File] != c.SHA256 {
			return rep, fmt.Errorf("%s: camera %s's clip %s has SHA-256 %s, the file %q", ManifestName, c.Camera, c.File, c.SHA256, sums[c.File])
		}
	}
	// Last, the expensive part: every file is hashed (a CRC or digest mismatch names it)
	// and compared with SHA256SUMS, which the signed manifest has vouched for above.
	// Small files first: a changed README or key is named without hashing gigabytes.
	byName := slices.SortedFunc(slices.Values(zr.File), func(a, b *zip.File) int {
		return cmp.Compare(a.UncompressedSize64, b.UncompressedSize64)
	})
	for _, f := range byName {
		if f.Name == SumsName || f.Name == SignatureName {
			continue
		}
		want, listed := sums[f.Name]
		if !listed {
			return rep, fmt.Errorf("%s is in the bundle but not in %s", f.Name, SumsName)
		}
		got, err := hashFile(f)
		if err != nil {
			return rep, err
		}
		if got != want {
			return rep, fmt.Errorf("%s: SHA-256 is %s, %s says %s: the file was changed", f.Name, got, SumsName, want)
		}
		rep.Files++
	}
	for name := range sums {
		if files[name] == nil {
			return rep, fmt.Errorf("%s lists %s, which is not in the bundle", SumsName, name)
		}
	}
	return rep, nil
}

// VerifyFile is Verify of the bundle at path.
func VerifyFile(path, trustedFingerprint string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Report{}, err
	}
	return Verify(f, info.Size(), trustedFingerprint)
}

func readSmall(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > maxSmallFile {
		return nil, fmt.Errorf("%s: %d bytes, too large for this file of a bundle", f.Name, f.UncompressedSize64)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (the file was changed)", f.Name, err)
	}
	return b, nil
}

// hashFile is the SHA-256 of a file's content; archive/zip also checks its CRC-32.
func hashFile(f *zip.File) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.Name, err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		if errors.Is(err, zip.ErrChecksum) {
			return "", fmt.Errorf("%s: its CRC-32 does not match: the file was changed", f.Name)
		}
		return "", fmt.Errorf("%s: %w", f.Name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// parseSums reads SHA256SUMS ("<hex>  <name>" lines, as sha256sum writes them).
func parseSums(b []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 || name == "" {
			return nil, fmt.Errorf("%s: line %d is not \"<SHA-256>  <file>\"", SumsName, n)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s: %s is listed twice", SumsName, name)
		}
		out[name] = sum
	}
	return out, nil
}
