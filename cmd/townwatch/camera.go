package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/townwatch/townwatch/ingest/onvif"
	"github.com/townwatch/townwatch/ingest/probe"
	"github.com/townwatch/townwatch/viewer"
)

// cameraPasswordEnv is where `townwatch camera probe` takes a password from when there is
// no -password-file: never a flag, which every user of the machine could read in ps.
const cameraPasswordEnv = "TOWNWATCH_CAMERA_PASSWORD"

// newCameraAdmin makes the camera tools of the HTTP API: the probe (with stills when
// ffmpeg is there), ONVIF discovery and profile reading.
func newCameraAdmin(frames *viewer.FrameDecoder, log *slog.Logger) *viewer.CameraAdmin {
	return &viewer.CameraAdmin{Prober: newProber(frames, log), Discoverer: &onvif.Discoverer{}, ONVIF: &onvif.Client{}}
}

// newProber is a Prober making stills with frames, if there is a decoder.
func newProber(frames *viewer.FrameDecoder, log *slog.Logger) *probe.Prober {
	p := &probe.Prober{Log: log.With("component", "probe")}
	if frames != nil {
		p.Snapshots = frames
	}
	return p
}

// runCamera runs `townwatch camera probe` and `townwatch camera add|list|remove`.
func runCamera(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "add" || args[0] == "list" || args[0] == "remove") {
		return runCameraConfig(ctx, args[0], args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "probe" {
		fmt.Fprintln(stderr, "usage: townwatch camera probe [-username U] [-password-file F] [-transport tcp|udp|auto] [-tls-fingerprint HEX] [-snapshot FILE.jpg] [-json] URL")
		fmt.Fprintln(stderr, cameraConfigUsage)
		return exitUsage
	}
	fs := newFlagSet("camera probe", stderr)
	user := fs.String("username", "", "the camera account")
	passFile := fs.String("password-file", "", "file holding the password (else $"+cameraPasswordEnv+")")
	transport := fs.String("transport", "", "tcp (default), udp or auto")
	fingerprint := fs.String("tls-fingerprint", "", "rtsps: the certificate's SHA-256 to pin")
	snapshot := fs.String("snapshot", "", "write the first keyframe as a JPEG here")
	asJSON := fs.Bool("json", false, "print the result as the API's JSON")
	rest := args[1:]
	if len(rest) == 0 || strings.HasPrefix(rest[len(rest)-1], "-") {
		fmt.Fprintln(stderr, "townwatch camera probe: the camera's URL (or host) comes last")
		return exitUsage
	}
	target := rest[len(rest)-1]
	if code, ok := parseFlags(fs, rest[:len(rest)-1]); !ok {
		return code
	}
	password := os.Getenv(cameraPasswordEnv)
	if *passFile != "" {
		data, err := os.ReadFile(*passFile)
		if err != nil {
			fmt.Fprintf(stderr, "townwatch camera probe: -password-file: %v\n", err)
			return exitUsage
		}
		password = strings.TrimRight(string(data), "\r\n")
	}
	frames, err := viewer.NewFrameDecoder("")
	if err != nil {
		fmt.Fprintf(stderr, "no snapshot: %v\n", err)
		frames = nil
	}
	p := newProber(frames, slog.New(slog.DiscardHandler))
	res, err := p.Run(ctx, probe.Request{URL: target, Username: *user, Password: password, Transport: *transport, TLSFingerprint: *fingerprint})
	if err != nil {
		fmt.Fprintf(stderr, "townwatch camera probe: %v\n", err)
		return exitUsage
	}
	if *snapshot != "" && res.SnapshotJPEG != nil {
		if err := os.WriteFile(*snapshot, res.SnapshotJPEG, 0o600); err != nil {
			fmt.Fprintf(stderr, "townwatch camera probe: -snapshot: %v\n", err)
			return exitFailure
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printProbe(stdout, res)
	}
	if !res.OK {
		return exitFailure
	}
	return exitOK
}

func printProbe(w io.Writer, r probe.Result) {
	if !r.OK {
		fmt.Fprintf(w, "FAILED %s: %s: %s\n", r.URL, r.Failure, r.Reason)
		if r.TLSFingerprint != "" {
			fmt.Fprintf(w, "  certificate: %s (pin it with -tls-fingerprint once checked on the camera)\n", r.TLSFingerprint)
		}
		return
	}
	fmt.Fprintf(w, "OK %s\n  video:     %s %s %s, %dx%d, %.2f fps, %.0f kbit/s\n", r.URL, r.Codec, r.Profile, r.Level, r.Width, r.Height, r.FPS, r.Bitrate/1000)
	if r.Audio != nil {
		fmt.Fprintf(w, "  audio:     %s %d Hz\n", r.Audio.Codec, r.Audio.ClockRate)
	} else {
		fmt.Fprintln(w, "  audio:     none")
	}
	fmt.Fprintf(w, "  transport: %s, first keyframe after %d ms\n", r.Transport, r.FirstKeyframeMS)
	if r.TLSFingerprint != "" {
		fmt.Fprintf(w, "  certificate: %s\n", r.TLSFingerprint)
	}
	if r.SnapshotError != "" {
		fmt.Fprintf(w, "  snapshot:  none (%s)\n", r.SnapshotError)
	}
}
