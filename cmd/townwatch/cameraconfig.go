package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// townwatch camera add|list|remove: the camera API's changes for scripted installs, with
// the same store (configs.CameraStore): the same validation of the whole union, the same
// cameras.d files and lock, the same config.change audit rows (as cli:<os user>). A
// running server sees the files change and reloads within about half a second.

const cameraConfigUsage = `usage: townwatch camera add|list|remove -config FILE ...
  add    -file CAMERA.json|- [-password-file FILE]   a camera as JSON with the keys of the YAML
         (the main stream's password from -password-file, $TOWNWATCH_CAMERA_PASSWORD or main.password)
  list                                             every camera and the file it is defined in
  remove -id ID                                    a camera kept in cameras.d`

func runCameraConfig(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("camera "+cmd, stderr)
	path := fs.String("config", "", "configuration file; cameras.d beside it (required)")
	var file, passFile, id *string
	switch cmd {
	case "add":
		file = fs.String("file", "", "the camera as JSON, - for stdin (required)")
		passFile = fs.String("password-file", "", "the main stream's password (else $"+cameraPasswordEnv+", or main.password in the JSON)")
	case "remove":
		id = fs.String("id", "", "the camera's id (required)")
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if name, missing := missingFlag(fs); missing {
		fmt.Fprintf(stderr, "camera %s: -%s is required\n", cmd, name)
		return exitUsage
	}
	store := &configs.CameraStore{Main: *path}
	if cmd == "list" {
		return cameraList(store, stdout, stderr)
	}
	// The audit row needs the catalog, which the configuration names.
	ca, code, ok := openCLIAuditFor(ctx, "camera "+cmd, *path, stderr)
	if !ok {
		return code
	}
	defer ca.Close()
	audit := func(op string) configs.ChangeAudit {
		return func(before, after map[string]any) error {
			camera, details := configs.ChangeDetails(op, before, after)
			_, err := ca.record(ctx, catalog.AuditEntry{Action: access.AuditConfigChange, Camera: camera, Details: details})
			return err
		}
	}
	if cmd == "add" {
		body, err := cameraBody(*file, *passFile)
		if err != nil {
			fmt.Fprintf(stderr, "camera add: %v\n", err)
			return exitUsage
		}
		ch, err := store.Create(body, "", audit("create"))
		if err != nil {
			return cameraConfigError(stderr, "camera add", err)
		}
		fmt.Fprintf(stdout, "camera %s added (%s); a running townwatch applies it within a second\n", ch.After["id"], store.Main)
		return exitOK
	}
	if _, err := store.Delete(*id, "", audit("delete")); err != nil {
		return cameraConfigError(stderr, "camera remove", err)
	}
	fmt.Fprintf(stdout, "camera %s removed; its recordings stay under retention\n", *id)
	return exitOK
}

// cameraBody reads the camera's JSON and puts the main stream's password in it when it
// comes from a file or the environment (never a flag: other users see arguments in ps).
func cameraBody(file, passFile string) ([]byte, error) {
	var body []byte
	var err error
	if file == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("-file: %w", err)
	}
	password := os.Getenv(cameraPasswordEnv)
	if passFile != "" {
		data, err := os.ReadFile(passFile)
		if err != nil {
			return nil, fmt.Errorf("-password-file: %w", err)
		}
		password = strings.TrimRight(string(data), "\r\n")
	}
	if password == "" {
		return body, nil
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("-file: %w", err)
	}
	main, ok := doc["main"].(map[string]any)
	if !ok {
		return nil, errors.New("-file: the camera has no main stream for the password")
	}
	main["password"] = password
	return json.Marshal(doc)
}

func cameraList(store *configs.CameraStore, stdout, stderr io.Writer) int {
	cams, rev, err := store.List()
	if err != nil {
		fmt.Fprintf(stderr, "camera list: %v\n", err)
		return exitUsage
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tMAIN\tDEFINED IN")
	for _, c := range cams {
		url := ""
		if m, ok := c.Doc["main"].(map[string]any); ok {
			url, _ = m["url"].(string)
		}
		fmt.Fprintf(tw, "%v\t%v\t%s\t%s\n", c.Doc["id"], c.Doc["name"], url, c.File)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "revision %s\n", rev)
	return exitOK
}

// cameraConfigError prints a refused change: each problem with its path, as check-config
// does. Exit 2 for what the operator must fix, 1 for what went wrong otherwise.
func cameraConfigError(stderr io.Writer, name string, err error) int {
	var ve *configs.ValidationError
	switch {
	case errors.As(err, &ve):
		fmt.Fprintf(stderr, "%s: %d problem(s), nothing was changed:\n", name, len(ve.Problems))
		for _, p := range ve.Problems {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		return exitUsage
	case errors.Is(err, configs.ErrHandWritten), errors.Is(err, configs.ErrUnknownCamera):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return exitFailure
}
