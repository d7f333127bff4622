package configs

import (
	"slices"
	"strings"
	"testing"
)

func TestValidateArchive(t *testing.T) {
	expand := validationFixture(t)
	keys := "access_key_file: $DIR/pw, secret_key_file: $DIR/pw"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"loopback", "storage: {archive: {url: 's3://127.0.0.1:7070/townwatch', after: 2d, " + keys + "}}\n", nil},
		{"remote https", "storage: {archive: {url: 's3://s3.example.cz:443/tw-archive', after: 2d, region: eu-central-1, " + keys + "}}\n", nil},
		{"everything wrong", "storage: {archive: {url: 'http://k:s@h/x', after: 0s, access_key_file: $DIR/nope}}\n", []string{
			`storage.archive.url: scheme "http" is not s3 (want s3://host:port/bucket)`,
			"storage.archive.after: must be a positive age such as 2d, is 0s",
			"storage.archive.access_key_file: open $DIR/nope: no such file or directory",
			"storage.archive.secret_key_file: must name a file holding the key",
		}},
		{"keys in url", "storage: {archive: {url: 's3://AKIA:verysecret@h:9000/bucket', after: 2d, " + keys + "}}\n", []string{
			"storage.archive.url: must not hold keys (put them in access_key_file and secret_key_file)"}},
		{"no port", "storage: {archive: {url: 's3://h/bucket', after: 2d, " + keys + "}}\n", []string{
			"storage.archive.url: names no host:port (want s3://host:port/bucket)"}},
		{"bad bucket", "storage: {archive: {url: 's3://h:1/Bad_Bucket', after: 2d, " + keys + "}}\n", []string{
			`storage.archive.url: bucket "Bad_Bucket" is not a valid S3 bucket name (3 to 63 of a-z, 0-9, '.', '-'; want s3://host:port/bucket)`}},
		{"empty key file", "storage: {archive: {url: 's3://h:1/bucket', after: 2d, access_key_file: $DIR/empty, secret_key_file: $DIR/pw}}\n", []string{
			"storage.archive.access_key_file: $DIR/empty is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = expand(w)
			}
			got := problems(t, expand(tt.src))
			if !slices.Equal(got, want) && len(got)+len(want) > 0 {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for _, g := range got {
				if strings.Contains(g, "verysecret") {
					t.Errorf("a problem repeats the secret: %s", g)
				}
			}
		})
	}
}

func TestArchiveEndpoint(t *testing.T) {
	for _, tt := range []struct {
		url    string
		secure bool
	}{
		{"s3://127.0.0.1:7070/twa", false},
		{"s3://localhost:7070/twa", false},
		{"s3://[::1]:7070/twa", false},
		{"s3://s3.example.cz:443/twa", true},
		{"s3+http://10.0.0.9:9000/twa", false},
	} {
		e, err := (&Archive{URL: tt.url}).Endpoint()
		if err != nil || e.Secure != tt.secure || e.Bucket != "twa" {
			t.Errorf("%s: %+v, %v; want secure %v, bucket twa", tt.url, e, err, tt.secure)
		}
	}
}
